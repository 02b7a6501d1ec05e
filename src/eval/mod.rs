//! Evaluation: next-event prediction over the test sessions, Recall@K and MRR@K, and the rank of every event.
//!
//! Test sessions run session-parallel, like training, with each slot's hidden state zeroed when it starts a
//! session; every event after a session's first is predicted from the events before it. Scores are the merged
//! scores before the output activation: the activations are monotone, and ranking before them keeps tanh's
//! saturation from turning distinct scores into ties. Unlike GRU4Rec's evaluation loop, which stops once a
//! single session is left, every test event is scored. On the CPU, ranks are exact in two passes
//! ([`ranking`]); on a GPU, every item's score is ranked on the device ([`metrics::target_ranks`]).

pub mod bootstrap;
pub mod metrics;
pub mod ranking;
pub mod recommend;

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::config::Eval;
use crate::data::batches::SessionBatches;
use crate::data::Dataset;
use crate::ir::SubnetId;
use crate::lower::autograd::frame::StateCarry;
use crate::lower::autograd::{output_table, score_inputs};
use crate::lower::Executor;
pub use metrics::CutoffMetrics;
use metrics::{most_popular, target_ranks, RankMetrics};
pub use ranking::FirstPass;
use ranking::Ranker;

/// The rank of one test event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRank {
    /// Index of the test session (in start-time order).
    pub session: u32,
    /// Index of the predicted event within its session (1 = the second event).
    pub position: u32,
    pub item: u32,
    pub rank: f64,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub metrics: Vec<CutoffMetrics>,
    pub events: u64,
    pub sessions: u64,
    /// Items each target competed against (all training items, or the most popular N).
    pub candidates: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub ranks: Vec<EventRank>,
}

/// How evaluation ranks on the CPU (on a GPU, every item's score is ranked on the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuRanking {
    /// A first pass of this precision, then the undecided items scored exactly ([`ranking`]).
    TwoPass(FirstPass),
    /// Every item scored exactly: the reference the two passes give, at float32 speed or less.
    Exact,
}

/// Scores every test event of `dataset` with the network `executor` runs; on the CPU, in two passes with
/// the first pass this CPU runs fastest.
pub fn evaluate(executor: &dyn Executor, dataset: &Dataset, settings: &Eval) -> Evaluation {
    evaluate_ranked(executor, dataset, settings, CpuRanking::TwoPass(FirstPass::for_this_cpu()))
}

/// [`evaluate`], ranking on the CPU as `cpu_ranking` says.
pub fn evaluate_ranked(executor: &dyn Executor, dataset: &Dataset, settings: &Eval, cpu_ranking: CpuRanking) -> Evaluation {
    let _guard = tch::no_grad_guard();
    let network = executor.network();
    let started = Instant::now();
    let device = network.device;
    let candidates = (settings.most_popular > 0 && (settings.most_popular as usize) < network.n_items)
        .then(|| most_popular(&dataset.item_support(), settings.most_popular as usize));
    // On the CPU, two passes give exact ranks at the speed of a low-precision product (`ranking`); on a GPU
    // the scores of every item are ranked on the device.
    let mut ranker = (device == tch::Device::Cpu).then(|| {
        let table = output_table(network);
        let width = table.weights.size()[1] as usize;
        let weights = Vec::<f32>::try_from(table.weights.flatten(0, -1)).expect("output weights are float32");
        let bias = Vec::<f32>::try_from(&table.bias).expect("output biases are float32");
        let first_pass = match cpu_ranking {
            CpuRanking::TwoPass(first_pass) => first_pass,
            CpuRanking::Exact => FirstPass::Float32,
        };
        Ranker::new(weights, bias, width, candidates.as_deref(), settings.ties, first_pass)
    });
    let device_candidates = candidates.as_ref().filter(|_| ranker.is_none()).map(|mask| Tensor::from_slice(mask).to_device(device));
    let mut metrics = RankMetrics::new(&settings.cutoffs);
    let subnets: Vec<SubnetId> = network.ir().graph().subnet_ids().collect();
    let mut hidden: Vec<Option<Tensor>> = subnets.iter().map(|_| None).collect();
    let mut batches = SessionBatches::new(&dataset.test, settings.batch as usize, 1);
    let mut rank_batches: Vec<Tensor> = Vec::new();
    // One buffer of scores against the whole catalogue for every step (a view of its first rows when the
    // batch has shrunk): allocating it anew at each step costs page faults and fragments the heap. No step has
    // more rows than there are test sessions.
    let rows = settings.batch.min(dataset.test.len() as u64).max(1);
    let buffer = ranker.is_none().then(|| Tensor::empty([rows as i64, network.n_items as i64], (Kind::Float, device)));
    let mut records: Vec<EventRank> = Vec::new();
    while let Some(step) = batches.next_step() {
        let carry = StateCarry::new(&step, device);
        let states: Vec<Tensor> = subnets.iter().map(|&k| carry.apply(hidden[k.index()].take(), network.hidden_size(k), device)).collect();
        let next = executor.next_states(step.inputs, &states);
        let ranks = match (&mut ranker, &buffer) {
            (Some(ranker), _) => {
                let inputs = score_inputs(network, &next);
                let inputs = crate::lower::fused::host_values(&inputs);
                Tensor::from_slice(&match cpu_ranking {
                    CpuRanking::TwoPass(_) => ranker.ranks(inputs, step.targets),
                    CpuRanking::Exact => ranker.exact_ranks(inputs, step.targets),
                })
            }
            (None, Some(buffer)) => {
                let mut scores = buffer.narrow(0, 0, step.inputs.len() as i64);
                executor.scores_into(&next, &mut scores);
                let targets: Vec<i64> = step.targets.iter().map(|&t| i64::from(t)).collect();
                target_ranks(&scores, &Tensor::from_slice(&targets).to_device(device), device_candidates.as_ref(), settings.ties)
            }
            (None, None) => unreachable!("evaluation ranks with a ranker or a score buffer"),
        };
        metrics.add(&ranks);
        rank_batches.push(ranks);
        for row in 0..step.inputs.len() {
            records.push(EventRank { session: step.session_of_row[row], position: step.position[row], item: step.targets[row], rank: 0.0 });
        }
        hidden = next.into_iter().map(Some).collect();
    }
    if !rank_batches.is_empty() {
        let ranks: Vec<f64> =
            Vec::try_from(Tensor::cat(&rank_batches, 0).to_device(tch::Device::Cpu).to_kind(Kind::Double)).expect("ranks are numbers");
        for (record, rank) in records.iter_mut().zip(ranks) {
            record.rank = rank;
        }
    }
    let metrics_out = metrics.finish();
    let seconds = started.elapsed().as_secs_f64();
    let events = records.len() as u64;
    Evaluation {
        metrics: metrics_out,
        events,
        sessions: dataset.test.len() as u64,
        candidates: candidates.as_ref().map_or(network.n_items as u64, |_| settings.most_popular),
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        ranks: records,
    }
}
