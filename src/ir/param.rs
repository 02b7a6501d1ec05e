//! The parameter table's entries: what a parameter is, how it starts, which rows a step touches, who owns it.

use serde::Serialize;

use super::expr::Expr;
use super::handle::{NodeId, SubnetId};

/// Which parameter group a parameter belongs to, i.e. in which training steps it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "owner", content = "subnet")]
pub enum Owner {
    Subnet(SubnetId),
    /// Shared by all subnets: shared-W's output matrix and bias.
    Shared,
}

/// What a parameter is to the node that uses it; its short name in renderings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "input")]
pub enum Role {
    /// The GRU's input weights for one input: its block of rows of the GRU's `W_in`.
    InputWeights(String),
    /// A separate item embedding of one input.
    Embedding(String),
    Recurrent,
    Bias,
    /// The reset-after form's hidden-side candidate bias.
    CandidateBias,
    Output,
    OutputBias,
}

impl Role {
    pub fn label(&self) -> &'static str {
        match self {
            Role::InputWeights(_) => "W_in",
            Role::Embedding(_) => "E",
            Role::Recurrent => "W_hh",
            Role::Bias => "b",
            Role::CandidateBias => "b_hn",
            Role::Output => "W_out",
            Role::OutputBias => "b_out",
        }
    }
}

/// How a parameter starts, as GRU4Rec initialises it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Init {
    Zeros,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))`, drawn one column block at a time (`blocks` equal blocks:
    /// a GRU's three gates), each block with the same bound.
    Uniform {
        fan_in: Expr,
        fan_out: Expr,
        blocks: u64,
    },
}

/// Which rows of a matrix one training step reads, and so which rows it updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rows", content = "input")]
pub enum RowSpace {
    /// Used whole: recurrent weights, biases, projections of dense or embedded inputs.
    Dense,
    /// Rows of the batch's input items: one-hot `W_in`, separate embeddings.
    InputItems,
    /// Rows of the scored items (targets and negatives): `W_out`, `b_out`.
    ScoredItems,
    /// Both: an output matrix that is also the constrained input embedding.
    InputAndScoredItems,
    /// Vocabulary rows of the batch's input items' sparse features (the sparse input node): a sparse `W_in`.
    Vocabulary(NodeId),
    /// A `feature` input's `W_in` before a run config makes the input dense or sparse.
    Undecided,
}

impl RowSpace {
    /// Whether a step touches only some rows (item- and vocabulary-indexed matrices).
    pub fn is_sparse(self) -> bool {
        !matches!(self, RowSpace::Dense | RowSpace::Undecided)
    }
}

/// One parameter tensor: an entry of the parameter table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// `id_net.W_in.id`, `id_net.W_hh`, `shared.W_out`: its name in checkpoints.
    pub name: String,
    pub role: Role,
    pub shape: Vec<Expr>,
    pub owner: Owner,
    pub init: Init,
    pub rows: RowSpace,
    pub learning_rate: f64,
    /// The embedding node whose input embedding is this output matrix (a constrained embedding): one
    /// tensor, read by two nodes.
    pub tied_to: Option<NodeId>,
}

impl Param {
    pub fn count(&self) -> Expr {
        shape_count(&self.shape)
    }
}

fn shape_count(shape: &[Expr]) -> Expr {
    match shape {
        [] => Expr::constant(1),
        [only] => only.clone(),
        [rows, cols] => match (rows.as_constant(), cols.as_constant()) {
            (_, Some(c)) => rows.times(c),
            (Some(r), None) => cols.times(r),
            (None, None) => unreachable!("no parameter is symbolic in both dimensions"),
        },
        _ => unreachable!("parameters are vectors or matrices"),
    }
}

/// Folds known sizes into a parameter's shape and initialisation.
pub(crate) fn bind_param(param: &mut Param, bindings: &super::Bindings) {
    for dim in &mut param.shape {
        *dim = dim.bind(bindings);
    }
    if let Init::Uniform { fan_in, fan_out, .. } = &mut param.init {
        *fan_in = fan_in.bind(bindings);
        *fan_out = fan_out.bind(bindings);
    }
}
