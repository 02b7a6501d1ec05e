//! The paired bootstrap: is one model's metric really above another's on the same test events?
//!
//! Both models rank the same test events, so their difference is measured event by event and the test
//! sessions are resampled with replacement. Sessions, not events, are the unit: the events of one session
//! share its history, and resampling them one by one would understate the noise.

use serde::Serialize;

use crate::config::RankingMetric;
use crate::rng;

/// One event's share of `metric` at `cutoff`, from the rank of its target; the metric is the mean over events.
/// Each event has one relevant item, so NDCG's ideal DCG is 1, and HitRate is Recall. A NaN rank scores 0.
pub fn event_value(metric: RankingMetric, rank: f64, cutoff: u64) -> f64 {
    if rank.is_nan() || rank > cutoff as f64 {
        return 0.0;
    }
    match metric {
        RankingMetric::Recall | RankingMetric::HitRate => 1.0,
        RankingMetric::Mrr => 1.0 / rank,
        RankingMetric::Ndcg => 1.0 / (1.0 + rank).log2(),
    }
}

/// The difference of two models' mean per-event metric, with its bootstrap interval and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Mean over events of `a - b`, on the full test set.
    pub difference: f64,
    /// The 2.5% and 97.5% quantiles of the resampled differences.
    pub low: f64,
    pub high: f64,
    /// Two-sided: twice the smaller share of resamples on either side of 0 (with the usual +1 correction).
    pub p_value: f64,
    pub resamples: u64,
}

/// `sums[s]` is the summed difference `a - b` over the events of session `s`, `events[s]` their number.
pub fn paired_bootstrap(sums: &[f64], events: &[f64], resamples: u64, seed: u64) -> PairedDifference {
    assert_eq!(sums.len(), events.len(), "one sum and one event count per session");
    let n = sums.len();
    let total: f64 = events.iter().sum();
    let difference = sums.iter().sum::<f64>() / total.max(1.0);
    if n == 0 || resamples == 0 {
        return PairedDifference { difference, low: difference, high: difference, p_value: 1.0, resamples };
    }
    let mut draws = 0u64;
    let mut statistics = Vec::with_capacity(resamples as usize);
    for _ in 0..resamples {
        let (mut sum, mut count) = (0.0f64, 0.0f64);
        for _ in 0..n {
            draws += 1;
            let bits = rng::at(seed, draws - 1);
            // Multiply-shift maps 64 random bits onto 0..n without modulo bias worth the name.
            let s = ((u128::from(bits) * n as u128) >> 64) as usize;
            sum += sums[s];
            count += events[s];
        }
        statistics.push(sum / count.max(1.0));
    }
    statistics.sort_by(f64::total_cmp);
    let quantile = |q: f64| statistics[((q * (resamples - 1) as f64).round() as usize).min(statistics.len() - 1)];
    let at_or_below = statistics.iter().filter(|&&d| d <= 0.0).count() as f64;
    let at_or_above = statistics.iter().filter(|&&d| d >= 0.0).count() as f64;
    let side = at_or_below.min(at_or_above);
    let p_value = (2.0 * (side + 1.0) / (resamples as f64 + 1.0)).min(1.0);
    PairedDifference { difference, low: quantile(0.025), high: quantile(0.975), p_value, resamples }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_event_values_match_float64_fixtures() {
        // Computed apart from prnn, in float64: 1 / log2(1 + rank), and 0 beyond the cut-off.
        let ndcg =
            [(1.0, 1.0), (2.0, 0.6309297535714575), (3.0, 0.5), (3.5, 0.46084542061837025), (7.0, 1.0 / 3.0), (20.0, 0.227670248696953)];
        for (rank, expected) in ndcg {
            let value = event_value(RankingMetric::Ndcg, rank, 20);
            assert!((value - expected).abs() <= 1e-15, "NDCG of rank {rank}: {value} != {expected}");
        }
        for metric in [RankingMetric::Recall, RankingMetric::HitRate] {
            assert_eq!([1.0, 20.0, 20.5, 21.0, f64::NAN].map(|rank| event_value(metric, rank, 20)), [1.0, 1.0, 0.0, 0.0, 0.0]);
        }
        assert_eq!([4.0, 2.5, 21.0].map(|rank| event_value(RankingMetric::Mrr, rank, 20)), [0.25, 0.4, 0.0]);
        assert_eq!(event_value(RankingMetric::Ndcg, 21.0, 20), 0.0);
    }

    #[test]
    fn the_bootstrap_of_ndcg_and_hit_rate_differences_matches_float64_fixtures() {
        // Model and base rank three sessions' events: (s1: 1, 3 against 3, 30), (s2: 7 against 1), (s3: 2 against 2).
        let (model, base): (&[&[f64]], &[&[f64]]) = (&[&[1.0, 3.0], &[7.0], &[2.0]], &[&[3.0, 30.0], &[1.0], &[2.0]]);
        let sums = |metric: RankingMetric| -> Vec<f64> {
            let total = |ranks: &[f64]| ranks.iter().map(|&rank| event_value(metric, rank, 20)).sum::<f64>();
            model.iter().zip(base).map(|(m, b)| total(m) - total(b)).collect()
        };
        let events = [2.0, 1.0, 1.0];
        // NDCG: s1 gains 1 + 1/2 - 1/2 = 1, s2 loses 1 - 1/3 = 2/3, s3 ties; over 4 events, (1 - 2/3) / 4 = 1/12.
        let ndcg = paired_bootstrap(&sums(RankingMetric::Ndcg), &events, 0, 1);
        assert!((ndcg.difference - 1.0 / 12.0).abs() <= 1e-15, "{ndcg:?}");
        // HitRate: only s1's second event changes (rank 30 is beyond 20), one hit in 4 events.
        let hit_rate = paired_bootstrap(&sums(RankingMetric::HitRate), &events, 0, 1);
        assert_eq!(hit_rate.difference, 0.25);
        assert_eq!(hit_rate, paired_bootstrap(&sums(RankingMetric::Recall), &events, 0, 1), "HitRate@K is Recall@K");
        // Resampled, every statistic is some mix of the sessions' per-event differences: s1 +1/2, s2 -2/3, s3 0.
        let resampled = paired_bootstrap(&sums(RankingMetric::Ndcg), &events, 500, 9);
        assert!(resampled.low >= -2.0 / 3.0 && resampled.high <= 0.5 && resampled.low < resampled.high, "{resampled:?}");
    }

    #[test]
    fn identical_models_differ_by_nothing() {
        let result = paired_bootstrap(&[0.0; 50], &[3.0; 50], 500, 7);
        assert_eq!((result.difference, result.low, result.high), (0.0, 0.0, 0.0));
        assert_eq!(result.p_value, 1.0);
    }

    #[test]
    fn a_consistent_gain_is_significant_and_a_noisy_one_is_not() {
        // Every session gains 0.1 per event, give or take 0.05.
        let sums: Vec<f64> = (0..200).map(|s| 2.0 * (0.1 + if s % 2 == 0 { 0.05 } else { -0.05 })).collect();
        let events = vec![2.0; 200];
        let clear = paired_bootstrap(&sums, &events, 2000, 1);
        assert!((clear.difference - 0.1).abs() < 1e-12);
        assert!(clear.low > 0.0 && clear.high < 0.2 && clear.low < clear.difference && clear.difference < clear.high, "{clear:?}");
        assert!(clear.p_value < 0.01, "{clear:?}");
        // Gains and losses of 1.0 that nearly cancel.
        let sums: Vec<f64> = (0..200).map(|s| if s % 2 == 0 { 1.0 } else { -0.98 }).collect();
        let noisy = paired_bootstrap(&sums, &vec![1.0; 200], 2000, 1);
        assert!(noisy.low < 0.0 && noisy.high > 0.0 && noisy.p_value > 0.5, "{noisy:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let sums: Vec<f64> = (0..100).map(|s| (s % 7) as f64 - 3.0).collect();
        let events = vec![1.0; 100];
        assert_eq!(paired_bootstrap(&sums, &events, 300, 42), paired_bootstrap(&sums, &events, 300, 42));
        assert_ne!(paired_bootstrap(&sums, &events, 300, 42), paired_bootstrap(&sums, &events, 300, 43));
    }
}
