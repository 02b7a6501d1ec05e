//! The fused CPU training step: forward pass, hand-derived gradients and row-sparse Adagrad of one
//! mini-batch, in plain Rust over the parameters' own memory, with libtorch only for matrix products.
//!
//! At GRU4Rec's sizes a training step is a few hundred small operations, and libtorch's per-operation
//! dispatch and autograd bookkeeping cost more than their arithmetic (docs/performance.md). The compiled
//! graph names every node, so each node's backward can be written out once here. The autograd lowering
//! (`network.rs` with `train::run_batch`) stays the reference and the CUDA path: `tests/fused.rs` checks
//! this step against it for every input kind, GRU form, merge, loss and schedule.
//!
//! - [`gemm`]: products over borrowed `f32` memory.
//! - [`kernels`]: activations, losses with their gradients, Adagrad.
//! - [`parallel`]: large loops split over libtorch's OpenMP threads.
//!
//! Only the previous hidden state is outside the gradient, as in GRU4Rec: one step of backpropagation.

pub mod gemm;
pub mod kernels;

use gemm::{product, Matrix, MatrixMut};

use super::gru::GruForm;
use super::network::{bag_rows, index_sparse, Dedup, FeatureRows, InputPath, MergeLayer, Network, OutputLayer, Parameter, RowSpace};
use crate::check::Loss;
use crate::data::batches::Step;
use crate::ir::graph::Owner;
use crate::rng::{self, SplitMix64};
use crate::runtime::parallel;
use crate::train::StepPlan;
use tch::{Device, Kind, Tensor};

/// Why a network cannot take the fused step.
pub fn unsupported(network: &Network) -> Option<String> {
    if network.device != Device::Cpu {
        return Some(format!("the fused step runs on the CPU; this network is on {:?}", network.device));
    }
    let tensors = network.params.iter().flat_map(|p| [Some(&p.value), Some(&p.state.accumulator), p.state.momentum.as_ref()]).flatten();
    let features = network.features.iter().filter_map(|f| match f {
        FeatureRows::Dense(rows) => Some(rows),
        FeatureRows::Sparse(_) => None,
    });
    if tensors.chain(features).chain(network.log_popularity.as_ref()).any(|t| t.kind() != Kind::Float || !t.is_contiguous()) {
        return Some("the fused step needs contiguous float32 tensors".into());
    }
    None
}

/// A parameter's memory. The caller holds the only handle that writes it (`unsupported` checked layout).
fn memory(tensor: &Tensor) -> &[f32] {
    // Safety: a contiguous float32 CPU tensor of `numel` elements, alive while `tensor` is borrowed.
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

#[allow(clippy::mut_from_ref)]
fn memory_mut(tensor: &Tensor) -> &mut [f32] {
    // Safety: as `memory`; the caller has `&mut` to the owning parameter, so no other slice is alive.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr().cast::<f32>(), tensor.numel()) }
}

/// Width of one row of a parameter in its row space (1 for an item bias; the whole tensor when dense).
fn row_width(param: &Parameter) -> usize {
    let size = param.value.size();
    if size.len() == 2 {
        size[1] as usize
    } else {
        1
    }
}

/// A dropout stream: each epoch draws its masks from its own seed.
struct Stream(SplitMix64);

impl Stream {
    /// A keep-scale per element: `1 / (1 - p)` with probability `1 - p`, else 0.
    fn mask(&mut self, count: usize, p: f64) -> Vec<f32> {
        let scale = (1.0 / (1.0 - p)) as f32;
        let p = p as f32;
        (0..count).map(|_| if self.0.unit_f32() >= p { scale } else { 0.0 }).collect()
    }
}

/// Where each use of a row space lands among the batch's distinct rows.
#[derive(Default)]
struct BatchRows {
    input: Vec<usize>,
    input_rows: Vec<i64>,
    scored: Vec<usize>,
    scored_rows: Vec<i64>,
    both_input: Vec<usize>,
    both_scored: Vec<usize>,
    both_rows: Vec<i64>,
    /// Per feature, when sparse: each row's entries `offsets[b]..offsets[b + 1]`, their positions among the
    /// distinct vocabulary rows, and their weights.
    bags: Vec<Option<Bag>>,
}

struct Bag {
    offsets: Vec<usize>,
    positions: Vec<usize>,
    weights: Vec<f32>,
    rows: Vec<i64>,
}

impl BatchRows {
    fn rows(&self, space: RowSpace) -> Option<&[i64]> {
        match space {
            RowSpace::Dense => None,
            RowSpace::InputItems => Some(&self.input_rows),
            RowSpace::ScoredItems => Some(&self.scored_rows),
            RowSpace::InputAndScoredItems => Some(&self.both_rows),
            RowSpace::Vocabulary(f) => Some(&self.bags[f].as_ref().expect("every sparse feature is indexed").rows),
        }
    }
}

/// An input path's rows `[B, width]` and its embedding-dropout mask.
type PathRows = (Vec<f32>, Option<Vec<f32>>);

/// One subnet's forward pass on a mini-batch, kept for its backward pass.
struct SubnetRun {
    /// The state before the step `[B, H]`.
    before: Vec<f32>,
    reset: Vec<f32>,
    update: Vec<f32>,
    candidate: Vec<f32>,
    /// Reset-before: `r ⊙ h` `[B, H]`. Reset-after: `h W_hh` with `b_hn` on the candidate block `[B, 3H]`.
    mixed: Vec<f32>,
    /// The new state after hidden dropout: what is scored and carried.
    output: Vec<f32>,
    dropout: Option<Vec<f32>>,
    /// Per input path with a matrix product: its rows `[B, width]` (after embedding dropout) and the mask.
    path_rows: Vec<Option<PathRows>>,
}

/// Buffers kept from step to step, so that the large ones are not mapped, faulted in and zeroed anew each
/// time. A buffer comes back with stale contents: every user overwrites it whole.
#[derive(Default)]
struct Pool(Vec<Vec<f32>>);

impl Pool {
    fn take(&mut self, len: usize) -> Vec<f32> {
        let mut buffer = match self.0.iter().position(|b| b.capacity() >= len) {
            Some(at) => self.0.swap_remove(at),
            None => self.0.pop().unwrap_or_default(),
        };
        buffer.resize(len, 0.0);
        buffer.truncate(len);
        buffer
    }

    fn give(&mut self, buffer: Vec<f32>) {
        self.0.push(buffer);
    }
}

/// State of the fused step across one epoch's mini-batches.
pub struct FusedStep {
    /// Each subnet's state `[rows, H]`; None before its first step.
    hidden: Vec<Option<Vec<f32>>>,
    stream: Stream,
    items: Dedup,
    vocabulary: Vec<Dedup>,
    rows: BatchRows,
    gradients: Vec<Vec<f32>>,
    reached: Vec<bool>,
    pool: Pool,
}

/// Rows `items` of a `[_, width]` table, one after another.
fn gather_rows(table: &[f32], width: usize, items: &[u32]) -> Vec<f32> {
    let mut rows = Vec::with_capacity(items.len() * width);
    for &item in items {
        rows.extend_from_slice(&table[item as usize * width..(item as usize + 1) * width]);
    }
    rows
}

fn add_row(target: &mut [f32], source: &[f32], scale: f32) {
    kernels::add_scaled(target, source, scale);
}

/// `gradient[positions[j]] += rows[j]` for rows of `width`, split over threads by destination rows so
/// that no two threads write one row; `fresh` gradients are zeroed first, each part its own rows.
fn scatter_rows(gradient: &mut [f32], width: usize, positions: &[usize], rows: &[f32], fresh: bool) {
    let destinations = gradient.len() / width.max(1);
    let parts = parallel::parts_for(rows.len().max(gradient.len()));
    let target = parallel::Shared(gradient.as_mut_ptr());
    parallel::for_each_part(parts, &|part| {
        let (first, last) = (destinations * part / parts, destinations * (part + 1) / parts);
        // Safety: this part alone touches rows `first..last` of the gradient.
        let mine = unsafe { std::slice::from_raw_parts_mut(target.get().add(first * width), (last - first) * width) };
        if fresh {
            mine.fill(0.0);
        }
        for (j, &position) in positions.iter().enumerate() {
            if (first..last).contains(&position) {
                let at = (position - first) * width;
                kernels::add_scaled(&mut mine[at..at + width], &rows[j * width..(j + 1) * width], 1.0);
            }
        }
    });
}

impl FusedStep {
    /// A fresh epoch: no hidden state, dropout drawn from `seed`.
    pub fn new(network: &Network, seed: u64) -> FusedStep {
        FusedStep {
            hidden: network.subnets.iter().map(|_| None).collect(),
            stream: Stream(SplitMix64::new(rng::mix(seed ^ 0xD5A6_1266_F0C9_392D))),
            items: Dedup::default(),
            vocabulary: network.features.iter().map(|_| Dedup::default()).collect(),
            rows: BatchRows::default(),
            gradients: network.params.iter().map(|_| Vec::new()).collect(),
            reached: vec![false; network.params.len()],
            pool: Pool::default(),
        }
    }

    /// Carries the subnets in `running` into this step's layout: surviving rows kept, new sessions zeroed.
    pub fn carry(&mut self, network: &Network, step: &Step<'_>, running: &[usize]) {
        let rows = step.inputs.len();
        for &k in running {
            let width = network.subnets[k].hidden as usize;
            let mut state = match (self.hidden[k].take(), step.kept_rows) {
                (Some(state), Some(kept)) => kept.iter().flat_map(|&r| state[r * width..(r + 1) * width].iter().copied()).collect(),
                (Some(state), None) => state,
                (None, _) => vec![0.0; rows * width],
            };
            for &r in step.reset_rows {
                state[r * width..(r + 1) * width].fill(0.0);
            }
            self.hidden[k] = Some(state);
        }
    }

    fn index(&mut self, network: &Network, inputs: &[u32], scored: &[u32]) {
        let n_items = network.n_items;
        let rows = &mut self.rows;
        let d = &mut self.items;
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
        rows.bags = index_sparse(&network.features, &mut self.vocabulary, |sparse, d| {
            let (positions, offsets, weights) = bag_rows(sparse, inputs, |column| d.position(column));
            let as_index = |values: Vec<i64>| values.into_iter().map(|v| v as usize).collect::<Vec<_>>();
            let mut offsets = as_index(offsets);
            offsets.push(positions.len());
            Bag { offsets, positions: as_index(positions), weights, rows: std::mem::take(&mut d.rows) }
        });
    }

    /// Runs the plan's steps on one mini-batch (hidden states already carried): forward, backward and
    /// Adagrad. Returns the last step's loss, divided by the nominal batch size as in the autograd path.
    pub fn run_batch(
        &mut self,
        network: &mut Network,
        inputs: &[u32],
        scored: &[u32],
        steps: &[StepPlan],
        adagrad: &super::optim::Adagrad,
    ) -> f64 {
        self.index(network, inputs, scored);
        let count = network.subnets.len();
        let mut fresh_output: Vec<Option<Vec<f32>>> = vec![None; count];
        let mut fresh_part: Vec<Option<Vec<f32>>> = vec![None; count];
        let mut last_loss = 0.0;
        for step in steps {
            let mut runs: Vec<Option<SubnetRun>> = (0..count).map(|_| None).collect();
            for &(k, trains, reused) in &step.forward {
                if reused {
                    continue;
                }
                let before = self.hidden[k].take().expect("running subnets have a state");
                runs[k] = Some(self.subnet_forward(network, k, &before, inputs, trains));
                self.hidden[k] = Some(before);
            }
            let output_of = |k: usize| -> &[f32] {
                match &runs[k] {
                    Some(run) => &run.output,
                    None => fresh_output[k].as_deref().expect("a reused subnet ran in an earlier step"),
                }
            };
            let (loss, mut parts) = self.loss_and_backward(network, inputs, scored, step, &output_of, &runs, &fresh_part);
            last_loss = loss;
            self.apply_adagrad(network, step, adagrad);
            for (k, run) in runs.into_iter().enumerate() {
                if let Some(run) = run {
                    for buffer in [run.before, run.reset, run.update, run.candidate, run.mixed] {
                        self.pool.give(buffer);
                    }
                    fresh_output[k] = Some(run.output);
                    if let Some(old) = std::mem::replace(&mut fresh_part[k], parts[k].take()) {
                        self.pool.give(old);
                    }
                }
            }
        }
        for part in fresh_part.into_iter().flatten() {
            self.pool.give(part);
        }
        for (k, output) in fresh_output.into_iter().enumerate() {
            if output.is_some() {
                self.hidden[k] = output;
            }
        }
        last_loss
    }

    fn subnet_forward(&mut self, network: &Network, k: usize, before: &[f32], inputs: &[u32], train: bool) -> SubnetRun {
        let subnet = &network.subnets[k];
        let (b, h) = (inputs.len(), subnet.hidden as usize);
        let params = &network.params;
        let bias = memory(&params[subnet.bias].value);
        let mut x = self.pool.take(b * 3 * h);
        for row in x.chunks_exact_mut(3 * h) {
            row.copy_from_slice(bias);
        }
        let mut path_rows = Vec::with_capacity(subnet.inputs.len());
        for path in &subnet.inputs {
            let mut rows_of = |table: &[f32], width: usize, dropout: f64| {
                let mut rows = gather_rows(table, width, inputs);
                let mask = (train && dropout > 0.0).then(|| self.stream.mask(rows.len(), dropout));
                if let Some(mask) = &mask {
                    rows.iter_mut().zip(mask).for_each(|(r, m)| *r *= m);
                }
                (rows, mask)
            };
            let gathered = match path {
                InputPath::OneHot { w_in } => {
                    let w = memory(&params[*w_in].value);
                    for (row, &item) in x.chunks_exact_mut(3 * h).zip(inputs) {
                        add_row(row, &w[item as usize * 3 * h..(item as usize + 1) * 3 * h], 1.0);
                    }
                    None
                }
                InputPath::Sparse { feature, w_in } => {
                    let w = memory(&params[*w_in].value);
                    let bag = self.rows.bags[*feature].as_ref().expect("every sparse feature is indexed");
                    let FeatureRows::Sparse(sparse) = &network.features[*feature] else {
                        unreachable!("a sparse path reads a sparse feature")
                    };
                    for (r, (row, &item)) in x.chunks_exact_mut(3 * h).zip(inputs).enumerate() {
                        let start = sparse.indptr[item as usize] as usize;
                        for e in bag.offsets[r]..bag.offsets[r + 1] {
                            let column = sparse.indices[start + e - bag.offsets[r]] as usize;
                            add_row(row, &w[column * 3 * h..(column + 1) * 3 * h], bag.weights[e]);
                        }
                    }
                    None
                }
                InputPath::Dense { feature, w_in } => {
                    let FeatureRows::Dense(table) = &network.features[*feature] else { unreachable!("a dense path reads a dense feature") };
                    let width = table.size()[1] as usize;
                    Some((rows_of(memory(table), width, 0.0), *w_in, width))
                }
                InputPath::Embedded { table, dropout, w_in, .. } => {
                    let width = row_width(&params[*table]);
                    Some((rows_of(memory(&params[*table].value), width, *dropout), *w_in, width))
                }
            };
            path_rows.push(gathered.map(|((rows, mask), w_in, width)| {
                product(
                    MatrixMut::new(&mut x, b, 3 * h),
                    Matrix::new(&rows, b, width),
                    Matrix::new(memory(&params[w_in].value), width, 3 * h),
                    true,
                );
                (rows, mask)
            }));
        }
        let w_hh = Matrix::new(memory(&params[subnet.w_hh].value), h, 3 * h);
        let h_in = Matrix::new(before, b, h);
        let (mut reset, mut update, mut candidate) = (self.pool.take(b * h), self.pool.take(b * h), self.pool.take(b * h));
        let mut next = self.pool.take(b * h);
        let mixed = match subnet.form {
            GruForm::ResetBeforeProduct => {
                // x is [n | r | z]; W_hh's blocks likewise.
                let mut gates = self.pool.take(b * 2 * h);
                product(MatrixMut::new(&mut gates, b, 2 * h), h_in, w_hh.columns(h, 2 * h), false);
                let mut reset_state = self.pool.take(b * h);
                kernels::gates_reset_before(&x, &gates, before, h, &mut reset, &mut update, &mut reset_state);
                let mut n = self.pool.take(b * h);
                product(MatrixMut::new(&mut n, b, h), Matrix::new(&reset_state, b, h), w_hh.columns(0, h), false);
                kernels::state_reset_before(&x, &n, before, &update, h, &mut candidate, &mut next);
                self.pool.give(n);
                self.pool.give(gates);
                reset_state
            }
            GruForm::ResetAfterProduct => {
                // x is [r | z | n]; W_hh's blocks likewise; b_hn sits inside the reset product.
                let mut hh = self.pool.take(b * 3 * h);
                product(MatrixMut::new(&mut hh, b, 3 * h), h_in, w_hh, false);
                if let Some(b_hn) = subnet.b_hn {
                    let b_hn = memory(&params[b_hn].value);
                    for row in hh.chunks_exact_mut(3 * h) {
                        add_row(&mut row[2 * h..], b_hn, 1.0);
                    }
                }
                kernels::gru_reset_after(&x, &hh, before, h, &mut reset, &mut update, &mut candidate, &mut next);
                hh
            }
        };
        let dropout = (train && subnet.dropout > 0.0).then(|| self.stream.mask(b * h, subnet.dropout));
        if let Some(mask) = &dropout {
            next.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
        self.pool.give(x);
        let mut kept = self.pool.take(before.len());
        kept.copy_from_slice(before);
        SubnetRun { before: kept, reset, update, candidate, mixed, output: next, dropout, path_rows }
    }

    /// Gathers an output layer's rows for the scored items: `W[Y]` `[S, H]` and `b[Y]` `[S]`.
    fn gather_output(&mut self, network: &Network, output: OutputLayer, scored: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let w = memory(&network.params[output.w].value);
        let width = row_width(&network.params[output.w]);
        let b = memory(&network.params[output.b].value);
        let mut rows = self.pool.take(scored.len() * width);
        let parts = parallel::parts_for(rows.len());
        let target = parallel::Shared(rows.as_mut_ptr());
        parallel::for_each_part(parts, &|part| {
            let (first, last) = (scored.len() * part / parts, scored.len() * (part + 1) / parts);
            // Safety: this part alone writes rows `first..last`.
            let mine = unsafe { std::slice::from_raw_parts_mut(target.get().add(first * width), (last - first) * width) };
            for (row, &item) in mine.chunks_exact_mut(width).zip(&scored[first..last]) {
                row.copy_from_slice(&w[item as usize * width..(item as usize + 1) * width]);
            }
        });
        (rows, scored.iter().map(|&i| b[i as usize]).collect())
    }

    /// `state · W[Y]ᵀ + b[Y]` `[B, S]`.
    fn scores_of(&mut self, state: &[f32], gathered: &(Vec<f32>, Vec<f32>), rows: usize, width: usize) -> Vec<f32> {
        let columns = gathered.1.len();
        let mut scores = self.pool.take(rows * columns);
        for row in scores.chunks_exact_mut(columns.max(1)) {
            row.copy_from_slice(&gathered.1);
        }
        product(
            MatrixMut::new(&mut scores, rows, columns),
            Matrix::new(state, rows, width),
            Matrix::new(&gathered.0, columns, width).t(),
            true,
        );
        scores
    }

    /// Starts the gradient of a parameter for this step (zeros), once.
    fn gradient(&mut self, network: &Network, param: usize) -> &mut Vec<f32> {
        let (gradient, started) = self.product_gradient(network, param);
        if !started {
            gradient.fill(0.0);
        }
        gradient
    }

    /// A parameter's gradient buffer for a matrix product that writes all of it: returns whether the
    /// product must add (the gradient was started earlier in this step) or may overwrite (no zeroing).
    fn product_gradient(&mut self, network: &Network, param: usize) -> (&mut Vec<f32>, bool) {
        if self.reached[param] {
            return (&mut self.gradients[param], true);
        }
        self.reached[param] = true;
        let p = &network.params[param];
        let size = match self.rows.rows(p.rows) {
            Some(rows) => rows.len() * row_width(p),
            None => p.value.numel(),
        };
        let gradient = &mut self.gradients[param];
        gradient.resize(size, 0.0);
        gradient.truncate(size);
        (gradient, false)
    }

    /// Backward of one output layer: `dW[Y] += dScoresᵀ · state`, `db[Y] += Σ_rows dScores`, and the
    /// gradient with respect to `state` when asked.
    #[allow(clippy::too_many_arguments)]
    fn output_backward(
        &mut self,
        network: &Network,
        output: OutputLayer,
        trains: bool,
        gathered: &(Vec<f32>, Vec<f32>),
        state: &[f32],
        d_scores: &[f32],
        rows: usize,
        width: usize,
        d_state: Option<&mut [f32]>,
    ) {
        let columns = gathered.1.len();
        if let Some(d_state) = d_state {
            product(
                MatrixMut::new(d_state, rows, width),
                Matrix::new(d_scores, rows, columns),
                Matrix::new(&gathered.0, columns, width),
                true,
            );
        }
        if !trains {
            return;
        }
        let mut d_rows = self.pool.take(columns * width);
        product(
            MatrixMut::new(&mut d_rows, columns, width),
            Matrix::new(d_scores, rows, columns).t(),
            Matrix::new(state, rows, width),
            false,
        );
        let positions = if output.tied { std::mem::take(&mut self.rows.both_scored) } else { std::mem::take(&mut self.rows.scored) };
        let (d_w, started) = self.product_gradient(network, output.w);
        scatter_rows(d_w, width, &positions, &d_rows, !started);
        self.pool.give(d_rows);
        if output.tied {
            self.rows.both_scored = positions;
        } else {
            self.rows.scored = positions;
        }
        let scored_positions = std::mem::take(&mut self.rows.scored);
        let d_b = self.gradient(network, output.b);
        for row in d_scores.chunks_exact(columns) {
            for (j, &g) in row.iter().enumerate() {
                d_b[scored_positions[j]] += g;
            }
        }
        self.rows.scored = scored_positions;
    }

    /// Scores, loss and every gradient of one plan step. Returns the loss and each subnet's score part
    /// (for reuse by later interleaving steps).
    #[allow(clippy::too_many_arguments)]
    fn loss_and_backward<'r>(
        &mut self,
        network: &Network,
        inputs: &[u32],
        scored: &[u32],
        step: &StepPlan,
        output_of: &dyn Fn(usize) -> &'r [f32],
        runs: &[Option<SubnetRun>],
        fresh_part: &[Option<Vec<f32>>],
    ) -> (f64, Vec<Option<Vec<f32>>>) {
        let (rows, columns) = (inputs.len(), scored.len());
        let count = network.subnets.len();
        let hidden_of = |k: usize| network.subnets[k].hidden as usize;
        let owner_trains = |param: usize| step.trains.contains(&network.params[param].owner);
        let mut parts: Vec<Option<Vec<f32>>> = vec![None; count];
        let mut scores = self.pool.take(rows * columns);
        scores.fill(0.0);
        // Gathered output rows per scored subnet (or the shared layer), and the state each one scored.
        let mut gathered: Vec<Option<(Vec<f32>, Vec<f32>)>> = (0..count).map(|_| None).collect();
        let mut scored_state: Vec<Option<Vec<f32>>> = vec![None; count];
        let interaction_state = |k: usize| -> Vec<f32> {
            let own = output_of(k);
            if k == 0 {
                return own.to_vec();
            }
            own.iter().zip(output_of(0)).map(|(a, b)| a * b).collect()
        };
        match &network.merge {
            MergeLayer::Parallel { outputs, .. } | MergeLayer::Interaction { outputs } => {
                let weights: Vec<f64> = match &network.merge {
                    MergeLayer::Parallel { weights, .. } => weights.clone(),
                    _ => vec![1.0; count],
                };
                for &k in &step.loss_on {
                    let part = if runs[k].is_some() {
                        let state = if matches!(network.merge, MergeLayer::Interaction { .. }) {
                            interaction_state(k)
                        } else {
                            output_of(k).to_vec()
                        };
                        let rows_of_output = self.gather_output(network, outputs[k], scored);
                        let part = self.scores_of(&state, &rows_of_output, rows, hidden_of(k));
                        gathered[k] = Some(rows_of_output);
                        scored_state[k] = Some(state);
                        part
                    } else {
                        fresh_part[k].clone().expect("a reused subnet was scored in its own step")
                    };
                    add_row(&mut scores, &part, weights[k] as f32);
                    parts[k] = Some(part);
                }
            }
            MergeLayer::SharedW { output, weights } => {
                let width = hidden_of(0);
                let mut sum = vec![0.0f32; rows * width];
                for &k in &step.loss_on {
                    add_row(&mut sum, output_of(k), weights[k] as f32);
                }
                let rows_of_output = self.gather_output(network, *output, scored);
                self.pool.give(std::mem::take(&mut scores));
                scores = self.scores_of(&sum, &rows_of_output, rows, width);
                gathered[0] = Some(rows_of_output);
                scored_state[0] = Some(sum);
            }
        }

        // Loss and its gradient with respect to the scores.
        let mut activated = self.pool.take(scores.len());
        let log_popularity: Option<Vec<f32>> = match (network.loss, &network.log_popularity) {
            (Loss::CrossEntropy { logq }, Some(log_p)) if logq > 0.0 => {
                let log_p = memory(log_p);
                Some(scored.iter().map(|&i| (f64::from(log_p[i as usize]) * logq) as f32).collect())
            }
            _ => None,
        };
        let mut d_scores = self.pool.take(rows * columns);
        let nominal = network.batch_size as f32;
        let loss_parts = parallel::parts_for(scores.len()).min(rows.max(1));
        let partial_losses: Vec<std::sync::Mutex<f64>> = (0..loss_parts).map(|_| std::sync::Mutex::new(0.0)).collect();
        let (activated_at, gradient_at) = (parallel::Shared(activated.as_mut_ptr()), parallel::Shared(d_scores.as_mut_ptr()));
        let (activation, loss_kind) = (network.activation, network.loss);
        parallel::for_each_part(loss_parts, &|part| {
            let (first, last) = (rows * part / loss_parts, rows * (part + 1) / loss_parts);
            let range = first * columns..last * columns;
            // Safety: this part alone writes rows `first..last` of both buffers.
            let (activated, gradient) = unsafe {
                (
                    std::slice::from_raw_parts_mut(activated_at.get().add(range.start), range.len()),
                    std::slice::from_raw_parts_mut(gradient_at.get().add(range.start), range.len()),
                )
            };
            kernels::activate(activation, &scores[range.clone()], activated);
            let mut scratch = vec![0.0f32; columns];
            let loss = kernels::loss_rows(loss_kind, activated, columns, first, log_popularity.as_deref(), gradient, &mut scratch);
            gradient.iter_mut().for_each(|g| *g /= nominal);
            kernels::activation_backward(activation, activated, &scores[range], gradient);
            *partial_losses[part].lock().expect("no part panics holding it") = loss;
        });
        let loss = partial_losses.iter().map(|l| *l.lock().expect("no part panics holding it")).sum::<f64>() / f64::from(nominal);

        // Back through the merge to each subnet's state.
        let subnet_trains = |k: usize| {
            step.forward.iter().any(|&(j, trains, reused)| j == k && trains && !reused)
                && step.trains.contains(&Owner::Subnet(network.subnets[k].name.clone()))
        };
        let mut d_state: Vec<Option<Vec<f32>>> = (0..count).map(|k| subnet_trains(k).then(|| vec![0.0f32; rows * hidden_of(k)])).collect();
        match &network.merge {
            MergeLayer::Parallel { outputs, weights } => {
                for &k in &step.loss_on {
                    let (Some(rows_of_output), Some(state)) = (&gathered[k], &scored_state[k]) else { continue };
                    let weighted: Option<Vec<f32>> = (weights[k] != 1.0).then(|| d_scores.iter().map(|g| g * weights[k] as f32).collect());
                    let trains = owner_trains(outputs[k].w);
                    let d_part = weighted.as_deref().unwrap_or(&d_scores);
                    self.output_backward(
                        network,
                        outputs[k],
                        trains,
                        rows_of_output,
                        state,
                        d_part,
                        rows,
                        hidden_of(k),
                        d_state[k].as_deref_mut(),
                    );
                }
            }
            MergeLayer::Interaction { outputs } => {
                for &k in &step.loss_on {
                    let (Some(rows_of_output), Some(state)) = (&gathered[k], &scored_state[k]) else { continue };
                    let trains = owner_trains(outputs[k].w);
                    let width = hidden_of(k);
                    if k == 0 {
                        self.output_backward(
                            network,
                            outputs[k],
                            trains,
                            rows_of_output,
                            state,
                            &d_scores,
                            rows,
                            width,
                            d_state[0].as_deref_mut(),
                        );
                        continue;
                    }
                    // part_k reads h_k ⊙ h_0: its state gradient splits between the two.
                    let needs_state = d_state[k].is_some() || d_state[0].is_some();
                    let mut d_product = needs_state.then(|| vec![0.0f32; rows * width]);
                    self.output_backward(
                        network,
                        outputs[k],
                        trains,
                        rows_of_output,
                        state,
                        &d_scores,
                        rows,
                        width,
                        d_product.as_deref_mut(),
                    );
                    if let Some(d_product) = d_product {
                        let (own, primary) = (output_of(k), output_of(0));
                        if let Some(d) = &mut d_state[k] {
                            d.iter_mut().zip(&d_product).zip(primary).for_each(|((d, g), p)| *d += g * p);
                        }
                        if let Some(d) = &mut d_state[0] {
                            d.iter_mut().zip(&d_product).zip(own).for_each(|((d, g), o)| *d += g * o);
                        }
                    }
                }
            }
            MergeLayer::SharedW { output, weights } => {
                if let (Some(rows_of_output), Some(sum)) = (&gathered[0], &scored_state[0]) {
                    let width = hidden_of(0);
                    let needs_state = step.loss_on.iter().any(|&k| d_state[k].is_some());
                    let mut d_sum = needs_state.then(|| vec![0.0f32; rows * width]);
                    let trains = owner_trains(output.w);
                    self.output_backward(network, *output, trains, rows_of_output, sum, &d_scores, rows, width, d_sum.as_deref_mut());
                    if let Some(d_sum) = d_sum {
                        for &k in &step.loss_on {
                            if let Some(d) = &mut d_state[k] {
                                add_row(d, &d_sum, weights[k] as f32);
                            }
                        }
                    }
                }
            }
        }
        for (k, d) in d_state.into_iter().enumerate() {
            if let (Some(d), Some(run)) = (d, &runs[k]) {
                if step.loss_on.contains(&k) {
                    self.subnet_backward(network, k, run, d, inputs, &owner_trains);
                }
            }
        }
        for buffer in [scores, activated, d_scores] {
            self.pool.give(buffer);
        }
        for (rows, _) in gathered.into_iter().flatten() {
            self.pool.give(rows);
        }
        (loss, parts)
    }

    fn subnet_backward(
        &mut self,
        network: &Network,
        k: usize,
        run: &SubnetRun,
        mut d_next: Vec<f32>,
        inputs: &[u32],
        owner_trains: &dyn Fn(usize) -> bool,
    ) {
        let subnet = &network.subnets[k];
        let params = &network.params;
        let (b, h) = (inputs.len(), subnet.hidden as usize);
        if let Some(mask) = &run.dropout {
            d_next.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
        }
        let mut dx = self.pool.take(b * 3 * h);
        let before = &run.before;
        match subnet.form {
            GruForm::ResetBeforeProduct => {
                // h' = h + z (c - h); c = tanh(x_n + (r ⊙ h) W_n); r, z = σ(x + h W_rz).
                let mut d_n = self.pool.take(b * h);
                for i in 0..b * h {
                    let (r, u) = (i / h, i % h);
                    let (z, c) = (run.update[i], run.candidate[i]);
                    let g = d_next[i];
                    let dn = g * z * (1.0 - c * c);
                    d_n[i] = dn;
                    dx[r * 3 * h + u] = dn;
                    dx[r * 3 * h + 2 * h + u] = g * (c - before[i]) * z * (1.0 - z);
                }
                let w_hh = memory(&params[subnet.w_hh].value);
                let mut d_reset_state = self.pool.take(b * h);
                product(
                    MatrixMut::new(&mut d_reset_state, b, h),
                    Matrix::new(&d_n, b, h),
                    Matrix::new(w_hh, h, 3 * h).columns(0, h).t(),
                    false,
                );
                for i in 0..b * h {
                    let (r, u) = (i / h, i % h);
                    let reset = run.reset[i];
                    dx[r * 3 * h + h + u] = d_reset_state[i] * before[i] * reset * (1.0 - reset);
                }
                let (d_w, accumulate) = self.product_gradient(network, subnet.w_hh);
                product(MatrixMut::columns(d_w, h, 3 * h, 0, h), Matrix::new(&run.mixed, b, h).t(), Matrix::new(&d_n, b, h), accumulate);
                product(
                    MatrixMut::columns(d_w, h, 3 * h, h, 2 * h),
                    Matrix::new(before, b, h).t(),
                    Matrix::new(&dx, b, 3 * h).columns(h, 2 * h),
                    accumulate,
                );
                self.pool.give(d_n);
                self.pool.give(d_reset_state);
            }
            GruForm::ResetAfterProduct => {
                // h' = c + z (h - c); c = tanh(x_n + r ⊙ (h W_n + b_hn)); r, z = σ(x + h W_rz).
                let mut d_hh = self.pool.take(b * 3 * h);
                for i in 0..b * h {
                    let (r, u) = (i / h, i % h);
                    let j = r * 3 * h + u;
                    let (reset, z, c) = (run.reset[i], run.update[i], run.candidate[i]);
                    let g = d_next[i];
                    let dn = g * (1.0 - z) * (1.0 - c * c);
                    let d_reset = dn * run.mixed[j + 2 * h] * reset * (1.0 - reset);
                    let d_update = g * (before[i] - c) * z * (1.0 - z);
                    dx[j] = d_reset;
                    dx[j + h] = d_update;
                    dx[j + 2 * h] = dn;
                    d_hh[j] = d_reset;
                    d_hh[j + h] = d_update;
                    d_hh[j + 2 * h] = dn * reset;
                }
                let (d_w, accumulate) = self.product_gradient(network, subnet.w_hh);
                product(MatrixMut::new(d_w, h, 3 * h), Matrix::new(before, b, h).t(), Matrix::new(&d_hh, b, 3 * h), accumulate);
                if let Some(b_hn) = subnet.b_hn {
                    let d_b = self.gradient(network, b_hn);
                    for row in d_hh.chunks_exact(3 * h) {
                        add_row(d_b, &row[2 * h..], 1.0);
                    }
                }
                self.pool.give(d_hh);
            }
        }
        let d_bias = self.gradient(network, subnet.bias);
        for row in dx.chunks_exact(3 * h) {
            add_row(d_bias, row, 1.0);
        }
        for (path, gathered) in subnet.inputs.iter().zip(&run.path_rows) {
            match path {
                InputPath::OneHot { w_in } => {
                    let positions = std::mem::take(&mut self.rows.input);
                    let d_w = self.gradient(network, *w_in);
                    for (row, &position) in dx.chunks_exact(3 * h).zip(&positions) {
                        add_row(&mut d_w[position * 3 * h..(position + 1) * 3 * h], row, 1.0);
                    }
                    self.rows.input = positions;
                }
                InputPath::Sparse { feature, w_in } => {
                    self.gradient(network, *w_in);
                    let bag = self.rows.bags[*feature].take().expect("every sparse feature is indexed");
                    let d_w = &mut self.gradients[*w_in];
                    for (r, row) in dx.chunks_exact(3 * h).enumerate() {
                        for e in bag.offsets[r]..bag.offsets[r + 1] {
                            let position = bag.positions[e];
                            add_row(&mut d_w[position * 3 * h..(position + 1) * 3 * h], row, bag.weights[e]);
                        }
                    }
                    self.rows.bags[*feature] = Some(bag);
                }
                InputPath::Dense { w_in, .. } => {
                    let (rows, _) = gathered.as_ref().expect("a dense path keeps its rows");
                    let width = rows.len() / b;
                    let (d_w, accumulate) = self.product_gradient(network, *w_in);
                    product(MatrixMut::new(d_w, width, 3 * h), Matrix::new(rows, b, width).t(), Matrix::new(&dx, b, 3 * h), accumulate);
                }
                InputPath::Embedded { table, tied, w_in, .. } => {
                    let (rows, mask) = gathered.as_ref().expect("an embedded path keeps its rows");
                    let width = rows.len() / b;
                    if owner_trains(*table) {
                        let mut d_rows = self.pool.take(b * width);
                        let w = memory(&params[*w_in].value);
                        product(MatrixMut::new(&mut d_rows, b, width), Matrix::new(&dx, b, 3 * h), Matrix::new(w, width, 3 * h).t(), false);
                        if let Some(mask) = mask {
                            d_rows.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
                        }
                        let positions =
                            if *tied { std::mem::take(&mut self.rows.both_input) } else { std::mem::take(&mut self.rows.input) };
                        let d_table = self.gradient(network, *table);
                        for (row, &position) in d_rows.chunks_exact(width).zip(&positions) {
                            add_row(&mut d_table[position * width..(position + 1) * width], row, 1.0);
                        }
                        self.pool.give(d_rows);
                        if *tied {
                            self.rows.both_input = positions;
                        } else {
                            self.rows.input = positions;
                        }
                    }
                    let (d_w, accumulate) = self.product_gradient(network, *w_in);
                    product(MatrixMut::new(d_w, width, 3 * h), Matrix::new(rows, b, width).t(), Matrix::new(&dx, b, 3 * h), accumulate);
                }
            }
        }
        self.pool.give(dx);
    }

    /// Adagrad on every parameter this step reached, over its touched rows only.
    fn apply_adagrad(&mut self, network: &mut Network, step: &StepPlan, adagrad: &super::optim::Adagrad) {
        for (id, param) in network.params.iter_mut().enumerate() {
            if !std::mem::take(&mut self.reached[id]) || !step.trains.contains(&param.owner) {
                continue;
            }
            let gradient = &self.gradients[id];
            let values = parallel::Shared(memory_mut(&param.value).as_mut_ptr());
            let accumulator = parallel::Shared(memory_mut(&param.state.accumulator).as_mut_ptr());
            let momentum = param.state.momentum.as_ref().map(|m| parallel::Shared(memory_mut(m).as_mut_ptr()));
            let (lr, mu, eps) = (param.learning_rate as f32, adagrad.momentum as f32, adagrad.eps as f32);
            // Blocks of (offset in the parameter, offset in the gradient, length): whole rows, or the whole tensor.
            let touched = self.rows.rows(param.rows);
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
                    // Safety: parts update disjoint rows (the row list is distinct) or disjoint element ranges.
                    unsafe {
                        kernels::adagrad(
                            std::slice::from_raw_parts_mut(values.get().add(at), length),
                            std::slice::from_raw_parts_mut(accumulator.get().add(at), length),
                            momentum.map(|m| std::slice::from_raw_parts_mut(m.get().add(at), length)),
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

#[cfg(test)]
mod tests {
    use super::Stream;
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
