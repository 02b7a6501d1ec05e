//! The performance harness: training and evaluation speed and peak memory of the configurations in
//! docs/performance.md, written into that file's table for the device measured.
//!
//! Usage: `cargo bench --bench performance -- [--device cpu|cuda] [--only NAME ...] [--no-write]
//! [--repeats N] [--against OTHER_PRNN]`, or `make bench`. `--against` runs every end-to-end row with this
//! build's `prnn` and with another binary in turn (which one goes first alternates), and prints both speeds
//! and their ratio instead of writing the table: a speed comparison measured side by side in one run. `PRNN_BIN` and `PRNN_ROOT` name another `prnn` binary and repository root (a GPU machine
//! that runs binaries built elsewhere, scripts/device-check.sh). It generates its synthetic data under
//! `target/bench-data/` (once), then:
//! - end-to-end rows run the `prnn` binary (`prnn train`, `prnn eval`) as child processes, each measured on
//!   its own: speed from the run folder's `metrics.jsonl` and `eval.json`, peak memory from the child's
//!   resource usage (`wait4`);
//! - scaling rows run training steps in this process on one synthetic dataset, changing one thing at a
//!   time: the catalogue (the same sessions spread over 10k to 1M items), the hidden size, the batch size.
//!
//! With `PRNN_PEER` (a checkout of the official GRU4Rec PyTorch code) and `PRNN_PEER_PYTHON` (a Python with
//! torch and pandas) set, it runs rows 1 and 3 with prnn and with the official code in turn on the same data and
//! settings instead, and writes the side-by-side table (benches/performance/peer.rs).
//!
//! Nothing here asserts a speed: it measures and reports. Run it on an otherwise idle machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prnn::data::intern::Interner;
use prnn::data::synth::{write_dataset, SynthConfig};
use prnn::lower::Network;
use prnn::train::{EpochOptions, Trainer};
use serde_json::Value;

#[path = "performance/peer.rs"]
mod peer;

/// The repository root: `PRNN_ROOT`, else where this harness was built.
fn root() -> PathBuf {
    std::env::var_os("PRNN_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn prnn_binary() -> PathBuf {
    std::env::var_os("PRNN_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_prnn-torch")), PathBuf::from)
}

/// One measured line of the table.
#[derive(Clone)]
struct Row {
    name: String,
    what: String,
    batches_per_second: Option<f64>,
    events_per_second: Option<f64>,
    eval_per_second: Option<f64>,
    peak_gb: Option<f64>,
    note: String,
}

struct Child {
    peak_bytes: u64,
}

/// Runs `prnn ARGS`, waiting with `wait4` for the child's own peak resident memory.
#[allow(clippy::zombie_processes)] // wait4 reaps the child
fn run_prnn(binary: &Path, args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("the log is writable");
    let child = Command::new(binary)
        .args(args)
        .current_dir(root())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("prnn starts");
    let mut status = 0;
    // Safety: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Safety: waits for our own child by pid; `Child` is not waited on again.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "prnn {} failed:\n{log_text}", args.join(" "));
    Child { peak_bytes: usage.ru_maxrss as u64 * 1024 }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("valid JSON")
}

fn last_epoch(run: &Path) -> Value {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    serde_json::from_str(text.lines().last().expect("one epoch at least")).expect("valid JSON")
}

/// `prnn data synth`'s generator with the sizes of the Diginetica split of `reference-notes.md` (906k
/// training events over 43k items; 16.0k test sessions with 60.9k predictions).
fn diginetica_size(data: &Path) -> PathBuf {
    let dir = data.join("diginetica-size");
    let settings = SynthConfig {
        sessions: 208_000,
        items: 43_000,
        clusters: 430,
        dim: 4,
        mean_length: 4.8,
        days: 13,
        seed: 11,
        ..SynthConfig::default()
    };
    if !dir.join("README.md").exists() {
        std::fs::create_dir_all(&dir).expect("bench data folder");
        write_dataset(&settings, &dir, true).expect("synthetic data is written");
    }
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n\n[eval]\ncutoffs = [20]\nties = \"conservative\"\n\n[run]\nout = \"runs\"\n",
    )
    .expect("config written");
    config
}

struct EndToEnd<'a> {
    name: &'a str,
    what: &'a str,
    spec: &'a str,
    config: String,
    overrides: Vec<&'a str>,
    evaluate: bool,
}

fn end_to_end(binary: &Path, case: &EndToEnd<'_>, device: &str, scratch: &Path, evaluate: bool) -> Row {
    let run = scratch.join(case.name);
    let _ = std::fs::remove_dir_all(&run);
    let run_text = run.to_string_lossy().to_string();
    let mut args = vec!["train", case.spec, "--config", &case.config, "--device", device, "--out", &run_text];
    args.extend(case.overrides.iter().copied());
    let train = run_prnn(binary, &args, &scratch.join(format!("{}.train.log", case.name)));
    let epoch = last_epoch(&run);
    let (evaluation, eval_peak) = if evaluate {
        let child = run_prnn(binary, &["eval", &run_text, "--device", device], &scratch.join(format!("{}.eval.log", case.name)));
        (Some(json(&run.join("eval.json"))), child.peak_bytes)
    } else {
        (None, 0)
    };
    let step = json(&run.join("run.json"))["step"].as_str().unwrap_or("?").to_string();
    let mut note = format!("{} step; {} mini-batches in {:.1} s", step, epoch["batches"], epoch["seconds"].as_f64().unwrap_or(0.0));
    if let Some(e) = &evaluation {
        let at20 = e["metrics"].as_array().and_then(|m| m.iter().find(|m| m["cutoff"] == 20)).cloned().unwrap_or(Value::Null);
        note += &format!(
            "; eval of {} predictions against {} items in {:.1} s: Recall@20 {:.4}, MRR@20 {:.4}",
            e["events"],
            e["candidates"],
            e["seconds"].as_f64().unwrap_or(0.0),
            at20["recall"].as_f64().unwrap_or(f64::NAN),
            at20["mrr"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Row {
        name: case.name.to_string(),
        what: case.what.to_string(),
        batches_per_second: epoch["batches_per_second"].as_f64(),
        events_per_second: epoch["events_per_second"].as_f64(),
        eval_per_second: evaluation.as_ref().and_then(|e| e["events_per_second"].as_f64()),
        peak_gb: Some(train.peak_bytes.max(eval_peak) as f64 / 1e9),
        note,
    }
}

/// Training runs of each end-to-end row (unless `--repeats` says otherwise), interleaved so that a slow
/// minute of the machine spreads over every row instead of falling on one.
const REPEATS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The repeats of one row as one: the median speed (with the range in the notes), the evaluation of the
/// last run, the largest peak memory.
fn combine(runs: &[Row]) -> Row {
    let speeds: Vec<f64> = runs.iter().filter_map(|r| r.batches_per_second).collect();
    let middle = median(speeds.clone());
    let typical = runs.iter().find(|r| r.batches_per_second == Some(middle)).expect("the median is one of the runs");
    let last = runs.last().expect("at least one run");
    let (low, high) = (speeds.iter().copied().fold(f64::INFINITY, f64::min), speeds.iter().copied().fold(0.0, f64::max));
    Row {
        events_per_second: typical.events_per_second,
        batches_per_second: Some(middle),
        eval_per_second: last.eval_per_second,
        peak_gb: runs.iter().filter_map(|r| r.peak_gb).reduce(f64::max),
        note: format!(
            "median of {} runs ({} to {} mini-batches/s); last run: {}",
            runs.len(),
            figure(Some(low)),
            figure(Some(high)),
            last.note
        ),
        ..last.clone()
    }
}

/// A spec with `hidden`, `batch`, `loss` and negatives replaced.
fn variant(base: &str, hidden: u64, batch: u64) -> String {
    base.lines()
        .map(|line| {
            if let Some(at) = line.find("hidden = ") {
                let rest: String = line[at + 9..].chars().skip_while(|c| c.is_ascii_digit()).collect();
                format!("{}hidden = {hidden}{rest}", &line[..at])
            } else if line.trim_start().starts_with("batch") {
                format!("  batch     = {batch}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Mini-batches and events per second of `spec_text` on `dataset` after a warm-up, in this process.
fn step_rate(spec_text: &str, dataset: &prnn::data::Dataset, device: tch::Device, batches: u64) -> (f64, f64, i64) {
    let model = prnn::check_source(&prnn::diagnostic::Source::new("bench.prnn", spec_text.to_string())).expect("the spec checks");
    let compiled = prnn::ir::Compiled::new(model);
    let epochs = compiled.plan.epochs;
    let bound = prnn::ir::Bound::new(compiled, &dataset.sizes()).expect("the spec binds to the data");
    let network = Network::new(bound, dataset, device);
    let parameters = network.parameter_count();
    let step = prnn::train::default_step(&network);
    let mut trainer = Trainer::new(network, dataset, step).expect("the default step runs the network");
    trainer.epoch(1, EpochOptions { max_batches: Some((batches / 5).max(5)), ..EpochOptions::default() }, |_| {}).expect("warm-up trains");
    let summary =
        trainer.epoch(2.min(epochs), EpochOptions { max_batches: Some(batches), ..EpochOptions::default() }, |_| {}).expect("trains");
    (summary.batches_per_second, summary.events_per_second, parameters)
}

/// The same sessions over a catalogue of `items` items: item `i` becomes `i · stride`.
fn spread(base: &prnn::data::Dataset, items: u32) -> prnn::data::Dataset {
    let stride = (items as usize / base.items.len()).max(1) as u32;
    let mut dataset = base.clone();
    for event in dataset.train.events.iter_mut().chain(dataset.test.events.iter_mut()) {
        event.item *= stride;
    }
    let keys: Vec<String> = (0..(base.items.len() as u32 * stride).max(items)).map(|i| i.to_string()).collect();
    dataset.items = Interner::from_keys(keys.iter().map(String::as_str));
    dataset
}

fn scaling_rows(device: tch::Device, data: &Path, wanted: &dyn Fn(&str) -> bool) -> Vec<Row> {
    let dir = data.join("scaling");
    if !dir.join("README.md").exists() {
        std::fs::create_dir_all(&dir).expect("bench data folder");
        let settings = SynthConfig { sessions: 20_000, items: 10_000, clusters: 100, dim: 4, ..SynthConfig::default() };
        write_dataset(&settings, &dir, true).expect("synthetic data is written");
    }
    let config = prnn::config::parse("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n", &dir).expect("config");
    let base = prnn::data::prepare(&config).expect("the synthetic data prepares");
    let row1 = std::fs::read_to_string(root().join("specs/gru4rec_xe.prnn")).expect("row 1 spec");
    let row3 = std::fs::read_to_string(root().join("specs/gru4rec_bprmax.prnn")).expect("row 3 spec");
    let mut rows = Vec::new();
    let mut measure = |name: String, what: String, spec: &str, dataset: &prnn::data::Dataset, batches: u64| {
        if !wanted(&name) {
            return;
        }
        let (per_batch, per_event, parameters) = step_rate(spec, dataset, device, batches);
        eprintln!("{name}: {per_batch:.1} mini-batches/s");
        rows.push(Row {
            name,
            what,
            batches_per_second: Some(per_batch),
            events_per_second: Some(per_event),
            eval_per_second: None,
            peak_gb: None,
            note: format!("{:.2} ms/step; {parameters} parameters", 1000.0 / per_batch),
        });
    };
    for items in [10_000u32, 100_000, 1_000_000] {
        let dataset = spread(&base, items);
        let label = format!("{}k", items / 1000);
        measure(format!("catalogue-row1-{label}"), format!("row 1 model, {label} items"), &row1, &dataset, 600);
        measure(format!("catalogue-row3-{label}"), format!("row 3 model, {label} items"), &row3, &dataset, 60);
    }
    for hidden in [100u64, 250, 500, 1000] {
        measure(format!("hidden-{hidden}"), format!("row 1 model, {hidden} hidden, batch 50"), &variant(&row1, hidden, 50), &base, 300);
    }
    for batch in [32u64, 64, 128, 256, 512] {
        measure(format!("batch-{batch}"), format!("row 1 model, 100 hidden, batch {batch}"), &variant(&row1, 100, batch), &base, 300);
    }
    rows
}

fn figure(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => String::new(),
    }
}

fn table(rows: &[Row]) -> String {
    let mut text = String::from(
        "| row | configuration | mini-batches/s | events/s | eval events/s | peak memory (GB) | notes |\n|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        text += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.what,
            figure(row.batches_per_second),
            figure(row.events_per_second),
            figure(row.eval_per_second),
            row.peak_gb.map_or(String::new(), |g| format!("{g:.2}")),
            row.note
        );
    }
    text
}

fn machine(device: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = format!("{cpu} [{}]", vector_extensions());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(String::new(), |kb| format!(", {:.0} GiB RAM", kb / 1048576.0));
    let commit = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let torch = prnn::runtime::cuda::loaded_torch_version().unwrap_or_else(|| "unknown".into());
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC").to_string();
    format!(
        "Measured {date} on {cpu} ({cores} cores{memory}), device `{device}`, libtorch {torch}, {} threads, commit `{commit}`.",
        tch::get_num_threads()
    )
}

/// Replaces the text between this device's markers in docs/performance.md (appending the section if absent).
/// The CPU's vector and matrix extensions that its kernels can use.
fn vector_extensions() -> String {
    let flags = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| text.lines().find_map(|l| l.strip_prefix("flags").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_default();
    let has: Vec<&str> = flags.split_whitespace().collect();
    let wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"];
    let found: Vec<&str> = wanted.iter().copied().filter(|w| has.contains(w)).collect();
    if found.is_empty() {
        "no AVX2".into()
    } else {
        found.join(" ")
    }
}

fn write_section(device: &str, body: &str) {
    let path = root().join("docs/performance.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = (format!("<!-- bench:{device}:start -->"), format!("<!-- bench:{device}:end -->"));
    let section = format!("{start}\n{body}{end}");
    let updated = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{}{}", &text[..a], section, &text[b + end.len()..]),
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(&path, updated).expect("docs/performance.md is writable");
    eprintln!("wrote the {device} table into {}", path.display());
}

fn main() {
    let mut device_name = String::from("cpu");
    let mut only: Vec<String> = Vec::new();
    let mut write = true;
    let mut repeats = REPEATS;
    let mut against: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device_name = args.next().expect("--device cpu|cuda"),
            "--only" => only.push(args.next().expect("--only NAME")),
            "--no-write" => write = false,
            "--repeats" => repeats = args.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).expect("--repeats N (at least 1)"),
            "--against" => against = Some(PathBuf::from(args.next().expect("--against PATH_TO_PRNN"))),
            other => panic!("unknown argument `{other}`; expected --device, --only, --no-write, --repeats, --against"),
        }
    }
    prnn::runtime::cuda::preload();
    let device = prnn::lower::device(&device_name).unwrap_or_else(|why| panic!("{why}"));
    // The CLI's default: every core (`[run] threads = 0`).
    tch::set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()) as i32);
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let data = root().join("target/bench-data");
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let yoochoose = root().join("examples/yoochoose-categories.toml").to_string_lossy().to_string();
    let autograd_on_cpu = if device == tch::Device::Cpu { vec!["--step", "autograd"] } else { vec![] };
    let mut rows = Vec::new();
    let mut cases = vec![
        EndToEnd {
            name: "row1",
            what: "row 1: 100 hidden, batch 50, cross-entropy, in-batch negatives; `yoochoose-cat`, 1 epoch",
            spec: "specs/gru4rec_xe.prnn",
            config: yoochoose.clone(),
            overrides: vec![],
            evaluate: true,
        },
        EndToEnd {
            name: "id-only",
            what: "ID-only GRU, 100 hidden, TOP1, batch 50; `yoochoose-cat`, 1 epoch",
            spec: "specs/id_only.prnn",
            config: yoochoose.clone(),
            overrides: vec!["epochs=1"],
            evaluate: false,
        },
        EndToEnd {
            name: "p-rnn",
            what: "p-RNN parallel ID + category/price, 100+100, TOP1, batch 50; `yoochoose-cat`, 1 epoch",
            spec: "specs/parallel_sim.prnn",
            config: yoochoose.clone(),
            overrides: vec!["epochs=1"],
            evaluate: false,
        },
    ];
    if wanted("row3") {
        let config = diginetica_size(&data).to_string_lossy().to_string();
        cases.push(EndToEnd {
            name: "row3",
            what: "row 3: 512 hidden, batch 128, BPR-max, 2048 extra, constrained; Diginetica-size synthetic (900k events, 43k items)",
            spec: "specs/gru4rec_bprmax.prnn",
            config: config.clone(),
            overrides: vec!["epochs=1", "max_batches=400"],
            evaluate: true,
        });
    }
    let mut autograd_cases = Vec::new();
    if device == tch::Device::Cpu {
        autograd_cases.push(EndToEnd {
            name: "row1-autograd",
            what: "row 1 with `--step autograd`",
            spec: "specs/gru4rec_xe.prnn",
            config: yoochoose.clone(),
            overrides: vec![],
            evaluate: false,
        });
        if wanted("row3-autograd") {
            let config = diginetica_size(&data).to_string_lossy().to_string();
            autograd_cases.push(EndToEnd {
                name: "row3-autograd",
                what: "row 3 with `--step autograd`",
                spec: "specs/gru4rec_bprmax.prnn",
                config,
                overrides: vec!["epochs=1", "max_batches=100"],
                evaluate: false,
            });
        }
    }
    for case in &mut autograd_cases {
        case.overrides.extend(autograd_on_cpu.iter().copied());
    }
    let active: Vec<&EndToEnd<'_>> = cases.iter().chain(&autograd_cases).filter(|c| wanted(c.name)).collect();
    if let Some(peer) = peer::Peer::from_env() {
        let body = side_by_side(&peer, &data, &device_name, scratch.path(), repeats, &wanted);
        println!("{body}");
        if write {
            write_section("side-by-side", &body);
        }
        return;
    }
    eprintln!("official code: not given (PRNN_PEER and PRNN_PEER_PYTHON run it beside prnn: docs/performance.md); prnn alone");
    if let Some(other) = &against {
        compare(&active, &prnn_binary(), other, &device_name, scratch.path(), repeats);
        return;
    }
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); active.len()];
    for repeat in 0..repeats {
        for (i, case) in active.iter().enumerate() {
            let row = end_to_end(&prnn_binary(), case, &device_name, scratch.path(), case.evaluate && repeat + 1 == repeats);
            eprintln!("{} (run {}): {:.1} mini-batches/s", row.name, repeat + 1, row.batches_per_second.unwrap_or(0.0));
            runs[i].push(row);
        }
    }
    let mut combined: Vec<Row> = runs.iter().map(|r| combine(r)).collect();
    // The p-RNN's cost relative to ID-only, from runs made one right after the other.
    let position = |name: &str| active.iter().position(|c| c.name == name);
    if let (Some(id), Some(p)) = (position("id-only"), position("p-rnn")) {
        let ratios: Vec<f64> =
            runs[id].iter().zip(&runs[p]).filter_map(|(a, b)| Some(a.batches_per_second? / b.batches_per_second?)).collect();
        let text = ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
        combined[p].note =
            format!("costs {:.2}x ID-only per mini-batch (median of the runs' ratios {text}); {}", median(ratios), combined[p].note);
    }
    rows.extend(combined);
    rows.extend(scaling_rows(device, &data, &wanted));
    let body = format!("{}\n\n{}\n", machine(&device_name), table(&rows));
    println!("{body}");
    if write {
        write_section(if device == tch::Device::Cpu { "cpu" } else { "cuda" }, &body);
    }
}

/// Every case with `this` and with `other` binary, `repeats` times, alternating which runs first; prints
/// each binary's median speed and the median of the per-repeat ratios.
fn compare(cases: &[&EndToEnd<'_>], this: &Path, other: &Path, device: &str, scratch: &Path, repeats: usize) {
    let mut lines = vec![
        format!("{}\n", machine(device)),
        format!("`this` = {}, `other` = {}\n", this.display(), other.display()),
        "| row | this: mini-batches/s | other: mini-batches/s | this / other (median of the repeats' ratios) | ratios |".to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    for case in cases {
        let (mut mine, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for repeat in 0..repeats {
            let order: [(&Path, bool); 2] =
                if repeat.is_multiple_of(2) { [(this, true), (other, false)] } else { [(other, false), (this, true)] };
            let mut pair = (0.0, 0.0);
            for (binary, is_this) in order {
                let speed = end_to_end(binary, case, device, scratch, false).batches_per_second.unwrap_or(f64::NAN);
                eprintln!("{} {} (run {}): {speed:.1} mini-batches/s", case.name, if is_this { "this" } else { "other" }, repeat + 1);
                if is_this {
                    pair.0 = speed;
                } else {
                    pair.1 = speed;
                }
            }
            mine.push(pair.0);
            theirs.push(pair.1);
            ratios.push(pair.0 / pair.1);
        }
        let listed = ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ");
        lines.push(format!("| `{}` | {:.1} | {:.1} | {:.3} | {listed} |", case.name, median(mine), median(theirs), median(ratios.clone())));
    }
    println!("{}", lines.join("\n"));
}

/// A row the official code runs too: prnn's spec and config, and GRU4Rec's parameter string for the same model.
struct PeerCase {
    name: &'static str,
    what: String,
    spec: &'static str,
    config: PathBuf,
    train: PathBuf,
    test: PathBuf,
    params: &'static str,
}

/// The first sessions of the Diginetica-size training file, about `events` events, with its test file: row 3 for
/// a full epoch of both codes (the official code has no way to stop after some mini-batches).
fn diginetica_subset(data: &Path, events: usize) -> (PathBuf, PathBuf, PathBuf) {
    let full = diginetica_size(data);
    let dir = full.parent().expect("the config's folder").to_path_buf();
    let train = dir.join(format!("train-{}k.tsv", events / 1000));
    if !train.is_file() {
        let text = std::fs::read_to_string(dir.join("train.tsv")).expect("the synthetic training file");
        let mut lines = text.lines();
        let mut kept = vec![lines.next().expect("a header")];
        let mut last_session = "";
        for line in lines {
            let session = line.split('\t').next().unwrap_or("");
            if kept.len() > events && session != last_session {
                break;
            }
            last_session = session;
            kept.push(line);
        }
        std::fs::write(&train, kept.join("\n") + "\n").expect("the subset is written");
    }
    let config = dir.join(format!("run-{}k.toml", events / 1000));
    std::fs::write(
        &config,
        format!(
            "[data]\ntrain = \"{}\"\ntest = \"test.tsv\"\n\n[eval]\ncutoffs = [20]\nties = \"conservative\"\n\n[run]\nout = \"runs\"\n",
            train.file_name().unwrap().to_string_lossy()
        ),
    )
    .expect("config written");
    (config, train, dir.join("test.tsv"))
}

/// `train.tsv` and `test.tsv` of a shipped dataset, decompressed into `to` once: the official code reads plain
/// text only.
fn plain_copies(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).expect("bench data folder");
    for name in ["train.tsv", "test.tsv"] {
        if !to.join(name).is_file() {
            let file = std::fs::File::open(from.join(format!("{name}.gz"))).expect("the shipped data");
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut text).expect("the shipped data decompresses");
            std::fs::write(to.join(name), text).expect("bench data is writable");
        }
    }
    to.to_path_buf()
}

/// Rows 1 and 3 with prnn and with the official code in turn (which goes first alternates), each training one
/// epoch and evaluating every time: both codes' figures, and the median and range of the per-repeat ratios.
fn side_by_side(peer: &peer::Peer, data: &Path, device: &str, scratch: &Path, repeats: usize, wanted: &dyn Fn(&str) -> bool) -> String {
    let yoochoose = plain_copies(&root().join("data/yoochoose-cat"), &data.join("yoochoose-cat"));
    let (row3_config, row3_train, row3_test) = diginetica_subset(data, 200_000);
    let cases = [
        PeerCase {
            name: "row1",
            what: "row 1: 100 hidden, batch 50, cross-entropy, in-batch negatives; `yoochoose-cat`, 1 epoch".into(),
            spec: "specs/gru4rec_xe.prnn",
            config: root().join("examples/yoochoose-categories.toml"),
            train: yoochoose.join("train.tsv"),
            test: yoochoose.join("test.tsv"),
            params: "loss=cross-entropy,constrained_embedding=False,embedding=0,layers=100,n_epochs=1,batch_size=50,\
                     dropout_p_embed=0.0,dropout_p_hidden=0.0,learning_rate=0.1,momentum=0.0,n_sample=0,sample_alpha=0.5,logq=0.0",
        },
        PeerCase {
            name: "row3",
            what: "row 3: 512 hidden, batch 128, BPR-max, 2048 extra, constrained; the first 200k events of the \
                   Diginetica-size synthetic set (43k items), 1 epoch"
                .into(),
            spec: "specs/gru4rec_bprmax.prnn",
            config: row3_config,
            train: row3_train,
            test: row3_test,
            params: "loss=bpr-max,constrained_embedding=True,embedding=0,elu_param=1,layers=512,n_epochs=1,batch_size=128,\
                     dropout_p_embed=0.5,dropout_p_hidden=0.3,learning_rate=0.05,momentum=0.15,n_sample=2048,sample_alpha=0.3,\
                     bpreg=0.9,logq=0.0",
        },
    ];
    let mut lines = vec![
        format!("{} Official code: `{}` ({}).\n", machine(device), peer.checkout.display(), peer.torch_version()),
        "| row | measure | prnn | official | prnn / official: median (range) of the runs' ratios |".to_string(),
        "|---|---|---:|---:|---|".to_string(),
    ];
    let mut described = Vec::new();
    for case in cases.iter().filter(|c| wanted(c.name)) {
        let end_to_end_case = EndToEnd {
            name: case.name,
            what: &case.what,
            spec: case.spec,
            config: case.config.to_string_lossy().to_string(),
            overrides: vec!["epochs=1"],
            evaluate: true,
        };
        let (mut training, mut evaluation) = (Vec::new(), Vec::new());
        let mut notes = Vec::new();
        for repeat in 0..repeats {
            let mut ours = None;
            let mut theirs = None;
            for prnn_first in [repeat.is_multiple_of(2), !repeat.is_multiple_of(2)] {
                if prnn_first {
                    ours = Some(end_to_end(&prnn_binary(), &end_to_end_case, device, scratch, true));
                } else {
                    let log = scratch.join(format!("{}.official.{repeat}.log", case.name));
                    theirs = Some(peer::run(peer, case.params, &case.train, Some(&case.test), device, &log));
                }
            }
            let (ours, theirs) = (ours.expect("prnn ran"), theirs.expect("the official code ran"));
            let predictions = json(&scratch.join(case.name).join("eval.json"))["events"].as_f64().unwrap_or(f64::NAN);
            let ours_train = ours.batches_per_second.unwrap_or(f64::NAN);
            let ours_eval = ours.eval_per_second.unwrap_or(f64::NAN);
            let theirs_eval = predictions / theirs.eval_seconds.unwrap_or(f64::NAN);
            eprintln!(
                "{} (run {}): training {ours_train:.1} against {:.1} mini-batches/s; evaluation {ours_eval:.0} against {theirs_eval:.0} predictions/s",
                case.name,
                repeat + 1,
                theirs.batches_per_second
            );
            training.push((ours_train, theirs.batches_per_second));
            evaluation.push((ours_eval, theirs_eval));
            notes = vec![
                format!("prnn: {}", ours.note),
                format!(
                    "official: Recall@20 {:.4}, MRR@20 {:.4} (its loop stops before the last session's events; \
                     predictions/s over prnn's {predictions} predictions)",
                    theirs.recall_at_20.unwrap_or(f64::NAN),
                    theirs.mrr_at_20.unwrap_or(f64::NAN)
                ),
            ];
        }
        for (measure, pairs) in [("training, mini-batches/s", &training), ("evaluation, predictions/s", &evaluation)] {
            let ratios: Vec<f64> = pairs.iter().map(|(a, b)| a / b).collect();
            let (low, high) = (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max));
            lines.push(format!(
                "| `{}` | {measure} | {} | {} | **{:.2}x** ({low:.2} to {high:.2}) |",
                case.name,
                figure(Some(median(pairs.iter().map(|p| p.0).collect()))),
                figure(Some(median(pairs.iter().map(|p| p.1).collect()))),
                median(ratios.clone())
            ));
        }
        described.push(format!("- `{}`: {}; last run: {}.", case.name, case.what, notes.join("; ")));
    }
    lines.push(String::new());
    lines.extend(described);
    lines.join("\n") + "\n"
}
