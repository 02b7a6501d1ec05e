//! `prnn run SPEC... --config RUN.TOML`: an experiment matrix (specs × sweep × seeds, tuning, baselines) and its report.
//!
//! Every cell is an ordinary run folder made by a child `prnn train`/`prnn eval` or `prnn baseline` process,
//! so a cell can be inspected, evaluated again or used with `prnn recommend` like any other run, and a
//! crash in one cell cannot take the others down. A cell counts as finished once its `eval.json` exists;
//! running the same command again skips finished cells, continues a cell that has a checkpoint, and starts
//! the rest, after checking that each existing cell was made from the same spec, config and overrides.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use indexmap::IndexMap;
use prnn::config::override_text;
use prnn::eval::bootstrap::paired_bootstrap;
use prnn::eval::CutoffMetrics;
use prnn::report::plot::{epochs_svg, EpochSeries};
use prnn::report::{ResultRow, Spread, TuningRow, Versus};

use super::baseline::BASELINE_FILE;
use super::eval::{EVAL_FILE, RANKS_FILE};
use super::session::{self, RunRecord, METRICS_FILE, RECORD_FILE};
use super::{read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The specs to train (default: `[experiment] specs`); each model name may appear once.
    #[arg(value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// The run config: data, evaluation, `[baselines]` and `[experiment]` (seeds, sweep, tuning, jobs).
    #[arg(long, value_name = "RUN.TOML")]
    pub config: PathBuf,
    /// The experiment folder (default `<[run] out>/experiments/<config name>`). Running the same command
    /// again continues it: finished cells are kept and skipped.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A swept override, `key=v1,v2,...`, added to `[experiment.sweep]`; repeat for a grid.
    #[arg(long, value_name = "KEY=V1,V2")]
    pub sweep: Vec<String>,
    /// Seeds, e.g. `1,2,3`; overrides `[experiment] seeds`.
    #[arg(long, value_name = "S1,S2", value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Cells run at the same time; overrides `[experiment] jobs`.
    #[arg(long, value_name = "N")]
    pub jobs: Option<u64>,
    /// `auto`, `cpu`, `cuda` or `cuda:N` for every trained cell; overrides `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// List the cells and whether each is finished, then stop.
    #[arg(long)]
    pub plan: bool,
}

/// What a cell runs.
#[derive(Debug, Clone)]
enum Work {
    Baseline(String),
    Train { spec: usize, overrides: Vec<String>, validation: bool },
}

#[derive(Debug, Clone)]
struct Cell {
    /// The folder under the experiment folder, e.g. `cells/id_only-seed1` or `tune/id_only-lr0.1`.
    name: String,
    work: Work,
    /// The table row it belongs to.
    row: String,
}

struct Spec {
    path: PathBuf,
    model: String,
    text_hash: String,
}

const RESULTS_MD: &str = "results.md";
const RESULTS_CSV: &str = "results.csv";
const RESULTS_JSON: &str = "results.json";
const PLOT_SVG: &str = "epochs.svg";

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    match experiment(args, reporter) {
        Ok(exit) => exit,
        Err(code) => code,
    }
}

/// `key=v1,v2` → (key, values); keys are checked by the child `prnn train`, and here against typos first.
fn parse_sweep(text: &str) -> Result<(String, Vec<String>), String> {
    let (key, values) = text.split_once('=').ok_or_else(|| format!("`--sweep {text}` is not `key=v1,v2,...`"))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(format!("`--sweep {text}` lists no value"));
    }
    Ok((key.trim().to_string(), values))
}

/// Every combination of a grid, in order (the last key varies fastest); one empty combination for no grid.
fn combinations(grid: &IndexMap<String, Vec<String>>) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for (key, values) in grid {
        all = all
            .into_iter()
            .flat_map(|prefix: Vec<(String, String)>| {
                values.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push((key.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

fn setting_label(combination: &[(String, String)]) -> String {
    combination.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn folder_label(combination: &[(String, String)]) -> String {
    combination.iter().map(|(k, v)| format!("-{k}{v}")).collect()
}

fn as_overrides(combination: &[(String, String)]) -> Vec<String> {
    combination.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn grid_of(grid: &IndexMap<String, Vec<toml::Value>>) -> IndexMap<String, Vec<String>> {
    grid.iter().map(|(k, values)| (k.clone(), values.iter().filter_map(override_text).collect())).collect()
}

fn experiment(args: &Args, reporter: &Reporter) -> Result<Exit, Exit> {
    let mut config = super::load_config(&args.config, reporter)?;
    let config_text = read_file(&args.config, "run config", reporter)?.text;
    if let Some(seeds) = &args.seeds {
        config.experiment.seeds = seeds.clone();
    }
    if let Some(jobs) = args.jobs {
        config.experiment.jobs = jobs.max(1);
    }
    let settings = config.experiment.clone();
    let cutoff = config.experiment_cutoff();
    let mut sweep = grid_of(&settings.sweep);
    for text in &args.sweep {
        let (key, values) = parse_sweep(text).map_err(|m| {
            reporter.error(&m, Some("e.g. `--sweep lr=0.05,0.1,0.2`"));
            Exit::Usage
        })?;
        sweep.insert(key, values);
    }
    let tune_grid = grid_of(&settings.tune.grid);
    for key in sweep.keys().chain(tune_grid.keys()) {
        if let Err(message) = session::check_override_key(key) {
            reporter.error(&message, Some("sweeps and tuning grids take the keys of `prnn train KEY=VALUE`"));
            return Err(Exit::Config);
        }
        if key == "seed" {
            reporter.error("`seed` cannot be swept or tuned", Some("list the seeds in `[experiment] seeds` or `--seeds`"));
            return Err(Exit::Config);
        }
    }

    // Specs: checked and bound to the config now, so a typo fails before hours of training.
    let mut specs: Vec<Spec> = Vec::new();
    let spec_paths = if args.specs.is_empty() { &settings.specs } else { &args.specs };
    if spec_paths.is_empty() && settings.baselines.is_empty() {
        reporter.error(
            "the experiment has nothing to run",
            Some("name specs on the command line or in `[experiment] specs`, or baselines in `[experiment] baselines`"),
        );
        return Err(Exit::Usage);
    }
    for path in spec_paths {
        let source = read_file(path, "spec", reporter)?;
        let model = prnn::check_source(&source).map_err(|error| {
            reporter.diagnostics(&source, &error.diagnostics);
            Exit::Spec
        })?;
        let config_source = prnn::diagnostic::Source::new(args.config.display().to_string(), config_text.clone());
        prnn::config::bind(&config, &model, &source.name).map_err(|diagnostics| {
            reporter.diagnostics(&config_source, &diagnostics);
            Exit::Config
        })?;
        if let Some(earlier) = specs.iter().find(|s| s.model == model.name) {
            reporter.error(
                &format!("`{}` and `{}` both define the model `{}`", earlier.path.display(), path.display(), model.name),
                Some("rows and cell folders are named after the model: give each spec its own model name"),
            );
            return Err(Exit::Usage);
        }
        specs.push(Spec { path: path.clone(), model: model.name.clone(), text_hash: session::hash(&source.text) });
    }
    let known_model = |name: &str| specs.iter().any(|s| s.model == name);
    let baseline_names = &settings.baselines;
    for (what, name) in [("compare_to", &settings.compare_to), ("reference", &settings.reference)] {
        if let Some(name) = name {
            if !known_model(name) && !baseline_names.contains(name) {
                reporter.error(
                    &format!("`[experiment] {what} = \"{name}\"` is neither a model of the given specs nor a baseline of the experiment"),
                    None,
                );
                return Err(Exit::Config);
            }
        }
    }
    for name in &settings.tune.models {
        if !known_model(name) {
            reporter.error(
                &format!("`[experiment.tune] models` names `{name}`, which no given spec defines"),
                Some("list model names as the specs write them after `model`"),
            );
            return Err(Exit::Config);
        }
    }
    let reference = settings.reference.clone().or_else(|| baseline_names.iter().find(|b| *b == "item_knn").cloned());

    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args.config.file_stem().map_or("experiment".into(), |s| s.to_string_lossy().to_string());
        config.run.out.join("experiments").join(stem)
    });
    // `--plan` only looks: it creates nothing.
    if !args.plan {
        std::fs::create_dir_all(out.join("logs")).map_err(|e| {
            reporter.error(&format!("cannot create the experiment folder `{}`: {e}", out.display()), None);
            Exit::Io
        })?;
    }
    let experiment_config = out.join("config.toml");
    match std::fs::read_to_string(&experiment_config) {
        Ok(existing) if existing != config_text => {
            reporter.error(
                &format!("`{}` holds an experiment made with another run config", out.display()),
                Some("give a new `--out` folder; cells made with different data or settings must not share a table"),
            );
            return Err(Exit::Config);
        }
        Ok(_) => {}
        Err(_) if args.plan => {}
        Err(_) => std::fs::write(&experiment_config, &config_text).map_err(|e| {
            reporter.error(&format!("cannot write `{}`: {e}", experiment_config.display()), None);
            Exit::Io
        })?,
    }
    // Children run in this process's folder and read the config given here, so its relative paths and the
    // specs' resolve as they do for this command.
    let runner = Runner {
        out: out.clone(),
        config_path: args.config.clone(),
        config_hash: session::hash(&config_text),
        threads: {
            let all = match config.run.threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
                n => n,
            };
            (all / settings.jobs).max(1)
        },
        device: args.device.clone(),
        eval_every_epoch: settings.eval_every_epoch,
        exe: std::env::current_exe().map_err(|e| {
            reporter.error(&format!("cannot find the prnn executable to run cells with: {e}"), None);
            Exit::Internal
        })?,
    };

    // Phase 1: baselines and the tuning grid on the validation split.
    let first_seed = settings.seeds[0];
    let mut first: Vec<Cell> = baseline_names
        .iter()
        .map(|name| Cell { name: format!("cells/{name}"), work: Work::Baseline(name.clone()), row: name.clone() })
        .collect();
    let mut tuning_cells: Vec<(String, Vec<(String, String)>, String)> = Vec::new();
    for model in &settings.tune.models {
        let spec = specs.iter().position(|s| &s.model == model).expect("checked above");
        for combination in combinations(&tune_grid) {
            let name = format!("tune/{model}{}", folder_label(&combination));
            let mut overrides = as_overrides(&combination);
            overrides.push(format!("seed={first_seed}"));
            first.push(Cell { name: name.clone(), work: Work::Train { spec, overrides, validation: true }, row: model.clone() });
            tuning_cells.push((model.clone(), combination, name));
        }
    }
    if args.plan {
        print_plan(&runner, &first, "phase 1: baselines and tuning");
    } else {
        runner.run_all(&first, &specs, settings.jobs as usize, reporter)?;
    }

    // The tuned setting of each model: the best MRR on the validation split.
    let mut tuning_rows: Vec<TuningRow> = Vec::new();
    let mut chosen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for model in &settings.tune.models {
        let mut best: Option<(f64, usize)> = None;
        for (cell_model, combination, name) in &tuning_cells {
            if cell_model != model {
                continue;
            }
            let Some(metrics) = read_eval(&out.join(name), cutoff) else { continue };
            if best.is_none_or(|(mrr, _)| metrics.mrr > mrr) {
                best = Some((metrics.mrr, tuning_rows.len()));
            }
            tuning_rows.push(TuningRow {
                model: model.clone(),
                setting: setting_label(combination),
                recall: metrics.recall,
                mrr: metrics.mrr,
                chosen: false,
            });
        }
        if let Some((_, index)) = best {
            tuning_rows[index].chosen = true;
            let setting = &tuning_rows[index].setting;
            let combination = tuning_cells
                .iter()
                .filter(|c| &c.0 == model)
                .map(|c| &c.1)
                .find(|c| &setting_label(c) == setting)
                .expect("a tried setting");
            chosen.insert(model.clone(), combination.clone());
        } else if !args.plan {
            reporter.error(
                &format!("no tuning run of `{model}` finished; it is trained with its spec's settings"),
                Some("see the logs in the experiment's `logs/` folder"),
            );
        }
    }

    // Phase 2: every spec × sweep setting × seed.
    let mut second: Vec<Cell> = Vec::new();
    let mut row_order: Vec<String> = baseline_names.clone();
    for (index, spec) in specs.iter().enumerate() {
        for combination in combinations(&sweep) {
            let row = format!(
                "{}{}",
                spec.model,
                if combination.is_empty() { String::new() } else { format!(" {}", setting_label(&combination)) }
            );
            row_order.push(row.clone());
            for &seed in &settings.seeds {
                let mut overrides = as_overrides(&combination);
                if let Some(tuned) = chosen.get(&spec.model) {
                    overrides.extend(as_overrides(tuned));
                }
                overrides.push(format!("seed={seed}"));
                let name = format!("cells/{}{}-seed{seed}", spec.model, folder_label(&combination));
                second.push(Cell { name, work: Work::Train { spec: index, overrides, validation: false }, row: row.clone() });
            }
        }
    }
    if args.plan {
        print_plan(&runner, &second, "phase 2: every spec, setting and seed");
        return Ok(Exit::Ok);
    }
    runner.run_all(&second, &specs, settings.jobs as usize, reporter)?;

    // The report.
    let report = Report { out: &out, cutoff, bootstrap: settings.bootstrap };
    let all_cells: Vec<&Cell> = first.iter().filter(|c| matches!(c.work, Work::Baseline(_))).chain(second.iter()).collect();
    let rows = report.rows(&row_order, &all_cells, reference.as_deref(), settings.compare_to.as_deref(), &sweep);
    let markdown = prnn::report::markdown(&rows, &tuning_rows, cutoff, reference.as_deref());
    let json = serde_json::json!({
        "config": args.config,
        "command_line": std::env::args().collect::<Vec<_>>(),
        "cutoff": cutoff,
        "reference": reference,
        "compare_to": settings.compare_to,
        "seeds": settings.seeds,
        "rows": rows,
        "tuning": tuning_rows,
    });
    let title = args.config.file_stem().map_or(String::new(), |s| s.to_string_lossy().to_string());
    let svg = report.plot(&row_order, &second, &rows, &title);
    let files = [
        (RESULTS_MD, markdown.clone()),
        (RESULTS_CSV, prnn::report::csv(&rows, cutoff)),
        (RESULTS_JSON, serde_json::to_string_pretty(&json).expect("json") + "\n"),
        (PLOT_SVG, svg.unwrap_or_else(|e| format!("<!-- the plot failed: {e} -->\n"))),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| {
            reporter.error(&format!("cannot write `{}`: {e}", path.display()), None);
            Exit::Io
        })?;
    }
    println!("{markdown}");
    let failed: Vec<&str> = rows.iter().flat_map(|r| r.failures.iter().map(|f| f.as_str())).collect();
    eprintln!("results in {} ({RESULTS_MD}, {RESULTS_CSV}, {RESULTS_JSON}, {PLOT_SVG})", out.display());
    if failed.is_empty() {
        Ok(Exit::Ok)
    } else {
        reporter.error(
            &format!("{} cell(s) did not finish: {}", failed.len(), failed.join("; ")),
            Some("their logs are in the experiment's `logs/` folder; run the same command again to retry them"),
        );
        Ok(Exit::Diverged)
    }
}

fn print_plan(runner: &Runner, cells: &[Cell], title: &str) {
    println!("{title}:");
    for cell in cells {
        let dir = runner.out.join(&cell.name);
        let state = if dir.join(EVAL_FILE).exists() {
            "finished"
        } else if dir.join(RECORD_FILE).exists() {
            "started"
        } else {
            "to run"
        };
        let what = match &cell.work {
            Work::Baseline(name) => format!("baseline {name}"),
            Work::Train { overrides, validation, .. } => {
                format!("train {}{}", overrides.join(" "), if *validation { " (validation split)" } else { "" })
            }
        };
        println!("  {:<8} {:<40} {what}", state, cell.name);
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

impl Runner {
    fn run_all(&self, cells: &[Cell], specs: &[Spec], jobs: usize, reporter: &Reporter) -> Result<(), Exit> {
        // Existing cells must come from the same spec, config and overrides before anything runs.
        for cell in cells {
            self.check_existing(cell, specs, reporter)?;
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
                            let metrics = read_eval_all(&dir);
                            let shown: Vec<String> = metrics
                                .iter()
                                .flatten()
                                .map(|m| format!("Recall@{0} {1:.4} MRR@{0} {2:.4}", m.cutoff, m.recall, m.mrr))
                                .collect();
                            format!("done in {:.0} s  {}", started.elapsed().as_secs_f64(), shown.last().cloned().unwrap_or_default())
                        }
                        CellOutcome::Failed(why) => format!("FAILED: {why} (log: {})", self.log_path(cell).display()),
                    };
                    eprintln!("[{}/{total}] {}: {line}", index + 1, cell.name);
                });
            }
        });
        Ok(())
    }

    fn log_path(&self, cell: &Cell) -> PathBuf {
        self.out.join("logs").join(format!("{}.log", cell.name.replace('/', "-")))
    }

    fn check_existing(&self, cell: &Cell, specs: &[Spec], reporter: &Reporter) -> Result<(), Exit> {
        let dir = self.out.join(&cell.name);
        let Work::Train { spec, overrides, validation } = &cell.work else { return Ok(()) };
        let Ok(text) = std::fs::read_to_string(dir.join(RECORD_FILE)) else { return Ok(()) };
        let mismatch = match serde_json::from_str::<RunRecord>(&text) {
            Ok(record) => {
                if record.spec_hash != specs[*spec].text_hash {
                    Some("another version of its spec")
                } else if record.config_hash != self.config_hash {
                    Some("another run config")
                } else if &record.overrides != overrides || record.validation != *validation {
                    Some("other overrides (a changed sweep or tuning result)")
                } else {
                    None
                }
            }
            Err(_) => Some("a damaged run.json"),
        };
        if let Some(why) = mismatch {
            reporter.error(
                &format!("the cell `{}` was made with {why}", dir.display()),
                Some("give a new `--out` folder, or delete that cell's folder to train it again"),
            );
            return Err(Exit::Config);
        }
        Ok(())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("--color").arg("never");
        command
    }

    fn run_cell(&self, cell: &Cell, specs: &[Spec]) -> CellOutcome {
        let dir = self.out.join(&cell.name);
        if dir.join(EVAL_FILE).exists() {
            return CellOutcome::Skipped;
        }
        let log_path = self.log_path(cell);
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

enum CellOutcome {
    Skipped,
    Done,
    Failed(String),
}

/// A cell folder with no record is what a child left before writing anything worth keeping.
fn remove_unfinished(dir: &Path) {
    if dir.exists() && !dir.join(RECORD_FILE).exists() && !dir.join(BASELINE_FILE).exists() && !dir.join(EVAL_FILE).exists() {
        let _ = std::fs::remove_dir_all(dir);
    } else if dir.join(BASELINE_FILE).exists() && !dir.join(EVAL_FILE).exists() {
        // A baseline is refitted in seconds: its half-written folder is not worth continuing.
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program()).chain(command.get_args()).map(|a| a.to_string_lossy().to_string()).collect::<Vec<_>>().join(" ")
}

fn read_eval_all(dir: &Path) -> Option<Vec<CutoffMetrics>> {
    let text = std::fs::read_to_string(dir.join(EVAL_FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(value.get("metrics")?.clone()).ok()
}

fn read_eval(dir: &Path, cutoff: u64) -> Option<CutoffMetrics> {
    read_eval_all(dir)?.into_iter().find(|m| m.cutoff == cutoff)
}

/// Training seconds and events of a run folder's epochs, and its per-epoch metrics at the cut-off.
fn read_epochs(dir: &Path, cutoff: u64) -> (f64, f64, Vec<(u32, f64, f64)>) {
    let (mut seconds, mut events, mut points) = (0.0, 0.0, Vec::new());
    for line in std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default().lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        seconds += value["seconds"].as_f64().unwrap_or(0.0);
        events += value["events"].as_f64().unwrap_or(0.0);
        if let Some(metrics) = value.get("eval").and_then(|e| serde_json::from_value::<Vec<CutoffMetrics>>(e.clone()).ok()) {
            if let Some(m) = metrics.iter().find(|m| m.cutoff == cutoff) {
                points.push((value["epoch"].as_u64().unwrap_or(0) as u32, m.recall, m.mrr));
            }
        }
    }
    (seconds, events, points)
}

/// Per-session sums of hits and reciprocal ranks within the cut-off, keyed by session, from `ranks.tsv`.
fn read_session_sums(dir: &Path, cutoff: u64) -> Option<IndexMap<String, (f64, f64, f64)>> {
    let text = std::fs::read_to_string(dir.join(RANKS_FILE)).ok()?;
    let mut sums: IndexMap<String, (f64, f64, f64)> = IndexMap::new();
    for line in text.lines().skip(1) {
        let mut fields = line.split('\t');
        let (Some(session), Some(_), Some(_), Some(rank)) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
            return None;
        };
        let rank: f64 = rank.parse().ok()?;
        let entry = sums.entry(session.to_string()).or_insert((0.0, 0.0, 0.0));
        if rank <= cutoff as f64 {
            entry.0 += 1.0;
            entry.1 += 1.0 / rank;
        }
        entry.2 += 1.0;
    }
    Some(sums)
}

struct Report<'a> {
    out: &'a Path,
    cutoff: u64,
    bootstrap: u64,
}

impl Report<'_> {
    /// Seeds averaged per session: `(hits, reciprocal ranks, events)` of each test session.
    fn mean_session_sums(&self, cells: &[&Cell]) -> Option<IndexMap<String, (f64, f64, f64)>> {
        let mut total: Option<IndexMap<String, (f64, f64, f64)>> = None;
        let mut n = 0.0;
        for cell in cells {
            let Some(sums) = read_session_sums(&self.out.join(&cell.name), self.cutoff) else { continue };
            n += 1.0;
            match &mut total {
                None => total = Some(sums),
                Some(total) => {
                    for (session, (hits, reciprocal, _)) in sums {
                        let entry = total.get_mut(&session)?;
                        entry.0 += hits;
                        entry.1 += reciprocal;
                    }
                }
            }
        }
        let mut total = total?;
        for entry in total.values_mut() {
            entry.0 /= n;
            entry.1 /= n;
        }
        Some(total)
    }

    fn rows(
        &self,
        order: &[String],
        cells: &[&Cell],
        reference: Option<&str>,
        compare_to: Option<&str>,
        sweep: &IndexMap<String, Vec<String>>,
    ) -> Vec<ResultRow> {
        let mut rows: Vec<ResultRow> = Vec::new();
        for label in order {
            let members: Vec<&Cell> = cells.iter().copied().filter(|c| &c.row == label).collect();
            let baseline = members.iter().any(|c| matches!(c.work, Work::Baseline(_)));
            let (mut recalls, mut mrrs, mut seconds, mut rates, mut failures) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for cell in &members {
                let dir = self.out.join(&cell.name);
                match read_eval(&dir, self.cutoff) {
                    Some(m) => {
                        recalls.push(m.recall);
                        mrrs.push(m.mrr);
                        if baseline {
                            let fit = std::fs::read_to_string(dir.join(BASELINE_FILE))
                                .ok()
                                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                            seconds.extend(fit.and_then(|f| f["fit_seconds"].as_f64()));
                        } else {
                            let (s, events, _) = read_epochs(&dir, self.cutoff);
                            seconds.push(s);
                            rates.push(events / s.max(1e-9));
                        }
                    }
                    None => failures.push(match &cell.work {
                        Work::Train { overrides, .. } => format!("{} did not finish", overrides.last().cloned().unwrap_or_default()),
                        Work::Baseline(_) => "did not finish".to_string(),
                    }),
                }
            }
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            rows.push(ResultRow {
                label: label.clone(),
                baseline,
                seeds: if baseline { 0 } else { recalls.len() },
                recall: Spread::of(&recalls),
                mrr: Spread::of(&mrrs),
                recall_change: None,
                mrr_change: None,
                seconds: mean(&seconds),
                events_per_second: mean(&rates),
                versus: None,
                failures,
            });
        }
        if let Some(reference) = reference.and_then(|r| rows.iter().find(|row| row.label == r).cloned()) {
            for row in rows.iter_mut() {
                let finished = row.baseline || row.seeds > 0;
                if finished && reference.recall.mean > 0.0 && reference.mrr.mean > 0.0 {
                    row.recall_change = Some(100.0 * (row.recall.mean / reference.recall.mean - 1.0));
                    row.mrr_change = Some(100.0 * (row.mrr.mean / reference.mrr.mean - 1.0));
                }
            }
        }
        if let Some(base) = compare_to {
            for combination in combinations(sweep) {
                let suffix = if combination.is_empty() { String::new() } else { format!(" {}", setting_label(&combination)) };
                let base_label = format!("{base}{suffix}");
                let base_cells: Vec<&Cell> = cells.iter().copied().filter(|c| c.row == base_label).collect();
                let Some(base_sums) = self.mean_session_sums(&base_cells) else { continue };
                for (k, row) in rows.iter_mut().enumerate() {
                    let label = &order[k];
                    if row.baseline || *label == base_label || !label.ends_with(&suffix) {
                        continue;
                    }
                    let members: Vec<&Cell> = cells.iter().copied().filter(|c| &c.row == label).collect();
                    let Some(sums) = self.mean_session_sums(&members) else { continue };
                    let (mut hit_diffs, mut rr_diffs, mut events) = (Vec::new(), Vec::new(), Vec::new());
                    for (session, (hits, reciprocal, n)) in &sums {
                        let Some(base) = base_sums.get(session) else { continue };
                        hit_diffs.push(hits - base.0);
                        rr_diffs.push(reciprocal - base.1);
                        events.push(*n);
                    }
                    let seed = 0x5EED_u64.wrapping_add(k as u64);
                    row.versus = Some(Versus {
                        base: base_label.clone(),
                        mrr: paired_bootstrap(&rr_diffs, &events, self.bootstrap, seed),
                        recall: paired_bootstrap(&hit_diffs, &events, self.bootstrap, seed),
                    });
                }
            }
        }
        rows
    }

    fn plot(&self, order: &[String], cells: &[Cell], rows: &[ResultRow], title: &str) -> Result<String, String> {
        let mut series = Vec::new();
        for label in order {
            let mut by_epoch: std::collections::BTreeMap<u32, (f64, f64, f64)> = Default::default();
            for cell in cells.iter().filter(|c| &c.row == label) {
                for (epoch, recall, mrr) in read_epochs(&self.out.join(&cell.name), self.cutoff).2 {
                    let entry = by_epoch.entry(epoch).or_insert((0.0, 0.0, 0.0));
                    entry.0 += recall;
                    entry.1 += mrr;
                    entry.2 += 1.0;
                }
            }
            if !by_epoch.is_empty() {
                let points = by_epoch.into_iter().map(|(epoch, (recall, mrr, n))| (epoch, recall / n, mrr / n)).collect();
                series.push(EpochSeries { label: label.clone(), points });
            }
        }
        let levels: Vec<(String, f64, f64)> =
            rows.iter().filter(|r| r.baseline).map(|r| (r.label.clone(), r.recall.mean, r.mrr.mean)).collect();
        epochs_svg(&series, &levels, self.cutoff, title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_expands_to_every_combination_in_order() {
        let grid: IndexMap<String, Vec<String>> = [
            ("lr".to_string(), vec!["0.1".to_string(), "0.2".to_string()]),
            ("batch".to_string(), vec!["32".to_string(), "50".to_string()]),
        ]
        .into_iter()
        .collect();
        let all = combinations(&grid);
        let labels: Vec<String> = all.iter().map(|c| setting_label(c)).collect();
        assert_eq!(labels, ["lr=0.1 batch=32", "lr=0.1 batch=50", "lr=0.2 batch=32", "lr=0.2 batch=50"]);
        assert_eq!(folder_label(&all[1]), "-lr0.1-batch50");
        assert_eq!(combinations(&IndexMap::new()), vec![Vec::<(String, String)>::new()]);
    }

    #[test]
    fn sweeps_parse_from_the_command_line() {
        assert_eq!(parse_sweep("lr=0.05, 0.1").unwrap(), ("lr".to_string(), vec!["0.05".to_string(), "0.1".to_string()]));
        assert!(parse_sweep("lr").is_err());
        assert!(parse_sweep("lr=").is_err());
    }
}
