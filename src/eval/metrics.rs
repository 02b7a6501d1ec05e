//! Next-item evaluation: the rank of each target among its competitors, and Recall@K and MRR@K over those ranks.
//!
//! Ranks are computed and summed on the device the scores live on, so an evaluation pass copies nothing to the
//! host until [`RankMetrics::finish`].
//!
//! # Competitors
//!
//! A target competes with every item (`candidates: None`), or with the items of a candidate mask (the paper's
//! VIDXL protocol ranks against the N most popular items, see [`most_popular_mask`]). The target always competes
//! as itself, in the mask or not: a target outside the mask is ranked among the candidates plus itself, so
//! `n_competitors = |candidates ∪ {target}|`, and items outside the mask never change a rank.
//!
//! # Ties
//!
//! With `above` the competitors scoring higher than the target and `tied` the *other* competitors scoring exactly
//! the same (the target itself is not counted in `tied`):
//!
//! | [`Ties`]       | rank                       |
//! |----------------|----------------------------|
//! | `Standard`     | `1 + above`                |
//! | `Conservative` | `1 + above + tied`         |
//! | `Median`       | `1 + above + tied / 2`     |
//!
//! `Conservative` (prnn's and GRU4Rec's default) puts the target below every item it ties with, so a model that
//! scores everything alike ranks every target last instead of first.
//!
//! # NaN scores
//!
//! NaN never improves a rank. A competitor whose score is NaN counts as above the target, and a target whose own
//! score is NaN gets the worst rank, `n_competitors`, in every tie mode.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::{RankingMetric, Ties};

/// [`target_ranks`] for scores in host memory `[rows, n_items]`: one pass per row that counts what
/// `target_ranks` counts with several tensor operations, rows split over libtorch's CPU threads.
pub fn target_ranks_host(scores: &[f32], n_items: usize, targets: &[u32], candidates: Option<&[bool]>, ties: Ties) -> Vec<f64> {
    use crate::lower::fused::kernels;
    use crate::runtime::parallel;
    assert_eq!(scores.len(), n_items * targets.len(), "scores must be [targets, n_items]");
    let mut ranks = vec![0.0f64; targets.len()];
    let n_counted = candidates.map_or(n_items as u64, |mask| mask.iter().filter(|&&m| m).count() as u64);
    let parts = parallel::parts_for(scores.len()).min(targets.len().max(1));
    parallel::for_each_row_block(&mut ranks, 1, parts, &|_, rows, mine| {
        for (r, out) in rows.zip(mine.iter_mut()) {
            let row = &scores[r * n_items..(r + 1) * n_items];
            let target = targets[r] as usize;
            let score = row[target];
            let target_counted = candidates.map_or(1, |mask| u64::from(mask[target]));
            let rank = if score.is_nan() {
                (n_counted + 1 - target_counted) as f64
            } else {
                let (at_or_below, equal) = kernels::count_at_or_below(row, score, candidates);
                let above = (n_counted - at_or_below) as f64;
                let tied_others = (equal - target_counted) as f64;
                match ties {
                    Ties::Standard => above + 1.0,
                    Ties::Conservative => above + tied_others + 1.0,
                    Ties::Median => above + 1.0 + tied_others * 0.5,
                }
            };
            *out = rank;
        }
    });
    ranks
}

/// The 1-based rank of each row's target among its competitors (see the module documentation for competitors,
/// ties and NaN).
///
/// `scores` is `[batch, n_items]` of any float kind, `targets` `[batch]` item indices (int64, or anything that
/// converts), `candidates` an optional `[n_items]` bool mask. Returns `[batch]` float64 ranks in
/// `1..=n_competitors`, on the device of `scores`, without waiting for the device. Targets must lie in
/// `0..n_items`; checking that here would cost a host sync per batch, so an out-of-range target fails inside
/// libtorch instead (an error on CPU, a device-side assert on CUDA). `targets` and `candidates` are moved to the
/// scores' device when they are elsewhere, a copy per call: build the mask there once.
pub fn target_ranks(scores: &Tensor, targets: &Tensor, candidates: Option<&Tensor>, ties: Ties) -> Tensor {
    let (batch, n_items) = scores.size2().expect("scores must be [batch, n_items]");
    assert_eq!(targets.size(), [batch], "targets must hold one item per row of scores");
    let device = scores.device();
    let targets = targets.to_device(device).to_kind(Kind::Int64);
    let target_scores = scores.gather(1, &targets.unsqueeze(1), false);

    // Counting `<=` and subtracting from the number counted, rather than counting `>`, puts NaN competitors
    // above the target (NaN compares false), and the target itself always lands in `<=`.
    let at_or_below = scores.le_tensor(&target_scores);
    let candidates = candidates.map(|mask| {
        assert_eq!(mask.size(), [n_items], "the candidate mask must have one entry per item");
        assert_eq!(mask.kind(), Kind::Bool, "the candidate mask must be bool");
        let mask = mask.to_device(device);
        let target_is_candidate = mask.index_select(0, &targets).to_kind(Kind::Int64);
        (mask, target_is_candidate)
    });
    let count = |within: &Tensor| match &candidates {
        None => within.sum_dim_intlist(1, false, Kind::Int64),
        Some((mask, _)) => within.logical_and(mask).sum_dim_intlist(1, false, Kind::Int64),
    };
    // Items counted by `count`, and how many of them are the target itself (0 or 1 per row).
    let (n_counted, target_counted) = match &candidates {
        None => (Tensor::full([batch], n_items, (Kind::Int64, device)), Tensor::ones([batch], (Kind::Int64, device))),
        Some((mask, target_is_candidate)) => (mask.sum(Kind::Int64).expand([batch], false), target_is_candidate.shallow_clone()),
    };
    let n_competitors = &n_counted + 1 - &target_counted;
    let above = &n_counted - count(&at_or_below);
    let tied_others = || count(&scores.eq_tensor(&target_scores)) - &target_counted;

    let ranks = match ties {
        Ties::Standard => (above + 1).to_kind(Kind::Double),
        Ties::Conservative => (above + tied_others() + 1).to_kind(Kind::Double),
        Ties::Median => (above + 1).to_kind(Kind::Double) + tied_others().to_kind(Kind::Double) * 0.5,
    };
    let target_is_nan = target_scores.squeeze_dim(1).isnan();
    n_competitors.to_kind(Kind::Double).where_self(&target_is_nan, &ranks)
}

/// Recall, MRR, HitRate and NDCG at one cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CutoffMetrics {
    pub cutoff: u64,
    /// The fraction of events whose target ranked within the cutoff.
    pub recall: f64,
    /// The mean over all events of `1 / rank`, counting 0 for a target ranked beyond the cutoff.
    pub mrr: f64,
    /// HitRate@K: the fraction of events with a hit within the cutoff. Each event has one relevant item, its
    /// target, so it equals Recall@K; both names are in use (GRU4Rec says recall, RecBole hit). `None` in
    /// results written before prnn reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_rate: Option<f64>,
    /// NDCG@K: the mean over all events of `1 / log2(1 + rank)`, counting 0 beyond the cutoff. With one
    /// relevant item the ideal DCG is 1, so this is the DCG itself. `None` in results written before prnn
    /// reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndcg: Option<f64>,
}

impl CutoffMetrics {
    /// The value of `metric`; None for NDCG in results written before prnn reported it.
    pub fn value(&self, metric: RankingMetric) -> Option<f64> {
        match metric {
            RankingMetric::Recall => Some(self.recall),
            RankingMetric::Mrr => Some(self.mrr),
            RankingMetric::Ndcg => self.ndcg,
            // One relevant item per event makes the hit rate the recall, in results that predate `hit_rate` too.
            RankingMetric::HitRate => Some(self.hit_rate.unwrap_or(self.recall)),
        }
    }
}

/// Recall@K and MRR@K summed over batches of ranks, kept on the ranks' device until [`RankMetrics::finish`].
///
/// Sums are float64: at millions of events a float32 sum of reciprocal ranks drifts in the fourth digit.
#[derive(Debug)]
pub struct RankMetrics {
    cutoffs: Vec<u64>,
    /// Created on the first [`RankMetrics::add`], on the device of those ranks.
    sums: Option<DeviceSums>,
    events: u64,
}

#[derive(Debug)]
struct DeviceSums {
    /// `[n_cutoffs]` float64.
    cutoffs: Tensor,
    /// `[n_cutoffs]` float64: events ranked within each cutoff.
    hits: Tensor,
    /// `[n_cutoffs]` float64: `1 / rank` summed over the events ranked within each cutoff.
    reciprocal_ranks: Tensor,
    /// `[n_cutoffs]` float64: `1 / log2(1 + rank)` summed over the events ranked within each cutoff.
    discounted_gains: Tensor,
}

impl RankMetrics {
    /// Metrics at each cutoff, reported in the order given.
    pub fn new(cutoffs: &[u64]) -> RankMetrics {
        RankMetrics { cutoffs: cutoffs.to_vec(), sums: None, events: 0 }
    }

    /// Adds a `[batch]` tensor of ranks (1 = best), as [`target_ranks`] returns them; queues device work only.
    ///
    /// Ranks on another device than earlier batches are moved to the first batch's device.
    pub fn add(&mut self, ranks: &Tensor) {
        let batch = match ranks.size().as_slice() {
            &[batch] => batch,
            shape => panic!("ranks must be one-dimensional, got shape {shape:?}"),
        };
        let cutoffs = &self.cutoffs;
        let sums = self.sums.get_or_insert_with(|| {
            let device = ranks.device();
            let cutoffs: Vec<f64> = cutoffs.iter().map(|&cutoff| cutoff as f64).collect();
            DeviceSums {
                cutoffs: Tensor::from_slice(&cutoffs).to_device(device),
                hits: Tensor::zeros([cutoffs.len() as i64], (Kind::Double, device)),
                reciprocal_ranks: Tensor::zeros([cutoffs.len() as i64], (Kind::Double, device)),
                discounted_gains: Tensor::zeros([cutoffs.len() as i64], (Kind::Double, device)),
            }
        });
        let ranks = ranks.to_device(sums.cutoffs.device()).to_kind(Kind::Double).unsqueeze(1);
        let within = ranks.le_tensor(&sums.cutoffs.unsqueeze(0));
        sums.hits += within.sum_dim_intlist(0, false, Kind::Double);
        // `where` rather than a product with the mask, so a rank beyond every cutoff contributes 0, never 0 * inf.
        sums.reciprocal_ranks += ranks.reciprocal().where_scalarother(&within, 0.0).sum_dim_intlist(0, false, Kind::Double);
        sums.discounted_gains += (&ranks + 1.0).log2().reciprocal().where_scalarother(&within, 0.0).sum_dim_intlist(0, false, Kind::Double);
        self.events += batch as u64;
    }

    /// Events (ranks) added so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Recall and MRR at each cutoff; the only host sync. With no events added, every metric is 0.
    pub fn finish(&self) -> Vec<CutoffMetrics> {
        let zeros = || vec![0.0; self.cutoffs.len()];
        let (hits, reciprocal_ranks, discounted_gains) = match &self.sums {
            Some(sums) if self.events > 0 => (to_host(&sums.hits), to_host(&sums.reciprocal_ranks), to_host(&sums.discounted_gains)),
            _ => (zeros(), zeros(), zeros()),
        };
        let events = self.events.max(1) as f64;
        (0..self.cutoffs.len())
            .map(|k| CutoffMetrics {
                cutoff: self.cutoffs[k],
                recall: hits[k] / events,
                mrr: reciprocal_ranks[k] / events,
                hit_rate: Some(hits[k] / events),
                ndcg: Some(discounted_gains[k] / events),
            })
            .collect()
    }
}

fn to_host(sums: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&sums.to_device(Device::Cpu)).expect("metric sums are a float64 vector")
}

/// A bool `[support.len()]` mask of the `n` items with the highest support (all items when `n >= support.len()`),
/// equal support going to the lower index so the mask is the same on every run.
///
/// `n` must be positive: an empty mask would rank every target first against no competitors. Rank against
/// every item by passing no mask to [`target_ranks`] instead (`most_popular = 0` in the config).
pub fn most_popular_mask(support: &[u64], n: usize, device: Device) -> Tensor {
    Tensor::from_slice(&most_popular(support, n)).to_device(device)
}

/// [`most_popular_mask`] in host memory, for [`target_ranks_host`].
pub fn most_popular(support: &[u64], n: usize) -> Vec<bool> {
    assert!(n > 0, "a most-popular mask needs at least one item; pass no mask to rank against every item");
    let mut by_popularity: Vec<usize> = (0..support.len()).collect();
    by_popularity.sort_unstable_by_key(|&item| (std::cmp::Reverse(support[item]), item));
    let mut mask = vec![false; support.len()];
    for &item in by_popularity.iter().take(n) {
        mask[item] = true;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(rows: &[&[f32]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flat_map(|row| row.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    fn ranks(scores: &Tensor, targets: &[i64], candidates: Option<&[bool]>, ties: Ties) -> Vec<f64> {
        let mask = candidates.map(Tensor::from_slice);
        let ranks = target_ranks(scores, &Tensor::from_slice(targets), mask.as_ref(), ties);
        assert_eq!(ranks.kind(), Kind::Double);
        let ranks = Vec::<f64>::try_from(&ranks).unwrap();
        // The host kernel of the CPU evaluation must count exactly what the tensor version counts.
        let values = Vec::<f32>::try_from(scores.flatten(0, -1)).unwrap();
        let host_targets: Vec<u32> = targets.iter().map(|&t| t as u32).collect();
        let host = target_ranks_host(&values, scores.size()[1] as usize, &host_targets, candidates, ties);
        assert_eq!(host, ranks, "host ranks differ from tensor ranks ({ties:?})");
        ranks
    }

    fn all_modes(scores: &Tensor, targets: &[i64], candidates: Option<&[bool]>) -> [Vec<f64>; 3] {
        [Ties::Standard, Ties::Conservative, Ties::Median].map(|ties| ranks(scores, targets, candidates, ties))
    }

    fn metrics(ranks: &[f64], cutoffs: &[u64]) -> Vec<CutoffMetrics> {
        let mut metrics = RankMetrics::new(cutoffs);
        metrics.add(&Tensor::from_slice(ranks));
        metrics.finish()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-12 * expected.abs().max(1.0), "{actual} != {expected}");
    }

    /// Two items above the target (0.9, 0.7) and two others tied with it at 0.5.
    const TIED_ROW: [f32; 7] = [0.9, 0.5, 0.5, 0.7, 0.1, 0.5, 0.2];

    #[test]
    fn standard_ties_count_only_higher_scores() {
        assert_eq!(ranks(&scores(&[&TIED_ROW]), &[1], None, Ties::Standard), [3.0]);
    }

    #[test]
    fn conservative_ties_rank_the_target_below_every_tie() {
        assert_eq!(ranks(&scores(&[&TIED_ROW]), &[1], None, Ties::Conservative), [5.0]);
    }

    #[test]
    fn median_ties_rank_the_target_mid_way_through_its_ties() {
        assert_eq!(ranks(&scores(&[&TIED_ROW]), &[1], None, Ties::Median), [4.0]);
        // An odd number of ties (the target and one other) gives a half rank.
        assert_eq!(ranks(&scores(&[&[0.3, 0.8, 0.3]]), &[0], None, Ties::Median), [2.5]);
    }

    #[test]
    fn the_tied_target_ranks_the_same_whichever_tied_item_it_is() {
        let tied = scores(&[&TIED_ROW]);
        for target in [1, 2, 5] {
            assert_eq!(all_modes(&tied, &[target], None), [[3.0], [5.0], [4.0]]);
        }
    }

    #[test]
    fn a_top_scored_target_ranks_first_in_every_mode() {
        let rows = scores(&[&[0.1, 0.9, 0.3, 0.5], &[-3.0, -1.0, -2.0, -4.0]]);
        assert_eq!(all_modes(&rows, &[1, 1], None), [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]);
    }

    #[test]
    fn a_top_score_shared_with_another_item_is_not_first_under_conservative_ties() {
        assert_eq!(all_modes(&scores(&[&[0.9, 0.2, 0.9]]), &[0], None), [[1.0], [2.0], [1.5]]);
    }

    #[test]
    fn a_bottom_scored_target_ranks_last_in_every_mode() {
        assert_eq!(all_modes(&scores(&[&[0.1, 0.9, 0.3, 0.5, -7.0]]), &[4], None), [[5.0], [5.0], [5.0]]);
    }

    #[test]
    fn all_equal_scores_rank_first_standard_last_conservative() {
        assert_eq!(all_modes(&scores(&[&[0.0; 5]]), &[2], None), [[1.0], [5.0], [3.0]]);
    }

    #[test]
    fn each_row_is_ranked_against_its_own_scores() {
        let rows = scores(&[&[0.1, 0.2, 0.3], &[0.3, 0.2, 0.1], &[0.2, 0.2, 0.2]]);
        assert_eq!(ranks(&rows, &[0, 0, 0], None, Ties::Conservative), [3.0, 1.0, 3.0]);
        assert_eq!(ranks(&rows, &[0, 0, 0], None, Ties::Standard), [3.0, 1.0, 1.0]);
    }

    #[test]
    fn competitors_outside_the_candidate_mask_are_ignored() {
        // Items 0 and 3 outscore the target but are not candidates; item 2 ties with it but is not a candidate.
        let row = scores(&[&[0.9, 0.5, 0.5, 0.8, 0.6, 0.5, 0.1]]);
        let candidates = [false, true, false, false, true, true, true];
        assert_eq!(all_modes(&row, &[1], Some(&candidates)), [[2.0], [3.0], [2.5]]);
    }

    #[test]
    fn a_target_outside_the_candidate_mask_still_competes_as_itself() {
        let row = scores(&[&[0.9, 0.5, 0.5, 0.8, 0.1]]);
        // Target 1 is no candidate; its competitors are itself and items 2, 3 and 4.
        let candidates = [false, false, true, true, true];
        assert_eq!(all_modes(&row, &[1], Some(&candidates)), [[2.0], [3.0], [2.5]]);
        // Below every candidate it is last among the 4 (3 candidates and itself); above them all, first.
        assert_eq!(all_modes(&scores(&[&[0.9, 0.0, 0.5, 0.8, 0.1]]), &[1], Some(&candidates)), [[4.0], [4.0], [4.0]]);
        assert_eq!(all_modes(&scores(&[&[0.9, 1.0, 0.5, 0.8, 0.1]]), &[1], Some(&candidates)), [[1.0], [1.0], [1.0]]);
    }

    #[test]
    fn a_mask_of_every_item_ranks_as_no_mask() {
        let rows = scores(&[&TIED_ROW, &[0.3, 0.1, 0.2, 0.9, 0.1, 0.0, 0.4]]);
        assert_eq!(all_modes(&rows, &[1, 4], Some(&[true; 7])), all_modes(&rows, &[1, 4], None));
    }

    #[test]
    fn a_nan_target_score_gets_the_worst_rank() {
        let row = scores(&[&[0.9, f32::NAN, 0.5, 0.8, 0.1]]);
        assert_eq!(all_modes(&row, &[1], None), [[5.0], [5.0], [5.0]]);
        // The worst rank among candidates, whether or not the target is one of them.
        assert_eq!(all_modes(&row, &[1], Some(&[false, true, true, false, true])), [[3.0], [3.0], [3.0]]);
        assert_eq!(all_modes(&row, &[1], Some(&[false, false, true, false, true])), [[3.0], [3.0], [3.0]]);
    }

    #[test]
    fn nan_scores_everywhere_rank_every_target_last() {
        let rows = scores(&[&[f32::NAN; 4], &[f32::NAN; 4]]);
        assert_eq!(all_modes(&rows, &[0, 3], None), [[4.0, 4.0], [4.0, 4.0], [4.0, 4.0]]);
    }

    #[test]
    fn a_nan_competitor_counts_as_above_the_target() {
        let row = scores(&[&[0.1, f32::NAN, 0.9, 0.5]]);
        assert_eq!(all_modes(&row, &[2], None), [[2.0], [2.0], [2.0]]);
        // Unless it is no candidate.
        assert_eq!(all_modes(&row, &[2], Some(&[true, false, true, true])), [[1.0], [1.0], [1.0]]);
    }

    #[test]
    fn ranks_match_a_direct_count_on_random_rows_with_many_ties() {
        // A fixed linear congruential sequence keeps the test deterministic without a random-number dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |below: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let (batch, n_items) = (64, 23);
        let rows: Vec<Vec<f32>> = (0..batch).map(|_| (0..n_items).map(|_| next(6) as f32).collect()).collect();
        let targets: Vec<i64> = (0..batch).map(|_| next(n_items as u64) as i64).collect();
        let mask: Vec<bool> = (0..n_items).map(|_| next(3) == 0).collect();
        let row_refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let scores = scores(&row_refs);
        for candidates in [None, Some(mask.as_slice())] {
            for ties in [Ties::Standard, Ties::Conservative, Ties::Median] {
                let expected: Vec<f64> = rows
                    .iter()
                    .zip(&targets)
                    .map(|(row, &target)| {
                        let target = target as usize;
                        let competes = |item: usize| item != target && candidates.is_none_or(|mask| mask[item]);
                        let above = (0..n_items).filter(|&i| competes(i) && row[i] > row[target]).count() as f64;
                        let tied = (0..n_items).filter(|&i| competes(i) && row[i] == row[target]).count() as f64;
                        match ties {
                            Ties::Standard => 1.0 + above,
                            Ties::Conservative => 1.0 + above + tied,
                            Ties::Median => 1.0 + above + tied / 2.0,
                        }
                    })
                    .collect();
                assert_eq!(ranks(&scores, &targets, candidates, ties), expected, "{ties:?}, mask: {candidates:?}");
            }
        }
    }

    #[test]
    fn half_precision_scores_rank_like_single_precision() {
        let row = scores(&[&TIED_ROW]);
        assert_eq!(all_modes(&row.to_kind(Kind::Half), &[1], None), all_modes(&row, &[1], None));
    }

    #[test]
    fn recall_and_mrr_by_hand() {
        let metrics = metrics(&[1.0, 2.0, 5.0, 30.0], &[1, 5, 20]);
        let expected = [(1, 0.25, 0.25), (5, 0.75, (1.0 + 0.5 + 0.2) / 4.0), (20, 0.75, (1.0 + 0.5 + 0.2) / 4.0)];
        assert_eq!(metrics.len(), expected.len());
        for (metric, (cutoff, recall, mrr)) in metrics.iter().zip(expected) {
            assert_eq!(metric.cutoff, cutoff);
            assert_close(metric.recall, recall);
            assert_close(metric.mrr, mrr);
        }
    }

    #[test]
    fn a_rank_equal_to_the_cutoff_is_a_hit_and_half_ranks_count_as_they_are() {
        let metrics = metrics(&[5.0, 5.5], &[5, 6]);
        assert_close(metrics[0].recall, 0.5);
        assert_close(metrics[0].mrr, 0.2 / 2.0);
        assert_close(metrics[1].recall, 1.0);
        assert_close(metrics[1].mrr, (0.2 + 1.0 / 5.5) / 2.0);
    }

    #[test]
    fn cutoffs_are_reported_in_the_order_given() {
        let cutoffs: Vec<u64> = metrics(&[3.0], &[20, 1, 5]).iter().map(|metric| metric.cutoff).collect();
        assert_eq!(cutoffs, [20, 1, 5]);
    }

    #[test]
    fn batches_accumulate_to_the_same_metrics_as_one_batch() {
        let all = [1.0, 7.0, 3.0, 2.5, 40.0, 1.0, 11.0, 20.0, 21.0, 4.0];
        let cutoffs = [1, 5, 10, 20];
        let mut batched = RankMetrics::new(&cutoffs);
        for batch in [&all[..3], &all[3..4], &all[4..4], &all[4..]] {
            batched.add(&Tensor::from_slice(batch));
        }
        assert_eq!(batched.events(), all.len() as u64);
        let whole = metrics(&all, &cutoffs);
        for (batched, whole) in batched.finish().iter().zip(&whole) {
            assert_eq!(batched.cutoff, whole.cutoff);
            assert_close(batched.recall, whole.recall);
            assert_close(batched.mrr, whole.mrr);
        }
    }

    #[test]
    fn sums_are_float64() {
        // 2^24 + 1 is 2^24 in float32, which would make it a hit at cutoff 2^24.
        let metrics = metrics(&[16_777_217.0], &[16_777_216, 16_777_217]);
        assert_eq!((metrics[0].recall, metrics[1].recall), (0.0, 1.0));

        // A million reciprocal thirds: a float32 running sum would be off in the fourth digit.
        let mut thirds = RankMetrics::new(&[3]);
        for _ in 0..10 {
            thirds.add(&Tensor::full([100_000], 3.0, (Kind::Float, Device::Cpu)));
        }
        assert_eq!(thirds.events(), 1_000_000);
        let [metric] = thirds.finish()[..] else { panic!("one cutoff") };
        assert!((metric.mrr - 1.0 / 3.0).abs() < 1e-12, "{}", metric.mrr);
        assert_eq!(metric.recall, 1.0);
    }

    #[test]
    fn no_events_give_zero_metrics() {
        let metrics = RankMetrics::new(&[5, 20]);
        assert_eq!(metrics.events(), 0);
        assert_eq!(
            metrics.finish(),
            [
                CutoffMetrics { cutoff: 5, recall: 0.0, mrr: 0.0, hit_rate: Some(0.0), ndcg: Some(0.0) },
                CutoffMetrics { cutoff: 20, recall: 0.0, mrr: 0.0, hit_rate: Some(0.0), ndcg: Some(0.0) }
            ]
        );
    }

    #[test]
    fn ranks_from_target_ranks_feed_the_metrics() {
        let rows = scores(&[&[0.9, 0.5, 0.2], &[0.1, 0.9, 0.3], &[0.1, 0.9, 0.3]]);
        let ranks = target_ranks(&rows, &Tensor::from_slice(&[1i64, 1, 0]), None, Ties::Conservative);
        let mut metrics = RankMetrics::new(&[1, 2]);
        metrics.add(&ranks);
        // Conservative ranks 2, 1 and 3.
        let result = metrics.finish();
        assert_close(result[0].recall, 1.0 / 3.0);
        assert_close(result[1].recall, 2.0 / 3.0);
        assert_close(result[1].mrr, (0.5 + 1.0) / 3.0);
    }

    #[test]
    fn hit_rate_and_ndcg_match_float64_fixtures() {
        // Ranks 1, 2, 3.5 (a median tie), 7 and 40 at cutoffs 1, 5 and 20. The fixtures were computed apart
        // from prnn, in float64: NDCG@K = mean over events of 1 / log2(1 + rank) for rank <= K.
        let mut metrics = RankMetrics::new(&[1, 5, 20]);
        metrics.add(&Tensor::from_slice(&[1.0f64, 2.0, 3.5, 7.0, 40.0]));
        let result = metrics.finish();
        let fixtures = [(1, 0.2, 0.2), (5, 0.6, 0.41835503483796554), (20, 0.8, 0.4850217015046322)];
        for (metric, (cutoff, hit_rate, ndcg)) in result.iter().zip(fixtures) {
            assert_eq!(metric.cutoff, cutoff);
            assert_close(metric.hit_rate.unwrap(), hit_rate);
            assert_eq!(metric.hit_rate, Some(metric.recall), "one target per event: HitRate@K is Recall@K");
            assert_close(metric.ndcg.unwrap(), ndcg);
        }
    }

    #[test]
    fn each_metric_is_the_mean_of_its_per_event_values() {
        use crate::eval::bootstrap::event_value;
        let ranks = [1.0f64, 2.0, 3.5, 7.0, 40.0];
        for metric in metrics(&ranks, &[1, 5, 20]) {
            for name in [RankingMetric::Recall, RankingMetric::Mrr, RankingMetric::Ndcg, RankingMetric::HitRate] {
                let mean = ranks.iter().map(|&rank| event_value(name, rank, metric.cutoff)).sum::<f64>() / ranks.len() as f64;
                assert_close(metric.value(name).unwrap(), mean);
            }
        }
        // An `eval.json` from before NDCG and HitRate: no NDCG, and the hit rate is the recall.
        let old = CutoffMetrics { cutoff: 20, recall: 0.625, mrr: 0.25, hit_rate: None, ndcg: None };
        assert_eq!((old.value(RankingMetric::Ndcg), old.value(RankingMetric::HitRate)), (None, Some(0.625)));
    }

    #[test]
    fn cutoff_metrics_round_trip_through_json() {
        let metric = CutoffMetrics { cutoff: 20, recall: 0.625, mrr: 0.2671875, hit_rate: Some(0.625), ndcg: Some(0.375) };
        let json = serde_json::to_string(&metric).unwrap();
        assert_eq!(json, r#"{"cutoff":20,"recall":0.625,"mrr":0.2671875,"hit_rate":0.625,"ndcg":0.375}"#);
        assert_eq!(serde_json::from_str::<CutoffMetrics>(&json).unwrap(), metric);
        // Results written before HitRate and NDCG were reported still read.
        let old: CutoffMetrics = serde_json::from_str(r#"{"cutoff":20,"recall":0.625,"mrr":0.2671875}"#).unwrap();
        assert_eq!((old.hit_rate, old.ndcg), (None, None));
    }

    #[test]
    fn the_most_popular_mask_keeps_the_highest_support_breaking_ties_by_lower_index() {
        let mask = most_popular_mask(&[5, 9, 5, 1, 9, 5], 4, Device::Cpu);
        assert_eq!(mask.kind(), Kind::Bool);
        assert_eq!(Vec::<bool>::try_from(&mask).unwrap(), [true, true, true, false, true, false]);
    }

    #[test]
    fn a_most_popular_mask_at_least_as_large_as_the_catalogue_keeps_every_item() {
        assert_eq!(Vec::<bool>::try_from(&most_popular_mask(&[3, 0, 2], 3, Device::Cpu)).unwrap(), [true; 3]);
        assert_eq!(Vec::<bool>::try_from(&most_popular_mask(&[3, 0, 2], 10, Device::Cpu)).unwrap(), [true; 3]);
    }

    #[test]
    #[should_panic(expected = "at least one item")]
    fn an_empty_most_popular_mask_is_refused() {
        let _ = most_popular_mask(&[3, 0, 2], 0, Device::Cpu);
    }
}
