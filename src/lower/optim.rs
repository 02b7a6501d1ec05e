//! Adagrad with heavy-ball momentum, as GRU4Rec does it, in a dense form and a lazy row-sparse form.
//!
//! `acc += g²; m = μ·m − lr·g / sqrt(acc + eps); p += m`, with eps inside the square root and `acc`, `m`
//! starting at zero. The sparse form touches only the given rows: untouched rows are neither moved nor have
//! their momentum decayed, which keeps a step's cost independent of the catalogue size. tch has no Adagrad.

use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adagrad {
    pub learning_rate: f64,
    pub momentum: f64,
    pub eps: f64,
}

/// A parameter's optimizer state: the squared-gradient accumulator, and the momentum when `μ > 0`.
#[derive(Debug)]
pub struct AdagradState {
    pub accumulator: Tensor,
    pub momentum: Option<Tensor>,
}

impl AdagradState {
    pub fn zeros_like(value: &Tensor, with_momentum: bool) -> Self {
        AdagradState { accumulator: value.zeros_like(), momentum: with_momentum.then(|| value.zeros_like()) }
    }
}

impl Adagrad {
    /// Updates every entry of `value` from a dense gradient.
    pub fn dense_step(&self, value: &mut Tensor, state: &mut AdagradState, gradient: &Tensor) {
        let _guard = tch::no_grad_guard();
        let _ = state.accumulator.addcmul_(gradient, gradient);
        let step = gradient / (&state.accumulator + self.eps).sqrt() * self.learning_rate;
        match &mut state.momentum {
            Some(momentum) if self.momentum > 0.0 => {
                let _ = momentum.g_mul_scalar_(self.momentum).g_sub_(&step);
                let _ = value.g_add_(momentum);
            }
            _ => {
                let _ = value.g_sub_(&step);
            }
        }
    }

    /// Updates the rows `rows` (int64, distinct) of `value` from their gradient rows `gradient`
    /// (`[rows.len(), ...]`, duplicates already summed).
    pub fn sparse_step(&self, value: &mut Tensor, state: &mut AdagradState, rows: &Tensor, gradient: &Tensor) {
        let _guard = tch::no_grad_guard();
        let accumulated = state.accumulator.index_select(0, rows) + gradient.square();
        let _ = state.accumulator.index_copy_(0, rows, &accumulated);
        let step = gradient / (accumulated + self.eps).sqrt() * self.learning_rate;
        match &mut state.momentum {
            Some(momentum) if self.momentum > 0.0 => {
                let moved = momentum.index_select(0, rows) * self.momentum - step;
                let _ = momentum.index_copy_(0, rows, &moved);
                let _ = value.index_add_(0, rows, &moved);
            }
            _ => {
                let _ = value.index_add_(0, rows, &-step);
            }
        }
    }
}
