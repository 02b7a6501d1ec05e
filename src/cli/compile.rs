//! `prnn compile SPEC [--config run.toml] [--format text|dot|json]`: print the graph and training plan.

use std::path::PathBuf;

use prnn::ir::{render, Bindings, Compiled};

use super::error::Diagnostics;
use super::{load_config, read_file};

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

pub fn run(args: &Args) -> anyhow::Result<()> {
    let source = read_file(&args.spec, "spec")?;
    let mut model = prnn::check_source(&source).map_err(|error| Diagnostics::spec(&source, error.diagnostics))?;
    let mut bindings = None;
    if let Some(config_path) = &args.config {
        let (config, config_source) = load_config(config_path)?;
        model =
            prnn::config::bind(&config, &model, &source.name).map_err(|diagnostics| Diagnostics::config(&config_source, diagnostics))?;
        // The data decides n_items and every input's width. A current cache is used, but compiling never
        // writes one: `prnn data prepare` does.
        let (dataset, source) = prnn::data::load(&config, false)?;
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
    Ok(())
}
