//! What `prnn train` and `prnn eval` share: a spec and run config turned into a model, data and a device,
//! the `key=value` overrides of the spec's training settings, and the run folder's record of all of it.

use std::path::{Path, PathBuf};

use prnn::check::{Model, Schedule};
use prnn::config::{RunConfig, StepChoice};
use prnn::data::Dataset;
use prnn::diagnostic::Source;
use prnn::ir::Compiled;
use prnn::lower::{Network, StepKind};

use super::{read_file, Exit, Reporter};

/// The run folder's record of how it was made (`run.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub prnn_version: String,
    pub torch_version: Option<String>,
    pub command_line: Vec<String>,
    /// Where the spec and config were read from, as given.
    pub spec_path: PathBuf,
    pub config_path: PathBuf,
    /// The folder relative paths in `config.toml` resolve against (absolute).
    pub config_dir: PathBuf,
    /// BLAKE3 of `spec.prnn`, of `config.toml`, and of the resolved model as JSON.
    pub spec_hash: String,
    pub config_hash: String,
    pub model_hash: String,
    pub overrides: Vec<String>,
    pub max_batches: Option<u64>,
    pub device: String,
    /// The training step used: `fused` or `autograd` (empty in records older than the choice).
    #[serde(default)]
    pub step: String,
    pub parameters: i64,
    /// Trained and evaluated on the validation split (`--validation`) instead of train and test.
    #[serde(default)]
    pub validation: bool,
    /// The model after defaults and overrides: what actually trains.
    pub model: serde_json::Value,
}

pub const SPEC_FILE: &str = "spec.prnn";
pub const CONFIG_FILE: &str = "config.toml";
pub const RECORD_FILE: &str = "run.json";
pub const METRICS_FILE: &str = "metrics.jsonl";

/// A spec checked, overridden and bound to a config, with its data loaded.
pub struct Prepared {
    pub spec: Source,
    pub config_text: String,
    pub config: RunConfig,
    pub compiled: Compiled,
    pub dataset: Dataset,
    pub max_batches: Option<u64>,
}

/// The keys `key=value` overrides take.
const KEYS: &str = "seed, batch, lr, momentum, eps, epochs, extra, alpha, max_batches";

/// An error naming the closest key when `key` is not an override key.
pub fn check_override_key(key: &str) -> Result<(), String> {
    let names: Vec<&str> = KEYS.split(", ").collect();
    if names.contains(&key) {
        return Ok(());
    }
    let hint = prnn::diagnostic::closest(key, names).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
    Err(format!("unknown override `{key}`{hint}; keys: {KEYS}"))
}

/// Applies `key=value` overrides to the spec's training settings. Returns the run-only `max_batches`.
pub fn apply_overrides(model: &mut Model, overrides: &[String]) -> Result<Option<u64>, String> {
    let mut max_batches = None;
    for text in overrides {
        let (key, value) = text.split_once('=').ok_or_else(|| format!("override `{text}` is not `key=value` (keys: {KEYS})"))?;
        let (key, value) = (key.trim(), value.trim());
        let integer = || value.parse::<u64>().map_err(|_| format!("override `{key}` needs a whole number ≥ 0, got `{value}`"));
        let real = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("override `{key}` needs a number ≥ 0, got `{value}`"))
        };
        let positive = |n: u64| if n == 0 { Err(format!("override `{key}` must be at least 1")) } else { Ok(n) };
        let train = &mut model.train;
        match key {
            "seed" => train.seed = integer()?,
            "batch" => train.batch = positive(integer()?)?,
            "lr" => {
                train.optimizer.learning_rate =
                    real().and_then(|v| if v > 0.0 { Ok(v) } else { Err("override `lr` must be above 0".into()) })?
            }
            "momentum" => {
                train.optimizer.momentum =
                    real().and_then(|v| if v < 1.0 { Ok(v) } else { Err("override `momentum` must be below 1".into()) })?
            }
            "eps" => train.optimizer.eps = real()?,
            "extra" => train.negatives.extra = integer()?,
            "alpha" => train.negatives.alpha = real()?,
            "max_batches" => max_batches = Some(positive(integer()?)?),
            "epochs" => {
                let epochs = positive(integer()?)?;
                match &mut train.schedule {
                    Schedule::Simultaneous { epochs: e }
                    | Schedule::Alternating { epochs: e, .. }
                    | Schedule::Interleaving { epochs: e, .. } => *e = epochs,
                    // Every phase gets the same number: a residual ensemble needs each subnet trained.
                    Schedule::Residual { phases } => phases.iter_mut().for_each(|p| p.epochs = epochs),
                }
            }
            _ => return Err(check_override_key(key).expect_err("every known key has an arm above")),
        }
    }
    if model.train.batch == 1 && model.train.negatives.extra == 0 {
        return Err("a mini-batch of 1 has no negatives with in-batch negatives only: use `batch=2` or more, or `extra=N`".into());
    }
    Ok(max_batches)
}

/// Reads, checks, overrides and binds a spec; reads the config; loads (and caches) the data.
pub fn prepare(
    spec: Source,
    config_text: String,
    config_path: &Path,
    config_dir: &Path,
    overrides: &[String],
    validation: bool,
    reporter: &Reporter,
) -> Result<Prepared, Exit> {
    let mut model = match prnn::check_source(&spec) {
        Ok(model) => model,
        Err(error) => {
            reporter.diagnostics(&spec, &error.diagnostics);
            return Err(Exit::Spec);
        }
    };
    let config_source = Source::new(config_path.display().to_string(), config_text.clone());
    let config = prnn::config::parse(&config_text, config_dir).map_err(|diagnostics| {
        reporter.diagnostics(&config_source, &diagnostics);
        Exit::Config
    })?;
    model = prnn::config::bind(&config, &model, &spec.name).map_err(|diagnostics| {
        reporter.diagnostics(&config_source, &diagnostics);
        Exit::Config
    })?;
    let max_batches = apply_overrides(&mut model, overrides).map_err(|message| {
        reporter.error(&message, None);
        Exit::Usage
    })?;
    let dataset = load_data(&config, validation, reporter)?;
    let compiled = Compiled::new(model);
    Ok(Prepared { spec, config_text, config, compiled, dataset, max_batches })
}

/// The config's dataset, or its validation split (the training set's last sessions held out as the test set).
pub fn load_data(config: &RunConfig, validation: bool, reporter: &Reporter) -> Result<Dataset, Exit> {
    let (dataset, _) = prnn::data::load(config, true).map_err(|error| super::data::report_data_error(&error, reporter))?;
    if !validation {
        return Ok(dataset);
    }
    prnn::data::validation::validation_split(&dataset).ok_or_else(|| {
        reporter.error(
            "the validation split leaves no session to evaluate",
            Some("the training set's last sessions share no item with the rest; train without `--validation`"),
        );
        Exit::Data
    })
}

/// Reads a run folder's record and the spec and config it keeps.
pub fn read_run(dir: &Path, reporter: &Reporter) -> Result<(RunRecord, Source, String), Exit> {
    let record_path = dir.join(RECORD_FILE);
    let record_text = read_file(&record_path, "run record", reporter).inspect_err(|_| {
        if !dir.is_dir() {
            reporter.error(&format!("`{}` is not a run folder", dir.display()), Some("give the folder `prnn train` wrote"));
        }
    })?;
    let record: RunRecord = serde_json::from_str(&record_text.text).map_err(|e| {
        reporter.error(&format!("{} is damaged: {e}", record_path.display()), Some("the run folder cannot be used; train again"));
        Exit::Io
    })?;
    let spec = read_file(&dir.join(SPEC_FILE), "spec", reporter)?;
    let config = read_file(&dir.join(CONFIG_FILE), "run config", reporter)?;
    Ok((record, spec, config.text))
}

pub fn hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Sets libtorch's CPU thread count from `[run] threads` (0: every core this process may use).
pub fn set_threads(config: &RunConfig) {
    let threads = match config.run.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    tch::set_num_threads(threads as i32);
}

/// Resolves the device: the command line's, else the config's; reports an unusable one.
pub fn device(flag: Option<&str>, config: &RunConfig, reporter: &Reporter) -> Result<tch::Device, Exit> {
    set_threads(config);
    let name = flag.unwrap_or(config.run.device.get_ref().as_str());
    prnn::lower::device(name).map_err(|message| {
        reporter.error(&message.to_string(), Some("use `--device cpu`, or `auto` to take CUDA only when it is there"));
        Exit::Usage
    })
}

/// Resolves the training step: the command line's, else the run record's (on resume), else the config's;
/// reports a fused step asked of a network it cannot run.
pub fn step_kind(
    flag: Option<StepChoice>,
    config: &RunConfig,
    network: &prnn::lower::Network,
    reporter: &Reporter,
) -> Result<StepKind, Exit> {
    let unsupported = prnn::lower::fused::unsupported(network).map(|why| why.to_string());
    match flag.unwrap_or(config.run.step) {
        StepChoice::Auto if unsupported.is_none() => Ok(StepKind::Fused),
        StepChoice::Auto | StepChoice::Autograd => Ok(StepKind::Autograd),
        StepChoice::Fused => match unsupported {
            None => Ok(StepKind::Fused),
            Some(why) => {
                reporter.error(&format!("cannot use the fused step: {why}"), Some("use `--step autograd`, or `--device cpu`"));
                Err(Exit::Usage)
            }
        },
    }
}

pub fn step_name(kind: StepKind) -> &'static str {
    kind.name()
}

/// The prepared spec's network on `device`: its IR bound to the data's sizes, its parameters initialised.
pub fn network(prepared: &Prepared, device: tch::Device) -> Network {
    let bound =
        prnn::ir::Bound::new(prepared.compiled.clone(), &prepared.dataset.sizes()).expect("the run config binds every input the data has");
    Network::new(bound, &prepared.dataset, device)
}

pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}"),
    }
}
