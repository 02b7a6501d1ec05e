//! What one autograd step reads: a frame of tables (gathered rows during training, whole matrices in
//! inference), the indices into them, and the hidden state carried between steps.
//!
//! Item- and vocabulary-indexed matrices are never used whole during training. A [`Frame`] gathers the rows
//! one step touches into small tables (leaves of the autograd graph when their owner trains), so the
//! backward pass and the optimizer touch only those rows. Inference uses a frame of whole tables, through
//! the same node code.

use tch::{Device, Kind, Tensor};

use super::super::network::{FeatureRows, Network};
use super::super::optim::Adagrad;
use super::super::rows::{bag_rows, index_sparse, Dedup};
use crate::data::batches::Step;
use crate::ir::{Bound, NodeId, Owner, ParamId, RowSpace};

/// The embedding_bag index of the batch's sparse feature rows.
#[derive(Debug)]
pub struct Bag {
    pub indices: Tensor,
    pub offsets: Tensor,
    pub weights: Tensor,
}

/// What one forward pass reads: a table per parameter and the indices into those tables.
#[derive(Debug)]
pub struct Frame {
    /// Indexed by [`ParamId`].
    pub tables: Vec<Tensor>,
    /// Global item index of each row's input, `[B]`: dense feature rows.
    pub input_items: Tensor,
    /// Index of each input into `InputItems` tables.
    pub input_rows: Tensor,
    /// Index of each input into `InputAndScoredItems` tables.
    pub input_rows_in_both: Tensor,
    /// Index of each scored column into `ScoredItems` tables; None: all items, in item order.
    pub scored_rows: Option<Tensor>,
    pub scored_rows_in_both: Option<Tensor>,
    /// Global item index of each scored column (training only).
    pub scored_items: Tensor,
    /// Indexed by [`NodeId`]: the bag of every sparse input node.
    pub bags: Vec<Option<Bag>>,
}

impl Frame {
    pub fn table(&self, param: ParamId) -> &Tensor {
        &self.tables[param.index()]
    }

    pub fn bag(&self, input: NodeId) -> &Bag {
        self.bags[input.index()].as_ref().expect("the frame indexes every sparse input")
    }
}

/// Builds frames: indices on the host, then one upload per index tensor.
#[derive(Debug, Default)]
pub struct FrameIndexer {
    items: Dedup,
    vocabulary: Vec<Dedup>,
}

/// The host-side result of indexing one mini-batch, shared by the steps of that mini-batch.
#[derive(Debug)]
pub struct BatchIndex {
    input_items: Tensor,
    input_rows: Tensor,
    input_rows_unique: Tensor,
    scored_items: Tensor,
    scored_rows: Tensor,
    scored_rows_unique: Tensor,
    both_input: Tensor,
    both_scored: Tensor,
    both_unique: Tensor,
    bags: Vec<Option<(Bag, Tensor)>>,
}

fn upload(values: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(values).to_device(device)
}

fn weights_tensor(weights: &[f32], device: Device) -> Tensor {
    Tensor::from_slice(weights).to_device(device)
}

impl FrameIndexer {
    /// Indexes a mini-batch: `inputs` `[B]`, `scored` = the targets `[B]` followed by the extra negatives.
    pub fn index(&mut self, network: &Network, inputs: &[u32], scored: &[u32]) -> BatchIndex {
        let device = network.device;
        let n_items = network.n_items;
        let d = &mut self.items;
        d.start(n_items);
        let input_rows: Vec<i64> = inputs.iter().map(|&i| d.position(i)).collect();
        let input_rows_unique = upload(&d.rows, device);
        d.start(n_items);
        let scored_rows: Vec<i64> = scored.iter().map(|&i| d.position(i)).collect();
        let scored_rows_unique = upload(&d.rows, device);
        d.start(n_items);
        let both_input: Vec<i64> = inputs.iter().map(|&i| d.position(i)).collect();
        let both_scored: Vec<i64> = scored.iter().map(|&i| d.position(i)).collect();
        let both_unique = upload(&d.rows, device);
        let input_items: Vec<i64> = inputs.iter().map(|&i| i64::from(i)).collect();
        let scored_items: Vec<i64> = scored.iter().map(|&i| i64::from(i)).collect();
        let bags = index_sparse(network, &mut self.vocabulary, |sparse, d| {
            let (indices, offsets, weights) = bag_rows(sparse, inputs, |column| d.position(column));
            let unique = upload(&d.rows, device);
            (
                Bag { indices: upload(&indices, device), offsets: upload(&offsets, device), weights: weights_tensor(&weights, device) },
                unique,
            )
        });
        BatchIndex {
            input_items: upload(&input_items, device),
            input_rows: upload(&input_rows, device),
            input_rows_unique,
            scored_items: upload(&scored_items, device),
            scored_rows: upload(&scored_rows, device),
            scored_rows_unique,
            both_input: upload(&both_input, device),
            both_scored: upload(&both_scored, device),
            both_unique,
            bags,
        }
    }
}

impl BatchIndex {
    /// The distinct rows of a row space this mini-batch touches; None for parameters used whole.
    fn rows(&self, space: RowSpace) -> Option<&Tensor> {
        match space {
            RowSpace::Dense => None,
            RowSpace::InputItems => Some(&self.input_rows_unique),
            RowSpace::ScoredItems => Some(&self.scored_rows_unique),
            RowSpace::InputAndScoredItems => Some(&self.both_unique),
            RowSpace::Vocabulary(input) => Some(&self.bags[input.index()].as_ref().expect("every sparse input is indexed").1),
            RowSpace::Undecided => unreachable!("a bound IR has no undecided row space"),
        }
    }

    /// A frame for one training step: parameters owned by a group in `training` become autograd leaves
    /// (whole, or their touched rows); the others are read without gradient.
    pub fn frame(&self, ir: &Bound, network: &Network, training: &[Owner]) -> (Frame, Vec<(ParamId, Tensor)>) {
        let mut leaves = Vec::new();
        let tables = ir
            .graph()
            .params()
            .map(|(id, param)| {
                let value = &network.param(id).value;
                let table = match self.rows(param.rows) {
                    Some(rows) => value.index_select(0, rows),
                    None => value.detach(),
                };
                if training.contains(&param.owner) {
                    let leaf = table.set_requires_grad(true);
                    leaves.push((id, leaf.shallow_clone()));
                    leaf
                } else {
                    table
                }
            })
            .collect();
        let frame = Frame {
            tables,
            input_items: self.input_items.shallow_clone(),
            input_rows: self.input_rows.shallow_clone(),
            input_rows_in_both: self.both_input.shallow_clone(),
            scored_rows: Some(self.scored_rows.shallow_clone()),
            scored_rows_in_both: Some(self.both_scored.shallow_clone()),
            scored_items: self.scored_items.shallow_clone(),
            bags: self
                .bags
                .iter()
                .map(|b| {
                    b.as_ref().map(|(bag, _)| Bag {
                        indices: bag.indices.shallow_clone(),
                        offsets: bag.offsets.shallow_clone(),
                        weights: bag.weights.shallow_clone(),
                    })
                })
                .collect(),
        };
        (frame, leaves)
    }

    /// Applies the optimizer to the leaves of a frame after `backward`, each with its own learning rate.
    pub fn update(&self, ir: &Bound, network: &mut Network, leaves: &[(ParamId, Tensor)], adagrad: &Adagrad) {
        for (id, leaf) in leaves {
            let gradient = leaf.grad();
            if !gradient.defined() {
                continue; // not reached by this step's loss (e.g. a subnet absent from this step)
            }
            let ir_param = ir.graph().param(*id);
            let param = &mut network.params[id.index()];
            let optimizer = Adagrad { learning_rate: ir_param.learning_rate, ..*adagrad };
            match self.rows(ir_param.rows) {
                Some(rows) => optimizer.sparse_step(&mut param.value, &mut param.state, rows, &gradient),
                None => optimizer.dense_step(&mut param.value, &mut param.state, &gradient),
            }
        }
    }
}

/// A frame over whole tables, for inference: scores against every item.
pub fn full_frame(network: &Network, inputs: &[u32]) -> Frame {
    let items: Vec<i64> = inputs.iter().map(|&i| i64::from(i)).collect();
    let items = upload(&items, network.device);
    let nodes = network.ir().graph().graph.node_count();
    let mut bags: Vec<Option<Bag>> = (0..nodes).map(|_| None).collect();
    for (node, feature) in network.features() {
        if let FeatureRows::Sparse(sparse) = feature {
            let (indices, offsets, weights) = bag_rows(sparse, inputs, i64::from);
            bags[node.index()] = Some(Bag {
                indices: upload(&indices, network.device),
                offsets: upload(&offsets, network.device),
                weights: weights_tensor(&weights, network.device),
            });
        }
    }
    Frame {
        tables: network.params.iter().map(|p| p.value.shallow_clone()).collect(),
        input_items: items.shallow_clone(),
        input_rows: items.shallow_clone(),
        input_rows_in_both: items.shallow_clone(),
        scored_rows: None,
        scored_rows_in_both: None,
        scored_items: items,
        bags,
    }
}

/// How hidden states move from one step of session-parallel batches to the next: the batch's surviving rows
/// are kept and the rows that start a session are zeroed. The index tensors are uploaded once per step and
/// shared by every subnet's state.
pub struct StateCarry {
    rows: i64,
    kept: Option<Tensor>,
    reset: Option<Tensor>,
}

impl StateCarry {
    pub fn new(step: &Step<'_>, device: Device) -> StateCarry {
        let upload = |rows: &[usize]| Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to_device(device);
        StateCarry {
            rows: step.inputs.len() as i64,
            kept: step.kept_rows.map(upload),
            reset: (!step.reset_rows.is_empty()).then(|| upload(step.reset_rows)),
        }
    }

    /// A subnet's state for this step; zeros of `hidden` units when it has none yet.
    pub fn apply(&self, state: Option<Tensor>, hidden: i64, device: Device) -> Tensor {
        let state = match (state, &self.kept) {
            (Some(state), Some(kept)) => state.index_select(0, kept),
            (Some(state), None) => state,
            (None, _) => return Tensor::zeros([self.rows, hidden], (Kind::Float, device)),
        };
        match &self.reset {
            Some(reset) => state.index_fill(0, reset, 0.0),
            None => state,
        }
    }
}
