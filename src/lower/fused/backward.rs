//! The fused executor's backward pass: one arm per node kind, each the hand-derived gradient of its forward
//! arm, accumulated into the gradients of the nodes it read and of its parameters.

use super::buffers::{output_of, state_of, BatchRows, Gradient, ParamGradients, Pool, Value};
use super::forward::loss_parts;
use super::gemm::{product, Matrix, MatrixMut};
use super::{add_row, kernels, memory, row_width, State, StepContext};
use crate::ir::{Bound, GruForm, InputRepr, Node, NodeId, ParamId, RowSpace};
use crate::lower::network::Network;
use crate::runtime::parallel;

impl State {
    /// Runs `node` backward: its output's gradient (if any reached it) into its inputs' and parameters'.
    pub(super) fn backward(&mut self, ir: &Bound, network: &Network, node: NodeId, context: &StepContext) {
        let graph = ir.graph();
        let (inputs, step) = (context.inputs, context.step);
        let rows = inputs.len();
        let State { values, grads, params, pool, rows: batch_rows, fresh_output, .. } = self;
        match graph.node(node) {
            Node::Input { .. } => {}
            Node::Embedding { constrained, table, .. } => {
                let Some(Gradient::Own(mut d_rows)) = grads[node.index()].take() else { return };
                let Some(Value::Rows { mask, .. }) = &values[node.index()] else { unreachable!("an embedding ran forward") };
                if let Some(mask) = mask {
                    d_rows.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
                }
                let width = row_width(&network.param(*table).value);
                let d_table = params.zeroed(ir, network, batch_rows, *table);
                let positions = if *constrained { &batch_rows.both_input } else { &batch_rows.input };
                for (row, &position) in d_rows.chunks_exact(width).zip(positions) {
                    add_row(&mut d_table[position * width..(position + 1) * width], row, 1.0);
                }
                pool.give(d_rows);
            }
            Node::Gru { .. } => self.gru_backward(ir, network, node, context),
            Node::Interact { feature, primary } => {
                let Some(Gradient::Own(d_product)) = grads[node.index()].take() else { return };
                // h_feature ⊙ h_primary: each side's gradient is the product's times the other side.
                for (target, other) in [(*feature, *primary), (*primary, *feature)] {
                    if context.subnet_trains(target) {
                        let gru = graph.subnet(target).gru;
                        let other = output_of(values, fresh_output, ir, other);
                        let d = own_gradient(grads, pool, gru, d_product.len());
                        d.iter_mut().zip(&d_product).zip(other).for_each(|((d, g), o)| *d += g * o);
                    }
                }
                pool.give(d_product);
            }
            Node::HiddenSum { weights } => {
                let Some(Gradient::Own(d_sum)) = grads[node.index()].take() else { return };
                for &k in step.loss_on.iter().filter(|&&k| context.subnet_trains(k)) {
                    let d = own_gradient(grads, pool, graph.subnet(k).gru, d_sum.len());
                    add_row(d, &d_sum, weights[k.index()] as f32);
                }
                pool.give(d_sum);
            }
            Node::Scores { w, b, .. } => {
                let Some(Value::Part { weights, .. }) = &values[node.index()] else { return };
                let source = graph.sources(node)[0];
                let state = state_of(values, fresh_output, ir, source);
                let needs_state = needs_gradient(ir, source, context);
                if needs_state {
                    own_gradient(grads, pool, source, state.len());
                }
                let from = resolve(grads, node);
                let (d_scores, d_state) = two_mut(grads, from.index(), source.index());
                let Some(Gradient::Own(d_scores)) = d_scores else { unreachable!("a resolved gradient has a buffer") };
                let d_state = match d_state {
                    Some(Gradient::Own(d)) if needs_state => Some(d.as_mut_slice()),
                    _ => None,
                };
                let trains = step.trains(graph.param(*w).owner);
                let output = Output { w: *w, b: *b, weights, state, rows };
                output.backward(ir, network, params, pool, batch_rows, trains, d_scores, d_state);
            }
            Node::ScoreSum { weights } => {
                let Some(Gradient::Own(d_scores)) = &grads[node.index()] else { unreachable!("the activation's gradient reached the sum") };
                let mut parts = Vec::new();
                for (k, part) in graph.sources(node).iter().copied().enumerate() {
                    if !matches!(values[part.index()], Some(Value::Part { .. })) {
                        continue; // absent from this step, or reused from an earlier step
                    }
                    parts.push((
                        part,
                        if weights[k] == 1.0 {
                            Gradient::Of(node)
                        } else {
                            let mut weighted = pool.take(d_scores.len());
                            weighted.iter_mut().zip(d_scores).for_each(|(w, g)| *w = g * weights[k] as f32);
                            Gradient::Own(weighted)
                        },
                    ));
                }
                for (part, gradient) in parts {
                    grads[part.index()] = Some(gradient);
                }
            }
            Node::Activation { activation } => {
                let Some(Gradient::Own(mut gradient)) = grads[node.index()].take() else {
                    unreachable!("the loss's gradient reached the activation")
                };
                let merged = graph.sources(node)[0];
                let (Some(Value::Activated(activated)), Some(Value::Scores(scores) | Value::Part { part: scores, .. })) =
                    (&values[node.index()], &values[merged.index()])
                else {
                    unreachable!("the activation and the merged scores ran forward")
                };
                let (activation, columns) = (*activation, context.scored.len());
                parallel::for_each_row_block(&mut gradient, columns, loss_parts(rows, columns), &|_, rows, block| {
                    let range = rows.start * columns..rows.end * columns;
                    kernels::activation_backward(activation, &activated[range.clone()], &scores[range], block);
                });
                grads[merged.index()] = Some(Gradient::Own(gradient));
            }
            Node::Loss { .. } => {
                let Some(Value::Loss(gradient)) = values[node.index()].take() else { unreachable!("the loss ran forward") };
                grads[graph.activation().index()] = Some(Gradient::Own(gradient));
            }
        }
    }

    /// Backward of a GRU step: the gradient of its new state through the gates into its weights, its bias,
    /// and its inputs (the input weights' rows, and an embedding's rows when its table trains).
    fn gru_backward(&mut self, ir: &Bound, network: &Network, node: NodeId, context: &StepContext) {
        let graph = ir.graph();
        let Node::Gru { hidden, form, inputs: gru_inputs, w_hh, bias, b_hn, .. } = graph.node(node) else { unreachable!("a GRU node") };
        let State { values, grads, params, pool, rows: batch_rows, .. } = self;
        let Some(Gradient::Own(mut d_next)) = grads[node.index()].take() else { return };
        let Some(Value::Gru(run)) = &values[node.index()] else { unreachable!("a GRU ran forward") };
        let (b, h) = (context.inputs.len(), *hidden as usize);
        if let Some(mask) = &run.dropout {
            d_next.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
        }
        let mut dx = pool.take(b * 3 * h);
        let before = &run.before;
        match form {
            GruForm::ResetBeforeProduct => {
                // h' = h + z (c - h); c = tanh(x_n + (r ⊙ h) W_n); r, z = σ(x + h W_rz).
                let mut d_n = pool.take(b * h);
                for i in 0..b * h {
                    let (r, u) = (i / h, i % h);
                    let (z, c) = (run.update[i], run.candidate[i]);
                    let g = d_next[i];
                    let dn = g * z * (1.0 - c * c);
                    d_n[i] = dn;
                    dx[r * 3 * h + u] = dn;
                    dx[r * 3 * h + 2 * h + u] = g * (c - before[i]) * z * (1.0 - z);
                }
                let w = memory(&network.param(*w_hh).value);
                let mut d_reset_state = pool.take(b * h);
                product(
                    MatrixMut::new(&mut d_reset_state, b, h),
                    Matrix::new(&d_n, b, h),
                    Matrix::new(w, h, 3 * h).columns(0, h).t(),
                    false,
                );
                for i in 0..b * h {
                    let (r, u) = (i / h, i % h);
                    let reset = run.reset[i];
                    dx[r * 3 * h + h + u] = d_reset_state[i] * before[i] * reset * (1.0 - reset);
                }
                let (d_w, accumulate) = params.for_product(ir, network, batch_rows, *w_hh);
                product(MatrixMut::columns(d_w, h, 3 * h, 0, h), Matrix::new(&run.mixed, b, h).t(), Matrix::new(&d_n, b, h), accumulate);
                let d_rz = Matrix::new(&dx, b, 3 * h).columns(h, 2 * h);
                product(MatrixMut::columns(d_w, h, 3 * h, h, 2 * h), Matrix::new(before, b, h).t(), d_rz, accumulate);
                pool.give(d_n);
                pool.give(d_reset_state);
            }
            GruForm::ResetAfterProduct => {
                // h' = c + z (h - c); c = tanh(x_n + r ⊙ (h W_n + b_hn)); r, z = σ(x + h W_rz).
                let mut d_hh = pool.take(b * 3 * h);
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
                let (d_w, accumulate) = params.for_product(ir, network, batch_rows, *w_hh);
                product(MatrixMut::new(d_w, h, 3 * h), Matrix::new(before, b, h).t(), Matrix::new(&d_hh, b, 3 * h), accumulate);
                if let Some(b_hn) = b_hn {
                    let d_b = params.zeroed(ir, network, batch_rows, *b_hn);
                    for row in d_hh.chunks_exact(3 * h) {
                        add_row(d_b, &row[2 * h..], 1.0);
                    }
                }
                pool.give(d_hh);
            }
        }
        let d_bias = params.zeroed(ir, network, batch_rows, *bias);
        for row in dx.chunks_exact(3 * h) {
            add_row(d_bias, row, 1.0);
        }
        for input in gru_inputs {
            match graph.node(input.source) {
                Node::Input { repr: InputRepr::OneHot, .. } => {
                    let d_w = params.zeroed(ir, network, batch_rows, input.w_in);
                    for (row, &position) in dx.chunks_exact(3 * h).zip(&batch_rows.input) {
                        add_row(&mut d_w[position * 3 * h..(position + 1) * 3 * h], row, 1.0);
                    }
                }
                Node::Input { repr: InputRepr::Sparse, .. } => {
                    let d_w = params.zeroed(ir, network, batch_rows, input.w_in);
                    let bag = batch_rows.bag(input.source);
                    for (r, row) in dx.chunks_exact(3 * h).enumerate() {
                        for e in bag.offsets[r]..bag.offsets[r + 1] {
                            let position = bag.positions[e];
                            add_row(&mut d_w[position * 3 * h..(position + 1) * 3 * h], row, bag.weights[e]);
                        }
                    }
                }
                Node::Input { repr: InputRepr::Dense, .. } | Node::Embedding { .. } => {
                    let Some(Value::Rows { rows, .. }) = &values[input.source.index()] else { unreachable!("rows ran forward") };
                    let width = rows.len() / b;
                    if let Node::Embedding { table, .. } = graph.node(input.source) {
                        if context.step.trains(graph.param(*table).owner) {
                            let mut d_rows = pool.take(b * width);
                            let w = memory(&network.param(input.w_in).value);
                            product(
                                MatrixMut::new(&mut d_rows, b, width),
                                Matrix::new(&dx, b, 3 * h),
                                Matrix::new(w, width, 3 * h).t(),
                                false,
                            );
                            grads[input.source.index()] = Some(Gradient::Own(d_rows));
                        }
                    }
                    let (d_w, accumulate) = params.for_product(ir, network, batch_rows, input.w_in);
                    product(MatrixMut::new(d_w, width, 3 * h), Matrix::new(rows, b, width).t(), Matrix::new(&dx, b, 3 * h), accumulate);
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
        pool.give(dx);
        pool.give(d_next);
    }
}

/// An output layer's part in one step: its parameters, the gathered rows `W[Y]`, and the state it scored.
struct Output<'a> {
    w: ParamId,
    b: ParamId,
    weights: &'a [f32],
    state: &'a [f32],
    rows: usize,
}

impl Output<'_> {
    /// `dW[Y] += dScoresᵀ · state`, `db[Y] += Σ_rows dScores`, and the gradient with respect to the state
    /// when asked.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        ir: &Bound,
        network: &Network,
        params: &mut ParamGradients,
        pool: &mut Pool,
        batch_rows: &BatchRows,
        trains: bool,
        d_scores: &[f32],
        d_state: Option<&mut [f32]>,
    ) {
        let rows = self.rows;
        let (columns, width) = (d_scores.len() / rows.max(1), self.state.len() / rows.max(1));
        if let Some(d_state) = d_state {
            product(
                MatrixMut::new(d_state, rows, width),
                Matrix::new(d_scores, rows, columns),
                Matrix::new(self.weights, columns, width),
                true,
            );
        }
        if !trains {
            return;
        }
        let mut d_rows = pool.take(columns * width);
        product(
            MatrixMut::new(&mut d_rows, columns, width),
            Matrix::new(d_scores, rows, columns).t(),
            Matrix::new(self.state, rows, width),
            false,
        );
        let tied = ir.graph().param(self.w).rows == RowSpace::InputAndScoredItems;
        let positions = if tied { &batch_rows.both_scored } else { &batch_rows.scored };
        let (d_w, started) = params.for_product(ir, network, batch_rows, self.w);
        scatter_rows(d_w, width, positions, &d_rows, !started);
        pool.give(d_rows);
        let d_b = params.zeroed(ir, network, batch_rows, self.b);
        for row in d_scores.chunks_exact(columns) {
            for (j, &g) in row.iter().enumerate() {
                d_b[batch_rows.scored[j]] += g;
            }
        }
    }
}

/// `gradient[positions[j]] += rows[j]` for rows of `width`, split over threads by destination rows so
/// that no two threads write one row; `fresh` gradients are zeroed first, each part its own rows.
fn scatter_rows(gradient: &mut [f32], width: usize, positions: &[usize], rows: &[f32], fresh: bool) {
    let parts = parallel::parts_for(rows.len().max(gradient.len()));
    parallel::for_each_row_block(gradient, width, parts, &|_, destinations, mine| {
        if fresh {
            mine.fill(0.0);
        }
        for (j, &position) in positions.iter().enumerate() {
            if destinations.contains(&position) {
                let at = (position - destinations.start) * width;
                kernels::add_scaled(&mut mine[at..at + width], &rows[j * width..(j + 1) * width], 1.0);
            }
        }
    });
}

/// Whether the state a node computes needs its gradient in this step: it feeds a subnet that trains.
fn needs_gradient(ir: &Bound, node: NodeId, context: &StepContext) -> bool {
    match ir.graph().node(node) {
        Node::Gru { subnet, .. } => context.subnet_trains(*subnet),
        Node::Interact { feature, primary } => context.subnet_trains(*feature) || context.subnet_trains(*primary),
        Node::HiddenSum { .. } => context.step.loss_on.iter().any(|&k| context.subnet_trains(k)),
        Node::Input { .. }
        | Node::Embedding { .. }
        | Node::Scores { .. }
        | Node::ScoreSum { .. }
        | Node::Activation { .. }
        | Node::Loss { .. } => false,
    }
}

/// Two different entries of a slice, both writable.
fn two_mut<T>(slice: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b, "two entries, not one");
    if a < b {
        let (low, high) = slice.split_at_mut(b);
        (&mut low[a], &mut high[0])
    } else {
        let (low, high) = slice.split_at_mut(a);
        (&mut high[0], &mut low[b])
    }
}

/// The node whose buffer holds `node`'s gradient.
fn resolve(grads: &[Option<Gradient>], node: NodeId) -> NodeId {
    match &grads[node.index()] {
        Some(Gradient::Of(other)) => resolve(grads, *other),
        _ => node,
    }
}

/// `node`'s own gradient buffer, started at zeros the first time it is asked for in a step.
fn own_gradient<'g>(grads: &'g mut [Option<Gradient>], pool: &mut Pool, node: NodeId, len: usize) -> &'g mut Vec<f32> {
    let slot = &mut grads[node.index()];
    if slot.is_none() {
        *slot = Some(Gradient::Own(pool.zeros(len)));
    }
    match slot {
        Some(Gradient::Own(buffer)) => buffer,
        _ => unreachable!("a state's gradient is its own"),
    }
}
