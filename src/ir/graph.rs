//! The dataflow graph of a checked model: inputs, embeddings, GRUs, merges, output scores, activation, loss.
//!
//! Nodes are added in one canonical order (subnets in merge order, each preceded by the inputs it reads
//! first), so the same model always yields the same node numbering, whatever order the spec declared it in.

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::expr::{Expr, Symbol};
use crate::check::{Activation, Embedding, InputKind, Loss, Merge, Model, Negatives};

/// Which subnet owns a parameter, i.e. in which training steps it may change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "owner", content = "subnet")]
pub enum Owner {
    Subnet(String),
    /// Shared by all subnets: shared-W's output matrix and bias.
    Shared,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Subnet(name) => write!(f, "{name}"),
            Owner::Shared => write!(f, "shared"),
        }
    }
}

/// One parameter tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: String,
    pub shape: Vec<Expr>,
    pub owner: Owner,
    /// Rows touched per step are updated sparsely (item- and vocabulary-indexed matrices).
    pub sparse_rows: bool,
}

impl Param {
    pub fn count(&self) -> Expr {
        match self.shape.as_slice() {
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "node")]
pub enum Node {
    Input {
        name: String,
        repr: InputRepr,
        width: Expr,
    },
    /// A separate item embedding, or (constrained) the rows of the owning subnet's output matrix.
    Embedding {
        input: String,
        dim: Expr,
        constrained: bool,
        dropout: f64,
        params: Vec<Param>,
    },
    Gru {
        subnet: String,
        hidden: u64,
        form: GruForm,
        input_width: Expr,
        dropout: f64,
        learning_rate: Option<f64>,
        params: Vec<Param>,
    },
    /// Interaction: the feature subnet's hidden state times the primary's, element-wise.
    Interact {
        feature: String,
        primary: String,
    },
    /// shared-W: the weighted sum of hidden states.
    HiddenSum {
        weights: Vec<f64>,
    },
    /// `H · W[Y]^T + b[Y]`: scores of the sampled items only.
    Scores {
        part: String,
        params: Vec<Param>,
    },
    /// Parallel and interaction: the weighted sum of score parts.
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
    pub fn params(&self) -> &[Param] {
        match self {
            Node::Embedding { params, .. } | Node::Gru { params, .. } | Node::Scores { params, .. } => params,
            _ => &[],
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

/// The compiled dataflow graph of one model.
#[derive(Debug, Clone)]
pub struct Graph {
    pub graph: DiGraph<Node, Edge>,
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

fn param(name: &str, shape: Vec<Expr>, owner: &Owner, sparse_rows: bool) -> Param {
    Param { name: name.to_string(), shape, owner: owner.clone(), sparse_rows }
}

/// The output parameters of one score part: `W [n_items, H]` and `b [n_items]`, updated row-sparsely.
fn output_params(owner: &Owner, hidden: u64, tied_embedding: bool) -> Vec<Param> {
    let mut w = param("W_out", vec![items(), Expr::constant(hidden)], owner, true);
    if tied_embedding {
        w.name.push_str(" (= constrained input embedding)");
    }
    vec![w, param("b_out", vec![items()], owner, true)]
}

struct Builder<'m> {
    model: &'m Model,
    graph: DiGraph<Node, Edge>,
    inputs: Vec<(String, NodeIndex)>,
}

impl Builder<'_> {
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

    /// Adds the subnet's inputs (and embeddings) and its GRU; returns the GRU node.
    fn subnet(&mut self, name: &str) -> NodeIndex {
        let subnet = self.model.subnet(name).expect("checked: merged subnets exist");
        let owner = Owner::Subnet(name.into());
        let mut sources: Vec<(NodeIndex, Edge, Expr)> = Vec::new();
        for input_name in &subnet.inputs {
            let input_index = self.input_node(input_name);
            let input = self.model.input(input_name).unwrap();
            let Node::Input { width, .. } = &self.graph[input_index] else { unreachable!() };
            let width = width.clone();
            match &input.kind {
                InputKind::ItemId { embedding: Embedding::OneHot, .. } => {
                    sources.push((input_index, Edge { flow: Flow::ItemIds, shape: vec![batch()] }, width));
                }
                InputKind::ItemId { embedding, dropout } => {
                    let (dim, constrained, params) = match embedding {
                        Embedding::Separate { dim } => {
                            (Expr::constant(*dim), false, vec![param("E", vec![items(), Expr::constant(*dim)], &owner, true)])
                        }
                        // Tied to W_out: no parameters of its own, counted once at the output.
                        _ => (Expr::constant(subnet.hidden), true, vec![]),
                    };
                    let embedding_index = self.graph.add_node(Node::Embedding {
                        input: input_name.clone(),
                        dim: dim.clone(),
                        constrained,
                        dropout: *dropout,
                        params,
                    });
                    self.graph.add_edge(input_index, embedding_index, Edge { flow: Flow::ItemIds, shape: vec![batch()] });
                    sources.push((embedding_index, Edge { flow: Flow::Embedded, shape: vec![batch(), dim.clone()] }, dim));
                }
                feature => {
                    let flow = match feature {
                        InputKind::Dense => Flow::DenseRows,
                        InputKind::Sparse => Flow::SparseRows,
                        _ => Flow::FeatureRows,
                    };
                    sources.push((input_index, Edge { flow, shape: vec![batch(), width.clone()] }, width))
                }
            }
        }
        let input_width = sources.iter().fold(Expr::default(), |sum, (_, _, w)| sum.add(w));
        let gates = 3 * subnet.hidden;
        // Item- and vocabulary-indexed input rows are looked up, so they update sparsely; dense ones do not.
        let sparse_input = subnet.inputs.iter().all(|i| {
            matches!(self.model.input(i).map(|i| &i.kind), Some(InputKind::ItemId { embedding: Embedding::OneHot, .. } | InputKind::Sparse))
        });
        let form = GruForm::for_subnet(self.model, name);
        let mut params = vec![
            param("W_in", vec![input_width.clone(), Expr::constant(gates)], &owner, sparse_input),
            param("W_hh", vec![Expr::constant(subnet.hidden), Expr::constant(gates)], &owner, false),
            param("b", vec![Expr::constant(gates)], &owner, false),
        ];
        if form == GruForm::ResetAfterProduct {
            params.push(param("b_hn", vec![Expr::constant(subnet.hidden)], &owner, false));
        }
        let gru = self.graph.add_node(Node::Gru {
            subnet: name.into(),
            hidden: subnet.hidden,
            form,
            input_width,
            dropout: subnet.dropout,
            learning_rate: subnet.learning_rate,
            params,
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

    fn constrained_owner(&self, subnet: &str) -> bool {
        self.model
            .subnet(subnet)
            .unwrap()
            .inputs
            .iter()
            .any(|i| matches!(self.model.input(i).map(|i| &i.kind), Some(InputKind::ItemId { embedding: Embedding::Constrained, .. })))
    }

    fn scores(&mut self, part: &str, owner: Owner, hidden: u64, tied: bool, from: NodeIndex, edge: Edge) -> NodeIndex {
        let params = output_params(&owner, hidden, tied);
        let node = self.graph.add_node(Node::Scores { part: part.into(), params });
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

    fn build(mut self) -> Graph {
        let model = self.model;
        let merged = match &model.merge {
            Merge::Single { subnet } => {
                let gru = self.subnet(subnet);
                let hidden = model.subnet(subnet).unwrap().hidden;
                let tied = self.constrained_owner(subnet);
                self.scores(subnet, Owner::Subnet(subnet.clone()), hidden, tied, gru, self.hidden_edge(subnet))
            }
            Merge::Parallel { subnets, weights } => {
                let parts: Vec<NodeIndex> = subnets
                    .iter()
                    .map(|name| {
                        let gru = self.subnet(name);
                        let hidden = model.subnet(name).unwrap().hidden;
                        let tied = self.constrained_owner(name);
                        self.scores(name, Owner::Subnet(name.clone()), hidden, tied, gru, self.hidden_edge(name))
                    })
                    .collect();
                self.score_sum(weights.clone(), &parts)
            }
            Merge::SharedW { subnets, weights } => {
                let grus: Vec<NodeIndex> = subnets.iter().map(|name| self.subnet(name)).collect();
                let sum = self.graph.add_node(Node::HiddenSum { weights: weights.clone() });
                for (name, gru) in subnets.iter().zip(grus) {
                    self.graph.add_edge(gru, sum, self.hidden_edge(name));
                }
                let hidden = model.subnet(&subnets[0]).unwrap().hidden;
                let tied = subnets.iter().any(|s| self.constrained_owner(s));
                self.scores("shared", Owner::Shared, hidden, tied, sum, self.hidden_edge(&subnets[0]))
            }
            Merge::Interaction { primary, features } => {
                let primary_gru = self.subnet(primary);
                let hidden = model.subnet(primary).unwrap().hidden;
                let tied = self.constrained_owner(primary);
                let mut parts =
                    vec![self.scores(primary, Owner::Subnet(primary.clone()), hidden, tied, primary_gru, self.hidden_edge(primary))];
                for feature in features {
                    let gru = self.subnet(feature);
                    let product = self.graph.add_node(Node::Interact { feature: feature.clone(), primary: primary.clone() });
                    self.graph.add_edge(gru, product, self.hidden_edge(feature));
                    self.graph.add_edge(primary_gru, product, self.hidden_edge(primary));
                    let part = format!("{feature} ⊙ {primary}");
                    let tied = self.constrained_owner(feature);
                    parts.push(self.scores(&part, Owner::Subnet(feature.clone()), hidden, tied, product, self.hidden_edge(feature)));
                }
                self.score_sum(vec![1.0; parts.len()], &parts)
            }
        };
        let activation = self.graph.add_node(Node::Activation { activation: model.activation });
        self.graph.add_edge(merged, activation, Self::scores_edge());
        let loss = self.graph.add_node(Node::Loss { loss: model.loss, negatives: model.train.negatives });
        self.graph.add_edge(activation, loss, Self::scores_edge());
        Graph { graph: self.graph }
    }
}

impl Graph {
    pub fn build(model: &Model) -> Graph {
        Builder { model, graph: DiGraph::new(), inputs: Vec::new() }.build()
    }

    /// Every parameter, in node order.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.graph.node_indices().flat_map(move |i| self.graph[i].params().iter())
    }

    /// Parameter count per owner, in order of first appearance.
    pub fn param_counts(&self) -> Vec<(Owner, Expr)> {
        let mut counts: Vec<(Owner, Expr)> = Vec::new();
        for param in self.params() {
            match counts.iter_mut().find(|(owner, _)| *owner == param.owner) {
                Some((_, count)) => *count = count.add(&param.count()),
                None => counts.push((param.owner.clone(), param.count())),
            }
        }
        counts
    }

    pub fn total_params(&self) -> Expr {
        self.params().fold(Expr::default(), |sum, p| sum.add(&p.count()))
    }
}

/// Folds known sizes into a node's widths and parameter shapes.
pub(crate) fn bind_node(node: &mut Node, bindings: &super::Bindings) {
    match node {
        Node::Input { width, .. } => *width = width.bind(bindings),
        Node::Embedding { dim, .. } => *dim = dim.bind(bindings),
        Node::Gru { input_width, .. } => *input_width = input_width.bind(bindings),
        _ => {}
    }
    let params = match node {
        Node::Embedding { params, .. } | Node::Gru { params, .. } | Node::Scores { params, .. } => params,
        _ => return,
    };
    for param in params {
        for dim in &mut param.shape {
            *dim = dim.bind(bindings);
        }
    }
}
