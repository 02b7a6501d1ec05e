//! The dataflow graph of a checked model: inputs, embeddings, GRUs, merges, output scores, activation, loss,
//! with the parameter table the nodes refer to and the order executors visit them in.
//!
//! Nodes are added in one canonical order (subnets in merge order, each preceded by the inputs it reads
//! first), so the same model always yields the same node numbering, whatever order the spec declared it in
//! (`build.rs`). Nodes name their parameters by [`ParamId`] ([`super::param`]).

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use super::expr::Expr;
use super::handle::{NodeId, ParamId, SubnetId};
pub use super::param::{Init, Owner, Param, ParamCount, Role, RowSpace};
use crate::check::{Activation, Embedding, InputKind, Loss, Model, Negatives};

/// Where a GRU's reset gate acts. docs/model.md says which form each input mode uses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GruForm {
    /// GRU4Rec's one-hot cell: `n = tanh(x_n + (r ⊙ h) W_n)`, `h' = (1 - z) ⊙ h + z ⊙ n`.
    /// Gate blocks of `W_in`, `W_hh` and `b` in the order candidate, reset, update.
    ResetBeforeProduct,
    /// PyTorch's `GRUCell`: `n = tanh(x_n + r ⊙ (h W_n + b_hn))`, `h' = (1 - z) ⊙ n + z ⊙ h`.
    /// Gate blocks in the order reset, update, candidate; `b_hn` is the candidate's hidden-side bias.
    ResetAfterProduct,
}

impl GruForm {
    pub fn describe(self) -> &'static str {
        match self {
            GruForm::ResetBeforeProduct => "reset before product (GRU4Rec)",
            GruForm::ResetAfterProduct => "reset after product (PyTorch GRUCell)",
        }
    }

    /// The form the reference implementation pairs with a subnet's inputs: its one-hot cell for inputs that
    /// enter by a row lookup, a weighted row sum or a product, PyTorch's standard cell behind an embedding.
    pub fn for_subnet(model: &Model, subnet: &str) -> GruForm {
        let subnet = model.subnet(subnet).expect("checked: the subnet exists");
        let embedded = subnet.inputs.iter().any(|input| {
            matches!(
                model.input(input).map(|i| &i.kind),
                Some(InputKind::ItemId { embedding: Embedding::Separate { .. } | Embedding::Constrained, .. })
            )
        });
        if embedded {
            GruForm::ResetAfterProduct
        } else {
            GruForm::ResetBeforeProduct
        }
    }
}

/// How an input enters its GRU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InputRepr {
    /// Item IDs as one-hot rows: the GRU's input product is a row lookup.
    OneHot,
    /// Item IDs looked up in an embedding (separate or constrained) before the GRU.
    Embedded,
    Dense,
    Sparse,
    /// Dense or sparse, decided by the run config.
    Feature,
}

/// One input of a GRU: the node it reads (an input or an embedding) and its block of input weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GruInput {
    pub source: NodeId,
    pub w_in: ParamId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "node")]
pub enum Node {
    Input {
        name: String,
        repr: InputRepr,
        width: Expr,
    },
    /// A separate item embedding, or (constrained) the rows of the owning output matrix: `table`.
    Embedding {
        input: String,
        dim: Expr,
        constrained: bool,
        dropout: f64,
        table: ParamId,
    },
    /// One GRU layer; its inputs' projections are summed, in the order of `inputs`.
    Gru {
        subnet: SubnetId,
        hidden: u64,
        form: GruForm,
        input_width: Expr,
        dropout: f64,
        learning_rate: Option<f64>,
        inputs: Vec<GruInput>,
        w_hh: ParamId,
        bias: ParamId,
        b_hn: Option<ParamId>,
    },
    /// Interaction: the feature subnet's hidden state times the primary's, element-wise.
    Interact {
        feature: SubnetId,
        primary: SubnetId,
    },
    /// shared-W: the sum of the subnets' hidden states, weighted by `weights[subnet]`.
    HiddenSum {
        weights: Vec<f64>,
    },
    /// `H · W[Y]^T + b[Y]`: scores of the sampled items only. `subnet` is the part's subnet (None: the shared
    /// output of shared-W).
    Scores {
        part: String,
        subnet: Option<SubnetId>,
        w: ParamId,
        b: ParamId,
    },
    /// Parallel and interaction: the score parts (one per subnet, in merge order) summed, weighted by `weights`.
    ScoreSum {
        weights: Vec<f64>,
    },
    Activation {
        activation: Activation,
    },
    Loss {
        loss: Loss,
        negatives: Negatives,
    },
}

impl Node {
    /// The parameters this node owns, in the order renderings list them (a constrained embedding's table
    /// belongs to the output that scores with it).
    pub fn params(&self) -> Vec<ParamId> {
        match self {
            Node::Embedding { constrained: false, table, .. } => vec![*table],
            Node::Gru { inputs, w_hh, bias, b_hn, .. } => inputs.iter().map(|i| i.w_in).chain([*w_hh, *bias]).chain(*b_hn).collect(),
            Node::Scores { w, b, .. } => vec![*w, *b],
            Node::Input { .. }
            | Node::Embedding { .. }
            | Node::Interact { .. }
            | Node::HiddenSum { .. }
            | Node::ScoreSum { .. }
            | Node::Activation { .. }
            | Node::Loss { .. } => vec![],
        }
    }
}

/// What flows along an edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    ItemIds,
    DenseRows,
    SparseRows,
    FeatureRows,
    Embedded,
    Hidden,
    Scores,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub flow: Flow,
    pub shape: Vec<Expr>,
}

/// A subnet as the graph holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subnet {
    pub name: String,
    pub hidden: u64,
    pub gru: NodeId,
}

/// The order executors visit nodes in, and the graph's structure as they look it up (computed once, when the
/// graph is built: node payloads may change afterwards, edges may not).
///
/// A step runs each of its subnets' nodes forward (inputs, embeddings, then the GRU), then the head: the
/// nodes from hidden states to the loss, in graph order. Backward runs the head in reverse topological order
/// (a node after every node that reads it; of several ready nodes, the lowest-numbered first, so score parts
/// go back in merge order), then each trained subnet's nodes in reverse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// Per subnet (merge order): the nodes that compute its hidden state, in graph order.
    pub subnets: Vec<Vec<NodeId>>,
    pub head: Vec<NodeId>,
    pub head_backward: Vec<NodeId>,
    /// Per node: the nodes it reads, lowest-numbered first.
    pub sources: Vec<Vec<NodeId>>,
    /// The loss, the activation it reads, and the merged scores the activation reads.
    pub loss: NodeId,
    pub activation: NodeId,
    pub merged: NodeId,
}

/// The compiled dataflow graph of one model.
#[derive(Debug, Clone)]
pub struct Graph {
    pub graph: DiGraph<Node, Edge>,
    /// The parameter table, in the order parameters are initialised (which fixes the initial weights for a
    /// seed): subnet by subnet in merge order, each subnet's output layer, then its inputs' embeddings and
    /// weights, then its recurrent weights and biases; shared-W's output last.
    pub params: Vec<Param>,
    /// In merge order: `SubnetId` indexes this.
    pub subnets: Vec<Subnet>,
    pub order: Order,
}

impl Order {
    pub(super) fn of(graph: &DiGraph<Node, Edge>, subnets: &[Subnet]) -> Order {
        // A subnet's nodes: its GRU and everything upstream of it.
        let subnet_nodes: Vec<Vec<NodeId>> = subnets
            .iter()
            .map(|subnet| {
                let mut nodes = vec![NodeIndex::from(subnet.gru)];
                let mut at = 0;
                while at < nodes.len() {
                    let sources: Vec<NodeIndex> = graph.neighbors_directed(nodes[at], Direction::Incoming).collect();
                    nodes.extend(sources.into_iter().filter(|s| !nodes.contains(s)).collect::<Vec<_>>());
                    at += 1;
                }
                nodes.sort();
                nodes.into_iter().map(NodeId::from).collect()
            })
            .collect();
        let in_subnet = |index: NodeIndex| subnet_nodes.iter().any(|nodes| nodes.contains(&index.into()));
        let head: Vec<NodeId> = graph.node_indices().filter(|&i| !in_subnet(i)).map(NodeId::from).collect();
        let mut head_backward: Vec<NodeId> = Vec::with_capacity(head.len());
        while head_backward.len() < head.len() {
            let ready = head
                .iter()
                .copied()
                .filter(|node| !head_backward.contains(node))
                .find(|&node| {
                    graph
                        .edges_directed(node.into(), Direction::Outgoing)
                        .all(|edge| head_backward.contains(&edge.target().into()) || !head.contains(&edge.target().into()))
                })
                .expect("the graph is acyclic");
            head_backward.push(ready);
        }
        let sources: Vec<Vec<NodeId>> = graph
            .node_indices()
            .map(|node| {
                let mut sources: Vec<NodeId> = graph.neighbors_directed(node, Direction::Incoming).map(NodeId::from).collect();
                sources.sort();
                sources
            })
            .collect();
        let loss: NodeId =
            graph.node_indices().find(|&i| matches!(graph[i], Node::Loss { .. })).expect("every graph ends in a loss").into();
        let activation = sources[loss.index()][0];
        let merged = sources[activation.index()][0];
        Order { subnets: subnet_nodes, head, head_backward, sources, loss, activation, merged }
    }
}

impl Graph {
    pub fn build(model: &Model) -> Graph {
        super::build::Builder::new(model).build()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[NodeIndex::from(id)]
    }

    pub fn param(&self, id: ParamId) -> &Param {
        &self.params[id.index()]
    }

    pub fn subnet(&self, id: SubnetId) -> &Subnet {
        &self.subnets[id.index()]
    }

    pub fn subnet_ids(&self) -> impl Iterator<Item = SubnetId> {
        (0..self.subnets.len()).map(SubnetId::new)
    }

    /// The subnet of this name.
    pub fn subnet_named(&self, name: &str) -> Option<SubnetId> {
        self.subnets.iter().position(|s| s.name == name).map(SubnetId::new)
    }

    /// The name of an owner: a subnet's, or `shared`.
    pub fn owner_name(&self, owner: Owner) -> &str {
        match owner {
            Owner::Subnet(id) => &self.subnet(id).name,
            Owner::Shared => "shared",
        }
    }

    /// The nodes `node` reads, lowest-numbered first.
    pub fn sources(&self, node: NodeId) -> &[NodeId] {
        &self.order.sources[node.index()]
    }

    /// The node the merged scores come from: the score sum, or the only scores node.
    pub fn merged(&self) -> NodeId {
        self.order.merged
    }

    pub fn activation(&self) -> NodeId {
        self.order.activation
    }

    pub fn loss(&self) -> NodeId {
        self.order.loss
    }

    /// The subnet whose score part a head node belongs to (None: a node every part shares).
    pub fn part_of(&self, node: NodeId) -> Option<SubnetId> {
        match self.node(node) {
            Node::Scores { subnet, .. } => *subnet,
            Node::Interact { feature, .. } => Some(*feature),
            Node::Input { .. }
            | Node::Embedding { .. }
            | Node::Gru { .. }
            | Node::HiddenSum { .. }
            | Node::ScoreSum { .. }
            | Node::Activation { .. }
            | Node::Loss { .. } => None,
        }
    }

    /// Every parameter, in table order.
    pub fn params(&self) -> impl Iterator<Item = (ParamId, &Param)> {
        self.params.iter().enumerate().map(|(i, p)| (ParamId::new(i), p))
    }

    /// Parameter count per owner, in order of first appearance.
    pub fn param_counts(&self) -> Vec<(Owner, ParamCount)> {
        let mut counts: Vec<(Owner, ParamCount)> = Vec::new();
        for param in &self.params {
            match counts.iter_mut().find(|(owner, _)| *owner == param.owner) {
                Some((_, count)) => *count = count.add(&param.count()),
                None => counts.push((param.owner, param.count())),
            }
        }
        counts
    }

    pub fn total_params(&self) -> ParamCount {
        self.params.iter().fold(ParamCount::default(), |sum, p| sum.add(&p.count()))
    }
}

/// Folds known sizes into a node's widths.
pub(crate) fn bind_node(node: &mut Node, bindings: &super::Bindings) {
    match node {
        Node::Input { width, .. } => *width = width.bind(bindings),
        Node::Embedding { dim, .. } => *dim = dim.bind(bindings),
        Node::Gru { input_width, .. } => *input_width = input_width.bind(bindings),
        Node::Interact { .. }
        | Node::HiddenSum { .. }
        | Node::Scores { .. }
        | Node::ScoreSum { .. }
        | Node::Activation { .. }
        | Node::Loss { .. } => {}
    }
}
