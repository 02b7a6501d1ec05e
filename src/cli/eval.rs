//! `prnn eval RUN_DIR [--config RUN.TOML] [--device D]`: score a trained run on its test set.

use std::io::Write;
use std::path::PathBuf;

use prnn::eval::{evaluate, Evaluation};
use prnn::train::checkpoint;

use super::session::{self, CONFIG_FILE};
use super::{read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run folder `prnn train` wrote.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Evaluate with this run config instead of the run's own (e.g. other cutoffs, ties or `most_popular`);
    /// its data must have the same item index.
    #[arg(long, value_name = "RUN.TOML")]
    pub config: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// CPU threads; overrides the config's `[run] threads` (0 = every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,
}

pub const EVAL_FILE: &str = "eval.json";
pub const RANKS_FILE: &str = "ranks.tsv";

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    match eval(args, reporter) {
        Ok(()) => Exit::Ok,
        Err(code) => code,
    }
}

fn eval(args: &Args, reporter: &Reporter) -> Result<(), Exit> {
    let (record, spec, own_config) = session::read_run(&args.run, reporter)?;
    let (config_text, config_path, config_dir) = match &args.config {
        Some(path) => {
            let text = read_file(path, "run config", reporter)?.text;
            let dir = std::path::absolute(path.parent().unwrap_or(std::path::Path::new("."))).unwrap_or_default();
            (text, path.clone(), dir)
        }
        None => (own_config, args.run.join(CONFIG_FILE), record.config_dir.clone()),
    };
    let mut prepared = session::prepare(spec, config_text, &config_path, &config_dir, &record.overrides, record.validation, reporter)?;
    if let Some(threads) = args.threads {
        prepared.config.run.threads = threads;
    }
    let device = session::device(args.device.as_deref(), &prepared.config, reporter)?;
    let mut network = session::network(&prepared, device);
    let checkpoint_path = args.run.join(checkpoint::FILE_NAME);
    if !checkpoint_path.exists() {
        reporter.error(
            &format!("`{}` has no checkpoint yet", args.run.display()),
            Some("the run stopped before its first epoch ended; continue it with `prnn train --resume DIR`"),
        );
        return Err(Exit::Io);
    }
    let info = checkpoint::load(&checkpoint_path, &mut network, &prepared.dataset.items).map_err(|e| {
        reporter.error(&e.to_string(), Some("evaluate with the run's own config, whose data the run was trained on"));
        Exit::Config
    })?;
    let settings = &prepared.config.eval;
    let evaluation = evaluate(&prnn::lower::Autograd::new(network), &prepared.dataset, settings);
    let extra = serde_json::json!({ "epochs_trained": info.epoch, "device": session::device_name(device) });
    write_results(&args.run, &prepared.compiled.model.name, extra, settings, &prepared.dataset, &evaluation, reporter)?;
    print_table(
        &format!("{} after {} epoch{}", prepared.compiled.model.name, info.epoch, if info.epoch == 1 { "" } else { "s" }),
        &evaluation,
        settings,
    );
    Ok(())
}

/// Writes `eval.json` (the summary, with `extra` fields after the model's name) and `ranks.tsv` into a run folder.
pub fn write_results(
    run: &std::path::Path,
    name: &str,
    extra: serde_json::Value,
    settings: &prnn::config::Eval,
    dataset: &prnn::data::Dataset,
    evaluation: &Evaluation,
    reporter: &Reporter,
) -> Result<(), Exit> {
    let mut summary = serde_json::json!({ "model": name });
    let fields = summary.as_object_mut().expect("an object");
    if let serde_json::Value::Object(extra) = extra {
        fields.extend(extra);
    }
    fields.extend(
        serde_json::json!({
            "ties": settings.ties,
            "candidates": evaluation.candidates,
            "events": evaluation.events,
            "sessions": evaluation.sessions,
            "seconds": evaluation.seconds,
            "events_per_second": evaluation.events_per_second,
            "metrics": evaluation.metrics,
        })
        .as_object()
        .expect("an object")
        .clone(),
    );
    let eval_path = run.join(EVAL_FILE);
    let ranks_path = run.join(RANKS_FILE);
    write_ranks(&ranks_path, dataset, evaluation).map_err(|e| {
        reporter.error(&format!("cannot write `{}`: {e}", ranks_path.display()), None);
        Exit::Io
    })?;
    // Last, so that a folder with `eval.json` always has its ranks.
    std::fs::write(&eval_path, serde_json::to_string_pretty(&summary).expect("json") + "\n").map_err(|e| {
        reporter.error(&format!("cannot write `{}`: {e}", eval_path.display()), None);
        Exit::Io
    })
}

pub fn write_ranks(path: &std::path::Path, dataset: &prnn::data::Dataset, evaluation: &Evaluation) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "SessionId\tPosition\tItemId\tRank")?;
    for rank in &evaluation.ranks {
        let session = dataset.test.key_text(rank.session as usize);
        writeln!(out, "{session}\t{}\t{}\t{}", rank.position, dataset.items.get_str(rank.item), rank.rank)?;
    }
    out.flush()
}

pub fn print_table(what: &str, evaluation: &Evaluation, settings: &prnn::config::Eval) {
    let ties = serde_json::to_value(settings.ties).expect("ties serialise");
    println!(
        "{what}: {} test events in {} sessions, ranked against {} items ({} ties)",
        evaluation.events,
        evaluation.sessions,
        evaluation.candidates,
        ties.as_str().unwrap_or("")
    );
    println!("{:>8}  {:>8}  {:>8}", "cutoff", "recall", "mrr");
    for metric in &evaluation.metrics {
        println!("{:>8}  {:>8.4}  {:>8.4}", metric.cutoff, metric.recall, metric.mrr);
    }
    println!("evaluated in {:.1} s ({:.0} events/s)", evaluation.seconds, evaluation.events_per_second);
}
