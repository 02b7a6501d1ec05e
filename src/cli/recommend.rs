//! `prnn recommend RUN_DIR --session ITEM,ITEM,... [-k K]`: the top-K next items for a session prefix.

use std::path::PathBuf;

use prnn::data::Dataset;
use prnn::lower::Network;
use prnn::train::checkpoint;
use tch::{Kind, Tensor};

use super::baseline::BASELINE_FILE;
use super::session::{self, CONFIG_FILE};
use super::{Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder of `prnn train`, `prnn baseline` or a cell of `prnn run`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The session so far: item IDs as the session files write them, oldest first, separated by commas.
    #[arg(long, value_name = "ITEM,ITEM,...", value_delimiter = ',', required = true, num_args = 1..)]
    pub session: Vec<String>,
    /// How many items to list.
    #[arg(short, long, default_value_t = 20, value_name = "K")]
    pub k: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; overrides the config's `[run] device`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    match recommend(args, reporter) {
        Ok(()) => Exit::Ok,
        Err(code) => code,
    }
}

/// The items of the session the model knows, in order; unknown ones reported and left out.
fn known_items(session: &[String], dataset: &Dataset, reporter: &Reporter) -> Result<Vec<u32>, Exit> {
    let mut known = Vec::new();
    for id in session.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match dataset.items.find(id.as_bytes()) {
            Some(index) => known.push(index),
            None => eprintln!("note: item `{id}` does not occur in the training data; it is left out of the session"),
        }
    }
    if known.is_empty() {
        reporter.error(
            "no item of the session occurs in the training data",
            Some("give item IDs as the session files write them (`prnn data stats` lists the data); the model can only continue sessions of items it was trained on"),
        );
        return Err(Exit::Usage);
    }
    Ok(known)
}

fn recommend(args: &Args, reporter: &Reporter) -> Result<(), Exit> {
    if args.k == 0 {
        reporter.error("`-k 0` asks for no items", Some("e.g. `-k 20`"));
        return Err(Exit::Usage);
    }
    let (scores, dataset, what, known) = if args.run.join(BASELINE_FILE).exists() {
        let (record, dataset, fitted) = super::baseline::refit(&args.run, reporter)?;
        let prefix = known_items(&args.session, &dataset, reporter)?;
        let mut scores = vec![0.0f32; dataset.items.len()];
        let mut scratch = fitted.scratch();
        fitted.score(&prefix, &mut scores, &mut scratch);
        (scores, dataset, record.baseline, prefix.len())
    } else {
        let (record, spec, config_text) = session::read_run(&args.run, reporter)?;
        let config_path = args.run.join(CONFIG_FILE);
        let prepared =
            session::prepare(spec, config_text, &config_path, &record.config_dir, &record.overrides, record.validation, reporter)?;
        let device = session::device(args.device.as_deref(), &prepared.config, reporter)?;
        let mut network = session::network(&prepared, device);
        let checkpoint_path = args.run.join(checkpoint::FILE_NAME);
        if !checkpoint_path.exists() {
            reporter.error(
                &format!("`{}` has no checkpoint yet", args.run.display()),
                Some("finish training first: `prnn train --resume DIR`"),
            );
            return Err(Exit::Io);
        }
        let info = checkpoint::load(&checkpoint_path, &mut network, &prepared.dataset.items).map_err(|e| {
            reporter.error(&e.to_string(), Some("the run folder's checkpoint does not match its data; train again"));
            Exit::Io
        })?;
        let prefix = known_items(&args.session, &prepared.dataset, reporter)?;
        let scores = session_scores(network, &prefix);
        (scores, prepared.dataset, format!("{} after {} epoch(s)", prepared.compiled.model.name, info.epoch), prefix.len())
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Highest first; NaN last; equal scores by item index, so the list is the same on every call.
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b))
    });
    println!("top {} of {} items for a session of {known} known item(s), {what}:", args.k.min(order.len()), order.len());
    println!("{:>4}  {:<20}  {:>10}", "rank", "item", "score");
    for (rank, &item) in order.iter().take(args.k).enumerate() {
        println!("{:>4}  {:<20}  {:>10.6}", rank + 1, dataset.items.get_str(item as u32), scores[item]);
    }
    Ok(())
}

/// Runs the prefix through the network one event at a time from a zero state; the merged scores of every item
/// after its last event, before the output activation (the ranking that evaluation uses).
fn session_scores(network: Network, prefix: &[u32]) -> Vec<f32> {
    let _guard = tch::no_grad_guard();
    let device = network.device;
    let executor = prnn::lower::Autograd::new(network);
    let network = prnn::lower::Executor::network(&executor);
    let mut hidden: Vec<Tensor> =
        network.ir().graph().subnet_ids().map(|k| Tensor::zeros([1, network.hidden_size(k)], (Kind::Float, device))).collect();
    for &item in prefix {
        hidden = prnn::lower::Executor::next_states(&executor, &[item], &hidden);
    }
    let mut scores = Tensor::empty([1, network.n_items as i64], (Kind::Float, device));
    prnn::lower::Executor::scores_into(&executor, &hidden, &mut scores);
    Vec::<f32>::try_from(scores.view([-1]).to_device(tch::Device::Cpu)).expect("scores are float32")
}
