//! `prnn run SPEC... --config RUN.TOML`: an experiment matrix (specs × sweep × seeds, tuning, baselines) and its report.
//!
//! Every cell is an ordinary run folder made by a child `prnn train`/`prnn eval` or `prnn baseline` process,
//! so a cell can be inspected, evaluated again or used with `prnn recommend` like any other run, and a
//! crash in one cell cannot take the others down. A cell counts as finished once its `eval.json` exists;
//! running the same command again skips finished cells, continues a cell that has a checkpoint, and starts
//! the rest, after checking that each existing cell was made from the same spec, config and overrides.
//!
//! What the cells are, which tuned setting each model keeps, and the table's numbers are `prnn::experiment`'s
//! and `prnn::report`'s; this module reads the specs, runs the cells and writes the report.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use prnn::config::without_repeats;
use prnn::experiment::existing::{check_cell, check_config, remove_unfinished};
use prnn::experiment::plan::{as_overrides, setting_label};
use prnn::experiment::search::Observation;
use prnn::experiment::{self as plan, tuning, Cell, CellState, Conflict, Plan, PlannedSpec, Work};
use prnn::experiment::{CONFIG_FILE, LOGS_DIR, PLOT_SVG, RESULTS_CSV, RESULTS_JSON, RESULTS_MD};
use prnn::report::plot::{epochs_svg, Panels};
use prnn::report::table;
use prnn::run::file::write_text;
use prnn::run::{self, results, FileError, RECORD_FILE};

use super::error::{CliError, Diagnostics};
use super::{load_config, read_file, Reporter};

pub use super::args::RunArgs as Args;

pub fn run(args: &Args, reporter: &Reporter) -> anyhow::Result<()> {
    let specs: Vec<&Path> = args.specs.iter().map(PathBuf::as_path).collect();
    super::session::recorded_paths(&specs, &args.config)?;
    let (mut config, config_source) = load_config(&args.config)?;
    let config_text = config.recorded_text(&config_source.text);
    if let Some(seeds) = &args.seeds {
        config.experiment.seeds = seeds.clone();
    }
    if let Some(jobs) = args.jobs {
        config.experiment.jobs = jobs.max(1);
    }
    let settings = config.experiment.clone();
    let cutoff = config.experiment_cutoff();
    if let Some(&unevaluated) = args.cutoffs.iter().find(|c| !config.eval.cutoffs.contains(c)) {
        return Err(CliError::CutoffNotEvaluated { cutoff: unevaluated, evaluated: config.eval.cutoffs.clone() }.into());
    }
    let panels = Panels {
        metrics: config.plot_metrics(),
        cutoffs: if args.cutoffs.is_empty() { config.plot_cutoffs() } else { without_repeats(&args.cutoffs) },
    };
    let mut plan = Plan::new(&settings, &args.sweep, &args.specs)?;
    // Specs: checked and bound to the config now, so a typo fails before hours of training.
    for path in plan.spec_paths.clone() {
        let source = read_file(&path, "spec")?;
        let model = prnn::check_source(&source).map_err(|error| Diagnostics::spec(&source, error.diagnostics))?;
        let bound =
            prnn::config::bind(&config, &model, &source.name).map_err(|diagnostics| Diagnostics::config(&config_source, diagnostics))?;
        // Each sweep setting is applied now, so a value the spec cannot take fails before any cell trains; whether
        // the setting stops early is the IR plan's to say, as for every other stage after the checker.
        let mut stops = Vec::new();
        for setting in plan.sweep_settings() {
            let mut swept = bound.clone();
            prnn::config::overrides::apply(&mut swept, &as_overrides(&setting))
                .with_context(|| format!("the sweep setting `{}` does not apply to `{}`", setting_label(&setting), path.display()))?;
            stops.push(prnn::ir::Compiled::new(swept).plan.stop.is_some());
        }
        plan.add_spec(PlannedSpec::new(path, model.name, &source.text).stopping(stops))?;
    }
    plan.check_names()?;
    let reference = plan.reference();

    let out = args.out.clone().unwrap_or_else(|| config.run.out.join("experiments").join(experiment_name(args)));
    if args.plan {
        println!("experiment folder {}", out.display());
    } else {
        eprintln!("experiment folder {}", out.display());
    }
    // `--plan` only looks: it creates nothing.
    if !args.plan {
        std::fs::create_dir_all(out.join(LOGS_DIR)).map_err(|source| FileError::Create {
            what: "the experiment folder",
            path: out.clone(),
            source,
        })?;
    }
    // One `prnn run` per experiment folder; each cell's `prnn train` and `prnn eval` lock the cell's own folder.
    let _lock = if args.plan { None } else { Some(prnn::run::lock::lock_folder(&out)?) };
    if !check_config(&out, &config_text)? && !args.plan {
        write_text(&out.join(CONFIG_FILE), "", &config_text)?;
    }
    // Children run in this process's folder and read the config given here, so its relative paths and the
    // specs' resolve as they do for this command.
    let runner = Runner {
        out: out.clone(),
        config_path: args.config.clone(),
        config_hash: run::hash(&config_text),
        threads: (super::session::cpu_threads(config.run.threads) as u64 / settings.jobs).max(1),
        device: args.device.clone(),
        eval_every_epoch: settings.eval_every_epoch,
        exe: std::env::current_exe().map_err(CliError::NoExecutable)?,
    };
    let jobs = settings.jobs as usize;

    let (first, tuning_cells) = if plan.learns_from_results() {
        say_if_the_report_changes(&out, plan.baseline_cells().iter());
        if args.plan {
            let first = plan.baseline_cells();
            print_plan(&out, &first, "phase 1: baselines and tuning");
            for model in &plan.tune_models {
                println!(
                    "  tune/{model}-trial*: {} TPE trials, {jobs} at a time, each round proposed from the results before it",
                    plan.trials()
                );
            }
            (first, Vec::new())
        } else {
            run_search(&plan, &runner, &out, cutoff, jobs)?
        }
    } else {
        let (first, tuning_cells) = plan.first_phase()?;
        // The second phase as the results on disk decide it now; tuning still to run may change its settings,
        // not its cells.
        let (tuning, kept) = settle(&plan, &out, cutoff, &tuning_cells);
        let second = plan.second_phase(&tuning.chosen, &kept);
        say_if_the_report_changes(&out, first.iter().chain(&second));
        if args.plan {
            print_plan(&out, &first, "phase 1: baselines and tuning");
        } else {
            runner.run_all(&first, &plan.specs, jobs)?;
        }
        (first, tuning_cells)
    };
    let (tuning, kept) = settle(&plan, &out, cutoff, &tuning_cells);
    if !args.plan {
        for model in &tuning.unfinished {
            reporter.error(
                &format!("no tuning run of `{model}` finished; it is trained with its spec's settings"),
                Some("see the logs in the experiment's `logs/` folder"),
            );
        }
    }
    let second = plan.second_phase(&tuning.chosen, &kept);
    if args.plan {
        print_plan(&out, &second, "phase 2: every spec, setting and seed");
        return Ok(());
    }
    runner.run_all(&second, &plan.specs, jobs)?;

    let cells: Vec<Cell> = first.into_iter().chain(second).collect();
    let table = plan.table(&out, &cells);
    let tested = settings.bootstrap_metric;
    let rows = table::rows(&table, cutoff, reference.as_deref(), &plan.comparisons(), settings.bootstrap, tested);
    let markdown = prnn::report::markdown(&rows, &tuning.rows, cutoff, reference.as_deref(), tested);
    let json = serde_json::json!({
        "config": args.config,
        "command_line": prnn::run::command_line(),
        "cutoff": cutoff,
        "reference": reference,
        "compare_to": settings.compare_to,
        "bootstrap_metric": tested,
        "plot": { "metrics": panels.metrics, "cutoffs": panels.cutoffs },
        "seeds": settings.seeds,
        "rows": rows,
        "tuning": tuning.rows,
    });
    let title = args.config.file_stem().map_or(String::new(), |s| s.to_string_lossy().to_string());
    let svg = epochs_svg(&panels, &table::epoch_series(&table, &panels), &table::baseline_levels(&table, &panels), &title);
    let files = [
        (RESULTS_MD, markdown.clone()),
        (RESULTS_CSV, prnn::report::csv(&rows, cutoff, tested)),
        (RESULTS_JSON, serde_json::to_string_pretty(&json).expect("json") + "\n"),
        (PLOT_SVG, svg.unwrap_or_else(|e| format!("<!-- the plot failed: {e} -->\n"))),
    ];
    for (name, text) in files {
        write_text(&out.join(name), "", &text)?;
    }
    println!("{markdown}");
    let failed: Vec<String> = rows.iter().flat_map(|r| r.failures.iter().cloned()).collect();
    eprintln!("results in {} ({RESULTS_MD}, {RESULTS_CSV}, {RESULTS_JSON}, {PLOT_SVG})", out.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::UnfinishedCells(failed).into())
    }
}

/// Phase 1 under TPE: the baselines, then each model's trials in rounds of `jobs`. A round's proposals see the
/// results of the rounds before it and nothing else, so the same rounds come out however the jobs interleave,
/// and a killed search regenerates them from the finished trials' results.
fn run_search(plan: &Plan, runner: &Runner, out: &Path, cutoff: u64, jobs: usize) -> anyhow::Result<(Vec<Cell>, Vec<tuning::TuningCell>)> {
    let mut cells = plan.baseline_cells();
    runner.run_all(&cells, &plan.specs, jobs)?;
    let mut tuned = Vec::new();
    for model in &plan.tune_models {
        let mut history: Vec<Observation> = Vec::new();
        let mut next = 0;
        while next < plan.trials() {
            let round = next..(next + jobs.max(1)).min(plan.trials());
            next = round.end;
            let trials = plan.tuning_trials(model, round, &history)?;
            let round_cells: Vec<Cell> = trials.iter().map(|t| t.cell.clone()).collect();
            runner.run_all(&round_cells, &plan.specs, jobs)?;
            for trial in trials {
                let score = results::read_metrics_at(&out.join(&trial.cell.name), cutoff).map(|m| m.mrr);
                history.push(Observation { setting: trial.proposed, score });
                cells.push(trial.cell);
                tuned.push(trial.tuning);
            }
        }
    }
    Ok((cells, tuned))
}

/// The tuning choices and the epochs stopping cells kept, from the results in the experiment folder.
fn settle(
    plan: &Plan,
    out: &Path,
    cutoff: u64,
    tuning_cells: &[tuning::TuningCell],
) -> (tuning::Tuning, std::collections::HashMap<String, plan::Setting>) {
    let mut tuning = tuning::choose(&plan.tune_models, tuning_cells, |cell| results::read_metrics_at(&out.join(&cell.name), cutoff));
    // A trial that stopped early is trained again for the epochs it kept; so is an untuned spec that stops.
    for (model, setting) in tuning.chosen.iter_mut() {
        if let Some(cell) = tuning_cells.iter().find(|c| &c.model == model && &c.setting == setting) {
            setting.extend(tuning::kept_epochs_of(&out.join(&cell.name)));
        }
    }
    let mut kept = std::collections::HashMap::new();
    for (cell, _) in plan.stopping_cells() {
        let epochs = tuning::kept_epochs_of(&out.join(&cell.name));
        if !epochs.is_empty() {
            kept.insert(cell.row, epochs);
        }
    }
    (tuning, kept)
}

/// The experiment's name when neither `--out` nor `--name` gives its folder: the config's file name, then the
/// specs and the sweeps of the command line, so that a command that runs something else than the config's own
/// experiment gets a folder of its own (`demo-id_only-lr-0.05-0.1`).
fn experiment_name(args: &Args) -> String {
    if let Some(name) = &args.name {
        return name.clone();
    }
    let stem = |path: &Path| path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut parts = vec![stem(&args.config)];
    if !args.specs.is_empty() {
        parts.push(args.specs.iter().map(|spec| stem(spec)).collect::<Vec<_>>().join("+"));
    }
    parts.extend(args.sweep.iter().cloned());
    let name = parts.join("-");
    // Characters that shells or file systems trip over become `-`.
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "._+".contains(c) { c } else { '-' }).collect();
    if name.trim_matches('-').is_empty() {
        "experiment".to_string()
    } else {
        name
    }
}

/// Before anything runs: an experiment folder that already has a report, and cells of this run that it has
/// not finished, means this run will add to that experiment and rewrite its report. Say so.
fn say_if_the_report_changes<'a>(out: &Path, cells: impl Iterator<Item = &'a Cell>) {
    if !out.join(RESULTS_MD).exists() {
        return;
    }
    let new = cells.filter(|cell| !matches!(CellState::of(&out.join(&cell.name)), CellState::Finished)).count();
    if new > 0 {
        eprintln!(
            "note: `{}` holds an earlier experiment's report; this run adds {new} cell{} to it and rewrites the report \
             (give --name or --out to keep it apart)",
            out.display(),
            if new == 1 { "" } else { "s" }
        );
    }
}

fn print_plan(out: &Path, cells: &[Cell], title: &str) {
    println!("{title}:");
    for cell in cells {
        let state = CellState::of(&out.join(&cell.name));
        let what = match &cell.work {
            Work::Baseline(name) => format!("baseline {name}"),
            Work::Train { overrides, validation, .. } => {
                format!("train {}{}", overrides.join(" "), if *validation { " (validation split)" } else { "" })
            }
        };
        println!("  {:<8} {:<40} {what}", state.name(), cell.name);
    }
}

/// Runs cells as child processes.
struct Runner {
    out: PathBuf,
    config_path: PathBuf,
    config_hash: String,
    threads: u64,
    device: Option<String>,
    eval_every_epoch: bool,
    exe: PathBuf,
}

enum CellOutcome {
    Skipped,
    Done,
    Failed(String),
}

impl Runner {
    /// Runs `cells`, `jobs` at a time, after checking that every cell that exists was made as the plan makes it.
    fn run_all(&self, cells: &[Cell], specs: &[PlannedSpec], jobs: usize) -> Result<(), Conflict> {
        for cell in cells {
            check_cell(&self.out, cell, specs, &self.config_hash)?;
        }
        let queue: Mutex<VecDeque<(usize, &Cell)>> = Mutex::new(cells.iter().enumerate().collect());
        let total = cells.len();
        std::thread::scope(|scope| {
            for _ in 0..jobs.max(1).min(total.max(1)) {
                scope.spawn(|| loop {
                    let Some((index, cell)) = queue.lock().expect("the queue").pop_front() else { break };
                    let started = Instant::now();
                    let outcome = self.run_cell(cell, specs);
                    let dir = self.out.join(&cell.name);
                    let line = match outcome {
                        CellOutcome::Skipped => "finished earlier".to_string(),
                        CellOutcome::Done => {
                            let metrics = results::read_metrics(&dir);
                            let shown: Vec<String> = metrics
                                .iter()
                                .flatten()
                                .map(|m| format!("Recall@{0} {1:.4} MRR@{0} {2:.4}", m.cutoff, m.recall, m.mrr))
                                .collect();
                            format!("done in {:.0} s  {}", started.elapsed().as_secs_f64(), shown.last().cloned().unwrap_or_default())
                        }
                        CellOutcome::Failed(why) => format!("FAILED: {why} (log: {})", plan::log_path(&self.out, cell).display()),
                    };
                    eprintln!("[{}/{total}] {}: {line}", index + 1, cell.name);
                });
            }
        });
        Ok(())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("--color").arg("never");
        // A cell still training after `prnn run` was killed would hold its folder against the re-run.
        prnn::runtime::child::ends_with_parent(&mut command);
        command
    }

    fn run_cell(&self, cell: &Cell, specs: &[PlannedSpec]) -> CellOutcome {
        let dir = self.out.join(&cell.name);
        if results::is_evaluated(&dir) {
            return CellOutcome::Skipped;
        }
        let log_path = plan::log_path(&self.out, cell);
        let threads = self.threads.to_string();
        let mut steps: Vec<Command> = Vec::new();
        match &cell.work {
            Work::Baseline(name) => {
                remove_unfinished(&dir);
                let mut command = self.command();
                command
                    .args(["baseline", name.as_str(), "--threads", threads.as_str(), "--config"])
                    .arg(&self.config_path)
                    .arg("--out")
                    .arg(&dir);
                steps.push(command);
            }
            Work::Train { spec, overrides, validation } => {
                let mut train = self.command();
                if dir.join(RECORD_FILE).exists() {
                    train.args(["train", "--resume"]).arg(&dir);
                } else {
                    remove_unfinished(&dir);
                    train.arg("train").arg(&specs[*spec].path).arg("--config").arg(&self.config_path).arg("--out").arg(&dir);
                    if *validation {
                        train.arg("--validation");
                    }
                    train.args(overrides);
                }
                train.args(["--threads", threads.as_str()]);
                if self.eval_every_epoch {
                    train.arg("--eval-every-epoch");
                }
                let mut eval = self.command();
                eval.arg("eval").arg(&dir).args(["--threads", threads.as_str()]);
                if let Some(device) = &self.device {
                    train.args(["--device", device.as_str()]);
                    eval.args(["--device", device.as_str()]);
                }
                steps.push(train);
                steps.push(eval);
            }
        }
        if let Some(parent) = dir.parent() {
            // A parent that cannot be created makes the child fail, and its log say why.
            let _ = std::fs::create_dir_all(parent);
        }
        let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(&log_path) else {
            return CellOutcome::Failed(format!("cannot write the log `{}`", log_path.display()));
        };
        for mut step in steps {
            let _ = writeln!(log, "$ {}", describe(&step));
            let (Ok(out), Ok(err)) = (log.try_clone(), log.try_clone()) else { return CellOutcome::Failed("cannot share the log".into()) };
            let status = step.stdin(Stdio::null()).stdout(out).stderr(err).status();
            match status {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    let why = match status.code() {
                        Some(7) => "diverged".to_string(),
                        Some(code) => format!("exit code {code}"),
                        None => "killed by a signal".to_string(),
                    };
                    return CellOutcome::Failed(why);
                }
                Err(e) => return CellOutcome::Failed(format!("cannot start prnn: {e}")),
            }
        }
        CellOutcome::Done
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program()).chain(command.get_args()).map(|a| a.to_string_lossy().to_string()).collect::<Vec<_>>().join(" ")
}
