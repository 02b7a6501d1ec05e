//! The memory a run will take, estimated from the bound IR and its data's sizes before anything is allocated,
//! and the refusal of a run that cannot fit.
//!
//! Every size here is an upper-ish bound on what the executors allocate (docs/training.md, "Memory"): the
//! parameter table's tensors with their optimizer state, the copies a checkpoint write or read makes, a
//! mini-batch's buffers, the negative sampler's cache and evaluation's scores against the whole catalogue.
//! The terms are added up rather than overlapped in time, and the small allocations they leave out (vectors
//! per session, indices, libtorch's own) are covered by the margin [`check`] keeps. Bytes are `f64`, so
//! absurd settings (10^9 hidden units times 10^9 items) cannot overflow; counts are `u128`.

use std::collections::BTreeMap;
use std::fmt;

use super::graph::{InputRepr, Node, Owner, Role, RowSpace};
use super::{number, Bound};
use crate::diagnostic::group_thousands;

/// Parameters, optimizer state, features and activations are float32.
const FLOAT: f64 = 4.0;
/// Item indices are u32.
const ITEM: f64 = 4.0;
/// Per scored item of a mini-batch: the item (u32) and its row positions in the step's two row indexers (usize).
const SCORED_ITEM: f64 = 4.0 + 8.0 + 8.0;
/// Per item: the sampler's cumulative distribution (f64), the support counts (u64) and logQ (f32).
const PER_ITEM: f64 = 8.0 + 8.0 + 4.0;
/// `[rows, scored]` buffers a training step holds besides one per score part: the merged and activated scores,
/// the loss's intermediates (softmax or pairwise differences) and the gradients of each. The fused step needs
/// about four; libtorch's autograd, which keeps every intermediate for backward, about eight (measured,
/// docs/training.md), and the estimate does not know which step will run.
const SHARED_SCORE_BUFFERS: u128 = 8;
/// `[rows, hidden]` buffers of one GRU's training step: the state carried in and out, the input projection and
/// the recurrent product (3 blocks each), the gates and candidate, dropout's copy, and as many for backward.
const GRU_STEP_BUFFERS: u128 = 25;
/// `[rows, hidden]` buffers of one GRU's evaluation step (no gradients): state, projections, gates.
const GRU_EVAL_BUFFERS: u128 = 12;
/// What the process takes besides the terms: libtorch's thread pools and kernel workspaces, and the allocator's
/// slack (measured 8-28 MiB above the terms on small models).
const RUNTIME: f64 = 32.0 * 1024.0 * 1024.0;
/// Refuse when the estimate exceeds this share of the available memory: the rest covers what the estimate
/// leaves out and what the process holds besides (docs/training.md, "Memory").
pub const USABLE_SHARE: f64 = 0.9;

/// What a command does with the network: it decides the optimizer-state, checkpoint and score terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `prnn train`: training steps, checkpoints written, and the evaluation a trained run is for.
    Train,
    /// `prnn eval`: a checkpoint read and every test event scored against the catalogue.
    Evaluate,
    /// `prnn recommend`: a checkpoint read and one session scored.
    Recommend,
}

impl Purpose {
    fn verb(self) -> &'static str {
        match self {
            Purpose::Train => "training",
            Purpose::Evaluate => "evaluating",
            Purpose::Recommend => "recommending with",
        }
    }
}

/// The sizes a run takes from its data and run config, which the bound IR does not hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub train_sessions: u64,
    /// Events of the training sessions: no epoch takes more steps.
    pub train_events: u64,
    pub test_sessions: u64,
    /// `[eval] batch`: test sessions scored at once.
    pub eval_batch: u64,
    /// The most samples the negative sampler draws in one refill (GRU4Rec's cache size).
    pub sample_cache: u64,
    /// Bytes of each feature input's rows, which the network copies (dense) or clones (sparse), by input.
    pub features: BTreeMap<String, u64>,
}

/// Where a term's memory lives: host memory always, or the network's device (the host too, on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Host,
    Device,
}

/// The setting that makes a term large: what the advice tells the user to lower.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lever {
    Hidden,
    Catalogue,
    Batch,
    Extra,
    EvalBatch,
    /// An input's width: its embedding dimension, vector length or vocabulary.
    Input(String),
    /// No setting: what every run takes.
    Fixed,
}

/// One part of the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// What holds the memory: `id_net.W_out`, `mini-batch scores`.
    pub what: String,
    /// How its size comes about: `10,874 x 100 values x 4 bytes x 2 (value, Adagrad accumulator)`.
    pub detail: String,
    pub bytes: f64,
    pub place: Place,
    pub lever: Lever,
}

/// The estimate of one command on one bound model and dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub model: String,
    pub purpose: Purpose,
    pub terms: Vec<Term>,
    items: u64,
    batch: u64,
    extra: u64,
    eval_batch: u64,
    train_sessions: u64,
    hidden: Vec<(String, u64)>,
    widths: BTreeMap<String, u64>,
}

/// The memory a run may take, and where that figure comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Available {
    pub bytes: u64,
    /// `MemAvailable in /proc/meminfo`, `the cgroup's memory.max`, `PRNN_MEMORY_LIMIT`.
    pub source: String,
}

/// A run whose estimate does not fit the memory available to it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.message())]
pub struct TooLarge {
    pub estimate: Estimate,
    pub available: Available,
    /// Only the host's terms were compared (the network lives on a GPU, whose memory is not checked).
    pub host_only: bool,
}

/// `bytes` in binary units with one decimal: `7.5 TiB`.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 if bytes == 1.0 => "1 byte".to_string(),
        0 => format!("{} bytes", bytes as u64),
        _ if value >= 1e4 => format!("{value:.2e} {}", UNITS[unit]),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// The estimate of `purpose` on `bound`, whose sizes the data fixed, under `workload`.
pub fn estimate(bound: &Bound, workload: &Workload, purpose: Purpose) -> Estimate {
    let graph = bound.graph();
    let plan = bound.plan();
    let items = bound.items() as u128;
    let extra = u128::from(bound.negatives().extra);
    // The session-parallel batcher never holds more rows than there are sessions.
    let rows = u128::from(plan.batch.min(workload.train_sessions).max(1));
    let scored = rows + extra;
    let momentum = plan.optimizer.momentum > 0.0;
    let mut terms = Vec::new();
    let hidden_of = |owner: Owner| -> Vec<u64> {
        match owner {
            Owner::Subnet(k) => vec![graph.subnet(k).hidden],
            Owner::Shared => graph.subnets.iter().map(|s| s.hidden).collect(),
        }
    };

    // The parameter table: every tensor with its optimizer state, and in training a full gradient for the
    // parameters a step uses whole.
    let mut state_copies: Vec<(&str, u128)> = vec![("value", 1), ("Adagrad accumulator", 1)];
    if momentum {
        state_copies.push(("momentum", 1));
    }
    let state_factor = state_copies.len() as u128;
    let mut state_bytes = 0.0;
    let mut largest: Option<(f64, Lever)> = None;
    for (_, param) in graph.params() {
        let shape: Vec<u128> = param.shape.iter().map(|d| u128::from(number(d))).collect();
        let count: u128 = shape.iter().product();
        let lever = param_lever(&param.role, &shape, items, &hidden_of(param.owner));
        let dense_gradient = purpose == Purpose::Train && param.rows == RowSpace::Dense;
        let mut names: Vec<&str> = state_copies.iter().map(|(n, _)| *n).collect();
        if dense_gradient {
            names.push("gradient");
        }
        let bytes = count as f64 * FLOAT * names.len() as f64;
        state_bytes += count as f64 * FLOAT * state_factor as f64;
        if largest.as_ref().is_none_or(|(b, _)| bytes > *b) {
            largest = Some((bytes, lever.clone()));
        }
        let dims = shape.iter().map(|&d| group_thousands(d)).collect::<Vec<_>>().join(" x ");
        terms.push(Term {
            what: format!("`{}`", param.name),
            detail: format!("{dims} values x 4 bytes x {} ({})", names.len(), names.join(", ")),
            bytes,
            place: Place::Device,
            lever,
        });
    }
    let largest_lever = largest.map_or(Lever::Hidden, |(_, lever)| lever);

    // A checkpoint write holds every tensor's values twice (copied out of the tensors, then the encoded file); a
    // read holds the file and the values decoded from it (measured: 1.7 copies, the allocator keeping freed ones).
    let checkpoint = match purpose {
        Purpose::Train => "writing a checkpoint",
        Purpose::Evaluate | Purpose::Recommend => "reading the checkpoint",
    };
    terms.push(Term {
        what: checkpoint.to_string(),
        detail: "2 copies of the parameters and their optimizer state".to_string(),
        bytes: 2.0 * state_bytes,
        place: Place::Host,
        lever: largest_lever.clone(),
    });

    for (input, &bytes) in &workload.features {
        terms.push(Term {
            what: format!("input `{input}`'s rows"),
            detail: "a copy of the feature rows for the network".to_string(),
            bytes: bytes as f64,
            place: Place::Device,
            lever: Lever::Input(input.clone()),
        });
    }
    terms.push(Term {
        what: "runtime".to_string(),
        detail: "libtorch's thread pools and workspaces, and the allocator's slack".to_string(),
        bytes: RUNTIME,
        place: Place::Host,
        lever: Lever::Fixed,
    });
    terms.push(Term {
        what: "per-item tables".to_string(),
        detail: format!("{} items x {PER_ITEM} bytes (sampling distribution, support, logQ)", group_thousands(items)),
        bytes: items as f64 * PER_ITEM,
        place: Place::Host,
        lever: Lever::Catalogue,
    });

    if purpose == Purpose::Train {
        let batch_lever = if extra > rows { Lever::Extra } else { Lever::Batch };
        let parts: Vec<(String, u64)> = graph
            .graph
            .node_weights()
            .filter_map(|node| match node {
                Node::Scores { part, subnet, .. } => {
                    let hidden = subnet.map_or_else(|| graph.subnets[0].hidden, |k| graph.subnet(k).hidden);
                    Some((part.clone(), hidden))
                }
                _ => None,
            })
            .collect();
        let buffers = SHARED_SCORE_BUFFERS + parts.len() as u128;
        terms.push(Term {
            what: "mini-batch scores".to_string(),
            detail: format!(
                "{buffers} buffers of {} rows x {} scored items ({}) x 4 bytes",
                group_thousands(rows),
                group_thousands(scored),
                if extra > 0 { "the batch's targets and the extra negatives" } else { "the batch's targets" }
            ),
            bytes: (buffers * rows) as f64 * scored as f64 * FLOAT,
            place: Place::Device,
            lever: batch_lever.clone(),
        });
        for (part, hidden) in &parts {
            // The scored items' output rows, gathered, and their gradient.
            terms.push(Term {
                what: format!("`{part}` output rows"),
                detail: format!(
                    "2 x {} scored rows x {} hidden x 4 bytes (the rows and their gradient)",
                    group_thousands(scored),
                    group_thousands(u128::from(*hidden))
                ),
                bytes: 2.0 * scored as f64 * *hidden as f64 * FLOAT,
                place: Place::Device,
                lever: if u128::from(*hidden) > scored { Lever::Hidden } else { batch_lever.clone() },
            });
        }
        for subnet in &graph.subnets {
            let hidden = u128::from(subnet.hidden);
            let Node::Gru { inputs, .. } = graph.node(subnet.gru) else { unreachable!("a subnet's gru is a GRU node") };
            // Rows gathered from dense features or embeddings, their dropout mask and their gradient.
            let input_width: u128 = inputs
                .iter()
                .map(|input| match graph.node(input.source) {
                    Node::Input { repr: InputRepr::Dense, width, .. } => u128::from(number(width)),
                    Node::Embedding { dim, .. } => u128::from(number(dim)),
                    _ => 0,
                })
                .sum();
            let width = GRU_STEP_BUFFERS * hidden + 3 * input_width;
            terms.push(Term {
                what: format!("`{}` step buffers", subnet.name),
                detail: format!(
                    "{} rows x ({GRU_STEP_BUFFERS} x {} hidden + 3 x {} input) x 4 bytes",
                    group_thousands(rows),
                    group_thousands(hidden),
                    group_thousands(input_width)
                ),
                bytes: rows as f64 * width as f64 * FLOAT,
                place: Place::Device,
                lever: if hidden >= rows { Lever::Hidden } else { Lever::Batch },
            });
        }
        // Gradients of the rows a step touches, for parameters updated row by row.
        let mut sparse_gradients = 0.0;
        for (_, param) in graph.params() {
            let shape: Vec<u128> = param.shape.iter().map(|d| u128::from(number(d))).collect();
            let (table_rows, width) = (shape[0], shape.get(1).copied().unwrap_or(1));
            let touched = match param.rows {
                RowSpace::InputItems => rows,
                RowSpace::ScoredItems => scored,
                RowSpace::InputAndScoredItems => rows + scored,
                RowSpace::Vocabulary(_) => table_rows,
                RowSpace::Dense | RowSpace::Undecided => 0,
            };
            sparse_gradients += touched.min(table_rows) as f64 * width as f64 * FLOAT;
        }
        terms.push(Term {
            what: "row gradients".to_string(),
            detail: "the touched rows of item- and vocabulary-indexed parameters x 4 bytes".to_string(),
            bytes: sparse_gradients,
            place: Place::Device,
            lever: batch_lever.clone(),
        });
        // Without extra negatives there is no sampler.
        if let Some(steps) = u128::from(workload.sample_cache).checked_div(extra) {
            // A refill draws whole steps' worth of samples: as many as fit in the cache, and at least one step.
            // Refills double from a small first one, so an epoch of few steps never draws more than twice the
            // samples it uses (a step uses at least one training event).
            let full = steps.max(1) * extra;
            // Saturating: 2 x 2^64 events x 2^64 negatives would pass even u128.
            let cache = full.min(u128::from(workload.train_events).saturating_mul(2 * extra).max(extra));
            terms.push(Term {
                what: "negative sampler".to_string(),
                detail: format!("a cache of {} samples x 4 bytes", group_thousands(cache)),
                bytes: cache as f64 * ITEM,
                place: Place::Host,
                lever: if extra > u128::from(workload.sample_cache) { Lever::Extra } else { Lever::Fixed },
            });
        }
        terms.push(Term {
            what: "scored-item lists".to_string(),
            detail: format!("{} scored items x {SCORED_ITEM} bytes", group_thousands(scored)),
            bytes: scored as f64 * SCORED_ITEM,
            place: Place::Host,
            lever: batch_lever,
        });
    }

    // A trained run is for evaluating: training evaluates between epochs when asked, and a run that could not
    // be evaluated afterwards is of no use, so training counts evaluation's scores too.
    let eval_rows = match purpose {
        Purpose::Train | Purpose::Evaluate => u128::from(workload.eval_batch.min(workload.test_sessions).max(1)),
        Purpose::Recommend => 1,
    };
    terms.push(Term {
        what: "evaluation scores".to_string(),
        detail: format!("{} sessions x {} items x 4 bytes", group_thousands(eval_rows), group_thousands(items)),
        bytes: eval_rows as f64 * items as f64 * FLOAT,
        place: Place::Device,
        lever: if eval_rows > 1 && eval_rows >= items { Lever::EvalBatch } else { Lever::Catalogue },
    });
    let eval_hidden: u128 = graph.subnets.iter().map(|s| u128::from(s.hidden)).sum();
    terms.push(Term {
        what: "evaluation states".to_string(),
        detail: format!("{} sessions x {GRU_EVAL_BUFFERS} x {} hidden x 4 bytes", group_thousands(eval_rows), group_thousands(eval_hidden)),
        bytes: (eval_rows * GRU_EVAL_BUFFERS) as f64 * eval_hidden as f64 * FLOAT,
        place: Place::Device,
        lever: Lever::Hidden,
    });

    let widths = graph
        .graph
        .node_weights()
        .filter_map(|node| match node {
            Node::Input { name, repr: InputRepr::Dense | InputRepr::Sparse, width } => Some((name.clone(), number(width))),
            Node::Embedding { input, dim, .. } => Some((input.clone(), number(dim))),
            _ => None,
        })
        .collect();
    Estimate {
        model: bound.name().to_string(),
        purpose,
        terms,
        items: items as u64,
        batch: plan.batch,
        extra: bound.negatives().extra,
        eval_batch: workload.eval_batch,
        train_sessions: workload.train_sessions,
        hidden: graph.subnets.iter().map(|s| (s.name.clone(), s.hidden)).collect(),
        widths,
    }
}

/// Which setting makes a parameter large: of its dimensions, the largest decides (the catalogue, a hidden
/// size or a block of them, or else an input's width).
fn param_lever(role: &Role, shape: &[u128], items: u128, hidden: &[u64]) -> Lever {
    let of = |dim: u128| {
        if hidden.iter().any(|&h| dim == u128::from(h) || dim == 3 * u128::from(h)) {
            Lever::Hidden
        } else if dim == items {
            Lever::Catalogue
        } else {
            match role {
                Role::InputWeights(input) | Role::Embedding(input) => Lever::Input(input.clone()),
                _ => Lever::Hidden,
            }
        }
    };
    let largest = shape.iter().copied().max().unwrap_or(1);
    // A tie between the catalogue and a hidden size blames the hidden size: it is the one a spec sets.
    if shape.iter().any(|&d| d == largest && of(d) == Lever::Hidden) {
        return Lever::Hidden;
    }
    of(largest)
}

impl Estimate {
    /// Bytes of every term.
    pub fn total(&self) -> f64 {
        self.terms.iter().map(|t| t.bytes).sum()
    }

    /// Bytes of the terms in host memory whatever the device.
    pub fn host(&self) -> f64 {
        self.terms.iter().filter(|t| t.place == Place::Host).map(|t| t.bytes).sum()
    }

    /// The largest terms, biggest first: as many as make up 90% of `of` bytes, at most three.
    fn dominant(&self, host_only: bool) -> Vec<&Term> {
        let mut terms: Vec<&Term> = self.terms.iter().filter(|t| !host_only || t.place == Place::Host).collect();
        let of: f64 = terms.iter().map(|t| t.bytes).sum();
        terms.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
        let mut chosen = Vec::new();
        let mut covered = 0.0;
        for term in terms {
            if chosen.len() == 3 || (!chosen.is_empty() && covered >= 0.9 * of) {
                break;
            }
            covered += term.bytes;
            chosen.push(term);
        }
        chosen
    }

    /// What to lower, for each setting behind the dominant terms, in the order of the terms.
    fn advice(&self, host_only: bool) -> Vec<String> {
        let mut levers: Vec<&Lever> = Vec::new();
        for term in self.dominant(host_only) {
            if term.lever != Lever::Fixed && !levers.contains(&&term.lever) {
                levers.push(&term.lever);
            }
        }
        levers
            .into_iter()
            .filter_map(|lever| {
                Some(match lever {
                    Lever::Fixed => return None,
                    Lever::Hidden => {
                        let sizes: Vec<String> = self.hidden.iter().map(|(name, h)| format!("{name} {}", group_thousands(*h))).collect();
                        format!("lower `hidden` (`hidden=N` for every subnet, `SUBNET.hidden=N` for one; now {})", sizes.join(", "))
                    }
                    Lever::Catalogue => format!(
                        "the catalogue has {} items: keep fewer (`[preprocess] min_item_support`), or lower `hidden`",
                        group_thousands(self.items)
                    ),
                    Lever::Batch => format!(
                        "lower `batch` (now {}; a mini-batch holds at most one row per training session, here {})",
                        group_thousands(self.batch),
                        group_thousands(self.train_sessions)
                    ),
                    Lever::Extra => format!("lower `extra` (now {} extra negatives per mini-batch)", group_thousands(self.extra)),
                    Lever::EvalBatch => format!("lower `[eval] batch` in the run config (now {})", group_thousands(self.eval_batch)),
                    Lever::Input(input) => format!(
                    "narrow input `{input}` (now {} wide): a smaller embedding (`{input}.dim=N`), shorter vectors or a smaller vocabulary",
                    self.widths.get(input).map_or("?".to_string(), |w| group_thousands(*w))
                ),
                })
            })
            .collect()
    }
}

impl TooLarge {
    fn needed(&self) -> f64 {
        if self.host_only {
            self.estimate.host()
        } else {
            self.estimate.total()
        }
    }

    fn message(&self) -> String {
        let estimate = &self.estimate;
        let terms: Vec<String> = estimate
            .dominant(self.host_only)
            .into_iter()
            .map(|t| format!("\n    {}: {} = {}", t.what, t.detail, format_bytes(t.bytes)))
            .collect();
        format!(
            "{} `{}` needs about {} of {}memory, but {} {} available ({}); the largest parts:{}",
            estimate.purpose.verb(),
            estimate.model,
            format_bytes(self.needed()),
            if self.host_only { "host " } else { "" },
            format_bytes(self.available.bytes as f64),
            if self.available.bytes == 1 { "is" } else { "are" },
            self.available.source,
            terms.concat()
        )
    }

    /// What to do: the settings behind the largest terms, and where the available figure came from.
    pub fn help(&self) -> String {
        let mut advice = self.estimate.advice(self.host_only);
        if self.available.source.contains("PRNN_MEMORY_LIMIT") {
            advice.push(if advice.is_empty() { "raise PRNN_MEMORY_LIMIT" } else { "or raise PRNN_MEMORY_LIMIT" }.to_string());
        }
        if self.available.source.contains("ulimit -v") {
            advice.push(if advice.is_empty() { "raise `ulimit -v`" } else { "or raise `ulimit -v`" }.to_string());
        }
        advice.join("; ")
    }
}

/// Refuses an estimate above [`USABLE_SHARE`] of `available`. With `host_only` (the network on a GPU) only
/// the terms held in host memory are compared.
pub fn check(estimate: &Estimate, available: &Available, host_only: bool) -> Result<(), Box<TooLarge>> {
    let refused = TooLarge { estimate: estimate.clone(), available: available.clone(), host_only };
    if refused.needed() > USABLE_SHARE * available.bytes as f64 {
        return Err(Box::new(refused));
    }
    Ok(())
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Bindings, Compiled};

    const ID_ONLY: &str = "model m {\n input id : item_id\n subnet id_net = gru(id, hidden = 10)\n}\ntrain {\n batch = 4\n}\n";

    fn bound(spec: &str, items: u64) -> Bound {
        let compiled: Compiled = crate::compile("m", spec).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
        Bound::new(compiled, &Bindings { items: Some(items), ..Default::default() }).unwrap()
    }

    fn workload() -> Workload {
        Workload {
            train_sessions: 100,
            train_events: 1000,
            test_sessions: 7,
            eval_batch: 512,
            sample_cache: 1000,
            features: BTreeMap::new(),
        }
    }

    fn bytes(estimate: &Estimate, what: &str) -> f64 {
        estimate.terms.iter().find(|t| t.what == what).unwrap_or_else(|| panic!("no term {what}: {:?}", estimate.terms)).bytes
    }

    #[test]
    fn a_small_id_model_adds_up_by_hand() {
        // 20 items, H = 10, B = 4, in-batch negatives only, no momentum.
        let estimate = estimate(&bound(ID_ONLY, 20), &workload(), Purpose::Train);
        // W_out [20, 10] and b_out [20] are row-sparse: value and accumulator. W_in [20, 30] row-sparse too.
        assert_eq!(bytes(&estimate, "`id_net.W_out`"), 20.0 * 10.0 * 4.0 * 2.0);
        assert_eq!(bytes(&estimate, "`id_net.b_out`"), 20.0 * 4.0 * 2.0);
        assert_eq!(bytes(&estimate, "`id_net.W_in.id`"), 20.0 * 30.0 * 4.0 * 2.0);
        // W_hh [10, 30] and b [30] are used whole: a full gradient besides.
        assert_eq!(bytes(&estimate, "`id_net.W_hh`"), 10.0 * 30.0 * 4.0 * 3.0);
        assert_eq!(bytes(&estimate, "`id_net.b`"), 30.0 * 4.0 * 3.0);
        let state = (20.0 * 10.0 + 20.0 + 20.0 * 30.0 + 10.0 * 30.0 + 30.0) * 4.0 * 2.0;
        assert_eq!(bytes(&estimate, "writing a checkpoint"), 2.0 * state);
        // Scores: one part + 8 shared buffers of [4, 4].
        assert_eq!(bytes(&estimate, "mini-batch scores"), 9.0 * 4.0 * 4.0 * 4.0);
        // The 4 scored output rows and their gradient, by 10 hidden units.
        assert_eq!(bytes(&estimate, "`id_net` output rows"), 2.0 * 4.0 * 10.0 * 4.0);
        assert_eq!(bytes(&estimate, "`id_net` step buffers"), 4.0 * 25.0 * 10.0 * 4.0);
        // Touched rows: 4 input rows of W_in [_, 30], 4 scored rows of W_out [_, 10] and b_out.
        assert_eq!(bytes(&estimate, "row gradients"), (4.0 * 30.0 + 4.0 * 10.0 + 4.0) * 4.0);
        assert!(!estimate.terms.iter().any(|t| t.what == "negative sampler"), "no extra negatives, no sampler");
        // Evaluation: the 7 test sessions (fewer than the eval batch) against 20 items.
        assert_eq!(bytes(&estimate, "evaluation scores"), 7.0 * 20.0 * 4.0);
        assert_eq!(bytes(&estimate, "evaluation states"), 7.0 * 12.0 * 10.0 * 4.0);
        let sum: f64 = estimate.terms.iter().map(|t| t.bytes).sum();
        assert_eq!(estimate.total(), sum);
    }

    #[test]
    fn momentum_extra_negatives_and_the_batch_cap_change_their_terms() {
        let spec = ID_ONLY.replace("batch = 4", "batch = 1000\n optimizer = adagrad(momentum = 0.5)\n negatives = in_batch(extra = 300)");
        let estimate = estimate(&bound(&spec, 20), &workload(), Purpose::Train);
        assert_eq!(bytes(&estimate, "`id_net.W_out`"), 20.0 * 10.0 * 4.0 * 3.0, "momentum is a third copy");
        // 100 training sessions cap the batch of 1000: 100 rows x (100 + 300) scored items.
        assert_eq!(bytes(&estimate, "mini-batch scores"), 9.0 * 100.0 * 400.0 * 4.0);
        // A cache of 1000 samples holds 3 steps of 300.
        assert_eq!(bytes(&estimate, "negative sampler"), 900.0 * 4.0);
        // An epoch of at most 1 event (1 step) draws no more than 2 steps' worth.
        let short = super::estimate(&bound(&spec, 20), &Workload { train_events: 1, ..workload() }, Purpose::Train);
        assert_eq!(bytes(&short, "negative sampler"), 600.0 * 4.0);
    }

    #[test]
    fn evaluation_and_recommendation_read_a_checkpoint_and_take_no_step() {
        let b = bound(ID_ONLY, 20);
        let evaluate = estimate(&b, &workload(), Purpose::Evaluate);
        assert_eq!(bytes(&evaluate, "`id_net.W_hh`"), 10.0 * 30.0 * 4.0 * 2.0, "no gradient");
        assert!(bytes(&evaluate, "reading the checkpoint") > 0.0);
        assert!(!evaluate.terms.iter().any(|t| t.what == "mini-batch scores"));
        let recommend = estimate(&b, &workload(), Purpose::Recommend);
        assert_eq!(bytes(&recommend, "evaluation scores"), 20.0 * 4.0, "one session's scores");
    }

    #[test]
    fn absurd_sizes_neither_overflow_nor_fit_and_name_their_setting() {
        let spec = ID_ONLY.replace("hidden = 10", "hidden = 1000000000");
        let estimate = estimate(&bound(&spec, 37_483), &workload(), Purpose::Train);
        // W_hh alone: 10^9 x 3·10^9 values x 4 bytes x 3.
        assert!(estimate.total() > 3.6e19, "{}", estimate.total());
        let available = Available { bytes: 32 << 30, source: "a test".into() };
        let refused = check(&estimate, &available, false).unwrap_err();
        let message = refused.to_string();
        assert!(message.starts_with("training `m` needs about "), "{message}");
        assert!(message.contains("but 32.0 GiB are available (a test); the largest parts:\n"), "{message}");
        assert!(message.contains("\n    `id_net.W_hh`: 1,000,000,000 x 3,000,000,000 values x 4 bytes x 3"), "{message}");
        assert!(refused.help().starts_with("lower `hidden`"), "{}", refused.help());
        // Saturated sizes (an override of 2^64 - 1) are still just large.
        let spec = ID_ONLY.replace("batch = 4", "batch = 4\n negatives = in_batch(extra = 1000000000)");
        let huge = estimate_of(&spec, u64::MAX);
        assert!(huge.total().is_finite() && huge.total() > 1e21, "{}", huge.total());
    }

    #[test]
    fn every_workload_size_at_u64_max_gives_a_finite_estimate_that_no_memory_holds() {
        let spec = ID_ONLY.replace("batch = 4", "batch = 1000000000\n negatives = in_batch(extra = 1000000000)");
        let most = Workload {
            train_sessions: u64::MAX,
            train_events: u64::MAX,
            test_sessions: u64::MAX,
            eval_batch: u64::MAX,
            sample_cache: u64::MAX,
            features: BTreeMap::from([("id".to_string(), u64::MAX)]),
        };
        for purpose in [Purpose::Train, Purpose::Evaluate, Purpose::Recommend] {
            let estimate = estimate(&bound(&spec, u64::MAX), &most, purpose);
            assert!(estimate.terms.iter().all(|t| t.bytes.is_finite() && t.bytes >= 0.0), "{purpose}: {:?}", estimate.terms);
            let available = Available { bytes: u64::MAX, source: "a test".into() };
            assert!(check(&estimate, &available, false).is_err(), "{purpose}: {} fits in 2^64 bytes", estimate.total());
        }
        // `[eval] batch = 2^64 - 1` scores no more sessions at once than the test set has.
        let eval = estimate(&bound(ID_ONLY, 20), &Workload { eval_batch: u64::MAX, ..workload() }, Purpose::Evaluate);
        assert_eq!(bytes(&eval, "evaluation scores"), 7.0 * 20.0 * 4.0);
    }

    fn estimate_of(spec: &str, items: u64) -> Estimate {
        estimate(&bound(spec, items), &Workload { train_sessions: u64::MAX, ..workload() }, Purpose::Train)
    }

    #[test]
    fn a_run_that_fits_passes_and_the_margin_is_kept() {
        let estimate = estimate(&bound(ID_ONLY, 20), &workload(), Purpose::Train);
        let total = estimate.total();
        let fits = Available { bytes: (total / USABLE_SHARE).ceil() as u64 + 1, source: "t".into() };
        assert!(check(&estimate, &fits, false).is_ok());
        let tight = Available { bytes: total as u64, source: "t".into() };
        assert!(check(&estimate, &tight, false).is_err(), "the estimate itself leaves no margin");
        // On a GPU only the host's terms are compared with host memory.
        let host = Available { bytes: (estimate.host() / USABLE_SHARE).ceil() as u64 + 1, source: "t".into() };
        assert!(check(&estimate, &host, true).is_ok());
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(format_bytes(512.0), "512 bytes");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_bytes(7.5 * 1024f64.powi(4)), "7.5 TiB");
        assert_eq!(format_bytes(3.0e30), "2.48e6 YiB");
    }
}
