//! Typed handles into the IR's tables: graph nodes, parameters and subnets, each its own index type so that
//! one can never be passed where another is meant (naga's `Handle<T>` in spirit).

use serde::Serialize;

macro_rules! handle {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(u32);

        impl $name {
            pub fn new(index: usize) -> Self {
                $name(u32::try_from(index).expect("an IR table holds fewer than 2^32 entries"))
            }

            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

handle!(
    /// A node of the dataflow graph (petgraph's node index, typed).
    NodeId
);
handle!(
    /// An entry of the parameter table; the table's order is the order parameters are initialised in.
    ParamId
);
handle!(
    /// A subnet, numbered in merge order: the order the merge combines the subnets' contributions.
    SubnetId
);

impl From<petgraph::graph::NodeIndex> for NodeId {
    fn from(index: petgraph::graph::NodeIndex) -> Self {
        NodeId::new(index.index())
    }
}

impl From<NodeId> for petgraph::graph::NodeIndex {
    fn from(id: NodeId) -> Self {
        petgraph::graph::NodeIndex::new(id.index())
    }
}
