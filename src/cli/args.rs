//! Every command's arguments, torch-free: the front binary (`prnn`) parses and documents all of them, and runs
//! the training commands through the runtime binary (src/cli/runtime.rs).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use prnn::config::StepChoice;

/// `prnn train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
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
    /// Evaluate on the test (or validation) set after every epoch and record Recall, MRR, HitRate and NDCG in
    /// `metrics.jsonl`, for plots of metrics per epoch.
    #[arg(long)]
    pub eval_every_epoch: bool,
    /// Evaluate the trained run when training ends, as `prnn eval RUN_DIR` would (on the test set, or the
    /// validation split with `--validation`): prints the table and writes `eval.json` and `ranks.tsv`.
    #[arg(long)]
    pub eval: bool,
    /// Continue a stopped or killed run from its last checkpoint, with its own spec, config and overrides.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["spec", "config", "overrides"])]
    pub resume: Option<PathBuf>,
    /// Spec settings to override: seed, batch, lr, momentum, eps, epochs, extra, alpha, hidden, stop; addressed
    /// ones such as `id_net.hidden=200`, `id_net.dropout=0.3`, `id.dropout=0.2`, `loss.logq=1`,
    /// `output.alpha=0.5`, `merge.id_net=0.5`, `schedule.id_net=5`, `stop.patience=2`; and max_batches (stop
    /// every epoch after N mini-batches, for smoke runs). E.g. `epochs=1 lr=0.1`.
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

/// `prnn eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The run folder `prnn train` wrote.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Evaluate with this run config instead of the run's own (e.g. other cutoffs, ties or `most_popular`);
    /// its data must have the same item index. The results go beside the default ones, named after the
    /// config: `eval-NAME.json` and `ranks-NAME.tsv` for `NAME.toml`.
    #[arg(long, value_name = "RUN.TOML")]
    pub config: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// CPU threads; overrides the config's `[run] threads` (0 = every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,
}

/// `prnn recommend`.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// A run folder of `prnn train`, `prnn baseline` or a cell of `prnn run`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The session so far: item IDs as the session files write them, oldest first, separated by commas.
    #[arg(long, value_name = "ITEM,ITEM,...", value_delimiter = ',', num_args = 1.., required_unless_present = "sessions", conflicts_with = "sessions")]
    pub session: Vec<String>,
    /// Many sessions, one per line of FILE (`-`: standard input), each `ITEM,ITEM,...` oldest first: one JSON
    /// line each on standard output, the model loaded once.
    #[arg(long, value_name = "FILE")]
    pub sessions: Option<PathBuf>,
    /// How many items to list.
    #[arg(short, long, default_value_t = 20, value_name = "K")]
    pub k: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// `text` (a table) or `json` (one object: the items with their scores, as `prnn serve` answers).
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `prnn serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A run folder of `prnn train` (or a cell of `prnn run`).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The address to listen on; port 0 takes a free port (the address is printed when the server is ready).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Where session states live: `memory` (this process) or `redis://HOST:PORT[/DB]`, shared by every replica
    /// that serves the same model.
    #[arg(long, value_name = "memory|redis://HOST:PORT", default_value = "memory", value_parser = state_place)]
    pub state: StatePlace,
    /// The Redis key of a session is this prefix followed by the session ID.
    #[arg(long, value_name = "PREFIX", default_value = "prnn:session:")]
    pub state_prefix: String,
    /// Seconds a session may stay idle before it is forgotten (in Redis too).
    #[arg(long, value_name = "SECONDS", default_value = "1800", value_parser = positive_seconds)]
    pub session_ttl: f64,
    /// The most sessions held in process; the least recently used is evicted first (`--state memory` only).
    #[arg(long, value_name = "N", default_value = "100000")]
    pub max_sessions: NonZeroUsize,
    /// The most requests gathered into one forward pass.
    #[arg(long, value_name = "N", default_value = "256")]
    pub max_batch: NonZeroUsize,
    /// How long a forward pass may wait for more requests, in microseconds (only while requests come
    /// concurrently; a lone request never waits).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 1000)]
    pub batch_wait_us: u64,
    /// A request not answered within this many milliseconds is answered 503 (and its click not applied).
    #[arg(long, value_name = "MS", default_value = "2000")]
    pub timeout_ms: NonZeroUsize,
    /// Larger request bodies are answered 413.
    #[arg(long, value_name = "BYTES", default_value = "65536")]
    pub max_body_bytes: NonZeroUsize,
    /// The most items a request may ask for (`k`).
    #[arg(long, value_name = "K", default_value = "1000")]
    pub max_k: NonZeroUsize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// CPU threads for libtorch's forward passes; overrides the config's `[run] threads` (0 = every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,
}

/// Where `prnn serve` keeps session states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatePlace {
    Memory,
    Redis(String),
}

fn state_place(text: &str) -> Result<StatePlace, String> {
    match text {
        "memory" => Ok(StatePlace::Memory),
        url if ["redis://", "redis+unix://", "unix://"].iter().any(|scheme| url.starts_with(scheme)) => {
            Ok(StatePlace::Redis(url.to_string()))
        }
        _ => Err(format!("`{text}` is neither `memory` nor a Redis URL such as `redis://127.0.0.1:6379`")),
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds above 0 (e.g. 1800)")),
    }
}

/// `prnn baseline`.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
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

/// `prnn run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The specs to train (default: `[experiment] specs`); each model name may appear once.
    #[arg(value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// The run config: data, evaluation, `[baselines]` and `[experiment]` (seeds, sweep, tuning, jobs).
    #[arg(long, value_name = "RUN.TOML")]
    pub config: PathBuf,
    /// The experiment folder. Default `<[run] out>/experiments/NAME`, NAME following from what runs: the
    /// config's name, then the specs and sweeps given on the command line (`demo-id_only-lr-0.05-0.1`).
    /// Running the same command again continues it: finished cells are kept and skipped.
    #[arg(long, value_name = "DIR", conflicts_with = "name")]
    pub out: Option<PathBuf>,
    /// Name the experiment: its folder is `<[run] out>/experiments/NAME`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
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
    /// The cut-offs `epochs.svg` plots, each one of `[eval] cutoffs`: repeat it or list them (`--cutoff 5,20`);
    /// overrides `[experiment] plot_cutoffs`.
    #[arg(long = "cutoff", value_name = "N", value_delimiter = ',')]
    pub cutoffs: Vec<u64>,
    /// Print the experiment folder and list the cells and whether each is finished, then stop.
    #[arg(long)]
    pub plan: bool,
}
