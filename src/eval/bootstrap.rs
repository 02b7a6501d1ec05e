//! The paired bootstrap: is one model's metric really above another's on the same test events?
//!
//! Both models rank the same test events, so their difference is measured event by event and the test
//! sessions are resampled with replacement. Sessions, not events, are the unit: the events of one session
//! share its history, and resampling them one by one would understate the noise.

use serde::Serialize;

use crate::rng;

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
