//! Graph IR: the checked model as a petgraph dataflow graph with symbolic shapes, plus the training plan.

pub mod expr;
pub mod graph;
pub mod plan;
pub mod render;

use crate::check::Model;
pub use expr::{Bindings, Expr, Symbol};
pub use graph::Graph;
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

    /// Replaces bound symbols in every shape and parameter shape by their sizes.
    pub fn bind(&mut self, bindings: &Bindings) {
        for node in self.graph.graph.node_weights_mut() {
            graph::bind_node(node, bindings);
        }
        for edge in self.graph.graph.edge_weights_mut() {
            for dim in &mut edge.shape {
                *dim = dim.bind(bindings);
            }
        }
    }
}
