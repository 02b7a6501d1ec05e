//! Which rows a mini-batch touches: distinct item and vocabulary rows with each use's position among them,
//! and the embedding_bag triples of sparse feature rows. Both executors index a batch with these.

use super::network::{FeatureRows, Network};
use crate::data::features::SparseFeature;

/// Distinct rows of one index space with each use's position among them; buffers are reused across steps.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    /// `slot[row] = stamp << 32 | position` marks rows seen in the current step.
    slot: Vec<u64>,
    stamp: u64,
    pub(crate) rows: Vec<i64>,
}

impl Dedup {
    pub(crate) fn start(&mut self, space: usize) {
        if self.slot.len() < space {
            self.slot.resize(space, 0);
        }
        self.stamp += 1;
        self.rows.clear();
    }

    pub(crate) fn position(&mut self, row: u32) -> i64 {
        let entry = &mut self.slot[row as usize];
        if *entry >> 32 == self.stamp {
            return (*entry & 0xffff_ffff) as i64;
        }
        let position = self.rows.len() as u64;
        *entry = (self.stamp << 32) | position;
        self.rows.push(i64::from(row));
        position as i64
    }
}

/// `index(feature, its row positions)` for every sparse input node, indexed by node (None elsewhere); the
/// positions are started afresh for the step and their buffers reused across steps.
pub(crate) fn index_sparse<T>(
    network: &Network,
    vocabulary: &mut Vec<Dedup>,
    mut index: impl FnMut(&SparseFeature, &mut Dedup) -> T,
) -> Vec<Option<T>> {
    let nodes = network.ir().graph().graph.node_count();
    vocabulary.resize_with(nodes, Dedup::default);
    let mut indexed: Vec<Option<T>> = (0..nodes).map(|_| None).collect();
    for (node, feature) in network.features() {
        if let FeatureRows::Sparse(sparse) = feature {
            let dedup = &mut vocabulary[node.index()];
            dedup.start(sparse.width);
            indexed[node.index()] = Some(index(sparse, dedup));
        }
    }
    indexed
}

/// The embedding_bag triple of the items' sparse rows; `column_index` maps a vocabulary column to its
/// index in the table the bag reads.
pub(crate) fn bag_rows(sparse: &SparseFeature, items: &[u32], mut column_index: impl FnMut(u32) -> i64) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    let mut offsets = Vec::with_capacity(items.len());
    for &item in items {
        offsets.push(indices.len() as i64);
        let range = sparse.indptr[item as usize] as usize..sparse.indptr[item as usize + 1] as usize;
        for (&column, &value) in sparse.indices[range.clone()].iter().zip(&sparse.values[range]) {
            indices.push(column_index(column));
            weights.push(value);
        }
    }
    (indices, offsets, weights)
}
