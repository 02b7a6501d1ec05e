//! Training-step benchmark: events per second of one model as the catalogue grows, with the same sessions.
//!
//! Usage: `cargo bench --bench step_cost -- [ITEMS ...] [--batches N] [--device cpu|cuda] [--spec FILE]`
//! (default 10,000, 100,000 and 1,000,000 items, 400 mini-batches after 50 of warm-up, the GRU4Rec "row 1"
//! model of specs/gru4rec_xe.prnn on the CPU).
//! One synthetic dataset (src/data/synth.rs: 20,000 sessions over 10,000 items) is prepared as `prnn train`
//! would; for each size the same sessions are spread over a catalogue of that many items (item i becomes
//! i · stride, so the rows a step touches lie all over the matrices). Only the catalogue changes between
//! sizes. Sparse row updates make a step touch only the rows of its items, so the rate should stay nearly
//! flat from 10^4 to 10^6 items; a dense update would grow with the catalogue.

use std::time::Instant;

use prnn::data::intern::Interner;
use prnn::data::synth::{write_dataset, SynthConfig};
use prnn::lower::Network;
use prnn::train::{EpochOptions, Trainer};

fn main() {
    let mut sizes: Vec<u32> = Vec::new();
    let mut batches = 400u64;
    let mut device = String::from("cpu");
    let mut spec_path = String::from(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/gru4rec_xe.prnn"));
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--batches" => batches = args.next().and_then(|v| v.parse().ok()).expect("--batches N"),
            "--device" => device = args.next().expect("--device NAME"),
            "--spec" => spec_path = args.next().expect("--spec FILE"),
            size => sizes.push(size.replace('_', "").parse().unwrap_or_else(|_| panic!("not an item count: {size}"))),
        }
    }
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000, 1_000_000];
    }
    prnn::runtime::cuda::preload();
    let device = prnn::lower::device(&device).unwrap_or_else(|why| panic!("{why}"));
    tch::set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()) as i32);
    let spec_text = std::fs::read_to_string(&spec_path).expect("the spec is readable");
    println!("spec {spec_path}, device {device:?}, {} threads, {batches} mini-batches after 50 of warm-up", tch::get_num_threads());
    println!("{:>10}  {:>12}  {:>10}  {:>12}", "items", "parameters", "ms/step", "events/s");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let settings = SynthConfig { sessions: 20_000, items: 10_000, clusters: 100, dim: 4, ..SynthConfig::default() };
    write_dataset(&settings, dir.path(), false).expect("synthetic data is written");
    let config = prnn::config::parse("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n", dir.path()).expect("config");
    let base = prnn::data::prepare(&config).expect("the synthetic data prepares");
    let model = prnn::check_source(&prnn::diagnostic::Source::new(&spec_path, spec_text.clone())).expect("the spec checks");
    let compiled = prnn::ir::Compiled::new(model);
    for items in sizes {
        let stride = (items as usize / base.items.len()).max(1) as u32;
        let mut dataset = base.clone();
        for event in dataset.train.events.iter_mut().chain(dataset.test.events.iter_mut()) {
            event.item *= stride;
        }
        let keys: Vec<String> = (0..(base.items.len() as u32 * stride).max(items)).map(|i| i.to_string()).collect();
        dataset.items = Interner::from_keys(keys.iter().map(String::as_str));
        let network = Network::new(&compiled.model, &dataset, device);
        let parameters = network.parameter_count();
        let mut trainer = Trainer::new(network, &compiled.model, &compiled.plan, &dataset);
        trainer.epoch(1, EpochOptions { max_batches: Some(50), ..EpochOptions::default() }, |_| {}).expect("warm-up trains");
        let started = Instant::now();
        let summary = trainer.epoch(2.min(compiled.plan.epochs), EpochOptions { max_batches: Some(batches), ..EpochOptions::default() }, |_| {}).expect("trains");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{:>10}  {:>12}  {:>10.2}  {:>12.0}",
            dataset.items.len(),
            parameters,
            1000.0 * seconds / summary.batches as f64,
            summary.events as f64 / seconds
        );
    }
}
