//! The fused executor's forward pass: one arm per node kind.

use std::sync::Mutex;

use super::buffers::{gather_rows, output_of, state_of, GruRun, Value};
use super::gemm::{product, Matrix, MatrixMut};
use super::{add_row, kernels, memory, row_width, State, StepContext};
use crate::ir::{Bound, GruForm, InputRepr, Loss, Node, NodeId, ParamId, SubnetId};
use crate::lower::network::{FeatureRows, Network};
use crate::runtime::parallel;

impl State {
    /// Runs `node` forward and keeps its value. `train` turns dropout on (a subnet's nodes in training mode).
    pub(super) fn forward(&mut self, ir: &Bound, network: &Network, node: NodeId, context: &StepContext, train: bool) {
        let graph = ir.graph();
        let (inputs, scored, step) = (context.inputs, context.scored, context.step);
        let rows = inputs.len();
        let value = match graph.node(node) {
            Node::Input { repr, .. } => match repr {
                // Read by index where they are used: item IDs, and the batch's bags of sparse rows.
                InputRepr::OneHot | InputRepr::Embedded | InputRepr::Sparse => None,
                // Two subnets may read one input: its rows are gathered once per step.
                InputRepr::Dense if self.values[node.index()].is_some() => return,
                InputRepr::Dense => {
                    let Some(FeatureRows::Dense(table)) = network.feature(node) else { unreachable!("a dense input has dense rows") };
                    let width = table.size()[1] as usize;
                    let mut gathered = self.pool.take(rows * width);
                    gather_rows(memory(table), width, inputs, &mut gathered);
                    Some(Value::Rows { rows: gathered, mask: None })
                }
                InputRepr::Feature => unreachable!("a bound IR has no undecided input"),
            },
            Node::Embedding { dropout, table, .. } => {
                let value = &network.param(*table).value;
                let width = row_width(value);
                let mut gathered = self.pool.take(rows * width);
                gather_rows(memory(value), width, inputs, &mut gathered);
                let mask = (train && *dropout > 0.0).then(|| self.stream.mask(gathered.len(), *dropout));
                if let Some(mask) = &mask {
                    gathered.iter_mut().zip(mask).for_each(|(r, m)| *r *= m);
                }
                Some(Value::Rows { rows: gathered, mask })
            }
            Node::Gru { subnet, .. } => {
                let before = self.hidden[subnet.index()].take().expect("running subnets have a state");
                let run = self.gru(ir, network, node, &before, inputs, train);
                self.hidden[subnet.index()] = Some(before);
                Some(Value::Gru(run))
            }
            Node::Interact { feature, primary } => {
                let mut product = self.pool.take(self.output_of(ir, *feature).len());
                let (own, primary) = (self.output_of(ir, *feature), self.output_of(ir, *primary));
                product.iter_mut().zip(own.iter().zip(primary)).for_each(|(p, (a, b))| *p = a * b);
                Some(Value::State(product))
            }
            Node::HiddenSum { weights } => {
                let width = graph.subnets[0].hidden as usize;
                let mut sum = self.pool.zeros(rows * width);
                for &k in &step.loss_on {
                    add_row(&mut sum, self.output_of(ir, k), weights[k.index()] as f32);
                }
                Some(Value::State(sum))
            }
            Node::Scores { w, b, .. } => {
                let (weights, bias) = self.gather_output(network, *w, *b, scored);
                let mut part = self.pool.take(rows * scored.len());
                scores_of(&mut part, self.state_of(ir, graph.sources(node)[0]), &weights, &bias, rows);
                Some(Value::Part { weights, part })
            }
            Node::ScoreSum { weights } => {
                let mut scores = self.pool.zeros(rows * scored.len());
                for (k, part) in graph.sources(node).iter().copied().enumerate() {
                    if step.loss_on.contains(&SubnetId::new(k)) {
                        add_row(&mut scores, self.part_of(ir, part), weights[k] as f32);
                    }
                }
                Some(Value::Scores(scores))
            }
            Node::Activation { activation } => {
                let mut activated = self.pool.take(rows * scored.len());
                let scores = self.scores(graph.sources(node)[0]);
                let activation = *activation;
                parallel::for_each_row_block(&mut activated, scored.len(), loss_parts(rows, scored.len()), &|_, rows, block| {
                    kernels::activate(activation, &scores[rows.start * scored.len()..rows.end * scored.len()], block);
                });
                Some(Value::Activated(activated))
            }
            Node::Loss { loss, .. } => {
                let Some(Value::Activated(activated)) = &self.values[graph.sources(node)[0].index()] else {
                    unreachable!("the loss reads the activated scores")
                };
                let columns = scored.len();
                let log_popularity: Option<Vec<f32>> = match (loss, &network.log_popularity) {
                    (Loss::CrossEntropy { logq }, Some(log_p)) if *logq > 0.0 => {
                        let log_p = memory(log_p);
                        Some(scored.iter().map(|&i| (f64::from(log_p[i as usize]) * logq) as f32).collect())
                    }
                    _ => None,
                };
                let nominal = ir.plan().batch as f32;
                let parts = loss_parts(rows, columns);
                let partial_losses: Vec<Mutex<f64>> = (0..parts).map(|_| Mutex::new(0.0)).collect();
                let mut gradient = self.pool.take(activated.len());
                let loss = *loss;
                parallel::for_each_row_block(&mut gradient, columns, parts, &|part, rows, block| {
                    let mut scratch = vec![0.0f32; columns];
                    let activated = &activated[rows.start * columns..rows.end * columns];
                    let summed = kernels::loss_rows(loss, activated, columns, rows.start, log_popularity.as_deref(), block, &mut scratch);
                    block.iter_mut().for_each(|g| *g /= nominal);
                    *partial_losses[part].lock().expect("no part panics holding it") = summed;
                });
                let summed = partial_losses.iter().map(|l| *l.lock().expect("no part panics holding it")).sum::<f64>();
                self.step_loss = summed / f64::from(nominal);
                Some(Value::Loss(gradient))
            }
        };
        self.values[node.index()] = value;
    }

    /// A GRU step over the batch: the gates from the input projections, then the new state after hidden
    /// dropout.
    fn gru(&mut self, ir: &Bound, network: &Network, node: NodeId, before: &[f32], inputs: &[u32], train: bool) -> GruRun {
        let graph = ir.graph();
        let Node::Gru { hidden, form, dropout, inputs: gru_inputs, w_hh, bias, b_hn, .. } = graph.node(node) else {
            unreachable!("gru() runs GRU nodes")
        };
        let (b, h) = (inputs.len(), *hidden as usize);
        let params = &network.params;
        let mut x = self.pool.take(b * 3 * h);
        for row in x.chunks_exact_mut(3 * h) {
            row.copy_from_slice(memory(&params[bias.index()].value));
        }
        for input in gru_inputs {
            let w = memory(&params[input.w_in.index()].value);
            match graph.node(input.source) {
                Node::Input { repr: InputRepr::OneHot, .. } => {
                    for (row, &item) in x.chunks_exact_mut(3 * h).zip(inputs) {
                        add_row(row, &w[item as usize * 3 * h..(item as usize + 1) * 3 * h], 1.0);
                    }
                }
                Node::Input { repr: InputRepr::Sparse, .. } => {
                    let bag = self.rows.bag(input.source);
                    let Some(FeatureRows::Sparse(sparse)) = network.feature(input.source) else {
                        unreachable!("a sparse input has sparse rows")
                    };
                    for (r, (row, &item)) in x.chunks_exact_mut(3 * h).zip(inputs).enumerate() {
                        let start = sparse.indptr[item as usize] as usize;
                        for e in bag.offsets[r]..bag.offsets[r + 1] {
                            let column = sparse.indices[start + e - bag.offsets[r]] as usize;
                            add_row(row, &w[column * 3 * h..(column + 1) * 3 * h], bag.weights[e]);
                        }
                    }
                }
                Node::Input { repr: InputRepr::Dense, .. } | Node::Embedding { .. } => {
                    let Some(Value::Rows { rows, .. }) = &self.values[input.source.index()] else {
                        unreachable!("rows run before their GRU")
                    };
                    let width = rows.len() / b;
                    product(MatrixMut::new(&mut x, b, 3 * h), Matrix::new(rows, b, width), Matrix::new(w, width, 3 * h), true);
                }
                Node::Input { repr: InputRepr::Embedded | InputRepr::Feature, .. }
                | Node::Gru { .. }
                | Node::Interact { .. }
                | Node::HiddenSum { .. }
                | Node::Scores { .. }
                | Node::ScoreSum { .. }
                | Node::Activation { .. }
                | Node::Loss { .. } => unreachable!("a GRU reads item IDs, features or an embedding"),
            }
        }
        let w_hh = Matrix::new(memory(&params[w_hh.index()].value), h, 3 * h);
        let h_in = Matrix::new(before, b, h);
        let (mut reset, mut update, mut candidate) = (self.pool.take(b * h), self.pool.take(b * h), self.pool.take(b * h));
        let mut next = self.pool.take(b * h);
        let mixed = match form {
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
                if let Some(b_hn) = b_hn {
                    let b_hn = memory(&params[b_hn.index()].value);
                    for row in hh.chunks_exact_mut(3 * h) {
                        add_row(&mut row[2 * h..], b_hn, 1.0);
                    }
                }
                kernels::gru_reset_after(&x, &hh, before, h, &mut reset, &mut update, &mut candidate, &mut next);
                hh
            }
        };
        let dropout = (train && *dropout > 0.0).then(|| self.stream.mask(b * h, *dropout));
        if let Some(mask) = &dropout {
            next.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
        self.pool.give(x);
        let mut kept = self.pool.take(before.len());
        kept.copy_from_slice(before);
        GruRun { before: kept, reset, update, candidate, mixed, output: next, dropout }
    }

    /// Gathers an output layer's rows for the scored items: `W[Y]` `[S, H]` and `b[Y]` `[S]`.
    fn gather_output(&mut self, network: &Network, w: ParamId, b: ParamId, scored: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let value = &network.param(w).value;
        let (table, width) = (memory(value), row_width(value));
        let bias = memory(&network.param(b).value);
        let mut rows = self.pool.take(scored.len() * width);
        let parts = parallel::parts_for(rows.len());
        parallel::for_each_row_block(&mut rows, width, parts, &|_, items, block| {
            gather_rows(table, width, &scored[items], block);
        });
        (rows, scored.iter().map(|&i| bias[i as usize]).collect())
    }

    pub(super) fn output_of(&self, ir: &Bound, k: SubnetId) -> &[f32] {
        output_of(&self.values, &self.fresh_output, ir, k)
    }

    fn state_of(&self, ir: &Bound, node: NodeId) -> &[f32] {
        state_of(&self.values, &self.fresh_output, ir, node)
    }

    /// A score part: computed in this step, or reused from the earlier step that ran its subnet.
    fn part_of(&self, ir: &Bound, node: NodeId) -> &[f32] {
        match (&self.values[node.index()], ir.graph().node(node)) {
            (Some(Value::Part { part, .. }), _) => part,
            (_, Node::Scores { subnet: Some(k), .. }) => {
                self.fresh_part[k.index()].as_deref().expect("a reused subnet was scored in its own step")
            }
            (_, other) => unreachable!("a score sum reads score parts, not {other:?}"),
        }
    }

    /// The merged scores: a score sum's, or the only part's.
    pub(super) fn scores(&self, node: NodeId) -> &[f32] {
        match &self.values[node.index()] {
            Some(Value::Scores(scores)) | Some(Value::Part { part: scores, .. }) => scores,
            _ => unreachable!("the activation reads merged scores"),
        }
    }
}

/// How many parts the per-row loss work splits into: one per thread, but no more than the rows.
pub(super) fn loss_parts(rows: usize, columns: usize) -> usize {
    parallel::parts_for(rows * columns).min(rows.max(1))
}

/// `scores = state · W[Y]ᵀ + b[Y]` `[B, S]`, from the gathered rows `W[Y]` `[S, H]` and `b[Y]` `[S]`.
fn scores_of(scores: &mut [f32], state: &[f32], weights: &[f32], bias: &[f32], rows: usize) {
    let (columns, width) = (bias.len(), state.len() / rows.max(1));
    for row in scores.chunks_exact_mut(columns.max(1)) {
        row.copy_from_slice(bias);
    }
    product(MatrixMut::new(scores, rows, columns), Matrix::new(state, rows, width), Matrix::new(weights, columns, width).t(), true);
}
