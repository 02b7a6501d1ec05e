//! The TOML run config: binds a spec's inputs to data and sets preprocessing, evaluation and the device.
//!
//! One spec runs on many datasets, so nothing about files lives in the spec. Every key but the data files
//! and their columns has a default (docs/run-config.md); unknown keys are rejected with a "did you mean". Paths are relative to the config
//! file's folder.

pub mod overrides;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::check::{InputKind, Model};
use crate::diagnostic::{closest, Code, Diagnostic, Span};

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
    type Error = String;

    fn try_from(text: TimeColumnText) -> Result<Self, String> {
        match text {
            TimeColumnText::Name(column) => Ok(TimeColumn::Seconds(column)),
            TimeColumnText::Table(TimeTable { column, unit }) => match TIME_UNITS.iter().find(|(name, _)| *name == unit) {
                Some((_, unit)) => Ok(TimeColumn::WithUnit { column, unit: *unit }),
                None => {
                    let names = TIME_UNITS.map(|(name, _)| name);
                    let hint = closest(&unit, names).map(|best| format!(" (did you mean `{best}`?)")).unwrap_or_default();
                    Err(format!(
                        "unknown time unit `{unit}` for column `{column}`{hint}; expected one of {}",
                        names.map(|n| format!("`{n}`")).join(", ")
                    ))
                }
            },
        }
    }
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
    fn kind_name(&self) -> &'static str {
        match self {
            InputBinding::ItemId {} => "item_id",
            InputBinding::Dense { .. } => "dense",
            InputBinding::Sparse { .. } => "sparse",
        }
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            InputBinding::ItemId {} => vec![],
            InputBinding::Dense { vectors, ids, .. } => std::iter::once(vectors).chain(ids.as_mut()).collect(),
            InputBinding::Sparse { items, .. } => vec![items],
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
        Run { device: Spanned::new(0..0, "auto".into()), out: PathBuf::from("runs"), threads: 0, step: StepChoice::Auto }
    }
}

fn span(range: std::ops::Range<usize>) -> Span {
    Span::new(range.start, range.end)
}

/// Reads a config from TOML text. `base` is the folder relative paths start from.
pub fn parse(text: &str, base: &Path) -> Result<RunConfig, Vec<Diagnostic>> {
    let mut config: RunConfig = toml::from_str(text).map_err(|error| vec![toml_diagnostic(&error)])?;
    let mut errors = Vec::new();
    validate(&config, &mut errors);
    validate_baselines_and_experiment(&config, text, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = without_dot_dot(&base.join(&*path));
        }
    };
    for path in [&mut config.data.train, &mut config.data.test, &mut config.data.sessions].into_iter().flatten() {
        resolve(path.get_mut());
    }
    for (_, binding) in config.inputs.iter_mut() {
        binding.get_mut().paths_mut().into_iter().for_each(resolve);
    }
    resolve(&mut config.run.out);
    config.experiment.specs.iter_mut().for_each(resolve);
    Ok(config)
}

/// `examples/../data/x` as `data/x`, so messages show the paths people would type. Lexical: `a/link/../b`
/// becomes `a/b` even where `link` is a symbolic link to elsewhere, a case config paths rarely meet.
fn without_dot_dot(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut parts: Vec<Component> = Vec::new();
    for component in path.components() {
        match (component, parts.last()) {
            (Component::CurDir, Some(_)) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                parts.pop();
            }
            _ => parts.push(component),
        }
    }
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

/// Cross-field checks that serde cannot express.
fn validate(config: &RunConfig, errors: &mut Vec<Diagnostic>) {
    let data = &config.data;
    match (&data.train, &data.test, &data.sessions) {
        (Some(_), Some(_), None) => {
            if config.preprocess.split == Split::ByTime {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, "`split = \"by_time\"` needs one `sessions` file")
                        .at(span(data.train.as_ref().unwrap().span()), "a train/test split is given")
                        .help("use `split = \"shipped\"`, or give `[data] sessions = ...` instead of train and test"),
                );
            }
        }
        (None, None, Some(sessions)) => {
            if config.preprocess.split == Split::Shipped {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, "one `sessions` file needs `split = \"by_time\"`")
                        .at(span(sessions.span()), "no test set is given")
                        .help("add `[preprocess] split = \"by_time\"`, or give `train` and `test` files"),
                );
            }
        }
        (Some(one), None, None) | (None, Some(one), None) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data]` needs both `train` and `test`")
                .at(span(one.span()), "only one of the two is given"),
        ),
        (None, None, None) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data]` names no session file")
                .note("expected `train` and `test`, or `sessions`")
                .help("e.g. `[data]` then `train = \"train.tsv\"` and `test = \"test.tsv\"`"),
        ),
        (_, _, Some(sessions)) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "give either `train` and `test`, or `sessions`, not both")
                .at(span(sessions.span()), "`sessions` given together with a train/test split"),
        ),
    }
    let device = &config.run.device;
    if parse_device(device.get_ref()).is_none() {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, format!("unknown device `{}`", device.get_ref()))
                .at(span(device.span()), "expected `auto`, `cpu`, `cuda` or `cuda:N`"),
        );
    }
    let one_character = |separator: &str| matches!(separator.as_bytes(), [byte] if byte.is_ascii());
    if !one_character(&data.format.separator) {
        errors.push(
            Diagnostic::error(
                Code::ConfigSyntax,
                format!("`[data.format] separator` {:?} is not one ASCII character", data.format.separator),
            )
            .help("e.g. `separator = \"\\t\"`, `\",\"` or `\";\"`"),
        );
    }
    if data.format.time.is_empty() {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data.format] time` names no column")
                .note("sessions are ordered and split by time")
                .help("name the time column, e.g. `time = [\"Time\"]`"),
        );
    }
    for (name, binding) in &config.inputs {
        if let InputBinding::Sparse { separator, min_df, ngrams, columns, .. } = binding.get_ref() {
            let input = name.get_ref();
            let mut problem = |message: String, help: &str| {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, message)
                        .at(span(binding.span()), format!("in `[inputs.{input}]`"))
                        .help(help.to_string()),
                )
            };
            if !one_character(separator) {
                problem(format!("separator {separator:?} is not one ASCII character"), "e.g. `separator = \",\"`; the default is a tab");
            }
            if *min_df < 1 {
                problem("`min_df` must be at least 1".into(), "1 keeps every term; the paper's 2 drops terms found in one item only");
            }
            if *ngrams < 1 {
                problem("`ngrams` must be at least 1".into(), "1 for unigrams, 2 to add bigrams as in the paper");
            }
            if columns.is_empty() {
                problem("`columns` names no column".into(), "list the item columns to read, e.g. `columns = [\"title\"]`");
            }
        }
    }
    let preprocess = &config.preprocess;
    let mut range_error =
        |what: &str, fix: &str| errors.push(Diagnostic::error(Code::ConfigSyntax, format!("{what} is out of range")).help(fix.to_string()));
    if preprocess.test_days.is_nan() || preprocess.test_days <= 0.0 {
        range_error("`[preprocess] test_days`", "give a positive number of days, e.g. `test_days = 1`");
    }
    if preprocess.min_session_length() < 1 {
        range_error("`[preprocess] min_session_length`", "sessions need at least one event; the paper drops single clicks with 2");
    }
    if preprocess.max_session_length.is_some_and(|max| max < preprocess.min_session_length()) {
        range_error("`[preprocess] max_session_length`", "it must be at least `min_session_length`");
    }
    if config.eval.batch == 0 {
        range_error("`[eval] batch`", "give a positive batch size, e.g. `batch = 512`");
    }
    if config.eval.cutoffs.is_empty() || config.eval.cutoffs.contains(&0) {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[eval] cutoffs` must list positive cut-offs").help("e.g. `cutoffs = [5, 10, 20]`"),
        );
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
            jobs: 1,
            eval_every_epoch: true,
            sweep: IndexMap::new(),
            tune: Tune::default(),
        }
    }
}

/// `[experiment.tune]`: a grid searched on the validation split for some models; the best value (by MRR at
/// the cut-off) is then used to train them on all the training data.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tune {
    /// Model names (as the specs name them).
    pub models: Vec<String>,
    pub grid: IndexMap<String, Vec<toml::Value>>,
}

impl RunConfig {
    /// The cut-off of `prnn run`'s table: `[experiment] cutoff`, else the largest of `[eval] cutoffs`.
    pub fn experiment_cutoff(&self) -> u64 {
        self.experiment.cutoff.or_else(|| self.eval.cutoffs.iter().copied().max()).unwrap_or(20)
    }
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

/// The span of `key = ...` inside the table `[table]` of `text`, else of the table's header: where an error
/// about a setting of `[baselines]` or `[experiment]` points. A line scan, enough for the keys these tables
/// hold (one per line, or inline in a `key = { ... }` of the parent table).
fn key_span(text: &str, table: &str, key: &str) -> Option<Span> {
    let mut offset = 0;
    let mut in_table = false;
    let mut header = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let name = trimmed.trim_start_matches('[').split(']').next().unwrap_or("").trim();
            in_table = name == table;
            if in_table {
                header = Some(Span::new(offset, offset + line.trim_end().len()));
            }
        } else if in_table && trimmed.split('=').next().is_some_and(|k| k.trim() == key) {
            let start = offset + (line.len() - line.trim_start().len());
            return Some(Span::new(start, offset + line.trim_end().len()));
        }
        offset += line.len();
    }
    header
}

fn validate_baselines_and_experiment(config: &RunConfig, text: &str, errors: &mut Vec<Diagnostic>) {
    let mut problem = |table: &str, key: &str, message: String, help: &str| {
        let mut diagnostic = Diagnostic::error(Code::ConfigSyntax, message);
        if let Some(at) = key_span(text, table, key) {
            diagnostic = diagnostic.at(at, format!("in `[{table}]`"));
        }
        errors.push(diagnostic.help(help.to_string()));
    };
    let knn = &config.baselines.item_knn;
    if !(knn.lambda.is_finite() && knn.lambda >= 0.0) {
        problem("baselines.item_knn", "lambda", "`[baselines.item_knn] lambda` must be a number ≥ 0".into(), "GRU4Rec's value is 20");
    }
    if !(0.0..=1.0).contains(&knn.alpha) {
        problem(
            "baselines.item_knn",
            "alpha",
            "`[baselines.item_knn] alpha` must lie in [0, 1]".into(),
            "0.5 weighs both supports equally",
        );
    }
    if knn.neighbours == 0 {
        problem("baselines.item_knn", "neighbours", "`[baselines.item_knn] neighbours` must be at least 1".into(), "GRU4Rec keeps 100");
    }
    let sknn = &config.baselines.sknn;
    for (key, value) in [("k", sknn.k), ("sample", sknn.sample)] {
        if value == 0 {
            problem(
                "baselines.sknn",
                key,
                format!("`[baselines.sknn] {key}` must be at least 1"),
                "session-rec uses k = 50 among a sample of 500",
            );
        }
    }
    let experiment = &config.experiment;
    for name in &experiment.baselines {
        if !BASELINE_NAMES.contains(&name.as_str()) {
            let hint = closest(name, BASELINE_NAMES).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
            problem(
                "experiment",
                "baselines",
                format!("`[experiment] baselines` names an unknown baseline `{name}`{hint}"),
                "the baselines are `popularity`, `item_knn` and `sknn`",
            );
        }
    }
    if experiment.seeds.is_empty() {
        problem("experiment", "seeds", "`[experiment] seeds` lists no seed".into(), "e.g. `seeds = [1, 2, 3]`");
    }
    if experiment.jobs == 0 {
        problem("experiment", "jobs", "`[experiment] jobs` must be at least 1".into(), "1 trains one cell at a time");
    }
    if let Some(cutoff) = experiment.cutoff.filter(|c| !config.eval.cutoffs.contains(c)) {
        problem(
            "experiment",
            "cutoff",
            format!("`[experiment] cutoff = {cutoff}` is not one of `[eval] cutoffs`"),
            "add it to `[eval] cutoffs`, or pick one of them",
        );
    }
    for (table, grid) in [("experiment.sweep", &experiment.sweep), ("experiment.tune", &experiment.tune.grid)] {
        for (key, values) in grid {
            if values.is_empty() || values.iter().any(|v| override_text(v).is_none()) {
                let at = if table == "experiment.tune" { "grid" } else { key.as_str() };
                problem(
                    table,
                    at,
                    format!("`[{table}{}] {key}` must list one or more numbers", if table == "experiment.tune" { ".grid" } else { "" }),
                    "e.g. `lr = [0.05, 0.1, 0.2]`",
                );
            }
        }
    }
    if let Some(key) = experiment.sweep.keys().find(|key| experiment.tune.grid.contains_key(*key)) {
        problem(
            "experiment.sweep",
            key,
            format!("`{key}` is both swept and tuned"),
            "keep it in `[experiment.sweep]` or in `[experiment.tune.grid]`, not both",
        );
    }
    if !experiment.tune.models.is_empty() && experiment.tune.grid.is_empty() {
        problem(
            "experiment.tune",
            "models",
            "`[experiment.tune] models` are given but `grid` is empty".into(),
            "e.g. `grid = { lr = [0.02, 0.05, 0.1] }`",
        );
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

/// Turns a TOML or schema error into a diagnostic, adding a suggestion for unknown keys and variants.
fn toml_diagnostic(error: &toml::de::Error) -> Diagnostic {
    let mut message = error.message().trim().to_string();
    if message.contains("untagged enum TimeColumnText") {
        message = "a time column is a column name, or a table `{ column = \"...\", unit = \"...\" }` with just those two keys".into();
    }
    let mut diagnostic = Diagnostic::error(Code::ConfigSyntax, first_line(&message));
    if let Some(range) = error.span() {
        diagnostic = diagnostic.at(span(range), "here");
    }
    // serde words these as "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
    if let Some((written, expected)) = unknown_name(&message) {
        diagnostic = diagnostic.suggest(&written, expected.iter().map(String::as_str));
        if closest(&written, expected.iter().map(String::as_str)).is_none() && !expected.is_empty() {
            diagnostic =
                diagnostic.help(format!("expected one of {}", expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")));
        }
    }
    diagnostic
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("invalid run config").to_string()
}

fn unknown_name(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))?;
    let (written, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(String::from).collect();
    Some((written.to_string(), expected))
}

/// Checks the config's inputs against a checked model and decides the kind of every `feature` input.
/// Returns the model with `feature` inputs resolved to dense or sparse.
pub fn bind(config: &RunConfig, model: &Model, spec_name: &str) -> Result<Model, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut bound = model.clone();
    for input in &mut bound.inputs {
        let binding = config.inputs.iter().find(|(name, _)| name.get_ref() == &input.name);
        let declared = match &input.kind {
            InputKind::ItemId { .. } => "item_id",
            InputKind::Dense => "dense",
            InputKind::Sparse => "sparse",
            InputKind::Feature => "feature",
        };
        match binding {
            None if declared == "item_id" => {}
            None => {
                let source_help = match declared {
                    "dense" => format!("add `[inputs.{}]` with `kind = \"dense\"` and `vectors = \"...npy\"`", input.name),
                    "sparse" => format!(
                        "add `[inputs.{}]` with `kind = \"sparse\"`, `items = \"...tsv\"`, `columns = [...]` and `encoding`",
                        input.name
                    ),
                    _ => format!("add `[inputs.{}]` with `kind = \"dense\"` (vectors) or `kind = \"sparse\"` (item columns)", input.name),
                };
                errors.push(
                    Diagnostic::error(Code::ConfigBinding, format!("spec input `{}` has no source", input.name))
                        .note(format!("`{}` is declared `{declared}` in {spec_name}", input.name))
                        .help(source_help),
                );
            }
            Some((_, binding)) => {
                let given = binding.get_ref().kind_name();
                let fits = declared == given || (declared == "feature" && given != "item_id");
                if !fits {
                    errors.push(
                        Diagnostic::error(
                            Code::ConfigBinding,
                            format!("input `{}` is `{declared}` in the spec but bound as `{given}`", input.name),
                        )
                        .at(span(binding.span()), format!("a `{given}` source"))
                        .note(format!("declared in {spec_name}"))
                        .help(if declared == "feature" {
                            "a `feature` input takes a `dense` or `sparse` source".to_string()
                        } else {
                            format!("give `kind = \"{declared}\"` with its source, or change the spec")
                        }),
                    );
                } else if declared == "feature" {
                    input.kind = if given == "dense" { InputKind::Dense } else { InputKind::Sparse };
                }
            }
        }
    }
    // A config describes a dataset, and one dataset serves many specs: a table for an input the spec does not
    // declare is fine (an ID-only baseline on a dataset with features), unless the spec has an input that
    // is left without a source, when the table is most likely that input misspelt.
    let unbound_feature = model.inputs.iter().any(|input| {
        !matches!(input.kind, InputKind::ItemId { .. }) && !config.inputs.iter().any(|(name, _)| name.get_ref() == &input.name)
    });
    for (name, binding) in &config.inputs {
        if unbound_feature && model.input(name.get_ref()).is_none() {
            errors.push(
                Diagnostic::error(Code::ConfigBinding, format!("`[inputs.{}]` binds no input of the spec", name.get_ref()))
                    .at(span(binding.span()), "not declared in the spec")
                    .note(format!(
                        "{spec_name} declares {}",
                        model.inputs.iter().map(|i| format!("`{}`", i.name)).collect::<Vec<_>>().join(", ")
                    ))
                    .suggest(name.get_ref(), model.inputs.iter().map(|i| i.name.as_str())),
            );
        }
    }
    if errors.is_empty() {
        Ok(bound)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_dot_dot_after_named_folders() {
        assert_eq!(without_dot_dot(Path::new("examples/../data/x.tsv")), PathBuf::from("data/x.tsv"));
        assert_eq!(without_dot_dot(Path::new("experiments/../../shared/d")), PathBuf::from("../shared/d"));
        assert_eq!(without_dot_dot(Path::new("/a/b/../c")), PathBuf::from("/a/c"));
        assert_eq!(without_dot_dot(Path::new("./x")), PathBuf::from("./x"));
    }

    #[test]
    fn defaults_fill_everything_but_data() {
        let config = parse("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n", Path::new("/data")).unwrap();
        assert_eq!(config.data.train.unwrap().into_inner(), PathBuf::from("/data/train.tsv"));
        assert_eq!(config.eval.cutoffs, vec![5, 10, 20]);
        assert_eq!(config.eval.ties, Ties::Conservative);
        assert_eq!(config.preprocess.min_item_support(), 1);
        assert_eq!(parse_device(config.run.device.get_ref()), Some(Device::Auto));
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let errors = parse("[data]\ntrain = \"a\"\ntest = \"b\"\n[eval]\ncutofs = [20]\n", Path::new(".")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].notes.iter().any(|n| n.contains("did you mean `cutoffs`")), "{:?}", errors[0]);
    }

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cuda:1"), Some(Device::Cuda(1)));
        assert_eq!(parse_device("gpu"), None);
    }
}
