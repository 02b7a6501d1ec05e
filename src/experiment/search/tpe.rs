//! Tree-structured Parzen estimation (Bergstra, Bardenet, Bengio and Kégl, NeurIPS 2011), one parameter at a
//! time as in hyperopt and Optuna's default sampler.
//!
//! The observed trials are ranked by score and split: the best `ceil(gamma * n)` (at most 25) are good, the rest
//! (failed trials last) bad. For each key, a density `l` is fitted to the good trials' values and `g` to the bad
//! ones'; `candidates` values are drawn from `l` and the one with the highest `l(x) / g(x)` is proposed, which
//! maximises expected improvement under the model.
//!
//! A numeric density is a mixture of normals truncated to the range, one per observation plus a broad prior
//! (centred, as wide as the range), with the adaptive bandwidth of the paper and hyperopt: each normal's width
//! is the larger gap to its neighbours, held between `range / min(100, n + 1)` and the range. Log ranges are
//! modelled in the logarithm; stepped and integer ranges by the mass each grid value's cell (half a step either
//! side) takes, so candidates snap to the grid. A categorical density counts the observations of each choice
//! over a uniform prior.

use crate::rng::{self, Xoshiro256};

use super::space::{Range, Setting, Space, Value};
use super::Observation;

/// The prior's weight against one observation's (hyperopt's and Optuna's).
const PRIOR_WEIGHT: f64 = 1.0;

/// Most trials ever called good, however many are observed (Optuna's cap).
const MAX_GOOD: usize = 25;

/// Narrower cells than this (in standard deviations) take the density at their middle times their width: the
/// difference of two tail areas would lose its digits.
const NARROW_CELL: f64 = 1e-3;

/// The draws of a TPE proposal come from this stream of the seed; random proposals use the seed itself.
const TPE_STREAM: u64 = 0x7e5;

/// TPE's settings. The defaults are Optuna's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeOptions {
    /// Trials drawn at random (exactly as `method = "random"` draws them) before the estimators take over.
    pub startup: usize,
    /// The share of observed trials called good.
    pub gamma: f64,
    /// Draws from the good density among which the best ratio is kept, per key.
    pub candidates: usize,
}

impl Default for TpeOptions {
    fn default() -> Self {
        TpeOptions { startup: 10, gamma: 0.1, candidates: 24 }
    }
}

/// Trial `trial`'s TPE proposal: a function of the seed, the trial and the history alone. With no successful
/// trial to learn from, a draw from the whole space.
pub(super) fn propose(space: &Space, options: &TpeOptions, seed: u64, trial: usize, history: &[Observation]) -> Setting {
    let mut rng = Xoshiro256::new(rng::derive(seed, TPE_STREAM), trial as u64);
    let Some((good, bad)) = split(history, options.gamma) else { return space.sample(&mut rng) };
    let values = space
        .params()
        .iter()
        .map(|(key, range)| {
            let good_values: Vec<&Value> = good.iter().filter_map(|setting| setting.get(key)).collect();
            let bad_values: Vec<&Value> = bad.iter().filter_map(|setting| setting.get(key)).collect();
            (key.clone(), propose_value(range, &good_values, &bad_values, options.candidates, &mut rng))
        })
        .collect();
    Setting { values }
}

/// The good and the bad settings, or None when no trial succeeded. Failed trials (no score, or not a finite one)
/// rank below every success; equal scores keep trial order.
fn split(history: &[Observation], gamma: f64) -> Option<(Vec<&Setting>, Vec<&Setting>)> {
    let score = |observation: &Observation| observation.score.filter(|s| s.is_finite()).unwrap_or(f64::NEG_INFINITY);
    let mut ranked: Vec<&Observation> = history.iter().collect();
    ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
    let successes = ranked.iter().filter(|observation| score(observation) > f64::NEG_INFINITY).count();
    let good_len = ((gamma * history.len() as f64).ceil() as usize).clamp(1, MAX_GOOD).min(successes);
    if good_len == 0 {
        return None;
    }
    let (good, bad) = ranked.split_at(good_len);
    Some((good.iter().map(|o| &o.setting).collect(), bad.iter().map(|o| &o.setting).collect()))
}

fn propose_value(range: &Range, good: &[&Value], bad: &[&Value], candidates: usize, rng: &mut Xoshiro256) -> Value {
    if let Range::Categorical(choices) = range {
        let good = Counts::fit(choices, good);
        let bad = Counts::fit(choices, bad);
        let best = best_of(candidates, rng, |rng| good.sample(rng), |&choice| good.log_p(choice) - bad.log_p(choice));
        return choices[best].clone();
    }
    let scale = Scale::of(range);
    if scale.high <= scale.low {
        return scale.value_at(scale.low).0;
    }
    let good = Parzen::fit(&scale.points(good), scale.low, scale.high);
    let bad = Parzen::fit(&scale.points(bad), scale.low, scale.high);
    let (value, _) = best_of(
        candidates,
        rng,
        |rng| scale.value_at(good.sample(rng)),
        |(_, at)| scale.log_probability(&good, *at) - scale.log_probability(&bad, *at),
    );
    value
}

/// Of `count` (at least one) draws, the first with the highest score.
fn best_of<T>(count: usize, rng: &mut Xoshiro256, mut draw: impl FnMut(&mut Xoshiro256) -> T, score: impl Fn(&T) -> f64) -> T {
    let mut best = draw(rng);
    let mut best_score = score(&best);
    for _ in 1..count {
        let candidate = draw(rng);
        let candidate_score = score(&candidate);
        if candidate_score > best_score {
            (best, best_score) = (candidate, candidate_score);
        }
    }
    best
}

/// A numeric range as the estimators see it: in the logarithm for log ranges, and for grids widened by half a
/// step at each end so that every grid value owns a cell of the same width.
struct Scale<'a> {
    range: &'a Range,
    low: f64,
    high: f64,
    /// The first grid value and the step, for ranges with a grid.
    grid: Option<(f64, f64)>,
}

impl<'a> Scale<'a> {
    fn of(range: &'a Range) -> Scale<'a> {
        let grid = |origin: f64, step: f64| {
            let last = origin + (range.grid_len().unwrap_or(1) - 1) as f64 * step;
            // One grid value is no choice at all: collapse the cell so that the caller proposes it directly.
            let half = if last > origin { step / 2.0 } else { 0.0 };
            Scale { range, low: origin - half, high: last + half, grid: Some((origin, step)) }
        };
        match range {
            Range::Integer { low, step, .. } => grid(*low as f64, *step as f64),
            Range::Float { low, step: Some(step), .. } => grid(*low, *step),
            Range::Float { low, high, step: None } => Scale { range, low: *low, high: *high, grid: None },
            Range::LogFloat { low, high } => Scale { range, low: low.ln(), high: high.ln(), grid: None },
            Range::Categorical(_) => unreachable!("categorical ranges are counted, not scaled"),
        }
    }

    fn is_log(&self) -> bool {
        matches!(self.range, Range::LogFloat { .. })
    }

    /// Observed values on the scale; values the range does not hold (a space changed since) are moved inside.
    fn points(&self, values: &[&Value]) -> Vec<f64> {
        let on_scale = |x: f64| if self.is_log() { (x > 0.0).then(|| x.ln()) } else { Some(x) };
        values.iter().filter_map(|value| value.as_f64().and_then(on_scale)).map(|x| x.clamp(self.low, self.high)).collect()
    }

    /// The value a point of the scale proposes, and where that value lies on the scale: its grid value's centre,
    /// or the point after rounding.
    fn value_at(&self, x: f64) -> (Value, f64) {
        match self.grid {
            Some((origin, step)) => {
                let last = self.range.grid_len().unwrap_or(1) - 1;
                let index = ((x - origin) / step).round().clamp(0.0, last as f64) as u64;
                (self.range.grid_value(index), origin + index as f64 * step)
            }
            None => {
                let value = self.range.continuous_value(if self.is_log() { x.exp() } else { x });
                let at = self.points(&[&value]).first().copied().unwrap_or(x);
                (value, at)
            }
        }
    }

    fn log_probability(&self, estimator: &Parzen, at: f64) -> f64 {
        match self.grid {
            Some((_, step)) => estimator.log_mass(at - step / 2.0, at + step / 2.0),
            None => estimator.log_density(at),
        }
    }
}

/// A mixture of normals truncated to `[low, high]`.
#[derive(Debug)]
struct Parzen {
    low: f64,
    high: f64,
    kernels: Vec<Kernel>,
}

#[derive(Debug)]
struct Kernel {
    mean: f64,
    sigma: f64,
    /// Its share of the mixture.
    weight: f64,
    /// The share of the untruncated normal inside `[low, high]`, which truncation divides by.
    inside: f64,
}

impl Parzen {
    /// One kernel per point and the prior's; `low < high`.
    fn fit(points: &[f64], low: f64, high: f64) -> Parzen {
        let width = high - low;
        let prior_mean = (low + high) / 2.0;
        let mut means: Vec<(f64, bool)> = points.iter().map(|&x| (x, false)).chain([(prior_mean, true)]).collect();
        means.sort_by(|a, b| a.0.total_cmp(&b.0));
        let narrowest = width / (points.len() + 1).min(100) as f64;
        let total_weight = points.len() as f64 + PRIOR_WEIGHT;
        let kernels = (0..means.len())
            .map(|i| {
                let (mean, is_prior) = means[i];
                let sigma = if is_prior {
                    width
                } else {
                    let left = i.checked_sub(1).map_or(0.0, |j| mean - means[j].0);
                    let right = means.get(i + 1).map_or(0.0, |next| next.0 - mean);
                    left.max(right).clamp(narrowest, width)
                };
                let weight = if is_prior { PRIOR_WEIGHT } else { 1.0 } / total_weight;
                let inside = normal_mass((low - mean) / sigma, (high - mean) / sigma);
                Kernel { mean, sigma, weight, inside }
            })
            .collect();
        Parzen { low, high, kernels }
    }

    fn log_density(&self, x: f64) -> f64 {
        let log_terms: Vec<f64> = self
            .kernels
            .iter()
            .map(|k| {
                let z = (x - k.mean) / k.sigma;
                (k.weight / (k.sigma * k.inside)).ln() - 0.5 * (std::f64::consts::TAU.ln() + z * z)
            })
            .collect();
        let largest = log_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        largest + log_terms.iter().map(|t| (t - largest).exp()).sum::<f64>().ln()
    }

    /// The log of the mixture's mass in `[a, b]`.
    fn log_mass(&self, a: f64, b: f64) -> f64 {
        let (a, b) = (a.max(self.low), b.min(self.high));
        let mass: f64 =
            self.kernels.iter().map(|k| k.weight * normal_mass((a - k.mean) / k.sigma, (b - k.mean) / k.sigma) / k.inside).sum();
        mass.max(f64::MIN_POSITIVE).ln()
    }

    /// A kernel chosen by weight, then a normal draw from it, redrawn until it falls inside the range. Every
    /// kernel's mean is inside and its width at most the range's, so a draw lands inside with probability above
    /// a third; after 64 misses the mean stands in.
    fn sample(&self, rng: &mut Xoshiro256) -> f64 {
        let mut left = rng.unit();
        let kernel = self.kernels.iter().find(|k| {
            left -= k.weight;
            left < 0.0
        });
        let kernel = kernel.unwrap_or(&self.kernels[self.kernels.len() - 1]);
        (0..64).map(|_| kernel.mean + kernel.sigma * rng.normal()).find(|x| (self.low..=self.high).contains(x)).unwrap_or(kernel.mean)
    }
}

/// The mass of the standard normal in `[za, zb]`, taken from the tail each bound lies in so that cells far
/// from the mean keep their digits.
fn normal_mass(za: f64, zb: f64) -> f64 {
    let upper = |z: f64| 0.5 * erfc(z / std::f64::consts::SQRT_2);
    let mass = if zb - za < NARROW_CELL {
        let middle = (za + zb) / 2.0;
        (-0.5 * middle * middle).exp() / std::f64::consts::TAU.sqrt() * (zb - za)
    } else if za >= 0.0 {
        upper(za) - upper(zb)
    } else if zb <= 0.0 {
        upper(-zb) - upper(-za)
    } else {
        1.0 - upper(zb) - upper(-za)
    };
    mass.max(0.0)
}

/// The complementary error function, by the Chebyshev fit of Press et al., *Numerical Recipes* (2nd ed., §6.2),
/// with a relative error below 1.2e-7 everywhere, tails included.
fn erfc(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 10] =
        [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let polynomial = COEFFICIENTS.iter().rev().fold(0.0, |sum, c| sum * t + c);
    let tail = t * (-x * x + polynomial).exp();
    if x >= 0.0 {
        tail
    } else {
        2.0 - tail
    }
}

/// Observations of each choice over a uniform prior.
struct Counts {
    weights: Vec<f64>,
    total: f64,
}

impl Counts {
    fn fit(choices: &[Value], observed: &[&Value]) -> Counts {
        let mut weights = vec![PRIOR_WEIGHT / choices.len() as f64; choices.len()];
        for value in observed {
            if let Some(index) = choices.iter().position(|choice| choice == *value) {
                weights[index] += 1.0;
            }
        }
        let total = weights.iter().sum();
        Counts { weights, total }
    }

    fn log_p(&self, choice: usize) -> f64 {
        (self.weights[choice] / self.total).ln()
    }

    fn sample(&self, rng: &mut Xoshiro256) -> usize {
        let mut left = rng.unit() * self.total;
        self.weights
            .iter()
            .position(|w| {
                left -= w;
                left < 0.0
            })
            .unwrap_or(self.weights.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(key: &str, value: Value, score: Option<f64>) -> Observation {
        Observation { setting: Setting { values: vec![(key.to_string(), value)] }, score }
    }

    #[test]
    fn erfc_matches_tabulated_values_to_its_stated_accuracy() {
        // erfc at 0, 0.5, 1, 2, 4 and -1, to 16 digits.
        let table = [
            (0.0, 1.0),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (2.0, 0.004677734981047266),
            (4.0, 1.541725790028002e-8),
            (-1.0, 1.8427007929497148),
        ];
        for (x, want) in table {
            assert!(((erfc(x) - want) / want).abs() < 1.2e-7, "erfc({x}) = {} against {want}", erfc(x));
        }
    }

    #[test]
    fn a_parzen_density_integrates_to_one_and_its_cells_add_up() {
        let parzen = Parzen::fit(&[0.1, 0.15, 0.9], 0.0, 1.0);
        let steps = 20_000;
        let integral: f64 = (0..steps).map(|i| parzen.log_density((i as f64 + 0.5) / steps as f64).exp() / steps as f64).sum();
        assert!((integral - 1.0).abs() < 1e-4, "integral {integral}");
        let cells: f64 = (0..7).map(|i| parzen.log_mass(i as f64 / 7.0, (i + 1) as f64 / 7.0).exp()).sum();
        assert!((cells - 1.0).abs() < 1e-6, "cells {cells}");
        let narrow = parzen.log_mass(0.12, 0.12 + 1e-6).exp();
        assert!((narrow / (parzen.log_density(0.12 + 5e-7).exp() * 1e-6) - 1.0).abs() < 1e-4, "a narrow cell is density times width");
    }

    #[test]
    fn a_kernel_is_as_wide_as_its_larger_gap_within_the_clip() {
        // Ten points, so the floor is 1/11; with the prior's mean 0.5 among them, 0.1's only neighbour is 0.1 away,
        // 0.2's larger gap is 0.3 (to 0.5) and so is 0.8's.
        let parzen = Parzen::fit(&[0.2, 0.1, 0.8, 0.85, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99], 0.0, 1.0);
        let sigmas: Vec<(f64, f64)> = parzen.kernels.iter().map(|k| (k.mean, k.sigma)).collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(sigmas[0].1, 0.1) && close(sigmas[1].1, 0.3) && close(sigmas[2].1, 1.0) && close(sigmas[3].1, 0.3), "{sigmas:?}");
        assert!(close(sigmas[10].1, 1.0 / 11.0), "0.99's gap of 0.01 is raised to the floor: {sigmas:?}");
        // Coinciding points would have no width: the floor is the range over min(100, n + 1).
        let crowded = Parzen::fit(&[0.5, 0.5, 0.5], 0.0, 1.0);
        let widths: Vec<f64> = crowded.kernels.iter().map(|k| k.sigma).collect();
        assert_eq!(widths.iter().filter(|&&w| close(w, 0.25)).count(), 3, "{widths:?}");
        assert_eq!(widths.iter().filter(|&&w| close(w, 1.0)).count(), 1, "the prior's: {widths:?}");
    }

    #[test]
    fn draws_from_a_parzen_density_stay_in_range_and_follow_it() {
        let parzen = Parzen::fit(&[0.95, 0.97, 0.99], 0.0, 1.0);
        let mut rng = Xoshiro256::new(3, 0);
        let draws: Vec<f64> = (0..4000).map(|_| parzen.sample(&mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        let above = draws.iter().filter(|&&x| x > 0.8).count() as f64 / draws.len() as f64;
        let expected = parzen.log_mass(0.8, 1.0).exp();
        assert!((above - expected).abs() < 0.03, "{above} of draws above 0.8 against a mass of {expected}");
    }

    #[test]
    fn failed_trials_rank_last_and_the_good_share_follows_gamma() {
        let history: Vec<Observation> = [Some(0.3), None, Some(0.5), Some(f64::NAN), Some(0.5), Some(0.1)]
            .iter()
            .enumerate()
            .map(|(trial, &score)| observed("x", Value::Integer(trial as i64), score))
            .collect();
        let trials = |settings: &[&Setting]| settings.iter().map(|s| s.get("x").cloned().unwrap()).collect::<Vec<_>>();
        let (good, bad) = split(&history, 0.34).unwrap();
        assert_eq!(trials(&good), [Value::Integer(2), Value::Integer(4), Value::Integer(0)], "ceil(0.34 * 6) = 3, ties in trial order");
        assert_eq!(trials(&bad), [Value::Integer(5), Value::Integer(1), Value::Integer(3)], "failures last");
        let (good, _) = split(&history, 0.1).unwrap();
        assert_eq!(good.len(), 1, "at least one is good");
        assert!(split(&history[1..2], 0.5).is_none(), "nothing to learn from failures alone");
    }

    #[test]
    fn the_ratio_favours_the_good_region_of_each_kind() {
        let space = Space::new([
            ("x".to_string(), Range::Float { low: 0.0, high: 1.0, step: None }),
            ("n".to_string(), Range::Integer { low: 0, high: 100, step: 10 }),
            ("c".to_string(), Range::Categorical(vec![Value::Text("a".into()), Value::Text("b".into()), Value::Text("c".into())])),
        ])
        .unwrap();
        // Good trials near x = 0.8, n = 70, c = "b"; bad ones spread elsewhere.
        let mut history = Vec::new();
        for i in 0..30 {
            let good = i % 5 == 0;
            let x = if good { 0.78 + 0.01 * (i % 3) as f64 } else { (i as f64 * 0.37) % 0.6 };
            let n = if good { 70 } else { (i as i64 * 30) % 60 };
            let c = if good { "b" } else { ["a", "c"][i % 2] };
            let setting = Setting {
                values: vec![("x".into(), Value::Float(x)), ("n".into(), Value::Integer(n)), ("c".into(), Value::Text(c.into()))],
            };
            history.push(Observation { setting, score: Some(if good { 1.0 } else { 0.0 }) });
        }
        let options = TpeOptions { gamma: 0.2, ..TpeOptions::default() };
        for trial in 30..40 {
            let setting = propose(&space, &options, 9, trial, &history);
            let x = setting.get("x").and_then(Value::as_f64).unwrap();
            assert!((0.7..=0.9).contains(&x), "trial {trial}: {setting}");
            let n = setting.get("n").and_then(Value::as_f64).unwrap();
            assert!((60.0..=80.0).contains(&n), "trial {trial}: {setting}");
            assert_eq!(setting.get("c"), Some(&Value::Text("b".into())), "trial {trial}: {setting}");
        }
    }
}
