//! The dataflow graph of a checked model: inputs, embeddings, GRUs, merges, output scores, activation, loss,
//! and the parameter table the nodes refer to.
//!
//! Nodes are added in one canonical order (subnets in merge order, each preceded by the inputs it reads
//! first), so the same model always yields the same node numbering, whatever order the spec declared it in.
//! Nodes name their parameters by [`ParamId`]; the table ([`Graph::params`]) holds each parameter once, with
//! everything an executor needs to create it: shape, initialisation, row space, learning rate, owner, and
//! the tie of an output matrix that is also a constrained input embedding.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use super::expr::{Expr, Symbol};
use super::handle::{NodeId, ParamId, SubnetId};
use crate::check::{Activation, Embedding, InputKind, Loss, Merge, Model, Negatives};

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

/// The order executors visit nodes in.
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

fn batch() -> Expr {
    Expr::symbol(Symbol::Batch)
}

fn sampled() -> Expr {
    Expr::symbol(Symbol::Sampled)
}

fn items() -> Expr {
    Expr::symbol(Symbol::Items)
}

/// The parameters of one subnet, numbered before any node exists (so that a constrained embedding can name
/// shared-W's output matrix, which is numbered after every subnet), then defined as the nodes are built.
struct Numbered {
    output: Option<(ParamId, ParamId)>,
    /// Per input of the subnet: its separate embedding (if any) and its input weights.
    inputs: Vec<(Option<ParamId>, ParamId)>,
    w_hh: ParamId,
    bias: ParamId,
    b_hn: Option<ParamId>,
}

struct Builder<'m> {
    model: &'m Model,
    graph: DiGraph<Node, Edge>,
    params: Vec<Option<Param>>,
    numbered: Vec<Numbered>,
    shared_output: Option<(ParamId, ParamId)>,
    inputs: Vec<(String, NodeIndex)>,
}

impl Builder<'_> {
    fn new(model: &Model) -> Builder<'_> {
        let mut count = 0;
        let mut next = || {
            count += 1;
            ParamId::new(count - 1)
        };
        let shared = matches!(model.merge, Merge::SharedW { .. });
        let numbered = model
            .merge
            .subnets()
            .iter()
            .map(|name| {
                let subnet = model.subnet(name).expect("checked: merged subnets exist");
                let output = (!shared).then(|| (next(), next()));
                let inputs = subnet
                    .inputs
                    .iter()
                    .map(|input| {
                        let separate = matches!(
                            model.input(input).map(|i| &i.kind),
                            Some(InputKind::ItemId { embedding: Embedding::Separate { .. }, .. })
                        );
                        (separate.then(&mut next), next())
                    })
                    .collect();
                let (w_hh, bias) = (next(), next());
                let b_hn = (GruForm::for_subnet(model, name) == GruForm::ResetAfterProduct).then(&mut next);
                Numbered { output, inputs, w_hh, bias, b_hn }
            })
            .collect::<Vec<_>>();
        let shared_output = shared.then(|| (next(), next()));
        Builder { model, graph: DiGraph::new(), params: vec![None; count], numbered, shared_output, inputs: Vec::new() }
    }

    fn define(&mut self, id: ParamId, param: Param) {
        let slot = &mut self.params[id.index()];
        assert!(slot.is_none(), "parameter {id} defined twice");
        *slot = Some(param);
    }

    fn learning_rate(&self, subnet: &str) -> f64 {
        let own = self.model.subnet(subnet).and_then(|s| s.learning_rate);
        own.unwrap_or(self.model.train.optimizer.learning_rate)
    }

    fn input_node(&mut self, name: &str) -> NodeIndex {
        if let Some((_, index)) = self.inputs.iter().find(|(n, _)| n == name) {
            return *index;
        }
        let input = self.model.input(name).expect("checked: every subnet input exists");
        let (repr, width) = match &input.kind {
            InputKind::ItemId { embedding: Embedding::OneHot, .. } => (InputRepr::OneHot, items()),
            InputKind::ItemId { .. } => (InputRepr::Embedded, items()),
            InputKind::Dense => (InputRepr::Dense, Expr::symbol(Symbol::Dim(name.into()))),
            InputKind::Sparse => (InputRepr::Sparse, Expr::symbol(Symbol::Vocab(name.into()))),
            InputKind::Feature => (InputRepr::Feature, Expr::symbol(Symbol::Width(name.into()))),
        };
        let index = self.graph.add_node(Node::Input { name: name.into(), repr, width });
        self.inputs.push((name.into(), index));
        index
    }

    /// Adds subnet `k`'s inputs (and embeddings) and its GRU, defining their parameters; returns the GRU node.
    fn subnet(&mut self, k: usize) -> NodeIndex {
        let name = self.model.merge.subnets()[k].to_string();
        let subnet = self.model.subnet(&name).expect("checked: merged subnets exist").clone();
        let owner = Owner::Subnet(SubnetId::new(k));
        let lr = self.learning_rate(&name);
        let hidden = Expr::constant(subnet.hidden);
        let gates = Expr::constant(3 * subnet.hidden);
        let mut sources: Vec<(NodeIndex, Edge, Expr)> = Vec::new();
        let mut gru_inputs = Vec::new();
        for (position, input_name) in subnet.inputs.iter().enumerate() {
            let input_index = self.input_node(input_name);
            let input = self.model.input(input_name).expect("checked").clone();
            let Node::Input { width, .. } = &self.graph[input_index] else { unreachable!("input_node adds inputs") };
            let width = width.clone();
            let (embedding_param, w_in) = self.numbered[k].inputs[position];
            let (source, edge, projected_width, rows) = match &input.kind {
                InputKind::ItemId { embedding: Embedding::OneHot, .. } => {
                    (input_index, Edge { flow: Flow::ItemIds, shape: vec![batch()] }, width, RowSpace::InputItems)
                }
                InputKind::ItemId { embedding, dropout } => {
                    let (dim, constrained, table) = match embedding {
                        Embedding::Separate { dim } => {
                            (Expr::constant(*dim), false, embedding_param.expect("a separate embedding is numbered"))
                        }
                        // The output matrix that scores this subnet (its own, or shared-W's) is the embedding.
                        _ => {
                            let (w_out, _) = self.numbered[k].output.or(self.shared_output).expect("every subnet is scored");
                            (hidden.clone(), true, w_out)
                        }
                    };
                    let embedding_index = self.graph.add_node(Node::Embedding {
                        input: input_name.clone(),
                        dim: dim.clone(),
                        constrained,
                        dropout: *dropout,
                        table,
                    });
                    if let Embedding::Separate { dim: d } = embedding {
                        let init = Init::Uniform { fan_in: items(), fan_out: Expr::constant(*d), blocks: 1 };
                        let param = Param {
                            name: format!("{name}.E.{input_name}"),
                            role: Role::Embedding(input_name.clone()),
                            shape: vec![items(), dim.clone()],
                            owner,
                            init,
                            rows: RowSpace::InputItems,
                            learning_rate: lr,
                            tied_to: None,
                        };
                        self.define(table, param);
                    }
                    self.graph.add_edge(input_index, embedding_index, Edge { flow: Flow::ItemIds, shape: vec![batch()] });
                    let edge = Edge { flow: Flow::Embedded, shape: vec![batch(), dim.clone()] };
                    (embedding_index, edge, dim, RowSpace::Dense)
                }
                feature => {
                    let (flow, rows) = match feature {
                        InputKind::Dense => (Flow::DenseRows, RowSpace::Dense),
                        InputKind::Sparse => (Flow::SparseRows, RowSpace::Vocabulary(input_index.into())),
                        _ => (Flow::FeatureRows, RowSpace::Undecided),
                    };
                    (input_index, Edge { flow, shape: vec![batch(), width.clone()] }, width, rows)
                }
            };
            gru_inputs.push((GruInput { source: source.into(), w_in }, projected_width.clone(), rows));
            sources.push((source, edge, projected_width));
        }
        // GRU4Rec's fan-in for an input block is the whole input width, as if the blocks were one matrix.
        let input_width = sources.iter().fold(Expr::default(), |sum, (_, _, w)| sum.add(w));
        for ((gru_input, width, rows), input_name) in gru_inputs.iter().zip(&subnet.inputs) {
            let init = Init::Uniform { fan_in: input_width.clone(), fan_out: hidden.clone(), blocks: 3 };
            let param = Param {
                name: format!("{name}.W_in.{input_name}"),
                role: Role::InputWeights(input_name.clone()),
                shape: vec![width.clone(), gates.clone()],
                owner,
                init,
                rows: *rows,
                learning_rate: lr,
                tied_to: None,
            };
            self.define(gru_input.w_in, param);
        }
        let form = GruForm::for_subnet(self.model, &name);
        let Numbered { w_hh, bias, b_hn, .. } = self.numbered[k];
        let dense = |name: String, role: Role, shape: Vec<Expr>, init: Init| Param {
            name,
            role,
            shape,
            owner,
            init,
            rows: RowSpace::Dense,
            learning_rate: lr,
            tied_to: None,
        };
        let recurrent = Init::Uniform { fan_in: hidden.clone(), fan_out: hidden.clone(), blocks: 3 };
        self.define(w_hh, dense(format!("{name}.W_hh"), Role::Recurrent, vec![hidden.clone(), gates.clone()], recurrent));
        self.define(bias, dense(format!("{name}.b"), Role::Bias, vec![gates.clone()], Init::Zeros));
        if let Some(b_hn) = b_hn {
            self.define(b_hn, dense(format!("{name}.b_hn"), Role::CandidateBias, vec![hidden.clone()], Init::Zeros));
        }
        let gru = self.graph.add_node(Node::Gru {
            subnet: SubnetId::new(k),
            hidden: subnet.hidden,
            form,
            input_width,
            dropout: subnet.dropout,
            learning_rate: subnet.learning_rate,
            inputs: gru_inputs.iter().map(|(input, _, _)| *input).collect(),
            w_hh,
            bias,
            b_hn,
        });
        for (source, edge, _) in sources {
            self.graph.add_edge(source, gru, edge);
        }
        gru
    }

    fn hidden_edge(&self, subnet: &str) -> Edge {
        let hidden = self.model.subnet(subnet).unwrap().hidden;
        Edge { flow: Flow::Hidden, shape: vec![batch(), Expr::constant(hidden)] }
    }

    fn scores_edge() -> Edge {
        Edge { flow: Flow::Scores, shape: vec![batch(), sampled()] }
    }

    /// The constrained embedding that reads the output matrix of `subnets` (one subnet, or all under
    /// shared-W), if there is one.
    fn tied_embedding(&self, subnets: &[usize]) -> Option<NodeId> {
        self.graph.node_indices().find_map(|index| match &self.graph[index] {
            Node::Embedding { constrained: true, input, .. } => {
                let reader = self
                    .model
                    .merge
                    .subnets()
                    .iter()
                    .position(|s| self.model.subnet(s).is_some_and(|subnet| subnet.inputs.iter().any(|i| i == input)));
                reader.filter(|r| subnets.contains(r)).map(|_| index.into())
            }
            _ => None,
        })
    }

    /// A score part over `from`, with the output layer `(w, b)`, owned by `owner`.
    fn scores(&mut self, part: &str, subnet: Option<usize>, parts_of: &[usize], hidden: u64, from: NodeIndex, edge: Edge) -> NodeIndex {
        let (owner, prefix, numbered, lr) = match subnet {
            Some(k) => {
                let name = self.model.merge.subnets()[k].to_string();
                let lr = self.learning_rate(&name);
                (Owner::Subnet(SubnetId::new(k)), name, self.numbered[k].output, lr)
            }
            None => (Owner::Shared, "shared".to_string(), self.shared_output, self.model.train.optimizer.learning_rate),
        };
        let (w, b) = numbered.expect("the output layer is numbered");
        let tied_to = self.tied_embedding(parts_of);
        let rows = if tied_to.is_some() { RowSpace::InputAndScoredItems } else { RowSpace::ScoredItems };
        let init = Init::Uniform { fan_in: items(), fan_out: Expr::constant(hidden), blocks: 1 };
        let weights = Param {
            name: format!("{prefix}.W_out"),
            role: Role::Output,
            shape: vec![items(), Expr::constant(hidden)],
            owner,
            init,
            rows,
            learning_rate: lr,
            tied_to,
        };
        self.define(w, weights);
        let bias = Param {
            name: format!("{prefix}.b_out"),
            role: Role::OutputBias,
            shape: vec![items()],
            owner,
            init: Init::Zeros,
            rows: RowSpace::ScoredItems,
            learning_rate: lr,
            tied_to: None,
        };
        self.define(b, bias);
        let node = self.graph.add_node(Node::Scores { part: part.into(), subnet: subnet.map(SubnetId::new), w, b });
        self.graph.add_edge(from, node, edge);
        node
    }

    fn score_sum(&mut self, weights: Vec<f64>, parts: &[NodeIndex]) -> NodeIndex {
        let sum = self.graph.add_node(Node::ScoreSum { weights });
        for part in parts {
            self.graph.add_edge(*part, sum, Self::scores_edge());
        }
        sum
    }

    fn hidden_of(&self, k: usize) -> u64 {
        self.model.subnet(self.model.merge.subnets()[k]).expect("checked").hidden
    }

    fn build(mut self) -> Graph {
        let model = self.model;
        let names: Vec<String> = model.merge.subnets().into_iter().map(String::from).collect();
        let mut grus = Vec::new();
        let merged = match &model.merge {
            Merge::Single { .. } | Merge::Parallel { .. } => {
                let parts: Vec<NodeIndex> = (0..names.len())
                    .map(|k| {
                        let gru = self.subnet(k);
                        grus.push(gru);
                        let edge = self.hidden_edge(&names[k]);
                        self.scores(&names[k], Some(k), &[k], self.hidden_of(k), gru, edge)
                    })
                    .collect();
                match &model.merge {
                    Merge::Parallel { weights, .. } => self.score_sum(weights.clone(), &parts),
                    _ => parts[0],
                }
            }
            Merge::SharedW { weights, .. } => {
                grus = (0..names.len()).map(|k| self.subnet(k)).collect();
                let sum = self.graph.add_node(Node::HiddenSum { weights: weights.clone() });
                for (name, gru) in names.iter().zip(&grus) {
                    self.graph.add_edge(*gru, sum, self.hidden_edge(name));
                }
                let all: Vec<usize> = (0..names.len()).collect();
                let edge = self.hidden_edge(&names[0]);
                self.scores("shared", None, &all, self.hidden_of(0), sum, edge)
            }
            Merge::Interaction { primary, .. } => {
                let primary_gru = self.subnet(0);
                grus.push(primary_gru);
                let hidden = self.hidden_of(0);
                let edge = self.hidden_edge(primary);
                let mut parts = vec![self.scores(primary, Some(0), &[0], hidden, primary_gru, edge)];
                for (k, name) in names.iter().enumerate().skip(1) {
                    let gru = self.subnet(k);
                    grus.push(gru);
                    let feature = SubnetId::new(k);
                    let product = self.graph.add_node(Node::Interact { feature, primary: SubnetId::new(0) });
                    self.graph.add_edge(gru, product, self.hidden_edge(name));
                    self.graph.add_edge(primary_gru, product, self.hidden_edge(primary));
                    let part = format!("{name} ⊙ {primary}");
                    let edge = self.hidden_edge(name);
                    parts.push(self.scores(&part, Some(k), &[k], hidden, product, edge));
                }
                self.score_sum(vec![1.0; parts.len()], &parts)
            }
        };
        let activation = self.graph.add_node(Node::Activation { activation: model.activation });
        self.graph.add_edge(merged, activation, Self::scores_edge());
        let loss = self.graph.add_node(Node::Loss { loss: model.loss, negatives: model.train.negatives });
        self.graph.add_edge(activation, loss, Self::scores_edge());
        let subnets: Vec<Subnet> = names
            .iter()
            .zip(&grus)
            .enumerate()
            .map(|(k, (name, gru))| Subnet { name: name.clone(), hidden: self.hidden_of(k), gru: (*gru).into() })
            .collect();
        let params: Vec<Param> =
            self.params.into_iter().enumerate().map(|(id, p)| p.unwrap_or_else(|| panic!("parameter {id} was never defined"))).collect();
        let order = Order::of(&self.graph, &subnets);
        Graph { graph: self.graph, params, subnets, order }
    }
}

impl Order {
    fn of(graph: &DiGraph<Node, Edge>, subnets: &[Subnet]) -> Order {
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
        Order { subnets: subnet_nodes, head, head_backward }
    }
}

impl Graph {
    pub fn build(model: &Model) -> Graph {
        Builder::new(model).build()
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
    pub fn sources(&self, node: NodeId) -> Vec<NodeId> {
        let mut sources: Vec<NodeId> = self.graph.neighbors_directed(node.into(), Direction::Incoming).map(NodeId::from).collect();
        sources.sort();
        sources
    }

    /// The node the merged scores come from: the score sum, or the only scores node.
    pub fn merged(&self) -> NodeId {
        self.sources(self.activation())[0]
    }

    pub fn activation(&self) -> NodeId {
        self.sources(self.loss())[0]
    }

    pub fn loss(&self) -> NodeId {
        self.graph.node_indices().find(|&i| matches!(self.graph[i], Node::Loss { .. })).expect("every graph ends in a loss").into()
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
    pub fn param_counts(&self) -> Vec<(Owner, Expr)> {
        let mut counts: Vec<(Owner, Expr)> = Vec::new();
        for param in &self.params {
            match counts.iter_mut().find(|(owner, _)| *owner == param.owner) {
                Some((_, count)) => *count = count.add(&param.count()),
                None => counts.push((param.owner, param.count())),
            }
        }
        counts
    }

    pub fn total_params(&self) -> Expr {
        self.params.iter().fold(Expr::default(), |sum, p| sum.add(&p.count()))
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
