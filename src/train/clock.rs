//! Time left in a training run: how far the current epoch is, and a smoothed epoch duration carried over every
//! epoch the plan has left.

use super::Progress;

/// The speed of an epoch is not trusted before this much of it has run, nor before this many seconds.
const TRUSTED_FRACTION: f64 = 0.01;
const TRUSTED_SECONDS: f64 = 2.0;

/// What is left of the current epoch and of the whole run, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeLeft {
    pub epoch: f64,
    pub run: f64,
}

/// Estimates the time left from the epochs' progress, smoothed across epochs so that it does not jump.
#[derive(Debug, Clone)]
pub struct RunClock {
    /// Epochs of the plan after the current one.
    epochs_after: u64,
    max_batches: Option<u64>,
    /// How long the last finished epoch took, when one has finished in this process.
    last_epoch_seconds: Option<f64>,
    /// The current epoch's smoothed duration.
    estimate: Option<f64>,
}

impl RunClock {
    /// A clock for a run with `epochs_after` epochs still to come after the current one, each stopped after
    /// `max_batches` mini-batches when given.
    pub fn new(epochs_after: u64, max_batches: Option<u64>) -> RunClock {
        RunClock { epochs_after, max_batches, last_epoch_seconds: None, estimate: None }
    }

    /// How much of the epoch is done: its events, or its mini-batches when `max_batches` ends it sooner,
    /// whichever is further along; at most 1.
    pub fn fraction(&self, progress: &Progress) -> f64 {
        let of_events = progress.events as f64 / progress.total_events.max(1) as f64;
        let of_batches = self.max_batches.map_or(0.0, |max| progress.batches as f64 / max.max(1) as f64);
        of_events.max(of_batches).min(1.0)
    }

    /// Records `progress`, `seconds` into the current epoch (of this process's own running: a resumed epoch
    /// counts from where it resumed, with `resumed_fraction` done before). Returns the time left once the
    /// epoch's speed can be trusted, or from the last epoch's duration before that.
    pub fn update(&mut self, progress: &Progress, seconds: f64, resumed_fraction: f64) -> Option<TimeLeft> {
        let fraction = self.fraction(progress);
        let run_here = fraction - resumed_fraction;
        if run_here >= TRUSTED_FRACTION && seconds >= TRUSTED_SECONDS {
            let this_epoch = seconds / run_here;
            // The further the epoch, the more its own speed counts against the last epoch's.
            let measured = match self.last_epoch_seconds {
                Some(last) => last + (this_epoch - last) * fraction.sqrt(),
                None => this_epoch,
            };
            // Smoothed across updates as well: one slow mini-batch moves the estimate a little.
            self.estimate = Some(match self.estimate {
                Some(previous) => previous + (measured - previous) * 0.2,
                None => measured,
            });
        } else if self.estimate.is_none() {
            self.estimate = self.last_epoch_seconds;
        }
        let epoch_seconds = self.estimate?;
        let epoch = epoch_seconds * (1.0 - fraction);
        Some(TimeLeft { epoch, run: epoch + epoch_seconds * self.epochs_after as f64 })
    }

    /// The current epoch ended after `seconds` (of this process's running of it, `resumed_fraction` having been
    /// done before): the next one starts.
    pub fn epoch_done(&mut self, seconds: f64, resumed_fraction: f64) {
        let run_here = 1.0 - resumed_fraction;
        if run_here > 0.0 && seconds > 0.0 {
            self.last_epoch_seconds = Some(seconds / run_here);
        }
        self.estimate = None;
        self.epochs_after = self.epochs_after.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(events: u64, total: u64, batches: u64) -> Progress {
        Progress { events, total_events: total, batches, loss: 0.0 }
    }

    #[test]
    fn nothing_is_estimated_before_the_speed_can_be_trusted() {
        let mut clock = RunClock::new(3, None);
        assert_eq!(clock.update(&progress(0, 1000, 0), 0.0, 0.0), None, "no stray estimate at the start");
        assert_eq!(clock.update(&progress(5, 1000, 1), 0.5, 0.0), None);
    }

    #[test]
    fn the_run_estimate_covers_every_epoch_left() {
        let mut clock = RunClock::new(3, None);
        // A quarter of the epoch in 10 s: 40 s an epoch, 30 s left of it, then three more.
        let left = clock.update(&progress(250, 1000, 25), 10.0, 0.0).unwrap();
        assert!((left.epoch - 30.0).abs() < 1e-9 && (left.run - 150.0).abs() < 1e-9, "{left:?}");
        clock.epoch_done(40.0, 0.0);
        // The next epoch starts from the last one's duration, before its own speed is known.
        let left = clock.update(&progress(0, 1000, 0), 0.1, 0.0).unwrap();
        assert!((left.epoch - 40.0).abs() < 1e-9 && (left.run - 120.0).abs() < 1e-9, "{left:?}");
    }

    #[test]
    fn max_batches_ends_the_epoch_at_one_hundred_percent() {
        let clock = RunClock::new(0, Some(100));
        // 100 mini-batches of a 10,000-event epoch: done, not 50% or 1%.
        assert_eq!(clock.fraction(&progress(5_000, 10_000, 100)), 1.0);
        assert_eq!(clock.fraction(&progress(2_500, 10_000, 50)), 0.5);
        assert_eq!(RunClock::new(0, None).fraction(&progress(2_500, 10_000, 50)), 0.25);
    }

    #[test]
    fn one_slow_stretch_moves_the_estimate_a_little() {
        let mut clock = RunClock::new(9, None);
        let steady = clock.update(&progress(100, 1000, 10), 10.0, 0.0).unwrap();
        // Twice as slow for a while: the per-epoch estimate moves by far less than 2x.
        let after = clock.update(&progress(110, 1000, 11), 13.0, 0.0).unwrap();
        assert!(after.run < steady.run * 1.1 && after.run > steady.run, "{steady:?} then {after:?}");
    }

    #[test]
    fn a_resumed_epoch_counts_its_speed_from_where_it_resumed() {
        let mut clock = RunClock::new(0, None);
        // Resumed at 50%; 10% more in 5 s: 50 s an epoch, 40% left.
        let left = clock.update(&progress(600, 1000, 60), 5.0, 0.5).unwrap();
        assert!((left.epoch - 20.0).abs() < 1e-9, "{left:?}");
    }
}
