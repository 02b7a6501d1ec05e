//! The fused executor's working memory: node values and gradients of one step, the pool their buffers come
//! from, the rows a mini-batch touches, and the dropout stream.

use super::super::network::Network;
use super::super::rows::Dedup;
use super::row_width;
use crate::ir::{Bound, Node, NodeId, ParamId, RowSpace, SubnetId};
use crate::rng::SplitMix64;

/// A dropout stream: each epoch draws its masks from its own seed.
pub(super) struct Stream(pub(super) SplitMix64);

impl Stream {
    /// A keep-scale per element: `1 / (1 - p)` with probability `1 - p`, else 0.
    pub(super) fn mask(&mut self, count: usize, p: f64) -> Vec<f32> {
        let scale = (1.0 / (1.0 - p)) as f32;
        let p = p as f32;
        (0..count).map(|_| if self.0.unit_f32() >= p { scale } else { 0.0 }).collect()
    }
}

/// Buffers kept from step to step, so that the large ones are not mapped, faulted in and zeroed anew each
/// time. A buffer comes back with stale contents: every user overwrites it whole (or asks for [`Pool::zeros`]).
#[derive(Default)]
pub(super) struct Pool(Vec<Vec<f32>>);

impl Pool {
    pub(super) fn take(&mut self, len: usize) -> Vec<f32> {
        // The shortest buffer that already held `len` values is shortened, not filled: growing a buffer writes
        // zeros first, and shortening a long one for a short use would make its next long use grow it again.
        let held = self.0.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(at, _)| at);
        let fits = held.or_else(|| self.0.iter().position(|b| b.capacity() >= len));
        let mut buffer = match fits {
            Some(at) => self.0.swap_remove(at),
            None => self.0.pop().unwrap_or_default(),
        };
        buffer.resize(len, 0.0);
        buffer.truncate(len);
        buffer
    }

    pub(super) fn zeros(&mut self, len: usize) -> Vec<f32> {
        let mut buffer = self.take(len);
        buffer.fill(0.0);
        buffer
    }

    pub(super) fn give(&mut self, buffer: Vec<f32>) {
        self.0.push(buffer);
    }
}

/// One GRU's forward pass on a mini-batch, kept for its backward pass.
pub(super) struct GruRun {
    /// The state before the step `[B, H]`.
    pub(super) before: Vec<f32>,
    pub(super) reset: Vec<f32>,
    pub(super) update: Vec<f32>,
    pub(super) candidate: Vec<f32>,
    /// Reset-before: `r ⊙ h` `[B, H]`. Reset-after: `h W_hh` with `b_hn` on the candidate block `[B, 3H]`.
    pub(super) mixed: Vec<f32>,
    /// The new state after hidden dropout: what is scored and carried.
    pub(super) output: Vec<f32>,
    pub(super) dropout: Option<Vec<f32>>,
}

/// What a node computed in the current step, kept for its backward pass.
pub(super) enum Value {
    /// Rows `[B, width]` a GRU multiplies with its input weights: gathered dense features, or embedding rows
    /// after dropout, with the dropout mask.
    Rows {
        rows: Vec<f32>,
        mask: Option<Vec<f32>>,
    },
    Gru(GruRun),
    /// An interaction product or shared-W's summed state `[B, H]`.
    State(Vec<f32>),
    /// A score part `[B, S]`, with the output rows `W[Y]` `[S, H]` it was scored against.
    Part {
        weights: Vec<f32>,
        part: Vec<f32>,
    },
    /// Merged scores `[B, S]`.
    Scores(Vec<f32>),
    /// Activated scores `[B, S]`.
    Activated(Vec<f32>),
    /// The loss's gradient with respect to the activated scores, already divided by the nominal batch size.
    Loss(Vec<f32>),
}

/// The gradient with respect to a node's output: its own buffer, or the same as another node's (a score
/// part of weight 1 receives the merged scores' gradient unchanged).
pub(super) enum Gradient {
    Own(Vec<f32>),
    Of(NodeId),
}

/// Where each use of a row space lands among the batch's distinct rows.
#[derive(Default)]
pub(super) struct BatchRows {
    pub(super) input: Vec<usize>,
    pub(super) input_rows: Vec<i64>,
    pub(super) scored: Vec<usize>,
    pub(super) scored_rows: Vec<i64>,
    pub(super) both_input: Vec<usize>,
    pub(super) both_scored: Vec<usize>,
    pub(super) both_rows: Vec<i64>,
    /// Indexed by node, for sparse inputs: each row's entries `offsets[b]..offsets[b + 1]`, their positions
    /// among the distinct vocabulary rows, and their weights.
    pub(super) bags: Vec<Option<Bag>>,
}

pub(super) struct Bag {
    pub(super) offsets: Vec<usize>,
    pub(super) positions: Vec<usize>,
    pub(super) weights: Vec<f32>,
    pub(super) rows: Vec<i64>,
}

impl BatchRows {
    /// The distinct rows of a row space this mini-batch touches; None for parameters used whole.
    pub(super) fn rows(&self, space: RowSpace) -> Option<&[i64]> {
        match space {
            RowSpace::Dense => None,
            RowSpace::InputItems => Some(&self.input_rows),
            RowSpace::ScoredItems => Some(&self.scored_rows),
            RowSpace::InputAndScoredItems => Some(&self.both_rows),
            RowSpace::Vocabulary(input) => Some(&self.bag(input).rows),
            RowSpace::Undecided => unreachable!("a bound IR has no undecided row space"),
        }
    }

    pub(super) fn bag(&self, input: NodeId) -> &Bag {
        self.bags[input.index()].as_ref().expect("every sparse input is indexed")
    }
}

/// The batch's item and vocabulary row indexers, kept across batches.
#[derive(Default)]
pub(super) struct Indexers {
    pub(super) items: Dedup,
    pub(super) vocabulary: Vec<Dedup>,
}

/// Rows `items` of a `[_, width]` table, one after another, into `rows`.
pub(super) fn gather_rows(table: &[f32], width: usize, items: &[u32], rows: &mut [f32]) {
    for (row, &item) in rows.chunks_exact_mut(width.max(1)).zip(items) {
        row.copy_from_slice(&table[item as usize * width..(item as usize + 1) * width]);
    }
}

/// Each parameter's gradient over the rows a step touches (indexed by [`ParamId`]), and whether the step
/// reached it yet.
#[derive(Default)]
pub(super) struct ParamGradients {
    pub(super) buffers: Vec<Vec<f32>>,
    pub(super) reached: Vec<bool>,
}

impl ParamGradients {
    pub(super) fn new(params: usize) -> Self {
        ParamGradients { buffers: (0..params).map(|_| Vec::new()).collect(), reached: vec![false; params] }
    }

    /// Starts the gradient of a parameter for this step (zeros), once.
    pub(super) fn zeroed(&mut self, ir: &Bound, network: &Network, rows: &BatchRows, param: ParamId) -> &mut Vec<f32> {
        let (gradient, started) = self.for_product(ir, network, rows, param);
        if !started {
            gradient.fill(0.0);
        }
        gradient
    }

    /// A parameter's gradient buffer for a matrix product that writes all of it: returns whether the
    /// product must add (the gradient was started earlier in this step) or may overwrite (no zeroing).
    pub(super) fn for_product(&mut self, ir: &Bound, network: &Network, rows: &BatchRows, param: ParamId) -> (&mut Vec<f32>, bool) {
        let id = param.index();
        if self.reached[id] {
            return (&mut self.buffers[id], true);
        }
        self.reached[id] = true;
        let value = &network.param(param).value;
        let size = match rows.rows(ir.graph().param(param).rows) {
            Some(touched) => touched.len() * row_width(value),
            None => value.numel(),
        };
        let gradient = &mut self.buffers[id];
        gradient.resize(size, 0.0);
        gradient.truncate(size);
        (gradient, false)
    }
}

/// The new state of subnet `k` in this mini-batch: from this step, or from the earlier step that ran it.
pub(super) fn output_of<'a>(values: &'a [Option<Value>], fresh_output: &'a [Option<Vec<f32>>], ir: &Bound, k: SubnetId) -> &'a [f32] {
    match &values[ir.graph().subnet(k).gru.index()] {
        Some(Value::Gru(run)) => &run.output,
        _ => fresh_output[k.index()].as_deref().expect("a reused subnet ran in an earlier step"),
    }
}

/// The hidden state a scores node reads: a GRU's output, an interaction product or shared-W's sum.
pub(super) fn state_of<'a>(values: &'a [Option<Value>], fresh_output: &'a [Option<Vec<f32>>], ir: &Bound, node: NodeId) -> &'a [f32] {
    match ir.graph().node(node) {
        Node::Gru { subnet, .. } => output_of(values, fresh_output, ir, *subnet),
        Node::Interact { .. } | Node::HiddenSum { .. } => match &values[node.index()] {
            Some(Value::State(state)) => state,
            _ => unreachable!("a state is computed before the scores that read it"),
        },
        Node::Input { .. }
        | Node::Embedding { .. }
        | Node::Scores { .. }
        | Node::ScoreSum { .. }
        | Node::Activation { .. }
        | Node::Loss { .. } => {
            unreachable!("scores read a hidden state")
        }
    }
}
