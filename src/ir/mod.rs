//! Graph IR: the checked model as a petgraph dataflow graph with a parameter table and symbolic shapes, the
//! training plan, and the same bound to a dataset's sizes: what lowering executes.
//!
//! - [`handle`]: typed handles (`NodeId`, `ParamId`, `SubnetId`) into the graph's tables.
//! - [`graph`]: nodes, edges and the order executors visit nodes in; built by `build`, which numbers the
//!   parameter table first.
//! - [`param`]: the parameter table's entries: shape, initialisation, row space, learning rate, owner, ties.
//! - [`plan`]: the schedule lowered into phases and steps.
//! - [`expr`]: sizes as linear expressions over the symbols only data can fix.
//! - [`render`]: text (the snapshot format), DOT and JSON; the bound IR's parameter table.
//! - [`memory`]: the memory a run of the bound IR will take, and the refusal of one that cannot fit.
//!
//! [`Compiled`] is what a spec alone gives; [`Bound`] is a compiled spec whose every size is a number,
//! and the only form the later stages accept.

mod build;
pub mod cost;
pub mod expr;
pub mod graph;
pub mod handle;
pub mod memory;
pub mod param;
pub mod plan;
pub mod render;

pub use crate::check::{Activation, EarlyStop, Loss, StopMetric};
use crate::check::{Model, Negatives};
pub use expr::{Bindings, Expr, Symbol};
pub use graph::{Graph, GruForm, GruInput, Init, InputRepr, Node, Owner, Param, ParamCount, Role, RowSpace};
pub use handle::{NodeId, ParamId, SubnetId};
pub use plan::Plan;

/// A spec compiled to its graph and plan.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub model: Model,
    pub graph: Graph,
    pub plan: Plan,
}

impl Compiled {
    pub fn new(model: Model) -> Compiled {
        let graph = Graph::build(&model);
        let plan = Plan::lower(&model);
        Compiled { model, graph, plan }
    }

    /// Replaces bound symbols in every shape, width and initialisation by their sizes.
    pub fn bind(&mut self, bindings: &Bindings) {
        for node in self.graph.graph.node_weights_mut() {
            graph::bind_node(node, bindings);
        }
        for edge in self.graph.graph.edge_weights_mut() {
            for dim in &mut edge.shape {
                *dim = dim.bind(bindings);
            }
        }
        for param in &mut self.graph.params {
            param::bind_param(param, bindings);
        }
    }

    /// The sizes the spec itself fixes: the mini-batch and the scored items per example.
    pub fn training_sizes(&self) -> (u64, u64) {
        (self.plan.batch, self.plan.batch.saturating_add(self.negatives().extra))
    }

    pub fn negatives(&self) -> Negatives {
        match self.graph.node(self.graph.loss()) {
            Node::Loss { negatives, .. } => *negatives,
            _ => unreachable!("loss() is a loss node"),
        }
    }
}

/// Sizes a compiled spec needs and was not given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unbound {
    #[error("input `{0}` is a `feature` input: a run config must make it `dense` or `sparse` before it can run")]
    Feature(String),
    #[error("no size is bound for {}", .0.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))]
    Sizes(Vec<Symbol>),
}

/// A compiled spec bound to a dataset: every shape, width and fan is a number. Lowering reads the model
/// from here and nowhere else.
#[derive(Debug, Clone)]
pub struct Bound {
    compiled: Compiled,
}

impl Bound {
    /// Binds `sizes` (the catalogue and input widths; the batch sizes come from the plan).
    pub fn new(mut compiled: Compiled, sizes: &Bindings) -> Result<Bound, Unbound> {
        if let Some(name) = compiled.graph.graph.node_weights().find_map(|node| match node {
            Node::Input { name, repr: InputRepr::Feature, .. } => Some(name.clone()),
            _ => None,
        }) {
            return Err(Unbound::Feature(name));
        }
        let (batch, sampled) = compiled.training_sizes();
        compiled.bind(&Bindings { batch: Some(batch), sampled: Some(sampled), ..sizes.clone() });
        let graph = &compiled.graph;
        let mut missing: Vec<Symbol> = Vec::new();
        let exprs = graph
            .graph
            .node_weights()
            .flat_map(|node| match node {
                Node::Input { width, .. } => vec![width],
                Node::Embedding { dim, .. } => vec![dim],
                Node::Gru { input_width, .. } => vec![input_width],
                _ => vec![],
            })
            .chain(graph.graph.edge_weights().flat_map(|e| &e.shape))
            .chain(graph.params.iter().flat_map(|p| {
                let fans = match &p.init {
                    Init::Uniform { fan_in, fan_out, .. } => vec![fan_in, fan_out],
                    Init::Zeros => vec![],
                };
                p.shape.iter().chain(fans)
            }));
        for expr in exprs {
            for symbol in expr.terms.keys() {
                if !missing.contains(symbol) {
                    missing.push(symbol.clone());
                }
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(Unbound::Sizes(missing));
        }
        Ok(Bound { compiled })
    }

    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    pub fn name(&self) -> &str {
        &self.compiled.model.name
    }

    pub fn graph(&self) -> &Graph {
        &self.compiled.graph
    }

    pub fn plan(&self) -> &Plan {
        &self.compiled.plan
    }

    pub fn negatives(&self) -> Negatives {
        self.compiled.negatives()
    }

    /// A parameter's shape.
    pub fn shape(&self, param: ParamId) -> Vec<i64> {
        self.graph().param(param).shape.iter().map(|d| number(d) as i64).collect()
    }

    /// The number of values of every parameter; `u64::MAX` for a model past that, which no memory check passes.
    pub fn parameter_count(&self) -> u64 {
        match self.graph().total_params() {
            ParamCount::Counted(count) => number(&count),
            ParamCount::Overflows => u64::MAX,
        }
    }

    /// The catalogue size.
    pub fn items(&self) -> usize {
        let scores = self.graph().graph.node_weights().find_map(|node| match node {
            Node::Scores { w, .. } => Some(*w),
            _ => None,
        });
        self.shape(scores.expect("every graph scores items"))[0] as usize
    }

    pub fn activation(&self) -> Activation {
        match self.graph().node(self.graph().activation()) {
            Node::Activation { activation } => *activation,
            _ => unreachable!("activation() is an activation node"),
        }
    }

    pub fn loss(&self) -> Loss {
        match self.graph().node(self.graph().loss()) {
            Node::Loss { loss, .. } => *loss,
            _ => unreachable!("loss() is a loss node"),
        }
    }
}

/// A bound size.
pub fn number(expr: &Expr) -> u64 {
    expr.as_constant().expect("a bound IR has no symbolic size")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARALLEL: &str = "model m {\n input id : item_id\n input image : dense\n subnet a = gru(id, hidden = 100)\n subnet b = gru(image, hidden = 100)\n merge = parallel(a, b)\n}\n";

    #[test]
    fn parameter_counts_follow_the_gru_and_output_shapes() {
        let compiled = crate::compile("m", PARALLEL).unwrap();
        // GRU over one-hot IDs: W_in [n, 3H] + W_hh [H, 3H] + b [3H]; output W_out [n, H] + b_out [n].
        let counts = compiled.graph.param_counts();
        assert_eq!(counts[0].1.to_string(), "401·n_items + 30,300");
        assert_eq!(counts[1].1.to_string(), "101·n_items + 300·dim(image) + 30,300");
    }

    #[test]
    fn a_total_past_u64_says_it_overflows_and_the_subnets_under_it_keep_their_counts() {
        // Seven GRUs of 10^9 units: each W_hh is 3·10^18 values, seven pass 2^64 - 1 (about 1.8·10^19).
        let subnets: String = (0..7).map(|k| format!(" subnet s{k} = gru(id, hidden = 1000000000)\n")).collect();
        let names: Vec<String> = (0..7).map(|k| format!("s{k}")).collect();
        let spec = format!("model m {{\n input id : item_id\n{subnets} merge = parallel({})\n}}\n", names.join(", "));
        let mut compiled = crate::compile("m", &spec).unwrap();
        let counts = compiled.graph.param_counts();
        assert_eq!(counts[0].1.to_string(), "4,000,000,001·n_items + 3,000,000,003,000,000,000");
        assert_eq!(compiled.graph.total_params(), ParamCount::Overflows);
        assert_eq!(compiled.graph.total_params().to_string(), "overflows: more than 18,446,744,073,709,551,615 (2^64 - 1)");
        compiled.bind(&Bindings { items: Some(1000), ..Default::default() });
        assert_eq!(compiled.graph.total_params().as_constant(), None, "binding the catalogue does not bring it back");
        assert_eq!(serde_json::to_value(compiled.graph.total_params()).unwrap(), serde_json::json!({ "overflows": true }));
    }

    #[test]
    fn binding_sizes_makes_shapes_and_counts_concrete() {
        let mut compiled = crate::compile("m", PARALLEL).unwrap();
        let bindings = Bindings { items: Some(1000), widths: [("image".to_string(), 512)].into(), batch: Some(50), sampled: Some(50) };
        compiled.bind(&bindings);
        let id_net = 300 * 1000 + 100 * 300 + 300 + 100 * 1000 + 1000;
        let image_net = 512 * 300 + 100 * 300 + 300 + 100 * 1000 + 1000;
        assert_eq!(compiled.graph.total_params().as_constant(), Some(id_net + image_net));
        assert!(compiled.graph.graph.edge_weights().all(|e| e.shape.iter().all(|d| d.as_constant().is_some())));
        assert!(render::text(&compiled).contains("input image: dense, width 512"));
    }

    #[test]
    fn the_parameter_table_is_numbered_in_initialisation_order() {
        let compiled = crate::compile("m", PARALLEL).unwrap();
        let names: Vec<&str> = compiled.graph.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a.W_out", "a.b_out", "a.W_in.id", "a.W_hh", "a.b", "b.W_out", "b.b_out", "b.W_in.image", "b.W_hh", "b.b"]);
        let w_in = &compiled.graph.params[2];
        assert_eq!(w_in.rows, RowSpace::InputItems);
        assert_eq!(w_in.init, Init::Uniform { fan_in: Expr::symbol(Symbol::Items), fan_out: Expr::constant(100), blocks: 3 });
    }

    #[test]
    fn a_constrained_embedding_is_tied_to_the_output_matrix_that_scores_it() {
        for merge in ["shared_w(a, b)", "parallel(a, b)"] {
            let text = format!(
                "model m {{\n input id : item_id(embedding = constrained)\n input image : dense\n subnet a = gru(id, hidden = 8)\n subnet b = gru(image, hidden = 8)\n merge = {merge}\n}}\n"
            );
            let graph = crate::compile("m", &text).unwrap().graph;
            let (embedding, table) = graph
                .graph
                .node_indices()
                .find_map(|i| match &graph.graph[i] {
                    Node::Embedding { table, .. } => Some((NodeId::from(i), *table)),
                    _ => None,
                })
                .unwrap();
            let owner = if merge.starts_with("shared") { "shared.W_out" } else { "a.W_out" };
            assert_eq!(graph.param(table).name, owner, "{merge}");
            assert_eq!(graph.param(table).tied_to, Some(embedding), "{merge}");
            assert_eq!(graph.param(table).rows, RowSpace::InputAndScoredItems, "{merge}");
            assert_eq!(graph.params.iter().filter(|p| p.tied_to.is_some()).count(), 1, "{merge}");
        }
    }

    #[test]
    fn binding_leaves_no_symbol_or_says_which() {
        let compiled = crate::compile("m", PARALLEL).unwrap();
        let partial = Bindings { items: Some(1000), ..Default::default() };
        assert_eq!(Bound::new(compiled.clone(), &partial).unwrap_err(), Unbound::Sizes(vec![Symbol::Dim("image".into())]));
        let all = Bindings { items: Some(1000), widths: [("image".to_string(), 512)].into(), ..Default::default() };
        let bound = Bound::new(compiled, &all).unwrap();
        assert_eq!(bound.shape(ParamId::new(7)), [512, 300]);
        assert_eq!(bound.items(), 1000);
    }
}
