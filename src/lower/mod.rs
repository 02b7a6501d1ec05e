//! Lowering: the bound IR and a prepared dataset become tensors, and executors run the IR's nodes on them.
//!
//! - [`network`]: one tensor per entry of the IR's parameter table, created in its order, and the features.
//! - [`Executor`]: the one seam the trainer and evaluation call. Two implementations walk the graph's nodes,
//!   each node kind's forward (and backward) once, chosen by an exhaustive `match` on the node:
//!   - [`autograd`]: libtorch operations and autograd, on any device;
//!   - [`fused`]: the fused CPU step, hand-derived gradients and sparse Adagrad in Rust loops.
//! - [`gru`], [`loss`], [`optim`]: the GRU forms, activations and losses, and Adagrad as libtorch operations.
//! - `rows`: which item and vocabulary rows a mini-batch touches.

pub mod autograd;
pub mod fused;
pub mod gru;
pub mod loss;
pub mod network;
pub mod optim;
pub(crate) mod rows;

pub use autograd::Autograd;
pub use fused::Fused;
pub use network::Network;

use tch::{Device, Tensor};

use crate::data::batches::Step;
use crate::ir::plan::{Phase, Step as PlanStep};
use crate::ir::SubnetId;

/// How a training step executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Hand-derived gradients in Rust loops over CPU memory ([`fused`]).
    Fused,
    /// libtorch autograd over gathered rows ([`autograd`]): any device, and the fused step's reference.
    Autograd,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Fused => "fused",
            StepKind::Autograd => "autograd",
        }
    }
}

/// The steps of one plan phase, and the subnets that run in any of them (whose hidden state is carried).
#[derive(Debug, Clone)]
pub struct PhaseSteps<'p> {
    pub steps: &'p [PlanStep],
    pub running: Vec<SubnetId>,
}

impl<'p> PhaseSteps<'p> {
    pub fn new(phase: &'p Phase) -> Self {
        let mut running: Vec<SubnetId> = phase.steps.iter().flat_map(|s| s.forward.iter().map(|f| f.subnet)).collect();
        running.sort_unstable();
        running.dedup();
        PhaseSteps { steps: &phase.steps, running }
    }
}

/// The loss of an epoch so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochLoss {
    /// A mini-batch's loss was NaN or infinite.
    pub non_finite: bool,
    /// The sum of the mini-batches' losses (the last step's, under interleaving).
    pub sum: f64,
}

/// What an executor carries from one mini-batch of an epoch to the next, as an in-epoch checkpoint keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochState {
    /// Each subnet's hidden state `[rows, H]`, flattened; None before the subnet's first step.
    pub hidden: Vec<Option<Vec<f32>>>,
    /// The position of the epoch's random stream (dropout): the fused step's generator state, or the
    /// mini-batches the autograd step has trained (it reseeds libtorch for each).
    pub random: u64,
    pub loss: EpochLoss,
}

/// Executes the IR on a [`Network`]: training steps for the trainer, inference for evaluation.
///
/// An implementation visits the graph's nodes in the IR's order ([`crate::ir::graph::Order`]) and handles
/// each node kind in one `match` arm, so a new node kind is one IR variant plus one arm per executor.
pub trait Executor {
    fn kind(&self) -> StepKind;

    fn network(&self) -> &Network;

    fn into_network(self: Box<Self>) -> Network;

    /// Starts an epoch: no hidden state, the loss sums cleared, dropout drawn from `seed`.
    fn start_epoch(&mut self, seed: u64);

    /// Runs a phase's steps on one mini-batch: carries the hidden state into the batch's layout, then
    /// forward, backward and Adagrad for every step. `scored` is the batch's targets, then its negatives.
    fn train_batch(&mut self, batch: &Step<'_>, scored: &[u32], phase: &PhaseSteps<'_>);

    /// The epoch's loss so far (on a GPU, a synchronisation: call it now and then, not every batch).
    fn epoch_loss(&self) -> EpochLoss;

    /// What this epoch carries so far, for an in-epoch checkpoint (a synchronisation on a GPU).
    fn epoch_state(&self) -> EpochState;

    /// Continues an epoch from a saved state; called right after `start_epoch` with the epoch's seed.
    fn restore_epoch_state(&mut self, state: EpochState);

    /// Inference: one step of every subnet from `states` (merge order, `[B, H]` each) over the items
    /// `inputs`, without dropout.
    fn next_states(&self, inputs: &[u32], states: &[Tensor]) -> Vec<Tensor>;

    /// Inference: the merged scores of every item for `states`, before the output activation, into `out`
    /// `[B, n_items]`.
    fn scores_into(&self, states: &[Tensor], out: &mut Tensor);
}

/// Why the fused step cannot run a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unsupported {
    #[error("the fused step runs on the CPU; this network is on {0:?}")]
    Device(Device),
    #[error("the fused step needs contiguous float32 tensors")]
    Layout,
}

/// An executor of `kind` over `network`; the network comes back unchanged when the fused step cannot run it.
pub fn executor(network: Network, kind: StepKind) -> Result<Box<dyn Executor>, (Unsupported, Network)> {
    match kind {
        StepKind::Autograd => Ok(Box::new(Autograd::new(network))),
        StepKind::Fused => match fused::unsupported(&network) {
            None => Ok(Box::new(Fused::new(network))),
            Some(why) => Err((why, network)),
        },
    }
}

/// A device name that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected `auto`, `cpu`, `cuda` or `cuda:N`")]
    Unknown(String),
    #[error("device `{0}` asked for, but CUDA is not available (`prnn doctor` says why)")]
    NoCuda(String),
    #[error("device `{name}` asked for, but there {} only {count} CUDA device{}", if *.count == 1 { "is" } else { "are" }, if *.count == 1 { "" } else { "s" })]
    NoSuchGpu { name: String, count: usize },
}

/// Resolves `auto`, `cpu`, `cuda` and `cuda:N`.
pub fn device(name: &str) -> Result<Device, DeviceError> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let index = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => {
                    rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| DeviceError::Unknown(name.into()))?
                }
                None => return Err(DeviceError::Unknown(name.into())),
            };
            if !tch::Cuda::is_available() {
                return Err(DeviceError::NoCuda(name.into()));
            }
            let count = tch::Cuda::device_count() as usize;
            if index >= count {
                return Err(DeviceError::NoSuchGpu { name: name.into(), count });
            }
            Ok(Device::Cuda(index))
        }
    }
}
