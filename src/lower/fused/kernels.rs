//! The element-wise parts of the fused step: exp, sigmoid and tanh, the output activations, the five
//! losses with their gradients, the GRU gates and Adagrad, as loops over slices.
//!
//! Each loss mirrors its libtorch counterpart in `lower::loss` and Adagrad mirrors `lower::optim`, term
//! for term; `tests/fused.rs` checks the whole step against the autograd step. The loops are written so
//! that the compiler vectorises them (no early exits, sums over eight lanes), and the public entry points
//! run an AVX2 build of the same code when the CPU has it: at these sizes the step is otherwise bound by
//! scalar `expf` calls (docs/performance.md).

use crate::ir::{Activation, Loss};

/// Added inside logarithms, as in `lower::loss`.
const LOG_EPS: f32 = 1e-24;

/// Defines `fn $name` (with the visibility given) that runs an AVX2+FMA compilation of `$body` when the CPU supports it, and the
/// portable compilation otherwise. The body is the same code: only the instruction set differs.
macro_rules! vectorised {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { portable($($arg),*) }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // Safety: the CPU has just been checked for AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use vectorised;

/// `e^x` to a relative error below 4e-7 (a few ulp), without branches or calls so that loops over it vectorise. NaN stays NaN, so a
/// diverging model still produces a NaN loss; below -87 it returns about 1e-38 instead of a subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HIGH is exact for |n| < 2^9.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds to an integer and leaves it in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    // Taylor series of e^r to degree 7 on |r| <= 0.35: truncation below 1e-8 relative.
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let exponent = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    p * f32::from_bits(((exponent + 127) << 23) as u32)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh` from [`exp`]; near 0, where `1 - 2 / (e^2x + 1)` would cancel, its odd Taylor series.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let large = 1.0 - 2.0 / (exp(2.0 * x) + 1.0);
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    if x.abs() < 0.125 {
        small
    } else {
        large
    }
}

/// A sum over eight lanes, so that it vectorises (a running float sum cannot be reordered).
#[inline(always)]
fn lane_sum(values: impl Iterator<Item = f32>) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (i, v) in values.enumerate() {
        lanes[i % 8] += v;
    }
    lanes.iter().sum()
}

#[inline(always)]
fn sum_of(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for l in 0..8 {
            lanes[l] += chunk[l];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

vectorised! {
    /// Applies the output activation to `scores`, into `outputs`.
    pub fn activate(activation: Activation, scores: &[f32], outputs: &mut [f32]) {
        match activation {
            Activation::Tanh => outputs.iter_mut().zip(scores).for_each(|(o, &s)| *o = tanh(s)),
            Activation::Linear | Activation::Softmax => outputs.copy_from_slice(scores),
            Activation::Elu { alpha } => {
                let alpha = alpha as f32;
                outputs.iter_mut().zip(scores).for_each(|(o, &s)| *o = if s > 0.0 { s } else { (exp(s) - 1.0) * alpha });
            }
        }
    }
}

vectorised! {
    /// Turns the gradient with respect to the activated `outputs` into the gradient with respect to the
    /// `scores`, in place.
    pub fn activation_backward(activation: Activation, outputs: &[f32], scores: &[f32], gradient: &mut [f32]) {
        match activation {
            Activation::Tanh => gradient.iter_mut().zip(outputs).for_each(|(g, o)| *g *= 1.0 - o * o),
            Activation::Linear | Activation::Softmax => {}
            Activation::Elu { alpha } => {
                let alpha = alpha as f32;
                // elu(s) = alpha (e^s - 1) at or below 0, so its derivative there is elu(s) + alpha (one-sided at 0).
                for ((g, o), s) in gradient.iter_mut().zip(outputs).zip(scores) {
                    *g *= if *s > 0.0 { 1.0 } else { o + alpha };
                }
            }
        }
    }
}

/// Softmax weights over a row's negatives into `weights` (the target's is 0), shifted by the largest
/// negative as `lower::loss::softmax_over_negatives` does.
#[inline(always)]
fn softmax_over_negatives(row: &[f32], target: usize, weights: &mut [f32]) {
    let largest = |part: &[f32]| part.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shift = largest(&row[..target]).max(largest(&row[target + 1..]));
    weights.iter_mut().zip(row).for_each(|(w, &s)| *w = exp(s - shift));
    weights[target] = 0.0;
    let inverse = 1.0 / sum_of(weights);
    weights.iter_mut().for_each(|w| *w *= inverse);
}

/// One row's loss, with its gradient with respect to the activated scores `row` written to `gradient`.
/// `target` is the column of the row's positive; `log_popularity` holds each column's log popularity
/// scaled by logQ (cross-entropy only). `weights` is scratch of the row's length.
#[inline(always)]
fn loss_row(loss: Loss, row: &[f32], target: usize, log_popularity: Option<&[f32]>, gradient: &mut [f32], weights: &mut [f32]) -> f64 {
    let n = row.len() as f32;
    let positive = row[target];
    match loss {
        Loss::CrossEntropy { .. } => {
            match log_popularity {
                Some(log_p) => gradient.iter_mut().zip(row).zip(log_p).for_each(|((g, &s), &p)| *g = s - p),
                None => gradient.copy_from_slice(row),
            }
            let largest = gradient.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            gradient.iter_mut().for_each(|g| *g = exp(*g - largest));
            let inverse = 1.0 / sum_of(gradient);
            let p_target = gradient[target] * inverse;
            // d(-ln(p_t + eps))/d logit_j = p_t / (p_t + eps) · (p_j - [j = t])
            let scale = p_target / (p_target + LOG_EPS);
            gradient.iter_mut().for_each(|g| *g *= inverse * scale);
            gradient[target] -= scale;
            -f64::from((p_target + LOG_EPS).ln())
        }
        Loss::Top1 => {
            // weights[j] = sigmoid(s_j - s_t); gradient[j] first holds sigmoid(s_j²).
            weights.iter_mut().zip(row).for_each(|(w, &s)| *w = sigmoid(s - positive));
            gradient.iter_mut().zip(row).for_each(|(g, &s)| *g = sigmoid(s * s));
            let total = sum_of(weights) + sum_of(gradient);
            let regulariser_of_target = gradient[target];
            let d_difference = lane_sum(weights.iter().map(|&d| d * (1.0 - d)));
            gradient.iter_mut().zip(weights.iter()).zip(row).for_each(|((g, &d), &s)| {
                *g = (d * (1.0 - d) + 2.0 * s * *g * (1.0 - *g)) / n;
            });
            // The positive's own terms: sigmoid(0) has no gradient, and its regulariser is taken back out.
            let own = weights[target] * (1.0 - weights[target]);
            gradient[target] = -(d_difference - own) / n;
            f64::from(total) / f64::from(n) - f64::from(regulariser_of_target / n)
        }
        Loss::Bpr => {
            weights.iter_mut().zip(row).for_each(|(w, &s)| *w = sigmoid(positive - s));
            let total = lane_sum(weights.iter().map(|&d| (d + LOG_EPS).ln()));
            gradient.iter_mut().zip(weights.iter()).for_each(|(g, &d)| *g = d * (1.0 - d) / (d + LOG_EPS) / n);
            gradient[target] = 0.0;
            gradient[target] = -sum_of(gradient);
            -f64::from(total) / f64::from(n)
        }
        Loss::Top1Max => {
            softmax_over_negatives(row, target, weights);
            // gradient[j] first holds sigmoid(s_j - s_t) + sigmoid(s_j²).
            gradient.iter_mut().zip(row).for_each(|(g, &s)| *g = sigmoid(s - positive) + sigmoid(s * s));
            let total = dot(weights, gradient);
            let mut to_target = [0.0f32; 8];
            for (j, ((g, &w), &s)) in gradient.iter_mut().zip(weights.iter()).zip(row).enumerate() {
                let (difference, regulariser) = (sigmoid(s - positive), sigmoid(s * s));
                let d_difference = difference * (1.0 - difference);
                to_target[j % 8] += w * d_difference;
                *g = w * (*g - total) + w * (d_difference + 2.0 * s * regulariser * (1.0 - regulariser));
            }
            gradient[target] = -to_target.iter().sum::<f32>();
            f64::from(total)
        }
        Loss::BprMax { bpreg } => {
            let bpreg = bpreg as f32;
            softmax_over_negatives(row, target, weights);
            // gradient[j] first holds sigmoid(s_t - s_j).
            gradient.iter_mut().zip(row).for_each(|(g, &s)| *g = sigmoid(positive - s));
            let ranking = dot(weights, gradient);
            let squares = lane_sum(weights.iter().zip(row).map(|(&w, &s)| w * s * s));
            let inverse = 1.0 / (ranking + LOG_EPS);
            let to_target = lane_sum(weights.iter().zip(gradient.iter()).map(|(&w, &d)| w * d * (1.0 - d)));
            gradient.iter_mut().zip(weights.iter()).zip(row).for_each(|((g, &w), &s)| {
                let d = *g;
                *g = -inverse * (w * (d - ranking) - w * d * (1.0 - d)) + bpreg * (w * (s * s - squares) + 2.0 * w * s);
            });
            gradient[target] = -inverse * to_target;
            -f64::from((ranking + LOG_EPS).ln()) + f64::from(bpreg * squares)
        }
    }
}

vectorised! {
    /// The loss of rows `first_row..` of activated scores, `outputs` `[rows, columns]` (row r's positive in
    /// column r), summed, with the gradient of each row written to `gradient`. `weights` is scratch of one row.
    pub fn loss_rows(
        loss: Loss,
        outputs: &[f32],
        columns: usize,
        first_row: usize,
        log_popularity: Option<&[f32]>,
        gradient: &mut [f32],
        weights: &mut [f32],
    ) -> f64 {
        let mut total = 0.0;
        for (r, (row, g)) in outputs.chunks_exact(columns).zip(gradient.chunks_exact_mut(columns)).enumerate() {
            total += loss_row(loss, row, first_row + r, log_popularity, g, weights);
        }
        total
    }
}

vectorised! {
    /// GRU4Rec's gates, reset before the product: `r`, `z` from `x_r + a_r`, `x_z + a_z`, and `r ⊙ h`.
    /// `x` is `[B, 3H]` as `[n | r | z]`, `a` is `h W_rz` `[B, 2H]`.
    pub fn gates_reset_before(x: &[f32], a: &[f32], before: &[f32], hidden: usize, reset: &mut [f32], update: &mut [f32], reset_state: &mut [f32]) {
        for (((x, a), h), ((reset, update), rh)) in x
            .chunks_exact(3 * hidden)
            .zip(a.chunks_exact(2 * hidden))
            .zip(before.chunks_exact(hidden))
            .zip(reset.chunks_exact_mut(hidden).zip(update.chunks_exact_mut(hidden)).zip(reset_state.chunks_exact_mut(hidden)))
        {
            for u in 0..hidden {
                reset[u] = sigmoid(x[hidden + u] + a[u]);
                update[u] = sigmoid(x[2 * hidden + u] + a[hidden + u]);
                rh[u] = reset[u] * h[u];
            }
        }
    }
}

vectorised! {
    /// GRU4Rec's candidate and new state: `c = tanh(x_n + n)`, `h' = h + z (c - h)`.
    pub fn state_reset_before(x: &[f32], n: &[f32], before: &[f32], update: &[f32], hidden: usize, candidate: &mut [f32], next: &mut [f32]) {
        for ((((x, n), h), z), (c, out)) in x
            .chunks_exact(3 * hidden)
            .zip(n.chunks_exact(hidden))
            .zip(before.chunks_exact(hidden))
            .zip(update.chunks_exact(hidden))
            .zip(candidate.chunks_exact_mut(hidden).zip(next.chunks_exact_mut(hidden)))
        {
            for u in 0..hidden {
                c[u] = tanh(x[u] + n[u]);
                out[u] = h[u] + z[u] * (c[u] - h[u]);
            }
        }
    }
}

vectorised! {
    /// PyTorch's GRUCell, reset after the product: `hh = h W_hh` (with `b_hn` added) `[B, 3H]`, `x` as `[r | z | n]`.
    pub fn gru_reset_after(x: &[f32], hh: &[f32], before: &[f32], hidden: usize, reset: &mut [f32], update: &mut [f32], candidate: &mut [f32], next: &mut [f32]) {
        for ((((x, hh), h), (reset, update)), (c, out)) in x
            .chunks_exact(3 * hidden)
            .zip(hh.chunks_exact(3 * hidden))
            .zip(before.chunks_exact(hidden))
            .zip(reset.chunks_exact_mut(hidden).zip(update.chunks_exact_mut(hidden)))
            .zip(candidate.chunks_exact_mut(hidden).zip(next.chunks_exact_mut(hidden)))
        {
            for u in 0..hidden {
                reset[u] = sigmoid(x[u] + hh[u]);
                update[u] = sigmoid(x[hidden + u] + hh[hidden + u]);
                c[u] = tanh(x[2 * hidden + u] + reset[u] * hh[2 * hidden + u]);
                out[u] = c[u] + update[u] * (h[u] - c[u]);
            }
        }
    }
}

vectorised! {
    /// How many of `row`'s candidates score at or below `score`, and how many score exactly `score`
    /// (NaN scores count in neither, so a NaN competitor ranks above the target).
    pub fn count_at_or_below(row: &[f32], score: f32, candidates: Option<&[bool]>) -> (u64, u64) {
        let (mut at_or_below, mut equal) = ([0u32; 8], [0u32; 8]);
        match candidates {
            None => {
                for (i, &s) in row.iter().enumerate() {
                    at_or_below[i % 8] += u32::from(s <= score);
                    equal[i % 8] += u32::from(s == score);
                }
            }
            Some(mask) => {
                for (i, (&s, &m)) in row.iter().zip(mask).enumerate() {
                    at_or_below[i % 8] += u32::from(s <= score && m);
                    equal[i % 8] += u32::from(s == score && m);
                }
            }
        }
        (at_or_below.iter().map(|&c| u64::from(c)).sum(), equal.iter().map(|&c| u64::from(c)).sum())
    }
}

vectorised! {
    /// `target[j] += scale · source[j]`.
    pub fn add_scaled(target: &mut [f32], source: &[f32], scale: f32) {
        target.iter_mut().zip(source).for_each(|(t, s)| *t += s * scale);
    }
}

vectorised! {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_sigmoid_and_tanh_match_the_standard_library() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.004; // -80 ..= 80
            let relative = |a: f32, b: f32| ((f64::from(a) - f64::from(b)) / f64::from(b).abs().max(1e-30)).abs();
            worst.0 = worst.0.max(relative(exp(x), x.exp()));
            worst.1 = worst
                .1
                .max(relative(sigmoid(x), 1.0 / (1.0 + (-x).exp())).min((f64::from(sigmoid(x)) - 1.0 / (1.0 + f64::from(-x).exp())).abs()));
            worst.2 = worst.2.max((f64::from(tanh(x)) - f64::from(x).tanh()).abs() / f64::from(x).tanh().abs().max(1e-3));
        }
        assert!(worst.0 < 4e-7, "exp: worst relative error {:e}", worst.0);
        assert!(worst.1 < 1e-6, "sigmoid: worst error {:e}", worst.1);
        assert!(worst.2 < 1e-6, "tanh: worst relative error {:e}", worst.2);
        assert!(exp(f32::NAN).is_nan() && sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan(), "NaN must survive");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite() && tanh(1000.0) == 1.0 && tanh(-1000.0) == -1.0);
    }

    /// Float32 central differences with a wide step: enough to catch a wrong term.
    fn check_gradient(loss: Loss, row: &[f32], target: usize) {
        let columns = row.len();
        let one_row = |values: &[f32], gradient: &mut [f32]| {
            // A single row is row 0, whose target must be column 0: rotate the target there.
            let mut rotated = values.to_vec();
            rotated.rotate_left(target);
            let mut g = vec![0.0; columns];
            let total = loss_rows(loss, &rotated, columns, 0, None, &mut g, &mut vec![0.0; columns]);
            g.rotate_right(target);
            gradient.copy_from_slice(&g);
            total
        };
        let mut gradient = vec![0.0; columns];
        one_row(row, &mut gradient);
        for j in 0..columns {
            let h = 1e-2f32;
            let (mut up, mut down) = (row.to_vec(), row.to_vec());
            up[j] += h;
            down[j] -= h;
            let mut scratch = vec![0.0; columns];
            let numeric = (one_row(&up, &mut scratch) - one_row(&down, &mut scratch)) / f64::from(2.0 * h);
            assert!((numeric - f64::from(gradient[j])).abs() < 2e-3, "{loss:?} column {j}: numeric {numeric}, analytic {}", gradient[j]);
        }
    }

    #[test]
    fn every_loss_gradient_matches_finite_differences() {
        let row = [0.3f32, -0.8, 1.2, 0.05, -0.4, 0.9, -1.1, 0.2, 0.6, -0.3, 0.45];
        for loss in [Loss::CrossEntropy { logq: 0.0 }, Loss::Top1, Loss::Bpr, Loss::Top1Max, Loss::BprMax { bpreg: 0.9 }] {
            for target in [0, 2, 10] {
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
