//! Training: the compiled plan executed over session-parallel mini-batches, one epoch at a time.
//!
//! - [`batches`]: session-parallel mini-batches as GRU4Rec builds them.
//! - [`sampler`]: extra negatives drawn ∝ support^alpha.
//! - [`checkpoint`]: parameters, optimizer state and the item index in safetensors, written atomically.
//!
//! The trainer knows nothing about files: the CLI loops over epochs, writes metrics and checkpoints. Every
//! epoch reseeds libtorch and the sampler from the spec's seed and the epoch number, so a run resumed from
//! the checkpoint of epoch k continues exactly as the uninterrupted run did.

pub mod checkpoint;
pub mod sampler;

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::check::Model;
use crate::data::batches::{self, SessionBatches};
use crate::data::Dataset;
use crate::ir::graph::Owner;
use crate::ir::plan::{Mode, Phase, Plan};
use crate::lower::fused::{self, FusedStep};
use crate::lower::network::{BatchIndex, StateCarry};
use crate::lower::optim::Adagrad;
use crate::lower::{FrameIndexer, Network};
use sampler::NegativeSampler;

/// A plan step with subnets as indices into the network.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// (subnet, trains, reused) in merge order.
    pub forward: Vec<(usize, bool, bool)>,
    pub trains: Vec<Owner>,
    pub loss_on: Vec<usize>,
}

/// How a training step executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Hand-derived gradients in Rust loops over CPU memory (`lower::fused`).
    Fused,
    /// libtorch autograd over gathered rows (`lower::network`): any device, and the fused step's reference.
    Autograd,
}

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

pub struct Trainer<'a> {
    pub network: Network,
    model: &'a Model,
    plan: &'a Plan,
    dataset: &'a Dataset,
    support: Vec<u64>,
    indexer: FrameIndexer,
    kind: StepKind,
}

/// The seed of one epoch's random streams (dropout, negatives), derived from the spec's seed.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    crate::rng::derive(seed, epoch)
}

impl<'a> Trainer<'a> {
    pub fn new(network: Network, model: &'a Model, plan: &'a Plan, dataset: &'a Dataset) -> Self {
        let support = dataset.item_support();
        let kind = if fused::unsupported(&network).is_none() { StepKind::Fused } else { StepKind::Autograd };
        Trainer { network, model, plan, dataset, support, indexer: FrameIndexer::default(), kind }
    }

    /// Chooses the step; `Err` says why the fused step cannot run this network.
    pub fn set_step_kind(&mut self, kind: StepKind) -> Result<(), String> {
        if kind == StepKind::Fused {
            if let Some(why) = fused::unsupported(&self.network) {
                return Err(why);
            }
        }
        self.kind = kind;
        Ok(())
    }

    /// The phase that covers `epoch`, 0-based.
    pub fn phase_of(&self, epoch: u64) -> usize {
        self.plan.phases.iter().position(|p| p.first_epoch <= epoch && epoch <= p.last_epoch).expect("the plan covers every epoch")
    }

    fn step_plans(&self, phase: &Phase) -> Vec<StepPlan> {
        phase
            .steps
            .iter()
            .map(|step| StepPlan {
                forward: step.forward.iter().map(|f| (self.network.subnet_index(&f.subnet), f.mode == Mode::Train, f.reused)).collect(),
                trains: step.trains.clone(),
                loss_on: step.loss_on.iter().map(|s| self.network.subnet_index(s)).collect(),
            })
            .collect()
    }

    /// Runs one epoch (1-based) of the plan.
    pub fn epoch(&mut self, epoch: u64, options: EpochOptions, mut progress: impl FnMut(Progress)) -> Result<EpochSummary, Diverged> {
        let phase_index = self.phase_of(epoch);
        let phase = &self.plan.phases[phase_index];
        let steps = self.step_plans(phase);
        let train = &self.model.train;
        let seed = epoch_seed(train.seed, epoch);
        tch::manual_seed((seed >> 1) as i64);
        let extra = train.negatives.extra as usize;
        let mut sampler = (extra > 0).then(|| NegativeSampler::new(&self.support, train.negatives.alpha, extra, seed));
        // With in-batch negatives only, a lone session has nothing to be ranked against.
        let min_active = if extra > 0 { 1 } else { 2 };
        let mut batches = SessionBatches::new(&self.dataset.train, train.batch as usize, min_active);
        let total_events = batches::total_pairs(&self.dataset.train);
        let adagrad =
            Adagrad { learning_rate: train.optimizer.learning_rate, momentum: train.optimizer.momentum, eps: train.optimizer.eps };
        let device = self.network.device;
        let subnet_count = self.network.subnet_names().len();
        let mut hidden: Vec<Option<Tensor>> = std::iter::repeat_with(|| None).take(subnet_count).collect();
        let mut fused = (self.kind == StepKind::Fused).then(|| FusedStep::new(&self.network, seed));
        let mut fused_loss = 0.0f64;
        let mut fused_non_finite = false;
        let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
        let mut non_finite = Tensor::zeros([], (Kind::Bool, device));
        let mut scored: Vec<u32> = Vec::new();
        let (mut batch_count, mut events, mut checked_batches) = (0u64, 0u64, 0u64);
        let mut loss_so_far = 0.0;
        let started = Instant::now();
        let runs: Vec<usize> = {
            let mut present: Vec<usize> = steps.iter().flat_map(|s| s.forward.iter().map(|f| f.0)).collect();
            present.sort_unstable();
            present.dedup();
            present
        };
        while let Some(step) = batches.next_step() {
            if options.max_batches.is_some_and(|max| batch_count >= max) {
                break;
            }
            scored.clear();
            scored.extend_from_slice(step.targets);
            if let Some(sampler) = &mut sampler {
                scored.extend_from_slice(sampler.next());
            }
            if let Some(fused) = &mut fused {
                fused.carry(&self.network, &step, &runs);
                let last_loss = fused.run_batch(&mut self.network, step.inputs, &scored, &steps, &adagrad);
                fused_non_finite |= !last_loss.is_finite();
                fused_loss += last_loss;
            } else {
                let carry = StateCarry::new(&step, device);
                for &k in &runs {
                    hidden[k] = Some(carry.apply(hidden[k].take(), self.network.hidden_size(k), device));
                }
                let index = self.indexer.index(&self.network, step.inputs, &scored);
                let last_loss = run_batch(&mut self.network, &index, &steps, &mut hidden, &adagrad);
                let _ = non_finite.logical_or_(&last_loss.isfinite().logical_not());
                let _ = loss_sum.g_add_(&last_loss.to_kind(Kind::Double));
            }
            batch_count += 1;
            events += step.inputs.len() as u64;
            if batch_count % options.check_every == 0 {
                checked_batches = batch_count;
                let (diverged, total) = read_loss(fused.is_some(), fused_non_finite, fused_loss, &non_finite, &loss_sum);
                if diverged {
                    return Err(Diverged { epoch, batch: batch_count });
                }
                loss_so_far = total / batch_count as f64;
                progress(Progress { events, total_events, batches: batch_count, loss: loss_so_far });
            }
        }
        let (diverged, total) = read_loss(fused.is_some(), fused_non_finite, fused_loss, &non_finite, &loss_sum);
        if batch_count > checked_batches && diverged {
            return Err(Diverged { epoch, batch: batch_count });
        }
        if batch_count > 0 {
            loss_so_far = total / batch_count as f64;
        }
        progress(Progress { events, total_events, batches: batch_count, loss: loss_so_far });
        let seconds = started.elapsed().as_secs_f64();
        Ok(EpochSummary {
            epoch,
            phase: phase_index + 1,
            trains: {
                let mut groups: Vec<String> = steps.iter().flat_map(|s| s.trains.iter().map(ToString::to_string)).collect();
                groups.dedup();
                groups
            },
            loss: loss_so_far,
            batches: batch_count,
            events,
            seconds,
            events_per_second: events as f64 / seconds.max(1e-9),
            batches_per_second: batch_count as f64 / seconds.max(1e-9),
        })
    }
}

/// Whether a non-finite loss was seen, and the loss summed so far: kept on the host by the fused step, read
/// from the device (a synchronisation) by the autograd step.
fn read_loss(fused: bool, fused_non_finite: bool, fused_loss: f64, non_finite: &Tensor, loss_sum: &Tensor) -> (bool, f64) {
    if fused {
        (fused_non_finite, fused_loss)
    } else {
        (non_finite.int64_value(&[]) != 0, loss_sum.double_value(&[]))
    }
}

/// The plan's steps on one mini-batch. `hidden` holds each running subnet's state on entry and its new
/// state on return. Returns the last step's loss (detached, on the device).
fn run_batch(network: &mut Network, index: &BatchIndex, steps: &[StepPlan], hidden: &mut [Option<Tensor>], adagrad: &Adagrad) -> Tensor {
    let count = hidden.len();
    // Outputs of subnets that already ran on this mini-batch: reused by later interleaving steps.
    let mut fresh_hidden: Vec<Option<Tensor>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut fresh_parts: Vec<Option<Tensor>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut last_loss = Tensor::zeros([], (Kind::Float, network.device));
    for step in steps {
        let (frame, leaves) = index.frame(network, &step.trains);
        let mut step_hidden: Vec<Option<Tensor>> = std::iter::repeat_with(|| None).take(count).collect();
        for &(k, trains, reused) in &step.forward {
            step_hidden[k] = Some(if reused {
                fresh_hidden[k].as_ref().expect("a reused subnet ran in an earlier step").shallow_clone()
            } else if trains {
                network.subnet_step(k, &frame, hidden[k].as_ref().expect("running subnets have a state"), true)
            } else {
                let _guard = tch::no_grad_guard();
                network.subnet_step(k, &frame, hidden[k].as_ref().expect("running subnets have a state"), false)
            });
        }
        let mut parts: Vec<Option<Tensor>> = std::iter::repeat_with(|| None).take(count).collect();
        if !network.shares_output() {
            for &k in &step.loss_on {
                let reused = step.forward.iter().any(|&(j, _, r)| j == k && r);
                parts[k] = Some(if reused {
                    fresh_parts[k].as_ref().expect("a reused subnet was scored in its own step").shallow_clone()
                } else {
                    network.score_part(k, &frame, &step_hidden)
                });
            }
        }
        let scores = network.merged_scores(&step.loss_on, &frame, &step_hidden, &parts);
        let loss = network.training_loss(&scores, &frame);
        if !leaves.is_empty() {
            loss.backward();
            index.update(network, &leaves, adagrad);
        }
        for &(k, _, reused) in &step.forward {
            if !reused {
                fresh_hidden[k] = step_hidden[k].as_ref().map(Tensor::detach);
                fresh_parts[k] = parts[k].as_ref().map(Tensor::detach);
            }
        }
        last_loss = loss.detach();
    }
    for (k, h) in fresh_hidden.into_iter().enumerate() {
        if h.is_some() {
            hidden[k] = h;
        }
    }
    last_loss
}
