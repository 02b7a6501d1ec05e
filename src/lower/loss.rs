//! Output activations and the five ranking losses, on the scores of the batch's targets and negatives.
//!
//! Scores are `[M, M + S]`: row `i` scores the `M` targets of the batch and then `S` shared extra negatives;
//! row `i`'s positive is column `i`. Duplicate items among the columns are not masked, as in GRU4Rec. Every
//! loss returns the sum over rows; the caller divides by the nominal batch size.

use tch::{Kind, Tensor};

use crate::ir::{Activation, Loss};

/// Added inside logarithms, as GRU4Rec does, so that a saturated probability gives a large finite loss.
const LOG_EPS: f64 = 1e-24;

/// The output activation. `Softmax` means "logits": the softmax lives inside cross-entropy.
pub fn activate(activation: Activation, scores: &Tensor) -> Tensor {
    match activation {
        Activation::Tanh => scores.tanh(),
        Activation::Linear | Activation::Softmax => scores.shallow_clone(),
        // Selected, not summed, so that the derivative at exactly 0 is one-sided (alpha), not 1 + alpha.
        Activation::Elu { alpha } => scores.where_self(&scores.gt(0.0), &((scores.clamp_max(0.0).exp() - 1.0) * alpha)),
    }
}

/// The loss summed over the `M` rows. `log_popularity` `[M + S]` is the log of each column's item
/// popularity; cross-entropy with `logq > 0` subtracts `logq` times it from the logits.
pub fn loss(loss: Loss, scores: &Tensor, log_popularity: Option<&Tensor>) -> Tensor {
    let rows = scores.size()[0];
    let targets = scores.diagonal(0, 0, 1).reshape([rows, 1]);
    match loss {
        Loss::CrossEntropy { logq } => {
            let logits = match log_popularity {
                Some(log_p) if logq > 0.0 => scores - log_p.unsqueeze(0) * logq,
                _ => scores.shallow_clone(),
            };
            let probability = logits.softmax(1, Kind::Float).diagonal(0, 0, 1);
            -(probability + LOG_EPS).log().sum(Kind::Float)
        }
        Loss::Top1 => {
            let columns = scores.size()[1] as f64;
            // The mean runs over every column, the positive's own sigmoid(0) included, as in GRU4Rec; the
            // regulariser is meant for the negatives only, so the positive's share of it is taken back out.
            let per_row = ((scores - &targets).sigmoid() + scores.square().sigmoid()).mean_dim(1, false, Kind::Float);
            (per_row - targets.squeeze_dim(1).square().sigmoid() / columns).sum(Kind::Float)
        }
        Loss::Bpr => -((&targets - scores).sigmoid() + LOG_EPS).log().mean_dim(1, false, Kind::Float).sum(Kind::Float),
        Loss::Top1Max => {
            let weights = softmax_over_negatives(scores);
            (((scores - &targets).sigmoid() + scores.square().sigmoid()) * weights).sum(Kind::Float)
        }
        Loss::BprMax { bpreg } => {
            let weights = softmax_over_negatives(scores);
            let ranking = -(((&targets - scores).sigmoid() * &weights).sum_dim_intlist(1, false, Kind::Float) + LOG_EPS).log();
            let regulariser = (scores.square() * &weights).sum_dim_intlist(1, false, Kind::Float) * bpreg;
            (ranking + regulariser).sum(Kind::Float)
        }
    }
}

/// Softmax over each row's negatives: the positive (the diagonal) gets weight 0.
fn softmax_over_negatives(scores: &Tensor) -> Tensor {
    let size = scores.size();
    // The shift is the largest negative's score. GRU4Rec shifts by the maximum of the scores with the
    // diagonal set to 0, which underflows every exponential when all negatives are far below 0 (linear
    // outputs) and gives NaN gradients. The positive is set to -inf before the shift and the exponential,
    // so it can neither set the shift nor overflow.
    let diagonal = Tensor::eye_m(size[0], size[1], (Kind::Bool, scores.device()));
    let negatives_only = scores.masked_fill(&diagonal, f64::NEG_INFINITY);
    let shift = negatives_only.amax(&[1i64][..], true).detach();
    let exponentials = (negatives_only - shift).exp();
    &exponentials / exponentials.sum_dim_intlist(1, true, Kind::Float)
}
