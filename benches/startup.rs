//! Start-up time of the two executables, side by side in one run: `prnn` (the front binary, no libtorch) and
//! `prnn-torch` (linked to libtorch; what every command cost before the split).
//!
//! Usage: `cargo bench --bench startup -- [--repeats N]`. For `--version`, `check` and `compile` of
//! specs/parallel_res.prnn it reports the median and the fastest wall time over N runs (default 15); for
//! `train` the time until the first epoch's line appears on stderr, on a small synthetic dataset written to
//! `target/bench-data/startup/` (one epoch of 1,000 sessions). The two executables alternate, so a
//! machine that slows down or warms up during the run affects both alike. It measures; it asserts nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prnn::data::synth::{write_dataset, SynthConfig};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_prnn-torch"))
}

fn front() -> PathBuf {
    runtime().with_file_name("prnn")
}

/// Wall time of one command until it exits.
fn until_exit(program: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(program).args(args).current_dir(ROOT).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "{} {args:?} failed", program.display());
    elapsed
}

/// Wall time of `train` until its first epoch line, then the run is stopped.
fn until_first_epoch(program: &Path, spec: &Path, config: &Path, out: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let mut child = Command::new(program)
        .arg("train")
        .arg(spec)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("epochs=2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut elapsed = None;
    for line in stderr.lines() {
        if line.unwrap().starts_with("epoch 1/") {
            elapsed = Some(started.elapsed());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    elapsed.unwrap_or_else(|| panic!("{} train printed no epoch line", program.display()))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(time: Duration) -> String {
    format!("{:.1}", time.as_secs_f64() * 1000.0)
}

fn main() {
    let mut repeats = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--repeats" {
            repeats = args.next().and_then(|n| n.parse().ok()).expect("--repeats N");
        }
    }
    assert!(front().exists(), "build both executables first (`cargo build --release` from the repository root)");
    let data = Path::new(ROOT).join("target/bench-data/startup");
    if !data.join("train.tsv").exists() {
        let settings = SynthConfig { sessions: 1_000, items: 500, clusters: 10, dim: 4, ..SynthConfig::default() };
        write_dataset(&settings, &data, false).expect("synthetic data is written");
    }
    let config = data.join("run.toml");
    std::fs::write(&config, "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n\n[run]\nout = \"runs\"\n").unwrap();
    let spec = Path::new(ROOT).join("specs/gru4rec_xe.prnn");

    let commands: [(&str, Vec<&str>); 3] = [
        ("prnn --version", vec!["--version"]),
        ("prnn check SPEC", vec!["check", "specs/parallel_res.prnn"]),
        ("prnn compile SPEC", vec!["compile", "specs/parallel_res.prnn"]),
    ];
    println!("start-up over {repeats} runs each, milliseconds (median / fastest); {} cores", num_cores());
    println!("| command | prnn (front, no libtorch) | prnn-torch (libtorch linked) |");
    println!("|---|---|---|");
    for (label, args) in &commands {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            a.push(until_exit(&front(), args));
            b.push(until_exit(&runtime(), args));
        }
        let (fa, fb) = (*a.iter().min().unwrap(), *b.iter().min().unwrap());
        println!("| `{label}` | {} / {} | {} / {} |", ms(median(a)), ms(fa), ms(median(b)), ms(fb));
    }
    let train_repeats = repeats.min(5);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..train_repeats {
        a.push(until_first_epoch(&front(), &spec, &config, &data.join("run-front")));
        b.push(until_first_epoch(&runtime(), &spec, &config, &data.join("run-torch")));
    }
    let (fa, fb) = (*a.iter().min().unwrap(), *b.iter().min().unwrap());
    println!(
        "| `prnn train` to the first epoch line ({train_repeats} runs) | {} / {} | {} / {} |",
        ms(median(a)),
        ms(fa),
        ms(median(b)),
        ms(fb)
    );
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
