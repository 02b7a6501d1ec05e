//! `prnn baseline NAME --config RUN.TOML [--out DIR] [--validation]`: fit a baseline and evaluate it like a trained run.

use std::path::Path;

use prnn::baseline::{self, Baseline};
use prnn::config::BASELINE_NAMES;
use prnn::run::file::create_dir;
use prnn::run::{self, results, BaselineRecord};

use super::error::{CliError, Diagnostics};
use super::eval::print_table;
use super::load_config;
use super::session;

pub use super::args::BaselineArgs as Args;

/// The `[baselines]` settings that apply to `name`, as recorded in the run folder.
pub fn settings_of(name: &str, config: &prnn::config::RunConfig) -> serde_json::Value {
    match name {
        "item_knn" => serde_json::to_value(&config.baselines.item_knn),
        "sknn" => serde_json::to_value(&config.baselines.sknn),
        _ => Ok(serde_json::json!({})),
    }
    .expect("settings serialise")
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !BASELINE_NAMES.contains(&args.name.as_str()) {
        return Err(CliError::UnknownBaseline(args.name.clone()).into());
    }
    super::session::recorded_paths(&[], &args.config)?;
    let (mut config, config_source) = load_config(&args.config)?;
    let config_text = config.recorded_text(&config_source.text);
    if let Some(threads) = args.threads {
        config.run.threads = threads;
    }
    session::set_threads(&config);
    let dataset = session::load_data(&config, args.validation)?;
    let run_dir = match &args.out {
        Some(out) if run::is_taken(out) => return Err(CliError::RunFolderTaken { dir: out.clone(), resumable: false }.into()),
        Some(out) => out.clone(),
        None => run::new_run_dir(&config.run.out, &args.name),
    };
    let started = std::time::Instant::now();
    let fitted = Baseline::fit(&args.name, &dataset, &config.baselines).expect("the name was checked");
    let fit_seconds = started.elapsed().as_secs_f64();
    let evaluation = baseline::evaluate(&fitted, &dataset, &config.eval);
    let record = BaselineRecord {
        prnn_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: run::command_line(),
        baseline: args.name.clone(),
        settings: settings_of(&args.name, &config),
        config_path: args.config.clone(),
        config_dir: super::folder_of(&args.config),
        config_hash: run::hash(&config_text),
        validation: args.validation,
        fit_seconds,
    };
    create_dir(&run_dir, "")?;
    let _lock = prnn::run::lock::lock_folder(&run_dir)?;
    run::write_baseline(&run_dir, &config_text, &record)?;
    let extra = serde_json::json!({ "baseline": args.name, "fit_seconds": fit_seconds, "validation": args.validation });
    results::write(&run_dir, &args.name, extra, &config.eval, &dataset, &evaluation)?;
    print_table(&format!("{} (fitted in {fit_seconds:.1} s)", args.name), &evaluation, &config.eval);
    eprintln!("run folder {}", run_dir.display());
    Ok(())
}

/// Reads a baseline's run folder and fits the baseline again on its data (for `prnn recommend`).
pub fn refit(dir: &Path) -> anyhow::Result<(BaselineRecord, prnn::data::Dataset, Baseline)> {
    let folder = run::read_baseline(dir)?;
    let config = prnn::config::parse(&folder.config.text, &folder.record.config_dir)
        .map_err(|diagnostics| Diagnostics::config(&folder.config, diagnostics))?;
    session::set_threads(&config);
    let dataset = session::load_data(&config, folder.record.validation)?;
    let fitted = Baseline::fit(&folder.record.baseline, &dataset, &config.baselines).expect("read_baseline checked the name");
    Ok((folder.record, dataset, fitted))
}
