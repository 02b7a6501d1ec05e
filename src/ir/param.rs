//! The parameter table's entries: what a parameter is, how it starts, which rows a step touches, who owns it.

use serde::Serialize;

use super::expr::Expr;
use crate::diagnostic::group_thousands;
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
    /// How many values the parameter holds.
    pub fn count(&self) -> ParamCount {
        shape_count(&self.shape)
    }
}

/// How many values parameters hold: a size over what only data fixes, or more than a u64 counts. Hidden sizes
/// up to the checker's 10^9 make a GRU's `W_hh` 3·10^18 values, and a few such subnets pass 2^64 - 1: a count
/// that wrapped or stopped there would be a lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamCount {
    Counted(Expr),
    /// Past `u64::MAX`.
    Overflows,
}

impl ParamCount {
    pub fn add(&self, other: &ParamCount) -> ParamCount {
        match (self, other) {
            (ParamCount::Counted(a), ParamCount::Counted(b)) => a.checked_add(b).map_or(ParamCount::Overflows, ParamCount::Counted),
            _ => ParamCount::Overflows,
        }
    }

    /// The count when every size is bound and it did not overflow.
    pub fn as_constant(&self) -> Option<u64> {
        match self {
            ParamCount::Counted(count) => count.as_constant(),
            ParamCount::Overflows => None,
        }
    }
}

impl Default for ParamCount {
    fn default() -> Self {
        ParamCount::Counted(Expr::default())
    }
}

impl std::fmt::Display for ParamCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamCount::Counted(count) => count.fmt(f),
            ParamCount::Overflows => write!(f, "overflows: more than {} (2^64 - 1)", group_thousands(u64::MAX)),
        }
    }
}

/// A count is what [`Expr`] serialises to; one past `u64::MAX` is `{"overflows": true}`.
impl Serialize for ParamCount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamCount::Counted(count) => count.serialize(serializer),
            ParamCount::Overflows => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("overflows", &true)?;
                map.end()
            }
        }
    }
}

/// The product of a shape's dimensions; a dimension that saturated when the data's sizes were bound
/// ([`Expr::bind`]) counts as overflowed too.
fn shape_count(shape: &[Expr]) -> ParamCount {
    if shape.iter().any(Expr::is_saturated) {
        return ParamCount::Overflows;
    }
    let count = match shape {
        [] => Some(Expr::constant(1)),
        [only] => Some(only.clone()),
        [rows, cols] => match (rows.as_constant(), cols.as_constant()) {
            (_, Some(c)) => rows.checked_times(c),
            (Some(r), None) => cols.checked_times(r),
            (None, None) => unreachable!("no parameter is symbolic in both dimensions"),
        },
        _ => unreachable!("parameters are vectors or matrices"),
    };
    count.map_or(ParamCount::Overflows, ParamCount::Counted)
}

pub(crate) fn bind_param(param: &mut Param, bindings: &super::Bindings) {
    for dim in &mut param.shape {
        *dim = dim.bind(bindings);
    }
    if let Init::Uniform { fan_in, fan_out, .. } = &mut param.init {
        *fan_in = fan_in.bind(bindings);
        *fan_out = fan_out.bind(bindings);
    }
}
