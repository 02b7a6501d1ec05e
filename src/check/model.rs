//! The checked model: a spec with every name resolved and every default filled in.
//!
//! Defaults follow the paper (Hidasi et al. 2016) and the GRU4Rec implementation it builds on; each is
//! listed in docs/spec-language.md. Nothing here refers to data: input widths stay symbolic until a run
//! config binds them (src/ir/expr.rs).

use serde::Serialize;

use crate::diagnostic::Span;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub name: String,
    pub inputs: Vec<Input>,
    pub subnets: Vec<Subnet>,
    pub merge: Merge,
    pub activation: Activation,
    pub loss: Loss,
    pub train: Train,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    pub name: String,
    pub kind: InputKind,
    #[serde(skip)]
    pub span: Span,
}

/// What an input carries per item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InputKind {
    /// The item's ID; `dropout` is applied to its embedding (GRU4Rec's dropout_p_embed).
    ItemId { embedding: Embedding, dropout: f64 },
    /// A dense vector per item (e.g. image embeddings).
    Dense,
    /// A sparse vector per item (TF-IDF text, one-hot or multi-hot categories).
    Sparse,
    /// Dense or sparse: the run config decides, so one spec runs on vectors, text or categories.
    Feature,
}

/// How an item ID reaches the GRU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Embedding {
    /// One-hot input: a row lookup in the GRU's [n_items, 3H] input matrix.
    OneHot,
    /// A separate [n_items, dim] embedding feeding the GRU.
    Separate { dim: u64 },
    /// GRU4Rec's constrained embedding: the input embedding is the subnet's output matrix.
    Constrained,
}

/// One GRU layer over one input, or over several inputs concatenated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subnet {
    pub name: String,
    pub inputs: Vec<String>,
    pub hidden: u64,
    /// Hidden dropout: applied to the layer output, and the dropped-out value is the carried state.
    pub dropout: f64,
    /// Overrides the optimizer's learning rate for this subnet's parameters.
    pub learning_rate: Option<f64>,
    #[serde(skip)]
    pub span: Span,
    #[serde(skip)]
    pub hidden_span: Span,
}

/// How the subnets' hidden states become item scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Merge {
    /// One subnet, its own output matrix, no merge.
    Single { subnet: String },
    /// Per-subnet scores, weighted sum (equivalent to one output matrix over the concatenated hidden states).
    Parallel { subnets: Vec<String>, weights: Vec<f64> },
    /// Weighted sum of hidden states times one shared output matrix.
    SharedW { subnets: Vec<String>, weights: Vec<f64> },
    /// score = primary part + sum over features of (feature hidden ⊙ primary hidden) times the feature's own matrix.
    Interaction { primary: String, features: Vec<String> },
}

impl Merge {
    /// Subnets in the order the merge combines them.
    pub fn subnets(&self) -> Vec<&str> {
        match self {
            Merge::Single { subnet } => vec![subnet.as_str()],
            Merge::Parallel { subnets, .. } | Merge::SharedW { subnets, .. } => subnets.iter().map(String::as_str).collect(),
            Merge::Interaction { primary, features } => {
                std::iter::once(primary.as_str()).chain(features.iter().map(String::as_str)).collect()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Activation {
    Tanh,
    Linear,
    Elu {
        alpha: f64,
    },
    /// Only with cross_entropy, where it means "these are logits; the softmax lives inside the loss".
    Softmax,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Loss {
    /// TOP1 with the score regulariser on the negatives, sigmoid(r_j^2).
    Top1,
    Bpr,
    Top1Max,
    BprMax {
        bpreg: f64,
    },
    /// Softmax cross-entropy over the sampled scores; logq > 0 subtracts logq * log(popularity) from the logits.
    CrossEntropy {
        logq: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Train {
    pub optimizer: Optimizer,
    pub batch: u64,
    pub seed: u64,
    pub negatives: Negatives,
    pub schedule: Schedule,
    /// Early stopping on a validation metric; `None` trains every epoch of the schedule. Left out of the
    /// JSON when `None`, so a model without it hashes as before (run folders compare the hash on resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<EarlyStop>,
}

/// Stop when the validation metric has not gained more than `min_delta` for `patience` epochs, and keep the
/// best epoch. The schedule's epochs become a maximum; where each stop applies is the plan's (src/ir/plan.rs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EarlyStop {
    pub metric: StopMetric,
    pub cutoff: u64,
    pub patience: u64,
    pub min_delta: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    Mrr,
    Recall,
}

impl StopMetric {
    pub const NAMES: &'static [&'static str] = &["mrr", "recall"];

    pub fn from_name(name: &str) -> Option<StopMetric> {
        match name {
            "mrr" => Some(StopMetric::Mrr),
            "recall" => Some(StopMetric::Recall),
            _ => None,
        }
    }

    /// As reports write it: `MRR` or `Recall`.
    pub fn label(self) -> &'static str {
        match self {
            StopMetric::Mrr => "MRR",
            StopMetric::Recall => "Recall",
        }
    }
}

impl EarlyStop {
    pub const DEFAULT: EarlyStop = EarlyStop { metric: StopMetric::Mrr, cutoff: 20, patience: 3, min_delta: 0.0 };
}

/// Adagrad with optional heavy-ball momentum, as GRU4Rec does it (eps inside the square root).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Optimizer {
    pub learning_rate: f64,
    pub momentum: f64,
    pub eps: f64,
}

/// In-batch negatives (the other targets of the mini-batch) plus `extra` shared samples drawn with
/// probability proportional to support^alpha.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Negatives {
    pub extra: u64,
    pub alpha: f64,
}

/// The paper's four training strategies (Section 3.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    Simultaneous {
        epochs: u64,
    },
    /// `epochs` in total; one subnet trains per epoch, cycling through `order`.
    Alternating {
        epochs: u64,
        order: Vec<String>,
    },
    /// Each subnet in turn, for its own epochs, on the residual of the frozen ensemble before it.
    Residual {
        phases: Vec<ResidualPhase>,
    },
    /// `epochs` passes over the data; on every mini-batch each subnet in `order` trains in turn.
    Interleaving {
        epochs: u64,
        order: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidualPhase {
    pub subnet: String,
    pub epochs: u64,
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Simultaneous { .. } => "simultaneous",
            Schedule::Alternating { .. } => "alternating",
            Schedule::Residual { .. } => "residual",
            Schedule::Interleaving { .. } => "interleaving",
        }
    }

    pub fn total_epochs(&self) -> u64 {
        match self {
            Schedule::Simultaneous { epochs } | Schedule::Alternating { epochs, .. } | Schedule::Interleaving { epochs, .. } => *epochs,
            Schedule::Residual { phases } => phases.iter().map(|p| p.epochs).sum(),
        }
    }
}

impl Model {
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|input| input.name == name)
    }

    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|subnet| subnet.name == name)
    }
}
