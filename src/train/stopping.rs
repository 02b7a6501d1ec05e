//! Early stopping: from validation scores alone, which epoch each group of the plan keeps and when it ends.
//!
//! The decisions depend only on the scores seen so far, in epoch order, so a resumed run replays the scores
//! recorded in `metrics.jsonl` and is in the state the uninterrupted run was in.

use serde::{Deserialize, Serialize};

use crate::ir::plan::Stopping;

/// Why a group of epochs ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum StopReason {
    /// `patience` epochs in a row gained no more than `min_delta` over the best.
    Patience { patience: u64, min_delta: f64 },
    /// The group's last epoch was trained.
    LastEpoch,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Patience { patience, min_delta } => {
                write!(f, "{patience} epoch{} without a gain above {min_delta}", if *patience == 1 { "" } else { "s" })
            }
            StopReason::LastEpoch => write!(f, "reached the maximum number of epochs"),
        }
    }
}

/// The end of a group: the epoch whose weights it keeps, and why it ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupEnd {
    /// 0-based index into the plan's stop groups.
    pub group: usize,
    /// The last epoch the group trained.
    pub stopped_after: u64,
    pub kept_epoch: u64,
    pub kept_score: f64,
    pub reason: StopReason,
}

/// What one epoch's score did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The epoch is its group's best so far: its weights are the ones to keep.
    pub best: bool,
    /// The group ended with this epoch.
    pub end: Option<GroupEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct GroupState {
    best: Option<(u64, f64)>,
    since_best: u64,
    end: Option<GroupEnd>,
}

/// The stopping state of a run.
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Stopping,
    groups: Vec<GroupState>,
    last_epoch: u64,
}

impl Stopper {
    pub fn new(stopping: Stopping) -> Stopper {
        let groups = vec![GroupState { best: None, since_best: 0, end: None }; stopping.groups.len()];
        Stopper { stopping, groups, last_epoch: 0 }
    }

    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// Records the validation score of `epoch`. Epochs come in increasing order, and never from a group
    /// that has ended. A score that is not a number never counts as a gain.
    pub fn observe(&mut self, epoch: u64, score: f64) -> Observation {
        assert!(epoch > self.last_epoch, "epoch {epoch} observed after epoch {}", self.last_epoch);
        self.last_epoch = epoch;
        let index = self.stopping.group_of(epoch).expect("the plan's stop groups cover every epoch");
        let rule = self.stopping.rule;
        let range = self.stopping.groups[index];
        let state = &mut self.groups[index];
        assert!(state.end.is_none(), "epoch {epoch} trained after its group ended");
        // A group's first epoch is its best so far whatever it scored; a NaN never beats anything after it.
        let best = match state.best {
            None => true,
            Some((_, best)) => score > best + rule.min_delta,
        };
        if best {
            state.best = Some((epoch, if score.is_nan() { f64::NEG_INFINITY } else { score }));
            state.since_best = 0;
        } else {
            state.since_best += 1;
        }
        let reason = if state.since_best >= rule.patience {
            Some(StopReason::Patience { patience: rule.patience, min_delta: rule.min_delta })
        } else if epoch == range.last_epoch {
            Some(StopReason::LastEpoch)
        } else {
            None
        };
        let end = reason.map(|reason| {
            let (kept_epoch, kept_score) = state.best.expect("a group that saw an epoch has a best");
            GroupEnd { group: index, stopped_after: epoch, kept_epoch, kept_score, reason }
        });
        state.end = end;
        Observation { best, end }
    }

    /// The next epoch to train after `epoch`, skipping what remains of ended groups; `None` when the run is
    /// done.
    pub fn next_epoch(&self, epoch: u64) -> Option<u64> {
        let next = epoch + 1;
        let index = self.stopping.group_of(next)?;
        match self.groups[index].end {
            None => Some(next),
            Some(_) => self.next_epoch(self.stopping.groups[index].last_epoch),
        }
    }

    /// The best epoch so far of the group that covers `epoch`.
    pub fn best_of_group(&self, epoch: u64) -> Option<(u64, f64)> {
        self.groups[self.stopping.group_of(epoch)?].best
    }

    /// The end of the group that covers `epoch`, when it has ended.
    pub fn end_of_group(&self, epoch: u64) -> Option<GroupEnd> {
        self.groups[self.stopping.group_of(epoch)?].end
    }

    /// Every group's end so far, in order.
    pub fn ends(&self) -> Vec<GroupEnd> {
        self.groups.iter().filter_map(|g| g.end).collect()
    }

    /// The epochs each group kept, for retraining without stopping: `(group's first epoch, kept epochs)`.
    pub fn kept_lengths(&self) -> Vec<u64> {
        self.groups
            .iter()
            .zip(&self.stopping.groups)
            .map(|(state, range)| state.end.map_or(range.last_epoch - range.first_epoch + 1, |end| end.kept_epoch - range.first_epoch + 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::plan::StopGroup;
    use crate::ir::{EarlyStop, StopMetric};

    fn stopper(patience: u64, min_delta: f64, groups: &[(u64, u64)]) -> Stopper {
        let rule = EarlyStop { metric: StopMetric::Mrr, cutoff: 20, patience, min_delta };
        let groups = groups.iter().map(|&(first_epoch, last_epoch)| StopGroup { first_epoch, last_epoch }).collect();
        Stopper::new(Stopping { rule, groups })
    }

    /// Feeds scores epoch by epoch as a trainer would, returning the epochs trained and the group ends.
    fn run(stopper: &mut Stopper, score_of: impl Fn(u64) -> f64) -> (Vec<u64>, Vec<GroupEnd>) {
        let mut trained = Vec::new();
        let mut epoch = stopper.next_epoch(0);
        while let Some(e) = epoch {
            trained.push(e);
            stopper.observe(e, score_of(e));
            epoch = stopper.next_epoch(e);
        }
        (trained, stopper.ends())
    }

    #[test]
    fn stops_after_patience_epochs_without_a_gain_and_keeps_the_best() {
        let scores = [0.10, 0.20, 0.25, 0.24, 0.25, 0.23, 0.30, 0.31];
        let mut s = stopper(3, 0.0, &[(1, 8)]);
        let (trained, ends) = run(&mut s, |e| scores[e as usize - 1]);
        assert_eq!(trained, [1, 2, 3, 4, 5, 6]);
        assert_eq!(ends.len(), 1);
        assert_eq!((ends[0].kept_epoch, ends[0].kept_score, ends[0].stopped_after), (3, 0.25, 6));
        assert_eq!(ends[0].reason, StopReason::Patience { patience: 3, min_delta: 0.0 });
        assert_eq!(s.kept_lengths(), [3]);
    }

    #[test]
    fn a_gain_at_or_below_min_delta_is_not_a_gain() {
        let scores = [0.20, 0.205, 0.21, 0.2101, 0.5];
        let mut s = stopper(2, 0.01, &[(1, 5)]);
        let (trained, ends) = run(&mut s, |e| scores[e as usize - 1]);
        // 0.21 is exactly 0.01 above 0.20: not more than min_delta.
        assert_eq!(trained, [1, 2, 3]);
        assert_eq!(ends[0].kept_epoch, 1);
    }

    #[test]
    fn a_group_that_keeps_improving_runs_to_its_last_epoch() {
        let mut s = stopper(2, 0.0, &[(1, 4)]);
        let (trained, ends) = run(&mut s, |e| e as f64);
        assert_eq!(trained, [1, 2, 3, 4]);
        assert_eq!(ends[0].reason, StopReason::LastEpoch);
        assert_eq!(ends[0].kept_epoch, 4);
    }

    #[test]
    fn the_best_can_come_before_the_last_epoch_of_a_finished_group() {
        let scores = [0.3, 0.1, 0.2];
        let mut s = stopper(5, 0.0, &[(1, 3)]);
        let (_, ends) = run(&mut s, |e| scores[e as usize - 1]);
        assert_eq!((ends[0].kept_epoch, ends[0].reason), (1, StopReason::LastEpoch));
    }

    #[test]
    fn residual_groups_stop_on_their_own_and_the_next_starts_at_its_first_epoch() {
        // Phase 1 (epochs 1-5) peaks at 2; phase 2 (epochs 6-10) starts afresh, lower than phase 1's best.
        let scores = [0.2, 0.3, 0.29, 0.28, 0.9, 0.1, 0.15, 0.14, 0.13, 0.12];
        let mut s = stopper(2, 0.0, &[(1, 5), (6, 10)]);
        let (trained, ends) = run(&mut s, |e| scores[e as usize - 1]);
        assert_eq!(trained, [1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(ends.iter().map(|e| (e.group, e.kept_epoch, e.stopped_after)).collect::<Vec<_>>(), [(0, 2, 4), (1, 7, 9)]);
        assert_eq!(s.kept_lengths(), [2, 2]);
    }

    #[test]
    fn nan_scores_never_gain() {
        let mut s = stopper(2, 0.0, &[(1, 6)]);
        let (trained, ends) = run(&mut s, |e| if e == 1 { 0.1 } else { f64::NAN });
        assert_eq!(trained, [1, 2, 3]);
        assert_eq!(ends[0].kept_epoch, 1);
    }

    #[test]
    fn replaying_recorded_scores_reaches_the_same_state() {
        let scores = [0.1, 0.2, 0.19, 0.18, 0.25, 0.2, 0.2, 0.2];
        let mut whole = stopper(3, 0.0, &[(1, 8)]);
        let (trained, _) = run(&mut whole, |e| scores[e as usize - 1]);
        // A run killed after epoch 4, in the middle of its patience, replays epochs 1-4 and goes on.
        let mut resumed = stopper(3, 0.0, &[(1, 8)]);
        for epoch in 1..=4 {
            resumed.observe(epoch, scores[epoch as usize - 1]);
        }
        assert_eq!(resumed.best_of_group(4), Some((2, 0.2)));
        let mut rest = vec![];
        let mut epoch = resumed.next_epoch(4);
        while let Some(e) = epoch {
            rest.push(e);
            resumed.observe(e, scores[e as usize - 1]);
            epoch = resumed.next_epoch(e);
        }
        assert_eq!([&[1, 2, 3, 4][..], &rest].concat(), trained);
        assert_eq!(resumed.ends(), whole.ends());
    }
}
