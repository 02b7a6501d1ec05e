//! `prnn eval RUN_DIR [--config RUN.TOML] [--device D]`: score a trained run on its test set.

use prnn::eval::{evaluate, Evaluation};
use prnn::ir::memory::Purpose;
use prnn::run::{self, results, CONFIG_FILE};
use prnn::train::checkpoint;

use super::error::{CheckpointUse, CliError};
use super::read_file;
use super::session;

pub use super::args::EvalArgs as Args;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let folder = run::read_run(&args.run)?;
    // eval.json and ranks.tsv are written into the run folder, and its checkpoint must not change meanwhile.
    let _lock = prnn::run::lock::lock_folder(&args.run)?;
    let record = folder.record;
    let (config_text, config_path, config_dir) = match &args.config {
        Some(path) => {
            let text = read_file(path, "run config")?.text;
            let dir = super::folder_of(path);
            (text, path.clone(), dir)
        }
        None => (folder.config_text, args.run.join(CONFIG_FILE), record.config_dir.clone()),
    };
    let mut prepared = session::prepare_for(
        Purpose::Evaluate,
        args.device.as_deref(),
        folder.spec,
        config_text,
        &config_path,
        &config_dir,
        &record.overrides,
        record.validation,
    )?;
    if let Some(threads) = args.threads {
        prepared.config.run.threads = threads;
    }
    let device = session::device(args.device.as_deref(), &prepared.config)?;
    let mut network = session::network(&prepared, device);
    let checkpoint_path = args.run.join(checkpoint::FILE_NAME);
    if !checkpoint_path.exists() {
        return Err(CliError::NoCheckpoint { dir: args.run.clone(), needed_for: CheckpointUse::Eval }.into());
    }
    let info = checkpoint::load(&checkpoint_path, &mut network, &prepared.dataset.items)
        .map_err(|source| CliError::Checkpoint { needed_for: CheckpointUse::Eval, source })?;
    let settings = &prepared.config.eval;
    let evaluation = evaluate(&prnn::lower::Autograd::new(network), &prepared.dataset, settings);
    let extra = serde_json::json!({ "epochs_trained": info.epoch, "device": session::device_name(device) });
    // Another config's results go beside the run's own, named after it, never over them.
    let label = args.config.as_deref().map(config_label);
    results::write_as(&args.run, label.as_deref(), &prepared.compiled.model.name, extra, settings, &prepared.dataset, &evaluation)?;
    print_table(
        &format!("{} after {} epoch{}", prepared.compiled.model.name, info.epoch, if info.epoch == 1 { "" } else { "s" }),
        &evaluation,
        settings,
    );
    Ok(())
}

/// The name an evaluation under another config is filed under: the config file's name without `.toml`, with
/// characters that file names or shells trip over replaced by `_`.
fn config_label(path: &std::path::Path) -> String {
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let label: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect();
    if label.is_empty() {
        "config".to_string()
    } else {
        label
    }
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
    // HitRate@K equals Recall@K (one target per event): one column, named both ways.
    println!("{:>8}  {:>14}  {:>8}  {:>8}", "cutoff", "recall (= hit)", "mrr", "ndcg");
    for metric in &evaluation.metrics {
        let ndcg = metric.ndcg.map_or("-".to_string(), |ndcg| format!("{ndcg:.4}"));
        println!("{:>8}  {:>14.4}  {:>8.4}  {:>8}", metric.cutoff, metric.recall, metric.mrr, ndcg);
    }
    println!("evaluated in {:.1} s ({:.0} events/s)", evaluation.seconds, evaluation.events_per_second);
}
