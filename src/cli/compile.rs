//! `prnn compile SPEC [--config run.toml] [--format text|dot|json]`: print the graph and training plan.

use std::path::PathBuf;

use prnn::ir::{render, Bindings, Compiled};

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
    /// A run config that binds the spec's inputs to data: it decides the kind of `feature` inputs, and the
    /// prepared data (cached) makes n_items and input widths concrete.
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
    let mut bindings = None;
    if let Some(config_path) = &args.config {
        let config = match super::load_config(config_path, reporter) {
            Ok(config) => config,
            Err(code) => return code,
        };
        model = match prnn::config::bind(&config, &model, &source.name) {
            Ok(model) => model,
            Err(diagnostics) => {
                let config_source = match read_file(config_path, "run config", reporter) {
                    Ok(source) => source,
                    Err(code) => return code,
                };
                reporter.diagnostics(&config_source, &diagnostics);
                return Exit::Config;
            }
        };
        // The data decides n_items and every input's width. A current cache is used, but compiling never
        // writes one: `prnn data prepare` does.
        let (dataset, source) = match prnn::data::load(&config, false) {
            Ok(loaded) => loaded,
            Err(error) => return super::data::report_data_error(&error, reporter),
        };
        if let prnn::data::Source::Prepared { note: Some(note), .. } = &source {
            eprintln!("note: {note}; `prnn data prepare` writes a new one");
        }
        bindings = Some(Bindings {
            items: Some(dataset.items.len() as u64),
            widths: dataset.features.iter().map(|(name, feature)| (name.clone(), feature.width() as u64)).collect(),
            batch: Some(model.train.batch),
            sampled: Some(model.train.batch + model.train.negatives.extra),
        });
    }
    let mut compiled = Compiled::new(model);
    if let Some(bindings) = &bindings {
        compiled.bind(bindings);
    }
    let text = match args.format {
        Format::Text => render::text(&compiled),
        Format::Dot => render::dot(&compiled),
        Format::Json => render::json(&compiled),
    };
    print!("{text}");
    Exit::Ok
}
