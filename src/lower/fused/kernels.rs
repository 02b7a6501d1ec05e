//! The element-wise parts of the fused step: activations, the five losses with their gradients, and the
//! Adagrad update, on plain slices.
//!
//! Each function mirrors its libtorch counterpart in `lower::loss` and `lower::optim` operation for
//! operation; `tests/reference.rs` checks both against the same float64 fixtures.

use crate::check::{Activation, Loss};

/// Added inside logarithms, as in `lower::loss`.
const LOG_EPS: f32 = 1e-24;

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Applies the output activation in place.
pub fn activate(activation: Activation, scores: &mut [f32]) {
    match activation {
        Activation::Tanh => scores.iter_mut().for_each(|s| *s = s.tanh()),
        Activation::Linear | Activation::Softmax => {}
        Activation::Elu { alpha } => {
            let alpha = alpha as f32;
            scores.iter_mut().for_each(|s| {
                if *s <= 0.0 {
                    *s = (s.exp() - 1.0) * alpha;
                }
            });
        }
    }
}

/// Turns the gradient with respect to activated scores `outputs` into the gradient with respect to the
/// scores, in place.
pub fn activation_backward(activation: Activation, outputs: &[f32], scores: &[f32], gradient: &mut [f32]) {
    match activation {
        Activation::Tanh => gradient.iter_mut().zip(outputs).for_each(|(g, o)| *g *= 1.0 - o * o),
        Activation::Linear | Activation::Softmax => {}
        Activation::Elu { alpha } => {
            let alpha = alpha as f32;
            // elu(s) = alpha (e^s - 1) below 0, so its derivative there is elu(s) + alpha; one-sided at 0.
            for ((g, o), s) in gradient.iter_mut().zip(outputs).zip(scores) {
                if *s <= 0.0 {
                    *g *= o + alpha;
                }
            }
        }
    }
}

/// Softmax weights over a row's negatives into `weights` (the target's is 0), shifted by the largest
/// negative as `lower::loss::softmax_over_negatives` does.
fn softmax_over_negatives(row: &[f32], target: usize, weights: &mut [f32]) {
    let shift = row.iter().enumerate().filter(|&(j, _)| j != target).map(|(_, &s)| s).fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for (j, (w, &s)) in weights.iter_mut().zip(row).enumerate() {
        *w = if j == target { 0.0 } else { (s - shift).exp() };
        total += *w;
    }
    weights.iter_mut().for_each(|w| *w /= total);
}

/// One row's loss, with its gradient with respect to the activated scores `row` written to `gradient`.
/// `target` is the column of the row's positive; `log_popularity` holds each column's log popularity
/// scaled by logQ (cross-entropy only). `weights` is scratch of the row's length.
pub fn loss_row(loss: Loss, row: &[f32], target: usize, log_popularity: Option<&[f32]>, gradient: &mut [f32], weights: &mut [f32]) -> f64 {
    let columns = row.len();
    let positive = row[target];
    match loss {
        Loss::CrossEntropy { .. } => {
            for (j, g) in gradient.iter_mut().enumerate() {
                *g = row[j] - log_popularity.map_or(0.0, |p| p[j]);
            }
            let largest = gradient.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0f32;
            for g in gradient.iter_mut() {
                *g = (*g - largest).exp();
                total += *g;
            }
            gradient.iter_mut().for_each(|g| *g /= total);
            let p_target = gradient[target];
            // d(-ln(p_t + eps))/d logit_j = p_t / (p_t + eps) · (p_j - [j = t])
            let scale = p_target / (p_target + LOG_EPS);
            gradient.iter_mut().for_each(|g| *g *= scale);
            gradient[target] -= scale;
            -f64::from((p_target + LOG_EPS).ln())
        }
        Loss::Top1 => {
            let n = columns as f32;
            let mut sum = 0.0f64;
            let mut to_target = 0.0f32;
            for (j, g) in gradient.iter_mut().enumerate() {
                let s = row[j];
                let difference = sigmoid(s - positive);
                let regulariser = sigmoid(s * s);
                sum += f64::from(difference + regulariser);
                if j == target {
                    continue;
                }
                let d_difference = difference * (1.0 - difference);
                *g = (d_difference + 2.0 * s * regulariser * (1.0 - regulariser)) / n;
                to_target += d_difference;
            }
            // The positive's own terms: sigmoid(0) has no gradient, and its regulariser is taken back out.
            gradient[target] = -to_target / n;
            sum / f64::from(n) - f64::from(sigmoid(positive * positive) / n)
        }
        Loss::Bpr => {
            let n = columns as f32;
            let mut sum = 0.0f64;
            let mut to_target = 0.0f32;
            for (j, g) in gradient.iter_mut().enumerate() {
                let difference = sigmoid(positive - row[j]);
                sum += f64::from((difference + LOG_EPS).ln());
                if j == target {
                    continue;
                }
                let d = difference * (1.0 - difference) / (difference + LOG_EPS) / n;
                *g = d;
                to_target += d;
            }
            gradient[target] = -to_target;
            -sum / f64::from(n)
        }
        Loss::Top1Max => {
            softmax_over_negatives(row, target, weights);
            let mut total = 0.0f32;
            for j in 0..columns {
                if j != target {
                    total += weights[j] * (sigmoid(row[j] - positive) + sigmoid(row[j] * row[j]));
                }
            }
            let mut to_target = 0.0f32;
            for j in 0..columns {
                if j == target {
                    continue;
                }
                let s = row[j];
                let (difference, regulariser) = (sigmoid(s - positive), sigmoid(s * s));
                let w = weights[j];
                let d_difference = difference * (1.0 - difference);
                gradient[j] = w * (difference + regulariser - total) + w * (d_difference + 2.0 * s * regulariser * (1.0 - regulariser));
                to_target += w * d_difference;
            }
            gradient[target] = -to_target;
            f64::from(total)
        }
        Loss::BprMax { bpreg } => {
            let bpreg = bpreg as f32;
            softmax_over_negatives(row, target, weights);
            let (mut ranking, mut squares) = (0.0f32, 0.0f32);
            for j in 0..columns {
                if j != target {
                    ranking += weights[j] * sigmoid(positive - row[j]);
                    squares += weights[j] * row[j] * row[j];
                }
            }
            let inverse = 1.0 / (ranking + LOG_EPS);
            let mut to_target = 0.0f32;
            for j in 0..columns {
                if j == target {
                    continue;
                }
                let (s, w) = (row[j], weights[j]);
                let difference = sigmoid(positive - s);
                let d_difference = difference * (1.0 - difference);
                gradient[j] = -inverse * (w * (difference - ranking) - w * d_difference) + bpreg * (w * (s * s - squares) + 2.0 * w * s);
                to_target += w * d_difference;
            }
            gradient[target] = -inverse * to_target;
            -f64::from((ranking + LOG_EPS).ln()) + f64::from(bpreg * squares)
        }
    }
}

/// Adagrad on one block of values with their gradient, as `lower::optim::Adagrad` computes it in f32.
pub fn adagrad(values: &mut [f32], accumulator: &mut [f32], momentum: Option<&mut [f32]>, gradient: &[f32], learning_rate: f32, mu: f32, eps: f32) {
    match momentum {
        Some(momentum) if mu > 0.0 => {
            for (((v, a), m), &g) in values.iter_mut().zip(accumulator.iter_mut()).zip(momentum.iter_mut()).zip(gradient) {
                *a += g * g;
                *m = *m * mu - g / (*a + eps).sqrt() * learning_rate;
                *v += *m;
            }
        }
        _ => {
            for ((v, a), &g) in values.iter_mut().zip(accumulator.iter_mut()).zip(gradient) {
                *a += g * g;
                *v -= g / (*a + eps).sqrt() * learning_rate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `loss_row` in float64 would need a float64 copy; float32 differences with a
    /// wide step are enough to catch a wrong term.
    fn check_gradient(loss: Loss, row: &[f32], target: usize) {
        let mut gradient = vec![0.0; row.len()];
        let mut scratch = vec![0.0; row.len()];
        loss_row(loss, row, target, None, &mut gradient, &mut scratch);
        for j in 0..row.len() {
            let h = 1e-2f32;
            let (mut up, mut down) = (row.to_vec(), row.to_vec());
            up[j] += h;
            down[j] -= h;
            let mut g = vec![0.0; row.len()];
            let numeric = (loss_row(loss, &up, target, None, &mut g, &mut scratch) - loss_row(loss, &down, target, None, &mut g, &mut scratch))
                / f64::from(2.0 * h);
            assert!((numeric - f64::from(gradient[j])).abs() < 2e-3, "{loss:?} column {j}: numeric {numeric}, analytic {}", gradient[j]);
        }
    }

    #[test]
    fn every_loss_gradient_matches_finite_differences() {
        let row = [0.3f32, -0.8, 1.2, 0.05, -0.4];
        for loss in [Loss::CrossEntropy { logq: 0.0 }, Loss::Top1, Loss::Bpr, Loss::Top1Max, Loss::BprMax { bpreg: 0.9 }] {
            for target in [0, 2, 4] {
                check_gradient(loss, &row, target);
            }
        }
    }

    #[test]
    fn adagrad_moves_against_the_gradient_and_accumulates() {
        let (mut values, mut accumulator) = (vec![1.0f32, 1.0], vec![0.0f32, 0.0]);
        adagrad(&mut values, &mut accumulator, None, &[2.0, -1.0], 0.1, 0.0, 1e-6);
        assert_eq!(accumulator, vec![4.0, 1.0]);
        assert!((values[0] - 0.9).abs() < 1e-6 && (values[1] - 1.1).abs() < 1e-6);
    }
}
