//! The arithmetic of one training step, from the bound IR: what decides whether its matrix products are worth
//! splitting over threads.

use super::param::RowSpace;
use super::Bound;

/// Multiply-adds of one training step's matrix products, forward and backward (three products per matrix:
/// the forward one and the two of its gradients): a matrix used whole meets every row of the mini-batch, an
/// output matrix meets the mini-batch's targets and extra negatives; rows gathered by item (one-hot inputs,
/// embeddings, sparse features) cost no product. Saturates at `u64::MAX`: the checker allows a batch of 10^9
/// and hidden sizes whose products no u64 holds, and such a step is simply large.
pub fn step_multiply_adds(bound: &Bound) -> u64 {
    let rows = u128::from(bound.plan().batch);
    let scored = rows + u128::from(bound.negatives().extra);
    let graph = bound.graph();
    let forward: u128 = graph
        .params()
        .map(|(_, param)| {
            let shape: Vec<u128> = param.shape.iter().map(|d| u128::from(super::number(d))).collect();
            match (shape.as_slice(), param.rows) {
                ([r, c], RowSpace::Dense | RowSpace::Undecided) => rows.saturating_mul(*r).saturating_mul(*c),
                ([_, width], RowSpace::ScoredItems | RowSpace::InputAndScoredItems) => rows.saturating_mul(scored).saturating_mul(*width),
                _ => 0,
            }
        })
        .fold(0, u128::saturating_add);
    u64::try_from(forward.saturating_mul(3)).unwrap_or(u64::MAX)
}

/// Below this many multiply-adds a step's products are too small to split: the threads' hand-offs cost more
/// than they save. On this project's 2-core AVX-512 EPYC (2026-11-29), row 1 (5 million) trained at 4,200–4,500
/// mini-batches/s on one thread and 1,900 on two; row 3 (1 billion) at 32–34 on one and 45–47 on two.
pub const SMALL_STEP: u64 = 50_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(spec: &str, items: u64) -> Bound {
        let model = crate::compile::check_source(&crate::diagnostic::Source::new("t.prnn", spec)).unwrap();
        let compiled = crate::ir::Compiled::new(model);
        Bound::new(compiled, &crate::ir::Bindings { items: Some(items), ..Default::default() }).unwrap()
    }

    #[test]
    fn rows_one_and_three_of_gru4rec() {
        let row1 = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/gru4rec_xe.prnn")).unwrap();
        let row3 = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/gru4rec_bprmax.prnn")).unwrap();
        // Row 1: W_hh 100 x 300 and 50 scored rows of W_out per example, batch 50.
        assert_eq!(step_multiply_adds(&bound(&row1, 10_000)), 3 * (50 * 100 * 300 + 50 * 50 * 100));
        // Row 3: W_in and W_hh 512 x 1536 (the constrained embedding feeds a dense projection), and
        // 128 + 2048 scored rows of the 512-wide output matrix per example, batch 128.
        assert_eq!(step_multiply_adds(&bound(&row3, 40_000)), 3 * (2 * 128 * 512 * 1536 + 128 * 2176 * 512));
        assert!(step_multiply_adds(&bound(&row1, 10_000)) < SMALL_STEP && step_multiply_adds(&bound(&row3, 40_000)) > SMALL_STEP);
    }

    #[test]
    fn a_step_past_u64_saturates_instead_of_overflowing() {
        // The checker's largest batch and extra negatives: 10^9 rows x 2·10^9 scored items x 10^9 hidden units.
        let spec = "model m {\n input id : item_id\n subnet s = gru(id, hidden = 1000000000)\n}\n\
                    train {\n batch = 1000000000\n negatives = in_batch(extra = 1000000000)\n}\n";
        assert_eq!(step_multiply_adds(&bound(spec, 10_000)), u64::MAX);
        // The command line's case: a batch of 10^9 over 16 units, whose 3 x 1.6·10^19 multiply-adds passed u64.
        let batch_only = "model m {\n input id : item_id\n subnet s = gru(id, hidden = 16)\n}\ntrain {\n batch = 1000000000\n}\n";
        assert_eq!(step_multiply_adds(&bound(batch_only, 300)), u64::MAX);
    }
}
