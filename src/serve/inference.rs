//! Micro-batched inference: requests from every connection gathered into one forward pass on one thread that
//! owns the network (on the CPU or the GPU the run was built for).
//!
//! The thread takes what is queued; when the last pass was shared by several requests (so more are likely on
//! their way) it waits up to the batch wait for as many again. A single client never waits: its pass starts as
//! soon as its request arrives.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::eval::recommend::top_k_excluding;
use crate::lower::{Autograd, Executor, Network};

use super::metrics::Metrics;

/// How requests are gathered.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// The most requests in one forward pass.
    pub max_batch: usize,
    /// How long a pass may wait for more requests after its first.
    pub max_wait: Duration,
    /// Requests queued beyond this are refused as overload.
    pub queue: usize,
}

/// One forward pass's worth of a request: run `items` from `start` (zero when None), then rank the catalogue.
pub struct Job {
    pub start: Option<Vec<f32>>,
    pub items: Vec<u32>,
    pub k: usize,
    /// Items left out of the ranking, sorted ascending.
    pub excluded: Vec<u32>,
}

/// A job's result: the hidden state after its items and the top-k items with their scores.
#[derive(Debug, Clone)]
pub struct Answer {
    pub hidden: Vec<f32>,
    pub top: Vec<(u32, f32)>,
}

/// Why a job has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    #[error("the server is overloaded ({0} requests queued); try again shortly")]
    Overloaded(usize),
    #[error("the inference thread stopped")]
    Stopped,
    #[error("inference failed: {0}")]
    Failed(String),
}

type Reply = tokio::sync::oneshot::Sender<Result<Answer, InferenceError>>;

/// The handle requests use; the thread stops when every handle is gone.
#[derive(Clone)]
pub struct Batcher {
    sender: SyncSender<(Job, Reply)>,
    queue: usize,
    /// The length of a state: every subnet's hidden size, in merge order, back to back.
    pub hidden_len: usize,
    pub n_items: usize,
}

impl Batcher {
    /// Starts the inference thread over `network`.
    pub fn start(network: Network, options: BatchOptions, metrics: Arc<Metrics>) -> Batcher {
        let sizes: Vec<usize> = network.ir().graph().subnet_ids().map(|k| network.hidden_size(k) as usize).collect();
        let hidden_len = sizes.iter().sum();
        let n_items = network.n_items;
        let options = BatchOptions { max_batch: batch_limit(options.max_batch, n_items, SCORE_BUDGET), ..options };
        let (sender, receiver) = std::sync::mpsc::sync_channel(options.queue);
        std::thread::Builder::new()
            .name("prnn-inference".into())
            .spawn(move || serve_jobs(Autograd::new(network), &sizes, receiver, options, &metrics))
            .expect("the inference thread starts");
        Batcher { sender, queue: options.queue, hidden_len, n_items }
    }

    /// Runs a job in the next forward pass.
    pub async fn run(&self, job: Job) -> Result<Answer, InferenceError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.sender.try_send((job, reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(InferenceError::Overloaded(self.queue)),
            Err(TrySendError::Disconnected(_)) => return Err(InferenceError::Stopped),
        }
        answer.await.unwrap_or(Err(InferenceError::Stopped))
    }
}

fn serve_jobs(executor: Autograd, sizes: &[usize], receiver: Receiver<(Job, Reply)>, options: BatchOptions, metrics: &Metrics) {
    let mut last_batch = 1;
    let mut scores = Scores::new(executor.network());
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + options.max_wait;
        while batch.len() < options.max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if batch.len() >= last_batch => break,
                Err(_) => match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(job) => batch.push(job),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            }
        }
        last_batch = batch.len();
        metrics.batch(batch.len());
        // A reply whose request has gone (timed out, connection closed) is dropped unread.
        let (jobs, replies): (Vec<Job>, Vec<Reply>) = batch.into_iter().unzip();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forward(&executor, sizes, jobs, &mut scores))) {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                for reply in replies {
                    let _ = reply.send(Err(InferenceError::Failed(why.clone())));
                }
            }
        }
    }
}

/// The score matrix of the largest batch so far on the device, and its copy on the host: kept between passes,
/// since at every pass they are the biggest thing touched (batch × catalogue).
struct Scores {
    device: Tensor,
    host: Vec<f32>,
    n_items: usize,
}

impl Scores {
    fn new(network: &Network) -> Scores {
        Scores {
            device: Tensor::zeros([0, network.n_items as i64], (Kind::Float, network.device)),
            host: Vec::new(),
            n_items: network.n_items,
        }
    }

    /// Room for `rows` rows.
    fn reserve(&mut self, rows: usize) {
        if (self.device.size()[0] as usize) < rows {
            self.device = Tensor::zeros([rows as i64, self.n_items as i64], (Kind::Float, self.device.device()));
            self.host.resize(rows * self.n_items, 0.0);
        }
    }
}

/// The most requests one pass takes: `asked`, or fewer when their score matrices (on the device and on the host)
/// would pass `budget` bytes, as they would for a catalogue of millions.
pub fn batch_limit(asked: usize, n_items: usize, budget: usize) -> usize {
    asked.min(budget / (8 * n_items.max(1))).max(1)
}

/// The memory the score matrices of one pass may take.
pub const SCORE_BUDGET: usize = 512 << 20;

/// Each subnet's `[rows, H_k]` tensor of the given states on `device`.
fn state_tensors(states: &[&[f32]], sizes: &[usize], device: Device) -> Vec<Tensor> {
    let mut offset = 0;
    sizes
        .iter()
        .map(|&width| {
            let mut values = Vec::with_capacity(states.len() * width);
            for state in states {
                values.extend_from_slice(&state[offset..offset + width]);
            }
            offset += width;
            Tensor::from_slice(&values).view([states.len() as i64, width as i64]).to_device(device)
        })
        .collect()
}

fn to_vec(tensor: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1])).expect("float32 values")
}

/// One forward pass: every job's items stepped in order (jobs of one click, the usual case, take a single step
/// together), then every item scored for every job at once.
fn forward(executor: &Autograd, sizes: &[usize], jobs: Vec<Job>, buffers: &mut Scores) -> Vec<Answer> {
    let _guard = tch::no_grad_guard();
    let network = executor.network();
    let device = network.device;
    let width: usize = sizes.iter().sum();
    let mut states: Vec<Vec<f32>> = jobs.iter().map(|job| job.start.clone().unwrap_or_else(|| vec![0.0; width])).collect();
    let steps = jobs.iter().map(|job| job.items.len()).max().unwrap_or(0);
    for t in 0..steps {
        let active: Vec<usize> = (0..jobs.len()).filter(|&j| jobs[j].items.len() > t).collect();
        let inputs: Vec<u32> = active.iter().map(|&j| jobs[j].items[t]).collect();
        let rows: Vec<&[f32]> = active.iter().map(|&j| states[j].as_slice()).collect();
        let next = executor.next_states(&inputs, &state_tensors(&rows, sizes, device));
        let mut offset = 0;
        for (tensor, &width_k) in next.iter().zip(sizes) {
            let values = to_vec(tensor);
            for (row, &j) in active.iter().enumerate() {
                states[j][offset..offset + width_k].copy_from_slice(&values[row * width_k..(row + 1) * width_k]);
            }
            offset += width_k;
        }
    }
    let rows: Vec<&[f32]> = states.iter().map(Vec::as_slice).collect();
    let n_items = network.n_items;
    buffers.reserve(jobs.len());
    let mut on_device = buffers.device.narrow(0, 0, jobs.len() as i64);
    executor.scores_into(&state_tensors(&rows, sizes, device), &mut on_device);
    let scores = &mut buffers.host[..jobs.len() * n_items];
    on_device.copy_data(scores, jobs.len() * n_items);
    let scores = &*scores;
    jobs.iter()
        .zip(states)
        .enumerate()
        .map(|(j, (job, hidden))| {
            let row = &scores[j * n_items..(j + 1) * n_items];
            let top = top_k_excluding(row, job.k, &job.excluded).into_iter().map(|item| (item as u32, row[item])).collect();
            Answer { hidden, top }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_catalogues_take_fewer_requests_per_pass() {
        assert_eq!(batch_limit(256, 10_874, SCORE_BUDGET), 256);
        assert_eq!(batch_limit(256, 10_000_000, SCORE_BUDGET), 6);
        assert_eq!(batch_limit(256, 1 << 40, SCORE_BUDGET), 1, "a pass always takes one request");
    }
}
