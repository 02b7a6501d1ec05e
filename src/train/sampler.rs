//! Negative samples drawn as GRU4Rec draws them: items in proportion to support^alpha, pre-drawn in bulk.
//!
//! An item's support is how often it occurs among the training events; items with support 0 are never
//! drawn. GRU4Rec draws `sample_cache_max_size / n_sample` steps' worth of samples at once and refills when
//! they are used up; this does the same with [`SAMPLE_CACHE_SIZE`], because one search per sample in a
//! tight loop is far cheaper than a call per step. The first refills are smaller (64k samples, doubling up
//! to the cap), so a short epoch or a smoke run does not wait for 10^7 draws it will not use.
//!
//! Randomness is SplitMix64 (Steele, Lea and Flood, 2014; Vigna's reference `splitmix64.c`), used as a
//! counter-based generator: draw `i` of a run is `rng::mix(seed + (i + 1) * GAMMA)`, a pure function of
//! the seed and the draw's index. So the sequence does not depend on the cache size, a refill can be split
//! across threads, and a checkpoint only needs the number of steps drawn ([`SamplerState`]); restoring
//! draws from that step on directly, with no replay of earlier draws.
//!
//! Each draw is inverse-CDF sampling: a uniform `x` in [0, 1) with 53 random bits picks the first item whose
//! cumulative probability (f64) exceeds `x`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rng;

/// Samples pre-drawn per refill, as GRU4Rec's `sample_cache_max_size` (40 MB of item indices).
pub const SAMPLE_CACHE_SIZE: usize = 10_000_000;

/// Samples in the first refill; each later refill doubles, up to [`SAMPLE_CACHE_SIZE`] or the chosen size.
const FIRST_REFILL_SAMPLES: usize = 1 << 16;

/// Below this many samples a refill is drawn on the calling thread; thread start-up would cost more.
const SAMPLES_PER_THREAD: usize = 1 << 18;

/// What a checkpoint keeps of a sampler: enough to continue its sequence exactly, and to refuse a sampler
/// built over other data or settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerState {
    pub seed: u64,
    pub alpha: f64,
    pub n_items: usize,
    pub n_sample: usize,
    /// A hash of the support counts and alpha: a different training set gives a different distribution.
    pub fingerprint: u64,
    /// Calls to [`NegativeSampler::next`] so far.
    pub steps_drawn: u64,
}

/// A state that does not belong to this sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreError {
    pub message: String,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RestoreError {}

/// Negative items for each training step, `n_sample` at a time.
#[derive(Debug, Clone)]
pub struct NegativeSampler {
    /// `cumulative[i]`: probability of items `0..=i`; exactly 1.0 from the last item with support onwards.
    cumulative: Vec<f64>,
    alpha: f64,
    fingerprint: u64,
    seed: u64,
    n_sample: usize,
    max_steps_per_refill: usize,
    next_refill_steps: usize,
    steps_drawn: u64,
    /// Samples for steps `cache_first_step .. cache_first_step + cache_steps` of the sequence.
    cache: Vec<u32>,
    cache_first_step: u64,
    cache_steps: usize,
}

impl NegativeSampler {
    /// A sampler over items `0..support.len()` drawing `n_sample` items per step, with GRU4Rec's cache size.
    ///
    /// Panics if `alpha` is not finite, or if `n_sample > 0` and no item has support.
    pub fn new(support: &[u64], alpha: f64, n_sample: usize, seed: u64) -> Self {
        Self::with_cache_size(support, alpha, n_sample, seed, SAMPLE_CACHE_SIZE)
    }

    /// As [`NegativeSampler::new`], pre-drawing at most about `cache_size` samples per refill (at least one
    /// step's worth). The sequence of samples is the same for every cache size.
    pub fn with_cache_size(support: &[u64], alpha: f64, n_sample: usize, seed: u64, cache_size: usize) -> Self {
        assert!(alpha.is_finite(), "sample alpha must be a finite number, got {alpha}");
        let weight = |count: u64| if count == 0 { 0.0 } else { (count as f64).powf(alpha) };
        let total: f64 = support.iter().map(|&count| weight(count)).sum();
        assert!(n_sample == 0 || total > 0.0, "no item has support, so there is nothing to sample negatives from");
        let mut cumulative = Vec::with_capacity(support.len());
        let mut running = 0.0f64;
        for &count in support {
            running += weight(count);
            cumulative.push(running / total);
        }
        // Rounding may leave the total a hair under 1: a uniform draw above it would pick an item after the
        // last one with support. Pinning the tail to exactly 1 keeps every draw on an item with support.
        if let Some(last) = support.iter().rposition(|&count| count > 0) {
            cumulative[last..].fill(1.0);
        }
        let steps_for = |samples: usize| samples.checked_div(n_sample).map_or(1, |steps| steps.max(1));
        let max_steps_per_refill = steps_for(cache_size);
        NegativeSampler {
            cumulative,
            alpha,
            fingerprint: fingerprint(support, alpha),
            seed,
            n_sample,
            max_steps_per_refill,
            next_refill_steps: steps_for(FIRST_REFILL_SAMPLES).min(max_steps_per_refill),
            steps_drawn: 0,
            cache: Vec::new(),
            cache_first_step: 0,
            cache_steps: 0,
        }
    }

    /// The negatives for one step: `n_sample` item indices, drawn independently (repeats are possible).
    // Not an Iterator: the slice borrows the cache, which the next call may refill.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> &[u32] {
        let step = self.steps_drawn;
        self.steps_drawn += 1;
        if self.n_sample == 0 {
            return &[];
        }
        if !(self.cache_first_step..self.cache_first_step + self.cache_steps as u64).contains(&step) {
            let steps = self.next_refill_steps;
            self.next_refill_steps = (steps * 2).min(self.max_steps_per_refill);
            self.refill(step, steps);
        }
        let at = (step - self.cache_first_step) as usize * self.n_sample;
        &self.cache[at..at + self.n_sample]
    }

    /// The state to store in a checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            alpha: self.alpha,
            n_items: self.cumulative.len(),
            n_sample: self.n_sample,
            fingerprint: self.fingerprint,
            steps_drawn: self.steps_drawn,
        }
    }

    /// Continues from `state`: the next call to [`NegativeSampler::next`] returns what the sampler that
    /// gave `state` would have returned next. The sampler must have been built with the same support,
    /// alpha and `n_sample` (the cache size may differ); its own seed is replaced by the state's.
    pub fn restore(&mut self, state: &SamplerState) -> Result<(), RestoreError> {
        let mismatch = |what: &str, ours: String, theirs: String| {
            Err(RestoreError { message: format!("the sampler state was saved with {what} {theirs}, but this run has {ours}") })
        };
        if state.n_sample != self.n_sample {
            return mismatch("n_sample =", self.n_sample.to_string(), state.n_sample.to_string());
        }
        if state.n_items != self.cumulative.len() {
            return mismatch("a catalogue of", format!("{} items", self.cumulative.len()), format!("{} items", state.n_items));
        }
        if state.alpha.to_bits() != self.alpha.to_bits() {
            return mismatch("sample alpha", self.alpha.to_string(), state.alpha.to_string());
        }
        if state.fingerprint != self.fingerprint {
            return mismatch("item supports of fingerprint", format!("{:016x}", self.fingerprint), format!("{:016x}", state.fingerprint));
        }
        if state.seed != self.seed {
            self.seed = state.seed;
            self.cache_steps = 0;
        }
        self.steps_drawn = state.steps_drawn;
        Ok(())
    }

    /// The probability of drawing `item` in one draw.
    pub fn probability(&self, item: u32) -> f64 {
        let i = item as usize;
        self.cumulative[i] - if i == 0 { 0.0 } else { self.cumulative[i - 1] }
    }

    pub fn n_sample(&self) -> usize {
        self.n_sample
    }

    /// The most steps one refill of the cache serves (the first refills serve fewer).
    pub fn max_steps_per_refill(&self) -> usize {
        self.max_steps_per_refill
    }

    pub fn steps_drawn(&self) -> u64 {
        self.steps_drawn
    }

    /// Draws the samples of steps `first_step .. first_step + steps` into the cache.
    fn refill(&mut self, first_step: u64, steps: usize) {
        let len = steps * self.n_sample;
        self.cache.resize(len, 0);
        let first_draw = first_step.wrapping_mul(self.n_sample as u64);
        let (seed, cumulative) = (self.seed, &self.cumulative[..]);
        let draw_into = |chunk: &mut [u32], first: u64| {
            for (offset, slot) in chunk.iter_mut().enumerate() {
                let bits = rng::at(seed, first.wrapping_add(offset as u64));
                let uniform = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                *slot = cumulative.partition_point(|&c| c <= uniform) as u32;
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(len / SAMPLES_PER_THREAD).max(1);
        if threads == 1 {
            draw_into(&mut self.cache, first_draw);
        } else {
            let chunk_len = len.div_ceil(threads);
            std::thread::scope(|scope| {
                for (index, chunk) in self.cache.chunks_mut(chunk_len).enumerate() {
                    let first = first_draw.wrapping_add((index * chunk_len) as u64);
                    scope.spawn(move || draw_into(chunk, first));
                }
            });
        }
        self.cache_first_step = first_step;
        self.cache_steps = steps;
    }
}

/// A hash of the distribution's inputs, so a checkpoint is not resumed against other data.
fn fingerprint(support: &[u64], alpha: f64) -> u64 {
    let mut hash = rng::mix(alpha.to_bits() ^ support.len() as u64);
    for &count in support {
        hash = rng::mix(hash ^ count.wrapping_mul(rng::GAMMA));
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUPPORT: [u64; 9] = [0, 1, 5, 20, 0, 100, 3, 50, 0];

    fn counts(sampler: &mut NegativeSampler, steps: usize) -> Vec<u64> {
        let mut counts = vec![0u64; sampler.cumulative.len()];
        for _ in 0..steps {
            for &item in sampler.next() {
                counts[item as usize] += 1;
            }
        }
        counts
    }

    /// Each item's frequency must lie within 5 binomial standard deviations of its probability (a chance
    /// failure would be about 1 in 10^6 per item; the seeds are fixed, so the test is deterministic anyway).
    fn assert_frequencies(counts: &[u64], expected: &[f64]) {
        let draws = counts.iter().sum::<u64>() as f64;
        for (item, (&count, &p)) in counts.iter().zip(expected).enumerate() {
            let frequency = count as f64 / draws;
            let tolerance = 5.0 * (p * (1.0 - p) / draws).sqrt();
            assert!((frequency - p).abs() <= tolerance, "item {item}: frequency {frequency}, expected {p} ± {tolerance}");
        }
    }

    #[test]
    fn frequencies_follow_support_to_the_power_alpha() {
        for alpha in [0.5, 0.75, 1.0] {
            // 64 samples per step, at most 100 steps per refill: 200,000 draws over 31 refills.
            let mut sampler = NegativeSampler::with_cache_size(&SUPPORT, alpha, 64, 42, 6_400);
            let counts = counts(&mut sampler, 3_125);
            let weights: Vec<f64> = SUPPORT.iter().map(|&s| if s == 0 { 0.0 } else { (s as f64).powf(alpha) }).collect();
            let total: f64 = weights.iter().sum();
            let expected: Vec<f64> = weights.iter().map(|w| w / total).collect();
            for (item, &p) in expected.iter().enumerate() {
                assert!((sampler.probability(item as u32) - p).abs() < 1e-12);
            }
            assert_frequencies(&counts, &expected);
        }
    }

    #[test]
    fn alpha_zero_is_uniform_over_items_with_support() {
        let mut sampler = NegativeSampler::with_cache_size(&SUPPORT, 0.0, 50, 7, 5_000);
        let counts = counts(&mut sampler, 4_000);
        let expected: Vec<f64> = SUPPORT.iter().map(|&s| if s == 0 { 0.0 } else { 1.0 / 6.0 }).collect();
        assert_frequencies(&counts, &expected);
    }

    #[test]
    fn items_without_support_are_never_drawn() {
        let support = [0, 0, 3, 0, 0, 1, 0, 0, 0];
        for alpha in [0.0, 0.5, 1.0, -1.0] {
            let mut sampler = NegativeSampler::with_cache_size(&support, alpha, 100, 1, 10_000);
            let counts = counts(&mut sampler, 1_000);
            for (item, &count) in counts.iter().enumerate() {
                assert_eq!(count > 0, support[item] > 0, "alpha {alpha}, item {item} drawn {count} times");
                assert_eq!(sampler.probability(item as u32) > 0.0, support[item] > 0);
            }
        }
        // Draws at the very ends of [0, 1) land on items with support.
        let sampler = NegativeSampler::new(&support, 0.5, 1, 0);
        assert_eq!(sampler.cumulative.partition_point(|&c| c <= 0.0), 2);
        assert_eq!(sampler.cumulative.partition_point(|&c| c <= 1.0 - f64::EPSILON / 2.0), 5);
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_whatever_the_cache_size() {
        let draw = |seed: u64, cache_size: usize| {
            let mut sampler = NegativeSampler::with_cache_size(&SUPPORT, 0.75, 8, seed, cache_size);
            (0..500).flat_map(|_| sampler.next().to_vec()).collect::<Vec<_>>()
        };
        let reference = draw(3, 80);
        assert_eq!(draw(3, 80), reference);
        assert_eq!(draw(3, 8), reference);
        assert_eq!(draw(3, 1_000_000), reference);
        assert_ne!(draw(4, 80), reference);
    }

    #[test]
    fn a_refill_split_across_threads_draws_what_one_thread_would() {
        let support: Vec<u64> = (0..1_000).map(|i| i % 17).collect();
        let n_sample = 1_000;
        let mut threaded = NegativeSampler::new(&support, 0.5, n_sample, 9);
        // 1,048 steps from step 3: over a million samples, split across threads where there are several.
        threaded.refill(3, 4 * SAMPLES_PER_THREAD / n_sample);
        let first_draw = 3 * n_sample as u64;
        for (offset, &item) in threaded.cache.iter().enumerate().step_by(997) {
            let uniform = (rng::at(9, first_draw + offset as u64) >> 11) as f64 / (1u64 << 53) as f64;
            assert_eq!(item as usize, threaded.cumulative.partition_point(|&c| c <= uniform), "draw {offset}");
        }
        let mut single = NegativeSampler::with_cache_size(&support, 0.5, n_sample, 9, n_sample);
        let steps: Vec<Vec<u32>> = (0..1_051).map(|_| single.next().to_vec()).collect();
        assert_eq!(steps[3..].concat(), threaded.cache);
    }

    #[test]
    fn refills_grow_to_the_cap() {
        let mut sampler = NegativeSampler::with_cache_size(&SUPPORT, 0.75, 1_000, 5, 1_000_000);
        let mut sizes = Vec::new();
        for _ in 0..5_000 {
            sampler.next();
            if sizes.last() != Some(&sampler.cache_steps) {
                sizes.push(sampler.cache_steps);
            }
        }
        assert_eq!(sizes, [65, 130, 260, 520, 1_000]);
    }

    #[test]
    fn a_restored_sampler_continues_the_same_sequence() {
        let mut original = NegativeSampler::with_cache_size(&SUPPORT, 0.75, 16, 11, 160);
        // Refills of 10 steps: stop mid-refill (step 25), then at a refill boundary (step 40).
        for stop in [25, 15] {
            for _ in 0..stop {
                original.next();
            }
            let saved: SamplerState = serde_json::from_str(&serde_json::to_string(&original.state()).unwrap()).unwrap();
            assert_eq!(saved, original.state());
            let mut resumed = NegativeSampler::with_cache_size(&SUPPORT, 0.75, 16, 0, 1_600);
            resumed.restore(&saved).unwrap();
            let mut probe = original.clone();
            for step in 0..50 {
                assert_eq!(resumed.next(), probe.next(), "step {step} after {} steps", saved.steps_drawn);
            }
        }
        assert_eq!(original.steps_drawn(), 40);
    }

    #[test]
    fn restore_refuses_a_state_from_other_settings_or_data() {
        let state = NegativeSampler::new(&SUPPORT, 0.75, 16, 1).state();
        let refuse = |support: &[u64], alpha: f64, n_sample: usize| {
            let mut sampler = NegativeSampler::new(support, alpha, n_sample, 1);
            sampler.restore(&state).unwrap_err().message
        };
        assert!(refuse(&SUPPORT, 0.75, 8).contains("n_sample = 16"));
        assert!(refuse(&SUPPORT, 0.5, 16).contains("alpha"));
        assert!(refuse(&SUPPORT[..8], 0.75, 16).contains("9 items"));
        let mut other = SUPPORT;
        other[3] += 1;
        assert!(refuse(&other, 0.75, 16).contains("fingerprint"));
    }

    #[test]
    fn steps_per_refill_follow_gru4rec() {
        assert_eq!(NegativeSampler::new(&SUPPORT, 0.75, 2048, 0).max_steps_per_refill(), 4882);
        assert_eq!(NegativeSampler::new(&SUPPORT, 0.75, 20_000_000, 0).max_steps_per_refill(), 1);
        let mut none = NegativeSampler::new(&[0, 0], 0.75, 0, 0);
        assert!(none.next().is_empty());
        assert_eq!(none.steps_drawn(), 1);
    }
}
