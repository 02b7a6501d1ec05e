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
}
