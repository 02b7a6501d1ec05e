//! Training: the IR's plan executed over session-parallel mini-batches, one epoch at a time, by an executor.
//!
//! - [`sampler`]: extra negatives drawn ∝ support^alpha.
//! - [`checkpoint`]: parameters, optimizer state and the item index in safetensors, written atomically.
//! - [`stopping`]: early stopping's decisions from validation scores.
//!
//! The trainer knows nothing about files: the CLI loops over epochs, writes metrics and checkpoints through
//! [`EpochHooks`]. Every epoch reseeds its random streams from the plan's seed and the epoch number, so a run
//! resumed from the checkpoint of epoch k continues exactly as the uninterrupted run did; inside an epoch,
//! an [`InEpoch`] record (the batch position, the sampler's draws, the loss so far) and the executor's
//! [`EpochState`] (hidden states, dropout stream) let a run resumed mid-epoch do the same.

pub mod checkpoint;
pub mod clock;
pub mod sampler;
pub mod stopping;

use std::time::Instant;

use crate::data::batches::{self, SessionBatches};
use crate::data::Dataset;
use crate::lower::{self, EpochLoss, EpochState, Executor, Network, PhaseSteps, StepKind, Unsupported};
use sampler::{NegativeSampler, SamplerState};

/// What one epoch did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochSummary {
    pub epoch: u64,
    /// 1-based phase of the plan.
    pub phase: usize,
    /// Parameter groups trained.
    pub trains: Vec<String>,
    /// Mean training loss over the epoch's mini-batches (the last step's loss under interleaving).
    pub loss: f64,
    pub batches: u64,
    /// Events predicted (input → target pairs).
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub batches_per_second: f64,
}

/// Training stopped because the loss became NaN or infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    pub epoch: u64,
    /// The check that found it: the non-finite loss appeared at or before this mini-batch.
    pub batch: u64,
}

/// Why an epoch did not finish.
#[derive(Debug)]
pub enum EpochError {
    Diverged(Diverged),
    /// An in-epoch checkpoint could not be written.
    Checkpoint(std::io::Error),
}

/// How far an epoch has come after some of its mini-batches: with the executor's [`EpochState`], what an
/// in-epoch checkpoint keeps to continue the epoch exactly.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InEpoch {
    /// The epoch in progress (1-based).
    pub epoch: u64,
    /// Mini-batches trained so far; a resumed epoch skips this many steps of the batch iterator.
    pub batches: u64,
    pub events: u64,
    /// The mini-batch of the last loss check, and the mean loss it found.
    pub checked_batches: u64,
    pub loss_so_far: f64,
    /// The executor's loss sum and random-stream position (its hidden states travel as tensors).
    pub loss_sum: f64,
    pub random: u64,
    pub sampler: Option<SamplerState>,
}

/// What the caller of [`Trainer::epoch_with`] does between mini-batches.
pub trait EpochHooks {
    /// After each mini-batch (`loss` is the mean of the last check): a progress bar or a log line.
    fn progress(&mut self, progress: Progress);
    /// After each mini-batch: whether to write an in-epoch checkpoint now.
    fn checkpoint_due(&mut self, batches: u64) -> bool {
        let _ = batches;
        false
    }
    /// Writes an in-epoch checkpoint of `network` at `point`, with the executor's hidden states.
    fn checkpoint(&mut self, network: &Network, point: &InEpoch, hidden: &[Option<Vec<f32>>]) -> std::io::Result<()> {
        let _ = (network, point, hidden);
        Ok(())
    }
}

impl<F: FnMut(Progress)> EpochHooks for F {
    fn progress(&mut self, progress: Progress) {
        self(progress)
    }
}

/// Progress within an epoch, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub events: u64,
    pub total_events: u64,
    pub batches: u64,
    /// Mean loss so far in this epoch.
    pub loss: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct EpochOptions {
    /// Stop each epoch after this many mini-batches (smoke runs of the big models).
    pub max_batches: Option<u64>,
    /// Mini-batches between reads of the device-side loss and NaN flag.
    pub check_every: u64,
}

impl Default for EpochOptions {
    fn default() -> Self {
        EpochOptions { max_batches: None, check_every: 256 }
    }
}

/// The plan of a network's IR, run epoch by epoch on a dataset's training sessions.
pub struct Trainer<'a> {
    executor: Box<dyn Executor>,
    dataset: &'a Dataset,
    support: Vec<u64>,
}

/// The seed of one epoch's random streams (dropout, negatives), derived from the plan's seed.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    crate::rng::derive(seed, epoch)
}

/// The step a network trains with unless asked otherwise: fused where it can run, else autograd.
pub fn default_step(network: &Network) -> StepKind {
    if lower::fused::unsupported(network).is_none() {
        StepKind::Fused
    } else {
        StepKind::Autograd
    }
}

impl<'a> Trainer<'a> {
    /// A trainer that executes steps with `kind`; fails when the fused step cannot run the network.
    pub fn new(network: Network, dataset: &'a Dataset, kind: StepKind) -> Result<Self, Unsupported> {
        let executor = lower::executor(network, kind).map_err(|(why, _)| why)?;
        Ok(Trainer { executor, dataset, support: dataset.item_support() })
    }

    pub fn network(&self) -> &Network {
        self.executor.network()
    }

    pub fn into_network(self) -> Network {
        self.executor.into_network()
    }

    /// The executor, for evaluating between epochs.
    pub fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    pub fn step_kind(&self) -> StepKind {
        self.executor.kind()
    }

    /// The phase that covers `epoch`, 0-based.
    pub fn phase_of(&self, epoch: u64) -> usize {
        self.network().ir().plan().phase_of(epoch).expect("the plan covers every epoch")
    }

    /// Runs one epoch (1-based) of the plan; `progress` sees every mini-batch.
    pub fn epoch(&mut self, epoch: u64, options: EpochOptions, mut progress: impl FnMut(Progress)) -> Result<EpochSummary, Diverged> {
        self.epoch_with(epoch, options, None, &mut progress).map_err(|error| match error {
            EpochError::Diverged(diverged) => diverged,
            EpochError::Checkpoint(_) => unreachable!("progress hooks write no checkpoint"),
        })
    }

    /// Runs one epoch (1-based) of the plan, from its start or from an in-epoch checkpoint (`resume`: its
    /// record and the executor's hidden states), calling `hooks` after every mini-batch.
    pub fn epoch_with(
        &mut self,
        epoch: u64,
        options: EpochOptions,
        resume: Option<(InEpoch, Vec<Option<Vec<f32>>>)>,
        hooks: &mut dyn EpochHooks,
    ) -> Result<EpochSummary, EpochError> {
        let ir = self.network().ir_handle();
        let plan = ir.plan();
        let phase_index = self.phase_of(epoch);
        let phase = PhaseSteps::new(&plan.phases[phase_index]);
        let seed = epoch_seed(plan.seed, epoch);
        self.executor.start_epoch(seed);
        let negatives = ir.negatives();
        let extra = negatives.extra as usize;
        let mut sampler = (extra > 0).then(|| NegativeSampler::new(&self.support, negatives.alpha, extra, seed));
        // With in-batch negatives only, a lone session has nothing to be ranked against.
        let min_active = if extra > 0 { 1 } else { 2 };
        let mut batches = SessionBatches::new(&self.dataset.train, plan.batch as usize, min_active);
        let total_events = batches::total_pairs(&self.dataset.train);
        let mut scored: Vec<u32> = Vec::new();
        let (mut batch_count, mut events, mut checked_batches) = (0u64, 0u64, 0u64);
        let mut loss_so_far = 0.0;
        if let Some((point, hidden)) = resume {
            assert_eq!(point.epoch, epoch, "an in-epoch checkpoint resumes its own epoch");
            for _ in 0..point.batches {
                batches.next_step().expect("an in-epoch checkpoint lies inside its epoch");
            }
            if let (Some(sampler), Some(state)) = (&mut sampler, &point.sampler) {
                sampler.restore(state).expect("the sampler state belongs to this run's data and settings");
            }
            let loss = EpochLoss { non_finite: false, sum: point.loss_sum };
            self.executor.restore_epoch_state(EpochState { hidden, random: point.random, loss });
            (batch_count, events, checked_batches, loss_so_far) = (point.batches, point.events, point.checked_batches, point.loss_so_far);
        }
        let (started, events_before, batches_before) = (Instant::now(), events, batch_count);
        while let Some(step) = batches.next_step() {
            if options.max_batches.is_some_and(|max| batch_count >= max) {
                break;
            }
            scored.clear();
            scored.extend_from_slice(step.targets);
            if let Some(sampler) = &mut sampler {
                scored.extend_from_slice(sampler.next());
            }
            self.executor.train_batch(&step, &scored, &phase);
            batch_count += 1;
            events += step.inputs.len() as u64;
            if batch_count.is_multiple_of(options.check_every) {
                checked_batches = batch_count;
                let loss = self.executor.epoch_loss();
                if loss.non_finite {
                    return Err(EpochError::Diverged(Diverged { epoch, batch: batch_count }));
                }
                loss_so_far = loss.sum / batch_count as f64;
            }
            hooks.progress(Progress { events, total_events, batches: batch_count, loss: loss_so_far });
            if hooks.checkpoint_due(batch_count) {
                let state = self.executor.epoch_state();
                // A diverged state is not worth keeping; the next loss check reports it.
                if !state.loss.non_finite {
                    let point = InEpoch {
                        epoch,
                        batches: batch_count,
                        events,
                        checked_batches,
                        loss_so_far,
                        loss_sum: state.loss.sum,
                        random: state.random,
                        sampler: sampler.as_ref().map(NegativeSampler::state),
                    };
                    hooks.checkpoint(self.executor.network(), &point, &state.hidden).map_err(EpochError::Checkpoint)?;
                }
            }
        }
        let loss = self.executor.epoch_loss();
        if batch_count > checked_batches && loss.non_finite {
            return Err(EpochError::Diverged(Diverged { epoch, batch: batch_count }));
        }
        if batch_count > 0 {
            loss_so_far = loss.sum / batch_count as f64;
        }
        hooks.progress(Progress { events, total_events, batches: batch_count, loss: loss_so_far });
        let seconds = started.elapsed().as_secs_f64();
        let graph = ir.graph();
        let mut trains: Vec<String> = phase.steps.iter().flat_map(|s| s.trains.iter().map(|&o| graph.owner_name(o).to_string())).collect();
        trains.dedup();
        Ok(EpochSummary {
            epoch,
            phase: phase_index + 1,
            trains,
            loss: loss_so_far,
            batches: batch_count,
            events,
            seconds,
            // This process's speed: a resumed epoch's earlier mini-batches ran in another.
            events_per_second: (events - events_before) as f64 / seconds.max(1e-9),
            batches_per_second: (batch_count - batches_before) as f64 / seconds.max(1e-9),
        })
    }
}
