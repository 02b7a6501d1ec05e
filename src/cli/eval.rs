//! `prnn eval RUN_DIR [--config RUN.TOML] [--device D]`: score a trained run on its test set.

use std::io::Write;
use std::path::PathBuf;

use prnn::eval::{evaluate, Evaluation};
use prnn::lower::Network;
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
    let prepared = session::prepare(spec, config_text, &config_path, &config_dir, &record.overrides, reporter)?;
    let device = session::device(args.device.as_deref(), &prepared.config, reporter)?;
    let mut network = Network::new(&prepared.compiled.model, &prepared.dataset, device);
    let checkpoint_path = args.run.join(checkpoint::FILE_NAME);
    if !checkpoint_path.exists() {
        reporter.error(
            &format!("`{}` has no checkpoint yet", args.run.display()),
            Some("the run stopped before its first epoch ended; continue it with `prnn train --resume DIR`"),
        );
        return Err(Exit::Io);
    }
    let info = checkpoint::load(&checkpoint_path, &mut network, &prepared.dataset.items).map_err(|e| {
        reporter.error(&e.0, Some("evaluate with the run's own config, whose data the run was trained on"));
        Exit::Config
    })?;
    let settings = &prepared.config.eval;
    let evaluation = evaluate(&network, &prepared.dataset, settings);
    let ties = serde_json::to_value(settings.ties).expect("ties serialise");
    let summary = serde_json::json!({
        "model": prepared.compiled.model.name,
        "epochs_trained": info.epoch,
        "device": session::device_name(device),
        "ties": ties,
        "candidates": evaluation.candidates,
        "events": evaluation.events,
        "sessions": evaluation.sessions,
        "seconds": evaluation.seconds,
        "events_per_second": evaluation.events_per_second,
        "metrics": evaluation.metrics,
    });
    let eval_path = args.run.join(EVAL_FILE);
    std::fs::write(&eval_path, serde_json::to_string_pretty(&summary).expect("json") + "\n").map_err(|e| {
        reporter.error(&format!("cannot write `{}`: {e}", eval_path.display()), None);
        Exit::Io
    })?;
    write_ranks(&args.run.join(RANKS_FILE), &prepared.dataset, &evaluation).map_err(|e| {
        reporter.error(&format!("cannot write `{}`: {e}", args.run.join(RANKS_FILE).display()), None);
        Exit::Io
    })?;
    print_table(&prepared.compiled.model.name, info.epoch, &evaluation, ties.as_str().unwrap_or(""));
    Ok(())
}

fn write_ranks(path: &std::path::Path, dataset: &prnn::data::Dataset, evaluation: &Evaluation) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "SessionId\tPosition\tItemId\tRank")?;
    for rank in &evaluation.ranks {
        let session = dataset.test.key_text(rank.session as usize);
        writeln!(out, "{session}\t{}\t{}\t{}", rank.position, dataset.items.get_str(rank.item), rank.rank)?;
    }
    out.flush()
}

fn print_table(model: &str, epochs: u64, evaluation: &Evaluation, ties: &str) {
    println!(
        "{model} after {epochs} epoch{}: {} test events in {} sessions, ranked against {} items ({ties} ties)",
        if epochs == 1 { "" } else { "s" },
        evaluation.events,
        evaluation.sessions,
        evaluation.candidates
    );
    println!("{:>8}  {:>8}  {:>8}", "cutoff", "recall", "mrr");
    for metric in &evaluation.metrics {
        println!("{:>8}  {:>8.4}  {:>8.4}", metric.cutoff, metric.recall, metric.mrr);
    }
    println!("evaluated in {:.1} s ({:.0} events/s)", evaluation.seconds, evaluation.events_per_second);
}
