//! Hyperparameter search for `prnn run`'s tuning: a space of typed ranges over override keys, and the setting
//! each trial tries, by grid, random draws or tree-structured Parzen estimation (TPE).
//!
//! In a run config the search is written in `[experiment.tune]`:
//!
//! ```toml
//! method = "tpe"   # "grid" (the default), "random" or "tpe"
//! trials = 20      # random and tpe; a grid runs every setting of its product, so `trials` may be left out
//! seed = 1
//! space.lr = { log = [0.01, 0.25] }                              # log-uniform; both bounds above 0
//! space."id_net.hidden" = { int = [64, 512], step = 32 }         # 64, 96, ..., 512; `step` defaults to 1
//! space."id_net.dropout" = { float = [0.0, 0.5], step = 0.05 }   # 0, 0.05, ..., 0.5
//! space.momentum = { float = [0.0, 0.9] }                        # uniform, kept to 4 significant digits
//! space.batch = { choice = [32, 64, 128, 256] }
//! space."loss.kind" = { choice = ["xe", "bpr_max"] }
//! ```
//!
//! Each range gives exactly one of `int`, `float`, `log` or `choice`; bounds are inclusive and `step` is taken by
//! `int` and `float` only (a step need not divide the range: values stay on `low + k * step` within it). The
//! space deserializes into [`Space`] with errors that name the key; [`Method`] from its lowercase name.
//!
//! - **grid**: the Cartesian product, the first key varying slowest and the last fastest (the order of
//!   `[experiment.tune.grid]`). Continuous ranges (`float` without `step`, and `log`) have no grid and are
//!   refused: give a step, or list the values with `choice`.
//! - **random**: trial `i` draws each key uniformly (in the logarithm for `log`) from a stream that depends on
//!   the seed and `i` alone, so a resumed search regenerates the same trials.
//! - **tpe**: the first [`TpeOptions::startup`] trials are the random search's; after that, see [`tpe`]. Trial
//!   `i`'s proposal is a function of the seed, `i` and the history passed in, so a search killed and resumed
//!   regenerates its trials from the recorded scores. With several trials running at once the caller fixes which
//!   results a trial sees (for example those of trials `0..i - jobs + 1`, waiting for them), since what happens
//!   to have finished is not reproducible.
//!
//! Scores are maximised (validation MRR); a failed trial (diverged) has no score and ranks below every other.
//! Values are written as override text by [`Value`]'s `Display`: `0.04`, not `0.04000000000000001`.

mod space;
pub mod tpe;

use std::fmt;

use serde::Deserialize;

use crate::rng::Xoshiro256;

pub use space::{Range, Setting, Space, SpaceError, Value, SIGNIFICANT_DIGITS};
pub use tpe::TpeOptions;

/// How the trials' settings are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Grid,
    Random,
    Tpe,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Tpe => "tpe",
        })
    }
}

/// A finished trial: its setting and its score, None when it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub setting: Setting,
    pub score: Option<f64>,
}

/// A search that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    #[error("the search space is empty")]
    EmptySpace,
    #[error("a grid search needs values it can list, but `{key}` is a continuous `{kind}` range")]
    NoGrid { key: String, kind: &'static str },
    #[error("the grid has {size} settings, so it runs {size} trials, not {trials}")]
    GridTrials { size: usize, trials: usize },
    #[error("the grid has more settings than can be counted")]
    GridTooLarge,
    #[error("a {0} search needs a number of trials, one or more")]
    NoTrials(Method),
    #[error("trial {trial} is past the search's {trials} trials")]
    TrialOutOfRange { trial: usize, trials: usize },
    #[error("TPE's gamma is {0}: the share of good trials lies above 0 and at most 1")]
    Gamma(f64),
    #[error("TPE needs one or more candidates per proposal")]
    NoCandidates,
}

impl SearchError {
    /// What to do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            SearchError::NoGrid { .. } => Some("give the range a `step`, list its values with `choice`, or use `method = \"tpe\"`"),
            SearchError::GridTrials { .. } => Some("leave `trials` out for a grid"),
            SearchError::NoTrials(_) => Some("e.g. `trials = 20`"),
            _ => None,
        }
    }
}

/// A search: its method, space, number of trials and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    method: Method,
    space: Space,
    trials: usize,
    seed: u64,
    tpe: TpeOptions,
}

impl Search {
    /// `trials` is required for random and TPE searches; a grid runs its whole product, which `trials`, when
    /// given, must equal.
    pub fn new(method: Method, space: Space, trials: Option<usize>, seed: u64) -> Result<Search, SearchError> {
        if space.is_empty() {
            return Err(SearchError::EmptySpace);
        }
        let trials = match (method, trials) {
            (Method::Grid, trials) => {
                let size = grid_size(&space)?;
                match trials {
                    Some(trials) if trials != size => return Err(SearchError::GridTrials { size, trials }),
                    _ => size,
                }
            }
            (_, Some(trials)) if trials > 0 => trials,
            (method, _) => return Err(SearchError::NoTrials(method)),
        };
        Ok(Search { method, space, trials, seed, tpe: TpeOptions::default() })
    }

    /// TPE's settings in place of the defaults.
    pub fn with_tpe_options(self, tpe: TpeOptions) -> Result<Search, SearchError> {
        if !(tpe.gamma > 0.0 && tpe.gamma <= 1.0) {
            return Err(SearchError::Gamma(tpe.gamma));
        }
        if tpe.candidates == 0 {
            return Err(SearchError::NoCandidates);
        }
        Ok(Search { tpe, ..self })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    pub fn trials(&self) -> usize {
        self.trials
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The setting trial `trial` tries. `history` holds the finished trials the proposal may learn from (only
    /// TPE reads it): pass the same history to regenerate the same proposal.
    pub fn propose(&self, trial: usize, history: &[Observation]) -> Result<Setting, SearchError> {
        if trial >= self.trials {
            return Err(SearchError::TrialOutOfRange { trial, trials: self.trials });
        }
        Ok(match self.method {
            Method::Grid => self.grid_setting(trial),
            Method::Tpe if trial >= self.tpe.startup => tpe::propose(&self.space, &self.tpe, self.seed, trial, history),
            Method::Random | Method::Tpe => self.space.sample(&mut Xoshiro256::new(self.seed, trial as u64)),
        })
    }

    /// Setting `index` of the grid, read as a number whose last digit is the last key's value.
    fn grid_setting(&self, index: usize) -> Setting {
        let mut rest = index as u64;
        let mut values: Vec<(String, Value)> = self
            .space
            .params()
            .iter()
            .rev()
            .map(|(key, range)| {
                let len = range.grid_len().unwrap_or(1);
                let value = range.grid_value(rest % len);
                rest /= len;
                (key.clone(), value)
            })
            .collect();
        values.reverse();
        Setting { values }
    }
}

fn grid_size(space: &Space) -> Result<usize, SearchError> {
    space.params().iter().try_fold(1usize, |size, (key, range)| {
        let len = range.grid_len().ok_or_else(|| SearchError::NoGrid { key: key.clone(), kind: range.kind() })?;
        usize::try_from(len).ok().and_then(|len| size.checked_mul(len)).ok_or(SearchError::GridTooLarge)
    })
}

#[cfg(test)]
mod tests;
