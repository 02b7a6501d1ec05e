//! `prnn compile SPEC [--config run.toml] [--format text|dot|json]`: print the graph and training plan.

use std::path::PathBuf;

use prnn::ir::{render, Compiled};

use super::{read_file, Exit, Reporter};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Readable graph, parameter counts and plan (the snapshot format).
    Text,
    /// Graphviz DOT of the dataflow graph.
    Dot,
    /// Model, graph, parameter counts and plan as JSON.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The spec to compile.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// A run config that binds the spec's inputs to data; it decides the kind of `feature` inputs.
    #[arg(long, value_name = "RUN.TOML")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    let source = match read_file(&args.spec, "spec", reporter) {
        Ok(source) => source,
        Err(code) => return code,
    };
    let mut model = match prnn::check_source(&source) {
        Ok(model) => model,
        Err(error) => {
            reporter.diagnostics(&source, &error.diagnostics);
            return Exit::Spec;
        }
    };
    if let Some(config_path) = &args.config {
        let config_source = match read_file(config_path, "run config", reporter) {
            Ok(source) => source,
            Err(code) => return code,
        };
        let base = config_path.parent().unwrap_or(std::path::Path::new("."));
        let config = match prnn::config::parse(&config_source.text, base) {
            Ok(config) => config,
            Err(diagnostics) => {
                reporter.diagnostics(&config_source, &diagnostics);
                return Exit::Config;
            }
        };
        model = match prnn::config::bind(&config, &model, &source.name) {
            Ok(model) => model,
            Err(diagnostics) => {
                reporter.diagnostics(&config_source, &diagnostics);
                return Exit::Config;
            }
        };
    }
    let compiled = Compiled::new(model);
    let text = match args.format {
        Format::Text => render::text(&compiled),
        Format::Dot => render::dot(&compiled),
        Format::Json => render::json(&compiled),
    };
    print!("{text}");
    Exit::Ok
}
