//! `prnn baseline NAME --config RUN.TOML [--out DIR] [--validation]`: fit a baseline and evaluate it like a trained run.

use std::path::{Path, PathBuf};

use prnn::baseline::{self, Baseline};
use prnn::config::BASELINE_NAMES;

use super::eval::{print_table, write_results};
use super::session::{self, CONFIG_FILE};
use super::{read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `popularity`, `item_knn` (GRU4Rec's item-kNN) or `sknn` (session-kNN); settings in `[baselines]`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The run config: data, evaluation and `[baselines]` settings.
    #[arg(long, value_name = "RUN.TOML")]
    pub config: PathBuf,
    /// The run folder to create (default: `<[run] out>/<name>-<date>-<time>`); it must not exist yet.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Fit on the training set minus its last sessions and evaluate on those (see `prnn train --validation`).
    #[arg(long)]
    pub validation: bool,
    /// CPU threads; overrides the config's `[run] threads` (0 = every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,
}

/// The record of a baseline's run folder, beside `config.toml`, `eval.json` and `ranks.tsv`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BaselineRecord {
    pub prnn_version: String,
    pub command_line: Vec<String>,
    pub baseline: String,
    pub settings: serde_json::Value,
    pub config_path: PathBuf,
    pub config_dir: PathBuf,
    pub config_hash: String,
    pub validation: bool,
    /// Seconds spent fitting (building similarities or indices).
    pub fit_seconds: f64,
}

pub const BASELINE_FILE: &str = "baseline.json";

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    match fit_and_evaluate(args, reporter) {
        Ok(()) => Exit::Ok,
        Err(code) => code,
    }
}

/// The `[baselines]` settings that apply to `name`, as recorded in the run folder.
pub fn settings_of(name: &str, config: &prnn::config::RunConfig) -> serde_json::Value {
    match name {
        "item_knn" => serde_json::to_value(&config.baselines.item_knn),
        "sknn" => serde_json::to_value(&config.baselines.sknn),
        _ => Ok(serde_json::json!({})),
    }
    .expect("settings serialise")
}

fn fit_and_evaluate(args: &Args, reporter: &Reporter) -> Result<(), Exit> {
    if !BASELINE_NAMES.contains(&args.name.as_str()) {
        let hint = prnn::diagnostic::closest(&args.name, BASELINE_NAMES).map(|b| format!("did you mean `{b}`? ")).unwrap_or_default();
        reporter
            .error(&format!("unknown baseline `{}`", args.name), Some(&format!("{hint}the baselines are {}", BASELINE_NAMES.join(", "))));
        return Err(Exit::Usage);
    }
    let mut config = super::load_config(&args.config, reporter)?;
    let config_text = read_file(&args.config, "run config", reporter)?.text;
    if let Some(threads) = args.threads {
        config.run.threads = threads;
    }
    session::set_threads(&config);
    let dataset = session::load_data(&config, args.validation, reporter)?;
    let run_dir = match &args.out {
        Some(out) => {
            if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
                reporter.error(&format!("the run folder `{}` exists and is not empty", out.display()), Some("give a new `--out` folder"));
                return Err(Exit::Io);
            }
            out.clone()
        }
        None => super::train::new_run_dir(&config.run.out, &args.name),
    };
    let started = std::time::Instant::now();
    let fitted = Baseline::fit(&args.name, &dataset, &config.baselines).expect("the name was checked");
    let fit_seconds = started.elapsed().as_secs_f64();
    let evaluation = baseline::evaluate(&fitted, &dataset, &config.eval);
    let record = BaselineRecord {
        prnn_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: std::env::args().collect(),
        baseline: args.name.clone(),
        settings: settings_of(&args.name, &config),
        config_path: args.config.clone(),
        config_dir: std::path::absolute(args.config.parent().unwrap_or(Path::new("."))).unwrap_or_default(),
        config_hash: session::hash(&config_text),
        validation: args.validation,
        fit_seconds,
    };
    let write = |name: &str, text: String| {
        let path = run_dir.join(name);
        std::fs::write(&path, text).map_err(|e| {
            reporter.error(
                &format!("cannot write `{}`: {e}", path.display()),
                Some("check that the folder is writable and the disk has space"),
            );
            Exit::Io
        })
    };
    std::fs::create_dir_all(&run_dir).map_err(|e| {
        reporter.error(&format!("cannot create `{}`: {e}", run_dir.display()), None);
        Exit::Io
    })?;
    write(CONFIG_FILE, config_text)?;
    write(BASELINE_FILE, serde_json::to_string_pretty(&record).expect("records serialise") + "\n")?;
    let extra = serde_json::json!({ "baseline": args.name, "fit_seconds": fit_seconds, "validation": args.validation });
    write_results(&run_dir, &args.name, extra, &config.eval, &dataset, &evaluation, reporter)?;
    print_table(&format!("{} (fitted in {fit_seconds:.1} s)", args.name), &evaluation, &config.eval);
    eprintln!("run folder {}", run_dir.display());
    Ok(())
}

/// Reads a baseline's run folder and fits the baseline again on its data (for `prnn recommend`).
pub fn refit(dir: &Path, reporter: &Reporter) -> Result<(BaselineRecord, prnn::data::Dataset, Baseline), Exit> {
    let record_path = dir.join(BASELINE_FILE);
    let text = read_file(&record_path, "baseline record", reporter)?.text;
    let record: BaselineRecord = serde_json::from_str(&text).map_err(|e| {
        reporter.error(&format!("{} is damaged: {e}", record_path.display()), Some("run `prnn baseline` again"));
        Exit::Io
    })?;
    let config_text = read_file(&dir.join(CONFIG_FILE), "run config", reporter)?.text;
    let config = prnn::config::parse(&config_text, &record.config_dir).map_err(|diagnostics| {
        reporter
            .diagnostics(&prnn::diagnostic::Source::new(dir.join(CONFIG_FILE).display().to_string(), config_text.clone()), &diagnostics);
        Exit::Config
    })?;
    session::set_threads(&config);
    let dataset = session::load_data(&config, record.validation, reporter)?;
    let fitted = Baseline::fit(&record.baseline, &dataset, &config.baselines).ok_or_else(|| {
        reporter.error(&format!("{} names an unknown baseline `{}`", record_path.display(), record.baseline), None);
        Exit::Io
    })?;
    Ok((record, dataset, fitted))
}
