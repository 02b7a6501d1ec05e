//! The fused executor: forward pass, hand-derived gradients and row-sparse Adagrad of one mini-batch, in
//! plain Rust over the parameters' own memory, with libtorch only for matrix products.
//!
//! At GRU4Rec's sizes a training step is a few hundred small operations, and libtorch's per-operation
//! dispatch and autograd bookkeeping cost more than their arithmetic (docs/performance.md). The IR names
//! every node, so each node kind's forward (`forward.rs`) and backward (`backward.rs`) is written out once
//! here. The autograd executor stays the reference and the CUDA path: `tests/fused.rs` checks this one
//! against it for every input kind, GRU form, merge, loss and schedule.
//!
//! - [`gemm`]: products over borrowed `f32` memory.
//! - [`kernels`]: activations, losses with their gradients, Adagrad.
//!
//! Only the previous hidden state is outside the gradient, as in GRU4Rec: one step of backpropagation.

mod backward;
mod buffers;
mod forward;
pub mod gemm;
pub mod kernels;

use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::network::{FeatureRows, Network};
use super::rows::{bag_rows, index_sparse};
use super::{EpochLoss, EpochState, Executor, PhaseSteps, StepKind, Unsupported};
use crate::data::batches::Step;
use crate::ir::plan::{self, Mode};
use crate::ir::{Bound, Node, NodeId, Owner, SubnetId};
use crate::rng::{self, SplitMix64};
use crate::runtime::parallel;
use buffers::{Bag, BatchRows, Gradient, Indexers, ParamGradients, Pool, Stream, Value};

/// Why a network cannot take the fused step; None when it can.
pub fn unsupported(network: &Network) -> Option<Unsupported> {
    if network.device != Device::Cpu {
        return Some(Unsupported::Device(network.device));
    }
    let tensors = network.params.iter().flat_map(|p| [Some(&p.value), Some(&p.state.accumulator), p.state.momentum.as_ref()]).flatten();
    let features = network.features().filter_map(|(_, f)| match f {
        FeatureRows::Dense(rows) => Some(rows),
        FeatureRows::Sparse(_) => None,
    });
    if tensors.chain(features).chain(network.log_popularity.as_ref()).any(|t| t.kind() != Kind::Float || !t.is_contiguous()) {
        return Some(Unsupported::Layout);
    }
    None
}

/// A tensor's memory, read-only. The fused step reads parameters this way while nothing writes them.
fn memory(tensor: &Tensor) -> &[f32] {
    // Safety: a contiguous float32 CPU tensor of `numel` elements (`unsupported` checked every tensor the
    // fused step reads), alive while `tensor` is borrowed; no Adagrad update runs while the slice is used.
    unsafe { std::slice::from_raw_parts(tensor.data_ptr().cast::<f32>(), tensor.numel()) }
}

/// The values of a contiguous float32 CPU tensor, for host-side kernels outside the fused step.
pub fn host_values(tensor: &Tensor) -> &[f32] {
    assert!(
        tensor.device() == Device::Cpu && tensor.kind() == Kind::Float && tensor.is_contiguous(),
        "host values need a contiguous float32 CPU tensor"
    );
    memory(tensor)
}

/// A tensor's memory, writable: the `&mut` borrow of the tensor stands for its storage.
fn memory_mut(tensor: &mut Tensor) -> &mut [f32] {
    // Safety: as `memory`; the network owns its parameter tensors and hands out no other handle to them
    // (frames of shallow clones belong to the autograd executor, which never runs beside this one), so the
    // exclusive borrow of the tensor is exclusive access to its storage.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr().cast::<f32>(), tensor.numel()) }
}

/// Width of one row of a parameter in its row space (1 for an item bias; the whole tensor when dense).
fn row_width(value: &Tensor) -> usize {
    let size = value.size();
    if size.len() == 2 {
        size[1] as usize
    } else {
        1
    }
}

fn add_row(target: &mut [f32], source: &[f32], scale: f32) {
    kernels::add_scaled(target, source, scale);
}

/// The fused executor: a network and the working state of its steps.
pub struct Fused {
    network: Network,
    ir: Arc<Bound>,
    state: State,
}

/// What one plan step needs to know while it walks the nodes.
struct StepContext<'a> {
    inputs: &'a [u32],
    scored: &'a [u32],
    step: &'a plan::Step,
}

impl StepContext<'_> {
    /// Whether subnet `k` runs with gradients in this step: forward in training mode, not reused, and its
    /// parameter group trains.
    fn subnet_trains(&self, k: SubnetId) -> bool {
        self.step.forward_of(k).is_some_and(|f| f.mode == Mode::Train && !f.reused) && self.step.trains(Owner::Subnet(k))
    }
}

/// The fused executor's state across one epoch's mini-batches.
struct State {
    /// Each subnet's state `[rows, H]`; None before its first step.
    hidden: Vec<Option<Vec<f32>>>,
    stream: Stream,
    indexers: Indexers,
    rows: BatchRows,
    params: ParamGradients,
    pool: Pool,
    /// Indexed by [`NodeId`]: the current step's node values and gradients.
    values: Vec<Option<Value>>,
    grads: Vec<Option<Gradient>>,
    /// Outputs and score parts of subnets that already ran on this mini-batch: later interleaving steps
    /// reuse them.
    fresh_output: Vec<Option<Vec<f32>>>,
    fresh_part: Vec<Option<Vec<f32>>>,
    /// The current step's loss.
    step_loss: f64,
    loss_sum: f64,
    non_finite: bool,
}

impl Fused {
    /// Panics if the network is not one the fused step supports (see [`unsupported`]).
    pub fn new(network: Network) -> Fused {
        if let Some(why) = unsupported(&network) {
            panic!("{why}");
        }
        let ir = network.ir_handle();
        let (subnets, nodes, params) = (network.subnet_count(), ir.graph().graph.node_count(), network.params.len());
        let state = State {
            hidden: (0..subnets).map(|_| None).collect(),
            stream: Stream(SplitMix64::new(0)),
            indexers: Indexers::default(),
            rows: BatchRows::default(),
            params: ParamGradients::new(params),
            pool: Pool::default(),
            values: (0..nodes).map(|_| None).collect(),
            grads: (0..nodes).map(|_| None).collect(),
            fresh_output: (0..subnets).map(|_| None).collect(),
            fresh_part: (0..subnets).map(|_| None).collect(),
            step_loss: 0.0,
            loss_sum: 0.0,
            non_finite: false,
        };
        Fused { network, ir, state }
    }
}

impl Executor for Fused {
    fn kind(&self) -> StepKind {
        StepKind::Fused
    }

    fn network(&self) -> &Network {
        &self.network
    }

    fn into_network(self: Box<Self>) -> Network {
        self.network
    }

    fn start_epoch(&mut self, seed: u64) {
        let state = &mut self.state;
        state.hidden.iter_mut().for_each(|h| *h = None);
        state.stream = Stream(SplitMix64::new(rng::mix(seed ^ 0xD5A6_1266_F0C9_392D)));
        state.loss_sum = 0.0;
        state.non_finite = false;
    }

    fn train_batch(&mut self, batch: &Step<'_>, scored: &[u32], phase: &PhaseSteps<'_>) {
        let state = &mut self.state;
        state.carry(&self.network, batch, &phase.running);
        let loss = state.run_batch(&self.ir, &mut self.network, batch.inputs, scored, phase.steps);
        state.non_finite |= !loss.is_finite();
        state.loss_sum += loss;
    }

    fn epoch_loss(&self) -> EpochLoss {
        EpochLoss { non_finite: self.state.non_finite, sum: self.state.loss_sum }
    }

    fn epoch_state(&self) -> EpochState {
        EpochState { hidden: self.state.hidden.clone(), random: self.state.stream.0.position(), loss: self.epoch_loss() }
    }

    fn restore_epoch_state(&mut self, saved: EpochState) {
        let state = &mut self.state;
        assert_eq!(saved.hidden.len(), state.hidden.len(), "a saved epoch state has one hidden state per subnet");
        state.hidden = saved.hidden;
        state.stream = Stream(SplitMix64::new(saved.random));
        state.loss_sum = saved.loss.sum;
        state.non_finite = saved.loss.non_finite;
    }

    fn next_states(&self, inputs: &[u32], states: &[Tensor]) -> Vec<Tensor> {
        super::autograd::next_states(&self.ir, &self.network, inputs, states)
    }

    fn scores_into(&self, states: &[Tensor], out: &mut Tensor) {
        super::autograd::scores_into(&self.ir, &self.network, states, out)
    }
}

impl State {
    /// Carries the subnets in `running` into this step's layout: surviving rows kept, new sessions zeroed.
    fn carry(&mut self, network: &Network, step: &Step<'_>, running: &[SubnetId]) {
        let rows = step.inputs.len();
        for &k in running {
            let width = network.hidden_size(k) as usize;
            let mut state = match (self.hidden[k.index()].take(), step.kept_rows) {
                (Some(state), Some(kept)) => kept.iter().flat_map(|&r| state[r * width..(r + 1) * width].iter().copied()).collect(),
                (Some(state), None) => state,
                (None, _) => vec![0.0; rows * width],
            };
            for &r in step.reset_rows {
                state[r * width..(r + 1) * width].fill(0.0);
            }
            self.hidden[k.index()] = Some(state);
        }
    }

    fn index(&mut self, network: &Network, inputs: &[u32], scored: &[u32]) {
        let n_items = network.n_items;
        let rows = &mut self.rows;
        let d = &mut self.indexers.items;
        d.start(n_items);
        rows.input = inputs.iter().map(|&i| d.position(i) as usize).collect();
        rows.input_rows = std::mem::take(&mut d.rows);
        d.start(n_items);
        rows.scored = scored.iter().map(|&i| d.position(i) as usize).collect();
        rows.scored_rows = std::mem::take(&mut d.rows);
        d.start(n_items);
        rows.both_input = inputs.iter().map(|&i| d.position(i) as usize).collect();
        rows.both_scored = scored.iter().map(|&i| d.position(i) as usize).collect();
        rows.both_rows = std::mem::take(&mut d.rows);
        rows.bags = index_sparse(network, &mut self.indexers.vocabulary, |sparse, d| {
            let (positions, offsets, weights) = bag_rows(sparse, inputs, |column| d.position(column));
            let as_index = |values: Vec<i64>| values.into_iter().map(|v| v as usize).collect::<Vec<_>>();
            let mut offsets = as_index(offsets);
            offsets.push(positions.len());
            Bag { offsets, positions: as_index(positions), weights, rows: std::mem::take(&mut d.rows) }
        });
    }

    /// Runs the plan's steps on one mini-batch (hidden states already carried): forward, backward and
    /// Adagrad. Returns the last step's loss, divided by the nominal batch size as in the autograd executor.
    fn run_batch(&mut self, ir: &Bound, network: &mut Network, inputs: &[u32], scored: &[u32], steps: &[plan::Step]) -> f64 {
        self.index(network, inputs, scored);
        let graph = ir.graph();
        for step in steps {
            let context = StepContext { inputs, scored, step };
            for forward in step.forward.iter().filter(|f| !f.reused) {
                let train = forward.mode == Mode::Train;
                for &node in &graph.order.subnets[forward.subnet.index()] {
                    self.forward(ir, network, node, &context, train);
                }
            }
            for &node in &graph.order.head {
                if self.head_node_runs(ir, node, step) {
                    self.forward(ir, network, node, &context, true);
                }
            }
            for &node in &graph.order.head_backward {
                if self.head_node_runs(ir, node, step) {
                    self.backward(ir, network, node, &context);
                }
            }
            for k in graph.subnet_ids().filter(|&k| context.subnet_trains(k)) {
                for &node in graph.order.subnets[k.index()].iter().rev() {
                    self.backward(ir, network, node, &context);
                }
            }
            self.apply_adagrad(ir, network, step);
            self.finish_step(ir, step);
        }
        for k in 0..self.fresh_part.len() {
            if let Some(part) = self.fresh_part[k].take() {
                self.pool.give(part);
            }
            if let Some(output) = self.fresh_output[k].take() {
                self.hidden[k] = Some(output);
            }
        }
        self.step_loss
    }

    /// Whether a head node takes part in a step: nodes every part shares always do; a part's own nodes do
    /// when its subnet is in the step's ensemble and ran in this step (a reused part is read, not computed).
    fn head_node_runs(&self, ir: &Bound, node: NodeId, step: &plan::Step) -> bool {
        match ir.graph().part_of(node) {
            None => true,
            Some(k) => step.loss_on.contains(&k) && step.forward_of(k).is_some_and(|f| !f.reused),
        }
    }

    /// Keeps what later steps of the mini-batch reuse (outputs and score parts of the subnets that ran) and
    /// returns every other buffer of the step to the pool.
    fn finish_step(&mut self, ir: &Bound, step: &plan::Step) {
        let graph = ir.graph();
        for forward in step.forward.iter().filter(|f| !f.reused) {
            let k = forward.subnet;
            if let Some(Value::Gru(run)) = self.values[graph.subnet(k).gru.index()].take() {
                for buffer in [run.before, run.reset, run.update, run.candidate, run.mixed] {
                    self.pool.give(buffer);
                }
                if let Some(old) = self.fresh_output[k.index()].replace(run.output) {
                    self.pool.give(old);
                }
            }
            let part = graph.order.head.iter().find(|&&n| matches!(graph.node(n), Node::Scores { subnet: Some(s), .. } if *s == k));
            if let Some(Some(Value::Part { weights, part, .. })) = part.map(|n| self.values[n.index()].take()) {
                self.pool.give(weights);
                if let Some(old) = self.fresh_part[k.index()].replace(part) {
                    self.pool.give(old);
                }
            }
        }
        for value in self.values.iter_mut().filter_map(Option::take) {
            let buffers = match value {
                Value::Rows { rows, .. } | Value::State(rows) | Value::Scores(rows) | Value::Activated(rows) | Value::Loss(rows) => {
                    vec![rows]
                }
                Value::Part { weights, part, .. } => vec![weights, part],
                Value::Gru(run) => vec![run.before, run.reset, run.update, run.candidate, run.mixed, run.output],
            };
            buffers.into_iter().for_each(|b| self.pool.give(b));
        }
        for gradient in self.grads.iter_mut().filter_map(Option::take) {
            if let Gradient::Own(buffer) = gradient {
                self.pool.give(buffer);
            }
        }
    }

    /// Adagrad on every parameter this step reached and trains, over its touched rows only.
    fn apply_adagrad(&mut self, ir: &Bound, network: &mut Network, step: &plan::Step) {
        let optimizer = ir.plan().optimizer;
        for ((id, ir_param), param) in ir.graph().params().zip(network.params.iter_mut()) {
            if !std::mem::take(&mut self.params.reached[id.index()]) || !step.trains(ir_param.owner) {
                continue;
            }
            let gradient = &self.params.buffers[id.index()];
            let values = Disjoint(memory_mut(&mut param.value).as_mut_ptr());
            let accumulator = Disjoint(memory_mut(&mut param.state.accumulator).as_mut_ptr());
            let momentum = param.state.momentum.as_mut().map(|m| Disjoint(memory_mut(m).as_mut_ptr()));
            let (lr, mu, eps) = (ir_param.learning_rate as f32, optimizer.momentum as f32, optimizer.eps as f32);
            // Blocks of (offset in the parameter, offset in the gradient, length): whole rows, or the whole tensor.
            let touched = self.rows.rows(ir_param.rows);
            let rows: &[i64] = touched.unwrap_or(&[]);
            let width = gradient.len() / rows.len().max(1);
            let parts = parallel::parts_for(gradient.len());
            let update = |part: usize| {
                let (first, last) = (rows.len() * part / parts, rows.len() * (part + 1) / parts);
                let (start, end) = (gradient.len() * part / parts, gradient.len() * (part + 1) / parts);
                let blocks: Box<dyn Iterator<Item = (usize, usize, usize)>> = match touched {
                    // A dense parameter: split its elements.
                    None => Box::new(std::iter::once((start, start, end - start))),
                    Some(_) => Box::new((first..last).map(|position| (rows[position] as usize * width, position * width, width))),
                };
                for (at, from, length) in blocks {
                    // Safety: the parts update disjoint element ranges of a dense parameter, or disjoint rows
                    // of a row-sparse one (the touched rows are distinct), each inside the tensor; nothing else
                    // reads or writes the parameter's memory while the update runs.
                    unsafe {
                        kernels::adagrad(
                            std::slice::from_raw_parts_mut(values.at(at), length),
                            std::slice::from_raw_parts_mut(accumulator.at(at), length),
                            momentum.map(|m| std::slice::from_raw_parts_mut(m.at(at), length)),
                            &gradient[from..from + length],
                            lr,
                            mu,
                            eps,
                        );
                    }
                }
            };
            parallel::for_each_part(parts, &update);
        }
    }
}

/// A parameter's memory shared by the parts of the Adagrad update, each of which writes rows no other
/// part writes: the touched rows of a row-sparse parameter are scattered, so `split_at_mut` cannot hand
/// them out.
#[derive(Clone, Copy)]
struct Disjoint(*mut f32);

impl Disjoint {
    /// The element `offset` values in. A method, so that closures capture the whole `Disjoint` (which is
    /// `Sync`), not its raw pointer.
    ///
    /// # Safety
    /// `offset` lies inside the tensor the pointer came from.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // Safety: the caller keeps `offset` inside the tensor.
        unsafe { self.0.add(offset) }
    }
}
// Safety: see the update in `apply_adagrad`: parts write disjoint rows and read nothing another part writes.
unsafe impl Send for Disjoint {}
unsafe impl Sync for Disjoint {}

#[cfg(test)]
mod tests {
    use super::buffers::Stream;
    use crate::rng::SplitMix64;

    #[test]
    fn dropout_masks_keep_one_minus_p_and_rescale() {
        let mask = Stream(SplitMix64::new(42)).mask(100_000, 0.3);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || (m - 1.0 / 0.7).abs() < 1e-6));
        assert_ne!(Stream(SplitMix64::new(42)).mask(64, 0.5), Stream(SplitMix64::new(43)).mask(64, 0.5), "the seed decides the masks");
    }
}
