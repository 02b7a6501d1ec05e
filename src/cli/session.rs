//! What `prnn train`, `eval`, `baseline` and `recommend` share: a spec and run config turned into a model, data
//! and a device. The run folder's files are `prnn::run`'s; the overrides are `prnn::config::overrides`'.

use std::path::Path;

use indexmap::IndexMap;
use prnn::config::{RunConfig, StepChoice};
use prnn::data::features::Feature;
use prnn::data::Dataset;
use prnn::diagnostic::{group_thousands, Source};
use prnn::ir::memory::{self, Available, Purpose, Workload};
use prnn::ir::{Compiled, InputRepr, Node};
use prnn::lower::{Network, StepKind};

use super::error::{CliError, Diagnostics};

/// A spec checked, overridden and bound to a config, with its data loaded.
pub struct Prepared {
    pub spec: Source,
    /// The config as the run folder records it ([`prnn::config::RunConfig::recorded_text`]).
    pub config_text: String,
    pub config: RunConfig,
    pub compiled: Compiled,
    pub dataset: Dataset,
    pub max_batches: Option<u64>,
}

/// Checks, overrides and binds a spec; reads the config; loads (and caches) the data; refuses a run whose
/// `purpose` would not fit in memory on `device` (the command line's, when it has one; else `[run] device`).
#[allow(clippy::too_many_arguments)]
pub fn prepare_for(
    purpose: Purpose,
    device: Option<&str>,
    spec: Source,
    config_text: String,
    config_path: &Path,
    config_dir: &Path,
    overrides: &[String],
    validation: bool,
) -> anyhow::Result<Prepared> {
    let (compiled, config, max_batches) = compile(&spec, &config_text, config_path, config_dir, overrides)?;
    // With includes, the run folder records the merged config, which reads back without them.
    let config_text = config.recorded_text(&config_text);
    let dataset = load_data(&config, validation)?;
    // Before any tensor exists. Without a device, the config's: `prnn train` resolves its `--device` later.
    let device = device.and_then(|name| prnn::lower::device(name).ok());
    if let Ok(bound) = prnn::ir::Bound::new(compiled.clone(), &dataset.sizes()) {
        let workload = Workload {
            train_sessions: dataset.train.len() as u64,
            train_events: dataset.train.events.len() as u64,
            test_sessions: dataset.test.len() as u64,
            ..workload(&bound, &dataset.features, &config)
        };
        check_memory(&bound, &workload, &config, purpose, device)?;
    }
    Ok(Prepared { spec, config_text, config, compiled, dataset, max_batches })
}

/// A spec checked, bound to its run config and overridden, without its data: the compiled model, the config
/// and the `max_batches` override.
fn compile(
    spec: &Source,
    config_text: &str,
    config_path: &Path,
    config_dir: &Path,
    overrides: &[String],
) -> anyhow::Result<(Compiled, RunConfig, Option<u64>)> {
    let mut model = prnn::check_source(spec).map_err(|error| Diagnostics::spec(spec, error.diagnostics))?;
    let config_source = Source::new(config_path.display().to_string(), config_text.to_string());
    let config =
        prnn::config::parse_file(&config_source, config_dir).map_err(|diagnostics| Diagnostics::config(&config_source, diagnostics))?;
    model = prnn::config::bind(&config, &model, &spec.name).map_err(|diagnostics| Diagnostics::config(&config_source, diagnostics))?;
    let max_batches = prnn::config::overrides::apply(&mut model, overrides)?;
    Ok((Compiled::new(model), config, max_batches))
}

/// Refuses `purpose` on `bound` when its memory estimate does not fit what the host has available
/// (docs/training.md, "Memory"). On a GPU (`device`, else the config's) only the host's terms are compared:
/// its free memory is not read.
fn check_memory(
    bound: &prnn::ir::Bound,
    workload: &Workload,
    config: &RunConfig,
    purpose: Purpose,
    device: Option<tch::Device>,
) -> anyhow::Result<()> {
    let estimate = memory::estimate(bound, workload, purpose);
    let Some(host) = prnn::runtime::memory::host_available()? else { return Ok(()) };
    let device = device.unwrap_or_else(|| prnn::lower::device(config.run.device.get_ref()).unwrap_or(tch::Device::Cpu));
    let available = Available { bytes: host.bytes, source: host.source };
    memory::check(&estimate, &available, device.is_cuda()).map_err(|refused| anyhow::Error::new(*refused))
}

/// The sizes a memory estimate takes from the feature rows and the run config; no sessions.
fn workload(bound: &prnn::ir::Bound, features: &IndexMap<String, Feature>, config: &RunConfig) -> Workload {
    let features = bound
        .graph()
        .graph
        .node_weights()
        .filter_map(|node| match node {
            Node::Input { name, repr: InputRepr::Dense | InputRepr::Sparse, .. } => {
                let bytes = match features.get(name)? {
                    Feature::Dense(dense) => dense.values.len() * 4,
                    Feature::Sparse(sparse) => sparse.indptr.len() * 8 + sparse.indices.len() * 4 + sparse.values.len() * 4,
                };
                Some((name.clone(), bytes as u64))
            }
            _ => None,
        })
        .collect();
    Workload {
        train_sessions: 0,
        train_events: 0,
        test_sessions: 0,
        eval_batch: config.eval.batch,
        sample_cache: prnn::train::sampler::SAMPLE_CACHE_SIZE as u64,
        features,
    }
}

/// The names of the feature inputs (dense and sparse) a compiled model reads: what a run's catalogue keeps.
pub fn feature_inputs(compiled: &Compiled) -> Vec<&str> {
    compiled
        .graph
        .graph
        .node_weights()
        .filter_map(|node| match node {
            Node::Input { name, repr: InputRepr::Dense | InputRepr::Sparse, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// Refuses spec and config paths that run records could not hold: they are JSON, whose strings are text, while
/// a path is any bytes on Unix. The config's folder counts too, since records keep it absolute.
pub fn recorded_paths(specs: &[&Path], config: &Path) -> Result<(), CliError> {
    let named = specs.iter().map(|&spec| ("spec path", spec.to_path_buf()));
    let config_paths = [("run config path", config.to_path_buf()), ("run config's folder", super::folder_of(config))];
    match named.chain(config_paths).find(|(_, path)| path.to_str().is_none()) {
        Some((what, path)) => Err(CliError::NotUtf8 { what, path }),
        None => Ok(()),
    }
}

/// The config's dataset, or its validation split (the training set's last sessions held out as the test set).
pub fn load_data(config: &RunConfig, validation: bool) -> anyhow::Result<Dataset> {
    let (dataset, source) = prnn::data::load(config, true)?;
    // A cache that could not be used was prepared again: said, since the user may want to know why it took long.
    if let prnn::data::Source::Prepared { note: Some(note), .. } = source {
        eprintln!("note: {note}");
    }
    if !validation {
        return Ok(dataset);
    }
    Ok(prnn::data::validation::validation_split(&dataset).ok_or(CliError::NoValidationSessions)?)
}

/// The CPU threads for `asked` (`--threads` or `[run] threads`; 0: every core this process may use), at most
/// [`prnn::runtime::cpu::THREADS_PER_CORE`] per core. A cut ask is said once per process on stderr: training
/// resolves its threads twice, and `prnn train --eval` evaluates in the same process.
pub fn cpu_threads(asked: u64) -> usize {
    use prnn::runtime::cpu;
    let threads = cpu::threads_for(asked, cpu::cores());
    if threads.capped {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "warning: {} CPU threads asked for (`--threads` or `[run] threads`); using {}, {} per core on the {} cores \
                 this process may use: more only wait for one another",
                group_thousands(threads.asked),
                threads.used,
                cpu::THREADS_PER_CORE,
                cpu::cores()
            )
        });
    }
    threads.used
}

/// Sets libtorch's CPU thread count from `[run] threads` ([`cpu_threads`]).
pub fn set_threads(config: &RunConfig) {
    tch::set_num_threads(i32::try_from(cpu_threads(config.run.threads)).unwrap_or(i32::MAX));
}

/// libtorch's CPU threads for training steps: `[run] threads` when set ([`cpu_threads`]); when it is 0 (the
/// default), every core, but one for a step whose products are too small to split (`prnn::ir::cost`), such as
/// GRU4Rec's row 1.
pub fn training_threads(config: &RunConfig, network: &Network) -> usize {
    match config.run.threads {
        0 if network.device == tch::Device::Cpu && prnn::ir::cost::step_multiply_adds(network.ir()) < prnn::ir::cost::SMALL_STEP => 1,
        asked => cpu_threads(asked),
    }
}

/// Resolves the device: the command line's, else the config's.
pub fn device(flag: Option<&str>, config: &RunConfig) -> anyhow::Result<tch::Device> {
    set_threads(config);
    let name = flag.unwrap_or(config.run.device.get_ref().as_str());
    Ok(prnn::lower::device(name)?)
}

/// Resolves the training step: the command line's, else the run record's (on resume), else the config's; a fused
/// step asked of a network it cannot run is refused.
pub fn step_kind(flag: Option<StepChoice>, config: &RunConfig, network: &prnn::lower::Network) -> Result<StepKind, CliError> {
    let unsupported = prnn::lower::fused::unsupported(network);
    match flag.unwrap_or(config.run.step) {
        StepChoice::Auto if unsupported.is_none() => Ok(StepKind::Fused),
        StepChoice::Auto | StepChoice::Autograd => Ok(StepKind::Autograd),
        StepChoice::Fused => match unsupported {
            None => Ok(StepKind::Fused),
            Some(why) => Err(CliError::FusedStep(why)),
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

/// A trained run's network with its checkpoint's weights, ready for inference.
pub struct Trained {
    /// The model's name in its spec.
    pub model: String,
    /// The item IDs by the network's item index.
    pub items: prnn::data::intern::Interner,
    pub network: Network,
    pub device: tch::Device,
    /// The epochs the checkpoint holds.
    pub epoch: u64,
    /// The checkpoint file read.
    pub checkpoint: std::path::PathBuf,
}

/// Reads a trained run folder and loads its last checkpoint into its network, on the command line's device
/// (else the config's), with `threads` CPU threads (else the config's). The items and feature rows come from
/// the run's catalogue, so the data files are not read; a run folder of an older prnn, which has none, reads
/// its data again.
pub fn trained(run_dir: &Path, device_flag: Option<&str>, threads: Option<u64>, purpose: Purpose) -> anyhow::Result<Trained> {
    use super::error::CheckpointUse;
    use prnn::train::checkpoint;
    let folder = prnn::run::read_run(run_dir)?;
    let record = folder.record;
    let checkpoint_path = run_dir.join(checkpoint::FILE_NAME);
    if !checkpoint_path.exists() {
        return Err(CliError::NoCheckpoint { dir: run_dir.to_path_buf(), needed_for: CheckpointUse::Recommend }.into());
    }
    let config_path = run_dir.join(prnn::run::CONFIG_FILE);
    // `[run] threads` unless the command line says otherwise, then the device.
    let resolve_device = |config: &mut RunConfig| {
        if let Some(threads) = threads {
            config.run.threads = threads;
        }
        device(device_flag, config)
    };
    let (model, items, mut network, device) = match prnn::data::catalogue::read(run_dir)? {
        Some(catalogue) => {
            let (compiled, mut config, _) =
                compile(&folder.spec, &folder.config_text, &config_path, &record.config_dir, &record.overrides)?;
            let bound = prnn::ir::Bound::new(compiled, &catalogue.sizes()).map_err(|unbound| CliError::CatalogueMismatch {
                path: run_dir.join(prnn::data::catalogue::FILE_NAME),
                why: unbound.to_string(),
            })?;
            let flagged = device_flag.and_then(|name| prnn::lower::device(name).ok());
            check_memory(&bound, &workload(&bound, &catalogue.features, &config), &config, purpose, flagged)?;
            let device = resolve_device(&mut config)?;
            let model = bound.compiled().model.name.clone();
            let network = Network::for_catalogue(bound, &catalogue, device);
            (model, catalogue.items, network, device)
        }
        None => {
            let mut prepared = prepare_for(
                purpose,
                device_flag,
                folder.spec,
                folder.config_text,
                &config_path,
                &record.config_dir,
                &record.overrides,
                record.validation,
            )?;
            let device = resolve_device(&mut prepared.config)?;
            let network = network(&prepared, device);
            (prepared.compiled.model.name.clone(), prepared.dataset.items, network, device)
        }
    };
    let info = checkpoint::load(&checkpoint_path, &mut network, &items)
        .map_err(|source| CliError::Checkpoint { needed_for: CheckpointUse::Recommend, source })?;
    Ok(Trained { model, items, network, device, epoch: info.epoch, checkpoint: checkpoint_path })
}

pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}"),
    }
}
