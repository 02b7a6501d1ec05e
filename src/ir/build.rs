//! Building the graph from a checked model: the parameter table numbered first, in initialisation order,
//! then the nodes in canonical order, each defining the parameters it owns.

use petgraph::graph::{DiGraph, NodeIndex};

use super::expr::{Expr, Symbol};
use super::graph::{Edge, Flow, Graph, GruForm, GruInput, InputRepr, Node, Order, Subnet};
use super::handle::{NodeId, ParamId, SubnetId};
use super::param::{Init, Owner, Param, Role, RowSpace};
use crate::check::{Embedding, InputKind, Merge, Model};

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

pub(super) struct Builder<'m> {
    model: &'m Model,
    graph: DiGraph<Node, Edge>,
    params: Vec<Option<Param>>,
    numbered: Vec<Numbered>,
    shared_output: Option<(ParamId, ParamId)>,
    inputs: Vec<(String, NodeIndex)>,
}

impl Builder<'_> {
    pub(super) fn new(model: &Model) -> Builder<'_> {
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
        let gates = Expr::constant(subnet.hidden.saturating_mul(3));
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

    pub(super) fn build(mut self) -> Graph {
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
