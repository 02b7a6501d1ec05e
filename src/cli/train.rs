//! `prnn train SPEC --config RUN.TOML [--device D] [--out DIR] [key=value ...]` and `prnn train --resume DIR`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use prnn::config::StepChoice;
use prnn::ir::StopMetric;
use prnn::run::file::create_dir;
use prnn::run::lock::lock_folder;
use prnn::run::metrics::StopRecord;
use prnn::run::{self, metrics, FileError, RunRecord, METRICS_FILE};
use prnn::train::checkpoint::{self, CheckpointInfo};
use prnn::train::clock::RunClock;
use prnn::train::stopping::{GroupEnd, Stopper};
use prnn::train::{EpochError, EpochHooks, EpochOptions, InEpoch, Progress, Trainer};

use super::error::{CheckpointUse, CliError};
use super::read_file;
use super::session;

pub use super::args::TrainArgs as Args;

/// Seconds between progress lines when stderr is not a terminal, so that logs of long runs show life.
const LOG_EVERY_SECONDS: f64 = 10.0;

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Held until training ends: no second process writes this run folder meanwhile.
    let mut lock = None;
    let (mut prepared, record, run_dir) = match &args.resume {
        Some(dir) => {
            let folder = run::read_run(dir).with_context(|| format!("cannot resume `{}`", dir.display()))?;
            lock = Some(lock_folder(dir).with_context(|| format!("cannot resume `{}`", dir.display()))?);
            let record = folder.record;
            let prepared = session::prepare_for(
                prnn::ir::memory::Purpose::Train,
                args.device.as_deref().or((!record.device.is_empty()).then_some(record.device.as_str())),
                folder.spec,
                folder.config_text,
                &record.config_path,
                &record.config_dir,
                &record.overrides,
                record.validation,
            )?;
            let model_json = serde_json::to_string(&prepared.compiled.model).expect("models serialise");
            if run::hash(&model_json) != record.model_hash {
                return Err(CliError::EditedRun(dir.clone()).into());
            }
            (prepared, record, dir.clone())
        }
        None => {
            let spec_path = args.spec.as_ref().expect("clap: SPEC is required without --resume");
            let config_path = args.config.as_ref().expect("clap: --config is required without --resume");
            super::session::recorded_paths(&[spec_path], config_path)?;
            let spec = read_file(spec_path, "spec")?;
            let config_text = read_file(config_path, "run config")?.text;
            let config_dir = super::folder_of(config_path);
            // The memory check sees the device this run will use (`--device` over `[run] device`).
            let purpose = prnn::ir::memory::Purpose::Train;
            let prepared = session::prepare_for(
                purpose,
                args.device.as_deref(),
                spec,
                config_text,
                config_path,
                &config_dir,
                &args.overrides,
                args.validation,
            )?;
            let run_dir = match &args.out {
                Some(out) if run::is_taken(out) => return Err(CliError::RunFolderTaken { dir: out.clone(), resumable: true }.into()),
                Some(out) => out.clone(),
                None => run::new_run_dir(&prepared.config.run.out, &prepared.compiled.model.name),
            };
            let model_json = serde_json::to_string(&prepared.compiled.model).expect("models serialise");
            let record = RunRecord {
                prnn_version: env!("CARGO_PKG_VERSION").to_string(),
                torch_version: prnn::runtime::cuda::loaded_torch_version(),
                command_line: run::command_line(),
                spec_path: spec_path.clone(),
                config_path: config_path.clone(),
                config_dir,
                spec_hash: run::hash(&prepared.spec.text),
                config_hash: run::hash(&prepared.config_text),
                model_hash: run::hash(&model_json),
                overrides: args.overrides.clone(),
                max_batches: prepared.max_batches,
                device: String::new(),
                step: String::new(),
                parameters: 0,
                validation: args.validation,
                model: serde_json::to_value(&prepared.compiled.model).expect("models serialise"),
                checksum: None,
            };
            (prepared, record, run_dir)
        }
    };
    // Early stopping chooses on the validation split: the test set never chooses, and a model trained on less
    // than the training set would be scored on other test events than every other model.
    if prepared.compiled.plan.stop.is_some() && !record.validation {
        return Err(CliError::StopNeedsValidation.into());
    }
    if let Some(threads) = args.threads {
        prepared.config.run.threads = threads;
    }
    let device =
        session::device(args.device.as_deref().or((!record.device.is_empty()).then_some(record.device.as_str())), &prepared.config)?;
    let network = session::network(&prepared, device);
    let step_kind = session::step_kind(args.step.map(StepChoice::from).or(record.step_choice()), &prepared.config, &network)?;
    let mut record = record;
    let mut start_epoch = 1;
    let mut network = network;
    let mut in_epoch = None;
    if args.resume.is_some() {
        let freed = run::file::remove_partial_writes(&run_dir)?;
        if freed > 0 {
            eprintln!("note: removed {freed} bytes of checkpoint writes that a killed run left unfinished");
        }
        let (done, done_line, partial) = load_for_resume(&run_dir, &mut network, &prepared)?;
        start_epoch = done + 1;
        in_epoch = partial;
        metrics::keep_up_to(&run_dir.join(METRICS_FILE), done)?;
        if let Some(line) = done_line {
            metrics::restore_line(&run_dir.join(METRICS_FILE), done, &line)?;
        }
    } else {
        create_dir(&run_dir, "the run folder")?;
        lock = Some(lock_folder(&run_dir)?);
        record.device = session::device_name(device);
        record.step = session::step_name(step_kind).to_string();
        record.parameters = network.parameter_count();
        run::write_run(&run_dir, &prepared.spec.text, &prepared.config_text, &record)?;
    }
    // What `prnn recommend` and `prnn serve` read instead of the data; a folder of an older prnn gets it on resume.
    if !run_dir.join(prnn::data::catalogue::FILE_NAME).exists() {
        prnn::data::catalogue::write(&run_dir, &prepared.dataset, &session::feature_inputs(&prepared.compiled))?;
    }
    let compiled = &prepared.compiled;
    let epochs = compiled.plan.epochs;
    let mut stopper = compiled.plan.stop.clone().map(Stopper::new);
    // Evaluation's products are large whatever the model: it keeps every core the config allows.
    let evaluation_threads = tch::get_num_threads();
    let training_threads = session::training_threads(&prepared.config, &network);
    tch::set_num_threads(training_threads as i32);
    eprintln!(
        "training {} ({} parameters) on {}{}, {} step: {}{epochs} epoch{}, {}; run folder {}",
        compiled.model.name,
        network.parameter_count(),
        session::device_name(device),
        match device {
            tch::Device::Cpu => format!(" ({training_threads} thread{})", if training_threads == 1 { "" } else { "s" }),
            _ => String::new(),
        },
        session::step_name(step_kind),
        if stopper.is_some() { "at most " } else { "" },
        if epochs == 1 { "" } else { "s" },
        compiled.plan.strategy,
        run_dir.display()
    );
    if let Some(stopper) = &mut stopper {
        let rule = stopper.stopping().rule;
        eprintln!(
            "early stopping on {}@{} over the validation split ({} held-out sessions), patience {}",
            rule.metric.label(),
            rule.cutoff,
            prepared.dataset.test.len(),
            rule.patience
        );
        if args.resume.is_some() {
            for (epoch, record) in metrics::stop_records(&run_dir) {
                if epoch < start_epoch {
                    stopper.observe(epoch, record.score);
                }
            }
            // An epoch in progress began after the previous epoch's stopping files were in place.
            if in_epoch.is_none() {
                start_epoch = resume_stopping(stopper, &run_dir, &mut network, &prepared, start_epoch - 1)? + 1;
            }
        }
    }
    let next_epoch = |stopper: &Option<Stopper>, done: u64| match stopper {
        Some(stopper) => stopper.next_epoch(done),
        None => (done < epochs).then_some(done + 1),
    };
    let Some(first_epoch) = next_epoch(&stopper, start_epoch - 1) else {
        match &stopper {
            None => eprintln!("the run has finished all {epochs} epochs already"),
            Some(_) => eprintln!("the run has finished all its epochs already (early stopping ended its last group)"),
        }
        return Ok(());
    };
    match &in_epoch {
        Some((point, _)) => eprintln!("resuming epoch {} after {} mini-batches ({} events)", point.epoch, point.batches, point.events),
        None if first_epoch > 1 => eprintln!("resuming after epoch {}", start_epoch - 1),
        None => {}
    }
    warn_if_cores_are_shared(device, training_threads as u64);
    let mut trainer = Trainer::new(network, &prepared.dataset, step_kind).expect("session::step_kind checked the fused step");
    // Early stopping may end the run sooner than the plan's last epoch: its estimate is an upper bound.
    let mut clock = RunClock::new(epochs.saturating_sub(first_epoch), prepared.max_batches);
    let at_most = if stopper.is_some() { "at most " } else { "" };
    let options = EpochOptions { max_batches: prepared.max_batches, ..EpochOptions::default() };
    let terminal = std::io::stderr().is_terminal();
    let mut next = Some(first_epoch);
    while let Some(epoch) = next {
        let bar = terminal.then(|| {
            // Per mille of the epoch: under `max_batches` the epoch ends before its last event.
            let bar = ProgressBar::new(1000);
            bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {msg}").expect("the template is valid").progress_chars("=> "));
            let phase = trainer.phase_of(epoch) + 1;
            bar.set_prefix(format!("epoch {epoch}/{epochs} phase {phase}"));
            bar
        });
        let resume = in_epoch.take().filter(|(point, _)| point.epoch == epoch);
        let mut hooks = EpochLog {
            bar,
            epoch,
            epochs,
            phase: trainer.phase_of(epoch) + 1,
            started: std::time::Instant::now(),
            first_events: resume.as_ref().map_or(0, |(point, _)| point.events),
            last_line: std::time::Instant::now(),
            last_checkpoint: std::time::Instant::now(),
            checkpoint_minutes: prepared.config.run.checkpoint_minutes,
            checkpoint_batches: prepared.config.run.checkpoint_batches,
            run_dir: &run_dir,
            prepared: &prepared,
            clock: &mut clock,
            at_most,
            resumed_fraction: None,
        };
        let outcome = trainer.epoch_with(epoch, options, resume, &mut hooks);
        if let Some(bar) = &hooks.bar {
            bar.finish_and_clear();
        }
        let (seconds, resumed_fraction) = (hooks.started.elapsed().as_secs_f64(), hooks.resumed_fraction.unwrap_or(0.0));
        clock.epoch_done(seconds, resumed_fraction);
        let summary = outcome.map_err(|error| -> anyhow::Error {
            match error {
                EpochError::Diverged(diverged) => {
                    CliError::Diverged { epoch: diverged.epoch, batch: diverged.batch, kept: (epoch > 1).then(|| epoch - 1) }.into()
                }
                EpochError::Checkpoint(source) => {
                    FileError::write("the in-epoch checkpoint", &run_dir.join(checkpoint::PARTIAL_FILE_NAME), source).into()
                }
            }
        })?;
        let mut eval_settings = prepared.config.eval.clone();
        if let Some(stopper) = &stopper {
            let cutoff = stopper.stopping().rule.cutoff;
            if !eval_settings.cutoffs.contains(&cutoff) {
                eval_settings.cutoffs.push(cutoff);
            }
        }
        let evaluation = (args.eval_every_epoch || stopper.is_some()).then(|| {
            tch::set_num_threads(evaluation_threads);
            let evaluation = prnn::eval::evaluate(trainer.executor(), &prepared.dataset, &eval_settings);
            tch::set_num_threads(training_threads as i32);
            evaluation
        });
        let stop_record = stopper.as_mut().map(|stopper| {
            let rule = stopper.stopping().rule;
            let metrics = evaluation.as_ref().expect("stopping evaluates every epoch").metrics.iter();
            let at_cutoff = metrics.clone().find(|m| m.cutoff == rule.cutoff).expect("the stopping cutoff is evaluated");
            let score = match rule.metric {
                StopMetric::Mrr => at_cutoff.mrr,
                StopMetric::Recall => at_cutoff.recall,
            };
            let observation = stopper.observe(epoch, score);
            StopRecord { metric: format!("{}@{}", rule.metric.label(), rule.cutoff), score, best: observation.best, end: observation.end }
        });
        // The checkpoint first: a line is never written for an epoch whose checkpoint could not be.
        let line = metrics::line(&summary, evaluation.as_ref(), stop_record.as_ref());
        save_checkpoint(&run_dir, trainer.network(), &prepared, epoch, Some(&line))?;
        metrics::append_line(&run_dir.join(METRICS_FILE), &line)?;
        checkpoint::remove_partial(&run_dir)
            .map_err(|source| FileError::write("the in-epoch checkpoint", &run_dir.join(checkpoint::PARTIAL_FILE_NAME), source))?;
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
            let on = if stopper.is_some() { " (validation)" } else { "" };
            eprintln!("epoch {epoch}/{epochs}{on}  {}", line.join("  "));
        }
        if let (Some(stopper), Some(record)) = (&stopper, &stop_record) {
            if record.best {
                checkpoint::keep_as_best(&run_dir)
                    .map_err(|source| FileError::write("the best checkpoint", &run_dir.join(checkpoint::BEST_FILE_NAME), source))?;
            }
            if let Some(end) = record.end {
                let mut network = trainer.into_network();
                go_back_to_best(stopper, &end, &run_dir, &mut network, &prepared)?;
                trainer = Trainer::new(network, &prepared.dataset, step_kind).expect("the step ran this network already");
            }
        }
        next = next_epoch(&stopper, epoch);
    }
    drop(lock);
    if args.eval {
        // The same evaluation as `prnn eval RUN_DIR`, from the checkpoint just written.
        let eval_args = super::eval::Args { run: run_dir.clone(), config: None, device: args.device.clone(), threads: args.threads };
        return super::eval::run(&eval_args);
    }
    eprintln!("done; evaluate with: prnn eval {}", run_dir.display());
    Ok(())
}

/// What `prnn train` does between mini-batches: a progress bar on a terminal, a line every
/// [`LOG_EVERY_SECONDS`] otherwise, and the in-epoch checkpoints of `[run] checkpoint_minutes` and
/// `checkpoint_batches`.
struct EpochLog<'a> {
    bar: Option<ProgressBar>,
    epoch: u64,
    epochs: u64,
    phase: usize,
    started: std::time::Instant,
    /// Events already done when this process took the epoch over (a resumed epoch), for its own speed.
    first_events: u64,
    last_line: std::time::Instant,
    last_checkpoint: std::time::Instant,
    checkpoint_minutes: f64,
    checkpoint_batches: u64,
    run_dir: &'a Path,
    prepared: &'a session::Prepared,
    clock: &'a mut RunClock,
    /// `"at most "` when early stopping may end the run sooner than its plan.
    at_most: &'static str,
    /// How much of the epoch was done before this process took it over, known at its first progress.
    resumed_fraction: Option<f64>,
}

impl EpochHooks for EpochLog<'_> {
    fn progress(&mut self, progress: Progress) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = progress.events.saturating_sub(self.first_events) as f64 / elapsed;
        let resumed = *self.resumed_fraction.get_or_insert(self.first_events as f64 / progress.total_events.max(1) as f64);
        let fraction = self.clock.fraction(&progress);
        let left = self.clock.update(&progress, elapsed, resumed);
        let times = match left {
            Some(left) => format!("epoch ends in ~{}, run in {}~{}", duration(left.epoch), self.at_most, duration(left.run)),
            None => "measuring the speed".to_string(),
        };
        if let Some(bar) = &self.bar {
            bar.set_position((fraction * 1000.0) as u64);
            bar.set_message(format!("{:>3.0}%  {times}  {:.1}k events/s  loss {:.4}", 100.0 * fraction, rate / 1000.0, progress.loss));
        } else if self.last_line.elapsed().as_secs_f64() >= LOG_EVERY_SECONDS {
            // Logs (CI, nohup, a pipe) get a line now and then instead of a bar.
            self.last_line = std::time::Instant::now();
            eprintln!(
                "epoch {}/{}  phase {}  {:.0}% ({} of {} events)  {:.0} events/s  loss {:.5}  {times}",
                self.epoch,
                self.epochs,
                self.phase,
                100.0 * fraction,
                progress.events,
                progress.total_events,
                rate,
                progress.loss,
            );
        }
    }

    fn checkpoint_due(&mut self, batches: u64) -> bool {
        (self.checkpoint_batches > 0 && batches.is_multiple_of(self.checkpoint_batches))
            || (self.checkpoint_minutes > 0.0 && self.last_checkpoint.elapsed().as_secs_f64() >= self.checkpoint_minutes * 60.0)
    }

    fn checkpoint(&mut self, network: &prnn::lower::Network, point: &InEpoch, hidden: &[Option<Vec<f32>>]) -> std::io::Result<()> {
        let info = CheckpointInfo {
            epoch: point.epoch - 1,
            prnn_version: env!("CARGO_PKG_VERSION").to_string(),
            model: self.prepared.compiled.model.name.clone(),
            in_epoch: Some(point.clone()),
            metrics_line: None,
        };
        checkpoint::save_partial(self.run_dir, network, &self.prepared.dataset.items, &info, hidden)?;
        self.last_checkpoint = std::time::Instant::now();
        Ok(())
    }
}

/// Says once when another prnn training or evaluation runs on this machine and the threads of both would
/// oversubscribe its cores: two runs sharing cores slow each other down many times over.
fn warn_if_cores_are_shared(device: tch::Device, threads: u64) {
    if device != tch::Device::Cpu {
        return;
    }
    let others = prnn::runtime::cpu::other_processes_named(RUNTIME_NAME);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    if !others.is_empty() && threads * (others.len() as u64 + 1) > cores {
        let pids: Vec<String> = others.iter().map(u32::to_string).collect();
        eprintln!(
            "warning: {} other prnn process{} (PID {}) run{} on this machine's {cores} cores, and this one uses {threads} thread{}: \
             runs sharing cores slow each other down many times over; give each `--threads` so that they add up to {cores}",
            others.len(),
            if others.len() == 1 { "" } else { "es" },
            pids.join(", "),
            if others.len() == 1 { "s" } else { "" },
            if threads == 1 { "" } else { "s" },
        );
    }
}

/// The executable the training runs in, as the kernel names its processes.
const RUNTIME_NAME: &str = "prnn-torch";

/// `1h 05m`, `4m 10s` or `12s`.
fn duration(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Loads what a resumed run continues from: the last complete epoch's checkpoint, or the in-epoch checkpoint
/// of the epoch after it when there is one. Returns the epochs completed, the last one's metrics line as its
/// checkpoint keeps it, and the epoch in progress.
#[allow(clippy::type_complexity)]
fn load_for_resume(
    run_dir: &Path,
    network: &mut prnn::lower::Network,
    prepared: &session::Prepared,
) -> anyhow::Result<(u64, Option<serde_json::Value>, Option<(InEpoch, checkpoint::HiddenStates)>)> {
    let unusable = |source| -> anyhow::Error {
        anyhow::Error::new(CliError::Checkpoint { needed_for: CheckpointUse::Resume, source })
            .context(format!("cannot resume `{}`", run_dir.display()))
    };
    let path = run_dir.join(checkpoint::FILE_NAME);
    let (done, done_line) = match path.exists() {
        true => {
            let info = checkpoint::read_info(&path).map_err(unusable)?.0;
            (info.epoch, info.metrics_line)
        }
        false => (0, None),
    };
    let partial = run_dir.join(checkpoint::PARTIAL_FILE_NAME);
    if partial.exists() {
        match checkpoint::read_info(&partial) {
            Ok((info, _)) if info.in_epoch.as_ref().is_some_and(|point| point.epoch == done + 1 && info.epoch == done) => {
                let (info, hidden) = checkpoint::load_partial(&partial, network, &prepared.dataset.items).map_err(unusable)?;
                return Ok((done, done_line, Some((info.in_epoch.expect("checked above"), hidden))));
            }
            // Written during an epoch whose checkpoint is now in place: nothing of it is needed.
            Ok(_) => {}
            Err(damaged) => {
                eprintln!("warning: {damaged}; resuming from the end of epoch {done} instead (the epoch in progress starts again)")
            }
        }
        checkpoint::remove_partial(run_dir).map_err(|source| FileError::write("the in-epoch checkpoint", &partial, source))?;
    }
    if path.exists() {
        checkpoint::load(&path, network, &prepared.dataset.items).map_err(unusable)?;
    }
    Ok((done, done_line, None))
}

/// Writes the checkpoint of `epoch`, keeping the epoch's metrics line when it has one to write next.
fn save_checkpoint(
    run_dir: &Path,
    network: &prnn::lower::Network,
    prepared: &session::Prepared,
    epoch: u64,
    metrics_line: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    let info = CheckpointInfo {
        epoch,
        prnn_version: env!("CARGO_PKG_VERSION").to_string(),
        model: prepared.compiled.model.name.clone(),
        in_epoch: None,
        metrics_line: metrics_line.cloned(),
    };
    checkpoint::save(run_dir, network, &prepared.dataset.items, &info)
        .map_err(|source| FileError::write("the checkpoint", &run_dir.join(checkpoint::FILE_NAME), source))?;
    Ok(())
}

/// Ends a stopping group: the network goes back to the group's best epoch, saved as the checkpoint of the
/// group's last epoch, so the run goes on (or resumes) with the next group.
fn go_back_to_best(
    stopper: &Stopper,
    end: &GroupEnd,
    run_dir: &Path,
    network: &mut prnn::lower::Network,
    prepared: &session::Prepared,
) -> anyhow::Result<u64> {
    let best = run_dir.join(checkpoint::BEST_FILE_NAME);
    let info = checkpoint::load(&best, network, &prepared.dataset.items)
        .map_err(|source| CliError::Checkpoint { needed_for: CheckpointUse::Resume, source })?;
    anyhow::ensure!(
        info.epoch == end.kept_epoch,
        "{} holds epoch {}, but early stopping keeps epoch {}: the run folder was changed by hand",
        best.display(),
        info.epoch,
        end.kept_epoch
    );
    let groups = &stopper.stopping().groups;
    let last_epoch = groups[end.group].last_epoch;
    save_checkpoint(run_dir, network, prepared, last_epoch, None)?;
    let what = if groups.len() > 1 { format!("phase {}", end.group + 1) } else { "training".to_string() };
    eprintln!(
        "early stopping: {what} stopped after epoch {} ({}); kept epoch {} ({:.4})",
        end.stopped_after, end.reason, end.kept_epoch, end.kept_score
    );
    Ok(last_epoch)
}

/// Brings a resumed run's files in line with the replayed stopping state, for a run killed between writing an
/// epoch's checkpoint and its best copy, or before going back to a finished group's best. Returns the epoch
/// the checkpoint now holds.
fn resume_stopping(
    stopper: &Stopper,
    run_dir: &Path,
    network: &mut prnn::lower::Network,
    prepared: &session::Prepared,
    checkpoint_epoch: u64,
) -> anyhow::Result<u64> {
    if stopper.best_of_group(checkpoint_epoch).is_some_and(|(best, _)| best == checkpoint_epoch) {
        checkpoint::keep_as_best(run_dir)
            .map_err(|source| FileError::write("the best checkpoint", &run_dir.join(checkpoint::BEST_FILE_NAME), source))?;
    }
    match stopper.end_of_group(checkpoint_epoch) {
        Some(end) if end.stopped_after == checkpoint_epoch => go_back_to_best(stopper, &end, run_dir, network, prepared),
        _ => Ok(checkpoint_epoch),
    }
}
