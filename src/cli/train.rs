//! `prnn train SPEC --config RUN.TOML [--device D] [--out DIR] [key=value ...]` and `prnn train --resume DIR`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use prnn::config::StepChoice;
use prnn::train::checkpoint::{self, CheckpointInfo};
use prnn::train::{EpochOptions, EpochSummary, Trainer};

use super::session::{self, RunRecord, CONFIG_FILE, METRICS_FILE, RECORD_FILE, SPEC_FILE};
use super::{read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The spec to train.
    #[arg(value_name = "SPEC", required_unless_present = "resume")]
    pub spec: Option<PathBuf>,
    /// The run config binding the spec's inputs to data.
    #[arg(long, value_name = "RUN.TOML", required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// The training step: `fused` (hand-derived gradients, CPU only), `autograd` (libtorch autograd, any
    /// device) or `auto` (fused on the CPU); overrides the config's `[run] step`.
    #[arg(long, value_name = "STEP", value_enum)]
    pub step: Option<StepArg>,
    /// The run folder to create (default: `<[run] out>/<model>-<date>-<time>`); it must not exist yet.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Train on the training set minus its last sessions and evaluate on those (as many sessions as the
    /// test set has), for tuning without looking at the test set; recorded in the run folder.
    #[arg(long, conflicts_with = "resume")]
    pub validation: bool,
    /// CPU threads for libtorch; overrides the config's `[run] threads` (0 = every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,
    /// Evaluate on the test (or validation) set after every epoch and record Recall and MRR in
    /// `metrics.jsonl`, for plots of metrics per epoch.
    #[arg(long)]
    pub eval_every_epoch: bool,
    /// Continue a stopped or killed run from its last checkpoint, with its own spec, config and overrides.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["spec", "config", "overrides"])]
    pub resume: Option<PathBuf>,
    /// Training settings to override: seed, batch, lr, momentum, eps, epochs, extra, alpha, and max_batches
    /// (stop every epoch after N mini-batches, for smoke runs). E.g. `epochs=1 lr=0.1`.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StepArg {
    Auto,
    Fused,
    Autograd,
}

impl From<StepArg> for StepChoice {
    fn from(arg: StepArg) -> StepChoice {
        match arg {
            StepArg::Auto => StepChoice::Auto,
            StepArg::Fused => StepChoice::Fused,
            StepArg::Autograd => StepChoice::Autograd,
        }
    }
}

/// Seconds between progress lines when stderr is not a terminal.
const LOG_EVERY_SECONDS: u64 = 30;

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    match train(args, reporter) {
        Ok(()) => Exit::Ok,
        Err(code) => code,
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn io_error(what: &str, path: &Path, error: std::io::Error, reporter: &Reporter) -> Exit {
    reporter.error(
        &format!("cannot write {what} `{}`: {error}", path.display()),
        Some("check that the folder is writable and the disk has space"),
    );
    Exit::Io
}

/// A new run folder under `out`, named after the model and the time.
pub fn new_run_dir(out: &Path, model: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let base = out.join(format!("{model}-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

fn train(args: &Args, reporter: &Reporter) -> Result<(), Exit> {
    let (mut prepared, record, run_dir) = match &args.resume {
        Some(dir) => {
            let (record, spec, config_text) = session::read_run(dir, reporter)?;
            let prepared = session::prepare(
                spec,
                config_text,
                &record.config_path,
                &record.config_dir,
                &record.overrides,
                record.validation,
                reporter,
            )?;
            let model_json = serde_json::to_string(&prepared.compiled.model).expect("models serialise");
            if session::hash(&model_json) != record.model_hash {
                reporter.error(
                    &format!("the run in `{}` no longer matches its own spec and config", dir.display()),
                    Some("its files were edited after training started; start a new run instead"),
                );
                return Err(Exit::Config);
            }
            (prepared, record, dir.clone())
        }
        None => {
            let spec_path = args.spec.as_ref().expect("clap: SPEC is required without --resume");
            let config_path = args.config.as_ref().expect("clap: --config is required without --resume");
            let spec = read_file(spec_path, "spec", reporter)?;
            let config_text = read_file(config_path, "run config", reporter)?.text;
            let config_dir = absolute(config_path.parent().unwrap_or(Path::new(".")));
            let prepared = session::prepare(spec, config_text, config_path, &config_dir, &args.overrides, args.validation, reporter)?;
            let run_dir = match &args.out {
                Some(out) => {
                    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
                        reporter.error(
                            &format!("the run folder `{}` exists and is not empty", out.display()),
                            Some("give a new `--out` folder, or continue that run with `prnn train --resume DIR`"),
                        );
                        return Err(Exit::Io);
                    }
                    out.clone()
                }
                None => new_run_dir(&prepared.config.run.out, &prepared.compiled.model.name),
            };
            let model_json = serde_json::to_string(&prepared.compiled.model).expect("models serialise");
            let record = RunRecord {
                prnn_version: env!("CARGO_PKG_VERSION").to_string(),
                torch_version: prnn::runtime::cuda::loaded_torch_version(),
                command_line: std::env::args().collect(),
                spec_path: spec_path.clone(),
                config_path: config_path.clone(),
                config_dir,
                spec_hash: session::hash(&prepared.spec.text),
                config_hash: session::hash(&prepared.config_text),
                model_hash: session::hash(&model_json),
                overrides: args.overrides.clone(),
                max_batches: prepared.max_batches,
                device: String::new(),
                step: String::new(),
                parameters: 0,
                validation: args.validation,
                model: serde_json::to_value(&prepared.compiled.model).expect("models serialise"),
            };
            (prepared, record, run_dir)
        }
    };
    if let Some(threads) = args.threads {
        prepared.config.run.threads = threads;
    }
    let device = session::device(
        args.device.as_deref().or((!record.device.is_empty()).then_some(record.device.as_str())),
        &prepared.config,
        reporter,
    )?;
    let network = session::network(&prepared, device);
    let recorded_step = match record.step.as_str() {
        "fused" => Some(StepChoice::Fused),
        "autograd" => Some(StepChoice::Autograd),
        _ => None,
    };
    let step_kind = session::step_kind(args.step.map(StepChoice::from).or(recorded_step), &prepared.config, &network, reporter)?;
    let mut record = record;
    let mut start_epoch = 1;
    let mut network = network;
    if args.resume.is_some() {
        let path = run_dir.join(checkpoint::FILE_NAME);
        if path.exists() {
            let info = checkpoint::load(&path, &mut network, &prepared.dataset.items).map_err(|e| {
                reporter.error(&e.to_string(), Some("start a new run; this folder's checkpoint cannot be continued"));
                Exit::Io
            })?;
            start_epoch = info.epoch + 1;
        }
        keep_metrics_up_to(&run_dir.join(METRICS_FILE), start_epoch - 1).map_err(|e| io_error("metrics", &run_dir, e, reporter))?;
    } else {
        std::fs::create_dir_all(&run_dir).map_err(|e| io_error("the run folder", &run_dir, e, reporter))?;
        record.device = session::device_name(device);
        record.step = session::step_name(step_kind).to_string();
        record.parameters = network.parameter_count();
        let files = [
            (SPEC_FILE, prepared.spec.text.clone()),
            (CONFIG_FILE, prepared.config_text.clone()),
            (RECORD_FILE, serde_json::to_string_pretty(&record).expect("records serialise") + "\n"),
        ];
        for (name, text) in files {
            let path = run_dir.join(name);
            std::fs::write(&path, text).map_err(|e| io_error("the run record", &path, e, reporter))?;
        }
    }
    let compiled = &prepared.compiled;
    let epochs = compiled.plan.epochs;
    eprintln!(
        "training {} ({} parameters) on {}, {} step: {epochs} epoch{}, {}; run folder {}",
        compiled.model.name,
        network.parameter_count(),
        session::device_name(device),
        session::step_name(step_kind),
        if epochs == 1 { "" } else { "s" },
        compiled.plan.strategy,
        run_dir.display()
    );
    if start_epoch > epochs {
        eprintln!("the run has finished all {epochs} epochs already");
        return Ok(());
    }
    if start_epoch > 1 {
        eprintln!("resuming after epoch {}", start_epoch - 1);
    }
    let mut trainer = Trainer::new(network, &prepared.dataset, step_kind).expect("session::step_kind checked the fused step");
    let options = EpochOptions { max_batches: prepared.max_batches, ..EpochOptions::default() };
    let terminal = std::io::stderr().is_terminal();
    for epoch in start_epoch..=epochs {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed} / ~{eta})")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            let phase = trainer.phase_of(epoch) + 1;
            bar.set_prefix(format!("epoch {epoch}/{epochs} phase {phase}"));
            bar
        });
        let started = std::time::Instant::now();
        let mut last_line = started;
        let phase = trainer.phase_of(epoch) + 1;
        let outcome = trainer.epoch(epoch, options, |progress| {
            let rate = progress.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
            if let Some(bar) = &bar {
                bar.set_length(progress.total_events);
                bar.set_position(progress.events);
                bar.set_message(format!("{:.1}k events/s, loss {:.4}", rate / 1000.0, progress.loss));
            } else if last_line.elapsed().as_secs() >= LOG_EVERY_SECONDS {
                // Logs (CI, nohup, a pipe) get a line now and then instead of a bar.
                last_line = std::time::Instant::now();
                eprintln!(
                    "epoch {epoch}/{epochs}  phase {phase}  {:.0}% ({} of {} events)  {:.0} events/s  loss {:.5}",
                    100.0 * progress.events as f64 / progress.total_events.max(1) as f64,
                    progress.events,
                    progress.total_events,
                    rate,
                    progress.loss
                );
            }
        });
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let summary = match outcome {
            Ok(summary) => summary,
            Err(diverged) => {
                let kept =
                    if epoch > 1 { format!("the checkpoint of epoch {} is kept", epoch - 1) } else { "no checkpoint was written".into() };
                reporter.error(
                    &format!(
                        "training diverged: the loss became NaN or infinite in epoch {} (found by mini-batch {}); {kept}",
                        diverged.epoch, diverged.batch
                    ),
                    Some("lower the learning rate (`lr=...`), or check the features for extreme values"),
                );
                return Err(Exit::Diverged);
            }
        };
        let evaluation = args.eval_every_epoch.then(|| prnn::eval::evaluate(trainer.executor(), &prepared.dataset, &prepared.config.eval));
        append_metrics(&run_dir.join(METRICS_FILE), &summary, evaluation.as_ref())
            .map_err(|e| io_error("metrics", &run_dir, e, reporter))?;
        let info = CheckpointInfo { epoch, prnn_version: env!("CARGO_PKG_VERSION").to_string(), model: compiled.model.name.clone() };
        checkpoint::save(&run_dir, trainer.network(), &prepared.dataset.items, &info)
            .map_err(|e| io_error("the checkpoint", &run_dir.join(checkpoint::FILE_NAME), e, reporter))?;
        eprintln!(
            "epoch {epoch}/{epochs}  phase {}  trains {}  loss {:.5}  {} events in {:.1} s ({:.0} events/s, {:.0} mini-batches/s)",
            summary.phase,
            summary.trains.join(", "),
            summary.loss,
            summary.events,
            summary.seconds,
            summary.events_per_second,
            summary.batches_per_second
        );
        if let Some(evaluation) = &evaluation {
            let line: Vec<String> =
                evaluation.metrics.iter().map(|m| format!("Recall@{0} {1:.4}  MRR@{0} {2:.4}", m.cutoff, m.recall, m.mrr)).collect();
            eprintln!("epoch {epoch}/{epochs}  {}", line.join("  "));
        }
    }
    eprintln!("done; evaluate with: prnn eval {}", run_dir.display());
    Ok(())
}

/// One line per epoch; with `--eval-every-epoch` the line also holds the epoch's `eval` metrics.
fn append_metrics(path: &Path, summary: &EpochSummary, evaluation: Option<&prnn::eval::Evaluation>) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut line = serde_json::to_value(summary).expect("summaries serialise");
    if let (Some(evaluation), Some(fields)) = (evaluation, line.as_object_mut()) {
        fields.insert("eval".into(), serde_json::to_value(&evaluation.metrics).expect("metrics serialise"));
    }
    writeln!(file, "{line}")?;
    file.sync_all()
}

/// Drops metric lines of epochs after `last` (an epoch that ran but whose checkpoint was never written).
fn keep_metrics_up_to(path: &Path, last: u64) -> std::io::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<EpochSummary>(line).is_ok_and(|s| s.epoch <= last))
        .map(|line| format!("{line}\n"))
        .collect();
    if kept != text {
        std::fs::write(path, kept)?;
    }
    Ok(())
}
