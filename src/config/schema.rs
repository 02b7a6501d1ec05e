//! The run config's schema: the serde types of every table, their defaults, and reading a `[run] device`.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Included;
use crate::diagnostic::closest;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub data: Data,
    /// One table per spec input that needs a source; `item_id` inputs read the sessions' item column.
    #[serde(default)]
    pub inputs: IndexMap<Spanned<String>, Spanned<InputBinding>>,
    #[serde(default)]
    pub preprocess: Preprocess,
    #[serde(default)]
    pub eval: Eval,
    #[serde(default)]
    pub run: Run,
    /// Settings of the baselines `prnn baseline` and `prnn run` evaluate.
    #[serde(default)]
    pub baselines: Baselines,
    /// What `prnn run` trains and compares (ignored by the other commands).
    #[serde(default)]
    pub experiment: Experiment,
    /// The files the config includes, for diagnostics that point into them, and the settings as one file.
    #[serde(skip)]
    pub included: Included,
}

/// Where the sessions are: a shipped train/test split, or one file that preprocessing splits by time.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Data {
    pub train: Option<Spanned<PathBuf>>,
    pub test: Option<Spanned<PathBuf>>,
    pub sessions: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub format: SessionFormat,
}

/// How to read a session file; the defaults read GRU4Rec's TSV.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionFormat {
    pub separator: String,
    pub session: String,
    pub item: String,
    /// One column, or several added up (e.g. a date plus milliseconds within the session).
    pub time: Vec<TimeColumn>,
    pub header: bool,
    /// Whether `"` quotes fields; defaults to off for tab-separated files and on for any other separator.
    pub quoting: Option<bool>,
    /// What to do with a row that cannot be read: stop with an error naming it, or skip it and count it.
    pub bad_rows: BadRows,
}

impl Default for SessionFormat {
    fn default() -> Self {
        SessionFormat {
            separator: "\t".into(),
            session: "SessionId".into(),
            item: "ItemId".into(),
            time: vec![TimeColumn::Seconds("Time".into())],
            header: true,
            quoting: None,
            bad_rows: BadRows::Error,
        }
    }
}

/// A time column: a bare name reads seconds; a table names the unit.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "TimeColumnText", untagged)]
pub enum TimeColumn {
    Seconds(String),
    WithUnit { column: String, unit: TimeUnit },
}

impl TimeColumn {
    pub fn column(&self) -> &str {
        match self {
            TimeColumn::Seconds(column) | TimeColumn::WithUnit { column, .. } => column,
        }
    }

    pub fn unit(&self) -> TimeUnit {
        match self {
            TimeColumn::Seconds(_) => TimeUnit::S,
            TimeColumn::WithUnit { unit, .. } => *unit,
        }
    }
}

/// A time column as written, before its unit is checked: serde's own message for a bad unit inside an
/// untagged enum says only that nothing matched.
#[derive(Deserialize)]
#[serde(untagged)]
enum TimeColumnText {
    Name(String),
    Table(TimeTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeTable {
    column: String,
    unit: String,
}

const TIME_UNITS: [(&str, TimeUnit); 5] =
    [("s", TimeUnit::S), ("ms", TimeUnit::Ms), ("us", TimeUnit::Us), ("date", TimeUnit::Date), ("datetime", TimeUnit::Datetime)];

impl TryFrom<TimeColumnText> for TimeColumn {
    type Error = UnknownTimeUnit;

    fn try_from(text: TimeColumnText) -> Result<Self, UnknownTimeUnit> {
        match text {
            TimeColumnText::Name(column) => Ok(TimeColumn::Seconds(column)),
            TimeColumnText::Table(TimeTable { column, unit }) => match TIME_UNITS.iter().find(|(name, _)| *name == unit) {
                Some((_, unit)) => Ok(TimeColumn::WithUnit { column, unit: *unit }),
                None => Err(UnknownTimeUnit { column, unit }),
            },
        }
    }
}

/// A time column whose `unit` is none of [`TIME_UNITS`]; serde turns it into the config error's message.
#[derive(Debug, thiserror::Error)]
#[error("unknown time unit `{unit}` for column `{column}`{}; expected one of {}", did_you_mean(.unit), unit_names())]
pub(super) struct UnknownTimeUnit {
    column: String,
    unit: String,
}

fn did_you_mean(unit: &str) -> String {
    closest(unit, TIME_UNITS.map(|(name, _)| name)).map(|best| format!(" (did you mean `{best}`?)")).unwrap_or_default()
}

fn unit_names() -> String {
    TIME_UNITS.map(|(name, _)| format!("`{name}`")).join(", ")
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds (Unix time or any other origin), fractions allowed.
    S,
    Ms,
    Us,
    /// `YYYY-MM-DD`, as midnight UTC.
    Date,
    /// `YYYY-MM-DDTHH:MM:SS[.f]` with an optional `Z` or `+HH:MM` offset; without one it is read as UTC.
    Datetime,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    Error,
    Skip,
}

/// The source of one spec input.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputBinding {
    /// The item IDs of the sessions: nothing to load.
    ItemId {},
    /// Dense vectors: `.npy` (float32 or float64, one row per item) with an id list, or a TSV of id + values.
    Dense {
        vectors: PathBuf,
        /// One item ID per line, row by row; required for `.npy`, not allowed for TSV (its first column is the ID).
        ids: Option<PathBuf>,
        /// L2-normalise every vector, as the paper did with its image vectors.
        #[serde(default)]
        normalize: bool,
        /// Whether a TSV of vectors starts with a header line.
        #[serde(default)]
        header: bool,
    },
    /// Sparse rows built from item columns: TF-IDF text or one-hot/multi-hot categories.
    Sparse {
        items: PathBuf,
        /// The column holding the item ID in `items`.
        #[serde(default = "default_id_column")]
        id_column: String,
        /// Text columns are concatenated before tokenising; category columns each add one-hot values.
        columns: Vec<String>,
        encoding: SparseEncoding,
        #[serde(default = "default_separator")]
        separator: String,
        /// Stopword lists to remove (TF-IDF only), by language name, e.g. `["english", "german"]`.
        #[serde(default = "default_stopwords")]
        stopwords: Vec<String>,
        /// Terms found in fewer items than this are dropped (TF-IDF only; the paper drops terms seen once).
        #[serde(default = "default_min_df")]
        min_df: u64,
        /// Longest n-gram (TF-IDF only): 1 for unigrams, 2 adds bigrams as in the paper.
        #[serde(default = "default_ngrams")]
        ngrams: u64,
    },
}

fn default_separator() -> String {
    "\t".into()
}

fn default_stopwords() -> Vec<String> {
    vec!["english".into()]
}

fn default_min_df() -> u64 {
    2
}

fn default_ngrams() -> u64 {
    2
}

fn default_id_column() -> String {
    "ItemId".into()
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SparseEncoding {
    Tfidf,
    Categorical,
}

impl InputBinding {
    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            InputBinding::ItemId {} => "item_id",
            InputBinding::Dense { .. } => "dense",
            InputBinding::Sparse { .. } => "sparse",
        }
    }

    /// Its paths, each with its key.
    pub(super) fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        match self {
            InputBinding::ItemId {} => vec![],
            InputBinding::Dense { vectors, ids, .. } => std::iter::once(("vectors", vectors)).chain(ids.as_mut().map(|ids| ("ids", ids))).collect(),
            InputBinding::Sparse { items, .. } => vec![("items", items)],
        }
    }
}

/// Cleaning as in the paper. The filters default to the paper's settings when prnn splits the data
/// (`split = "by_time"`) and to off for a shipped split, which is used as it is so that results compare with
/// published figures; either way test events whose item is unseen in training are dropped, then test
/// sessions left with fewer than 2 events.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocess {
    pub split: Split,
    /// Sessions starting in the last `test_days` days go to the test set (split = "by_time").
    pub test_days: f64,
    /// Collapse consecutive clicks on the same item within a session into one event.
    pub remove_repeats: bool,
    /// Sessions longer than this are dropped as bots.
    pub max_session_length: Option<u64>,
    /// Shorter sessions are dropped (default 2 for `by_time`, 1 for `shipped`).
    pub min_session_length: Option<u64>,
    /// Items with fewer training events are dropped, repeatedly until none is left (default 5 for
    /// `by_time`, 1 for `shipped`).
    pub min_item_support: Option<u64>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            split: Split::Shipped,
            test_days: 1.0,
            remove_repeats: false,
            max_session_length: None,
            min_session_length: None,
            min_item_support: None,
        }
    }
}

impl Preprocess {
    pub fn min_session_length(&self) -> u64 {
        self.min_session_length.unwrap_or(match self.split {
            Split::ByTime => 2,
            Split::Shipped => 1,
        })
    }

    pub fn min_item_support(&self) -> u64 {
        self.min_item_support.unwrap_or(match self.split {
            Split::ByTime => 5,
            Split::Shipped => 1,
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Shipped,
    ByTime,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Eval {
    pub cutoffs: Vec<u64>,
    pub ties: Ties,
    /// Rank against every training item (`0`), or only the N most popular (the paper's VIDXL setting).
    pub most_popular: u64,
    pub batch: u64,
}

impl Default for Eval {
    fn default() -> Self {
        Eval { cutoffs: vec![5, 10, 20], ties: Ties::Conservative, most_popular: 0, batch: 512 }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Ties {
    Standard,
    Conservative,
    Median,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// `auto` (CUDA when available), `cpu`, `cuda` (the first GPU) or `cuda:N`.
    pub device: Spanned<String>,
    pub out: PathBuf,
    /// CPU threads libtorch uses; 0 (the default) means every core this process may run on. prnn always
    /// sets the count itself: left to its defaults, libtorch ran GRU4Rec's 100-unit model 8x slower on a
    /// 2-core machine than with the same count set explicitly (docs/training.md).
    pub threads: u64,
    /// How a training step executes (docs/performance.md).
    pub step: StepChoice,
    /// Minutes between in-epoch checkpoints (`partial.safetensors`, docs/training.md), so a killed run loses
    /// at most this much of an epoch; 0 turns the timed ones off.
    pub checkpoint_minutes: f64,
    /// Mini-batches between in-epoch checkpoints, besides the timed ones; 0 (the default) for none.
    pub checkpoint_batches: u64,
}

/// `[run] step`: the fused CPU step, libtorch autograd, or the fastest that the device supports.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StepChoice {
    /// Fused on the CPU, autograd on CUDA.
    #[default]
    Auto,
    /// Hand-derived gradients in Rust loops; CPU only.
    Fused,
    /// libtorch autograd over gathered rows; any device.
    Autograd,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            device: Spanned::new(0..0, "auto".into()),
            out: PathBuf::from("runs"),
            threads: 0,
            step: StepChoice::Auto,
            checkpoint_minutes: 10.0,
            checkpoint_batches: 0,
        }
    }
}

/// `[baselines]`: the settings of each non-neural recommender.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Baselines {
    pub item_knn: ItemKnnSettings,
    pub sknn: SessionKnnSettings,
}

/// `[baselines.item_knn]`: GRU4Rec's item-kNN (docs/baselines.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ItemKnnSettings {
    /// Regularises the support of rare items in the similarity's denominator.
    pub lambda: f64,
    /// The weight of the query item's support in the denominator (0.5: symmetric, like cosine).
    pub alpha: f64,
    /// Similar items kept per item.
    pub neighbours: u64,
    /// Count supports and co-occurrences over `sessions` (each session once) or over `events`, as the
    /// official code's `baselines.py` does.
    pub counting: KnnCounting,
}

impl Default for ItemKnnSettings {
    fn default() -> Self {
        ItemKnnSettings { lambda: 20.0, alpha: 0.5, neighbours: 100, counting: KnnCounting::Sessions }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KnnCounting {
    Sessions,
    Events,
}

/// `[baselines.sknn]`: session-kNN as session-rec defines it (docs/baselines.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionKnnSettings {
    /// Neighbour sessions whose items are scored.
    pub k: u64,
    /// Candidate neighbours: the most recent training sessions sharing an item with the current one.
    pub sample: u64,
}

impl Default for SessionKnnSettings {
    fn default() -> Self {
        SessionKnnSettings { k: 50, sample: 500 }
    }
}

/// `[experiment]`: what `prnn run` trains and how it compares the results (docs/experiments.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// The specs to train when the command line names none (relative to the config's folder).
    pub specs: Vec<PathBuf>,
    /// Every trained cell runs once per seed.
    pub seeds: Vec<u64>,
    /// `popularity`, `item_knn`, `sknn`.
    pub baselines: Vec<String>,
    /// The row the table's change column is relative to: a baseline or a model name (default `item_knn`
    /// when it is run).
    pub reference: Option<String>,
    /// The model every other trained model is tested against with a paired bootstrap.
    pub compare_to: Option<String>,
    /// The cut-off of the table's Recall and MRR; one of `[eval] cutoffs` (default: the largest).
    pub cutoff: Option<u64>,
    /// Bootstrap resamples of the test sessions.
    pub bootstrap: u64,
    /// The metric the paired bootstrap compares, at `cutoff`.
    pub bootstrap_metric: RankingMetric,
    /// The metrics `epochs.svg` plots per epoch, one column of panels each.
    pub plot_metrics: Vec<RankingMetric>,
    /// The cut-offs `epochs.svg` plots, one row of panels each; each one of `[eval] cutoffs` (default:
    /// `cutoff`). `prnn run --cutoff` overrides it.
    pub plot_cutoffs: Option<Vec<u64>>,
    /// Cells trained at the same time, each in its own process with `threads / jobs` threads.
    pub jobs: u64,
    /// Evaluate after every epoch, for the plot of metrics per epoch.
    pub eval_every_epoch: bool,
    /// A grid of `key = [values]` overrides: every spec runs once per combination.
    pub sweep: IndexMap<String, Vec<toml::Value>>,
    pub tune: Tune,
}

impl Default for Experiment {
    fn default() -> Self {
        Experiment {
            specs: Vec::new(),
            seeds: vec![1],
            baselines: Vec::new(),
            reference: None,
            compare_to: None,
            cutoff: None,
            bootstrap: 10_000,
            bootstrap_metric: RankingMetric::Mrr,
            plot_metrics: vec![RankingMetric::Mrr, RankingMetric::Recall],
            plot_cutoffs: None,
            jobs: 1,
            eval_every_epoch: true,
            sweep: IndexMap::new(),
            tune: Tune::default(),
        }
    }
}

/// A metric of the experiment report's plot and bootstrap, as `[experiment] plot_metrics` and
/// `bootstrap_metric` name it. HitRate equals Recall for next-item prediction (one relevant item per event);
/// both names are offered because both are in use.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RankingMetric {
    Recall,
    Mrr,
    Ndcg,
    HitRate,
}

impl RankingMetric {
    /// As tables and plots write it: `Recall`, `MRR`, `NDCG`, `HitRate`.
    pub fn label(self) -> &'static str {
        match self {
            RankingMetric::Recall => "Recall",
            RankingMetric::Mrr => "MRR",
            RankingMetric::Ndcg => "NDCG",
            RankingMetric::HitRate => "HitRate",
        }
    }

    /// As the config, `eval.json` and CSV headers write it: `recall`, `mrr`, `ndcg`, `hit_rate`.
    pub fn key(self) -> &'static str {
        match self {
            RankingMetric::Recall => "recall",
            RankingMetric::Mrr => "mrr",
            RankingMetric::Ndcg => "ndcg",
            RankingMetric::HitRate => "hit_rate",
        }
    }
}

/// `[experiment.tune]`: a search on the validation split for some models; the best setting (by MRR at the
/// cut-off) is then used to train them on all the training data. Either `grid` (lists of values) or `space`
/// (typed ranges searched by `method`); `prnn::experiment::search` reads the space.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tune {
    /// Model names (as the specs name them).
    pub models: Vec<String>,
    pub grid: IndexMap<String, Vec<toml::Value>>,
    /// `grid` (the default), `random` or `tpe`.
    pub method: Option<String>,
    /// Trials per model; a grid runs its whole product.
    pub trials: Option<usize>,
    /// Seeds the random and TPE proposals.
    pub seed: u64,
    /// Override key → range, e.g. `lr = { log = [0.01, 0.25] }`.
    pub space: IndexMap<String, toml::Value>,
    /// TPE only: trials drawn at random before the estimators propose (default 10).
    pub startup: Option<usize>,
    /// TPE only: the share of finished trials the estimators call good (default 0.1).
    pub gamma: Option<f64>,
    /// TPE only: draws per key among which the best ratio of densities is proposed (default 24).
    pub candidates: Option<usize>,
}

/// The search methods `[experiment.tune] method` takes.
pub const TUNE_METHODS: [&str; 3] = ["grid", "random", "tpe"];

impl RunConfig {
    /// The text a run folder keeps as its `config.toml`, given the text of the config file: that text, or, for
    /// a config that includes others, all its settings in one file with every path resolved, so that the folder
    /// keeps its settings when an included file changes or moves.
    pub fn recorded_text(&self, written: &str) -> String {
        if self.included.is_empty() {
            written.to_string()
        } else {
            self.included.recorded.clone()
        }
    }

    /// The cut-off of `prnn run`'s table: `[experiment] cutoff`, else the largest of `[eval] cutoffs`.
    pub fn experiment_cutoff(&self) -> u64 {
        self.experiment.cutoff.or_else(|| self.eval.cutoffs.iter().copied().max()).unwrap_or(20)
    }

    /// The cut-offs of `epochs.svg`: `[experiment] plot_cutoffs` without repeats, else the table's cut-off.
    pub fn plot_cutoffs(&self) -> Vec<u64> {
        match &self.experiment.plot_cutoffs {
            Some(cutoffs) => without_repeats(cutoffs),
            None => vec![self.experiment_cutoff()],
        }
    }

    /// The metrics of `epochs.svg`: `[experiment] plot_metrics` without repeats.
    pub fn plot_metrics(&self) -> Vec<RankingMetric> {
        without_repeats(&self.experiment.plot_metrics)
    }
}

/// `items` in their order, each only at its first place: plotting a panel twice would only repeat it.
pub fn without_repeats<T: Copy + PartialEq>(items: &[T]) -> Vec<T> {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for &item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// The baselines prnn implements.
pub const BASELINE_NAMES: [&str; 3] = ["popularity", "item_knn", "sknn"];

/// A TOML scalar as an override value (`lr = [0.05]` → `0.05`).
pub fn override_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A device as the CLI and the config write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda(usize),
}

pub fn parse_device(text: &str) -> Option<Device> {
    match text {
        "auto" => Some(Device::Auto),
        "cpu" => Some(Device::Cpu),
        "cuda" => Some(Device::Cuda(0)),
        _ => text.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(table: &str) -> RunConfig {
        toml::from_str(&format!("[data]\ntrain = \"a\"\ntest = \"b\"\n[eval]\ncutoffs = [5, 10, 20]\n[experiment]\n{table}")).unwrap()
    }

    #[test]
    fn the_report_plots_mrr_and_recall_at_the_table_cutoff_and_tests_mrr_unless_told_otherwise() {
        let config = experiment("cutoff = 10\n");
        assert_eq!((config.plot_metrics(), config.plot_cutoffs()), (vec![RankingMetric::Mrr, RankingMetric::Recall], vec![10]));
        assert_eq!(config.experiment.bootstrap_metric, RankingMetric::Mrr);
        let config =
            experiment("plot_metrics = [\"ndcg\", \"hit_rate\", \"ndcg\"]\nplot_cutoffs = [20, 5, 20]\nbootstrap_metric = \"ndcg\"\n");
        assert_eq!((config.plot_metrics(), config.plot_cutoffs()), (vec![RankingMetric::Ndcg, RankingMetric::HitRate], vec![20, 5]));
        assert_eq!(config.experiment.bootstrap_metric, RankingMetric::Ndcg);
        let names: Vec<&str> = [RankingMetric::Recall, RankingMetric::Mrr, RankingMetric::Ndcg, RankingMetric::HitRate].map(|m| m.key()).into();
        assert_eq!(names, ["recall", "mrr", "ndcg", "hit_rate"]);
        assert_eq!(serde_json::to_value(RankingMetric::HitRate).unwrap(), "hit_rate", "the key is the serialised name");
    }

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cuda:1"), Some(Device::Cuda(1)));
        assert_eq!(parse_device("gpu"), None);
    }
}
