//! Resource bounds: settings the checker accepts but no machine holds are refused before anything is allocated,
//! with the memory they would need, what is available and which setting to lower (src/ir/memory.rs); sizes
//! beyond any sane range are config errors; thread counts beyond a few per core are cut, with a warning.
//!
//! `PRNN_MEMORY_LIMIT` caps the memory prnn takes as available, so the messages do not depend on the machine.

mod common;

use std::path::{Path, PathBuf};

use common::stderr;

/// What every test takes as available: far above a small run's need, far below an absurd one's.
const LIMIT: &str = "256MiB";

/// The executable that trains, evaluates and recommends.
fn prnn_torch() -> assert_cmd::Command {
    let mut command = common::prnn();
    command.env("PRNN_MEMORY_LIMIT", LIMIT);
    command
}

fn setup(sessions: u64, items: u32, spec: &str) -> (common::Synthetic, PathBuf) {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions, items, clusters: 6, dim: 4, ..Default::default() });
    let path = data.dir.path().join("small.prnn");
    std::fs::write(&path, spec).unwrap();
    (data, path)
}

/// `prnn-torch train` with `arguments`; returns its exit code and stderr, after checking it left no run folder.
fn train(data: &common::Synthetic, spec: &Path, arguments: &[&str]) -> (Option<i32>, String) {
    let run = data.dir.path().join("run");
    let output =
        prnn_torch().arg("train").arg(spec).arg("--config").arg(&data.config).arg("--out").arg(&run).args(arguments).output().unwrap();
    if output.status.code() != Some(0) {
        assert!(!run.exists(), "a refused run writes nothing: {}", stderr(&output));
    }
    (output.status.code(), stderr(&output))
}

#[test]
fn a_hidden_size_of_a_billion_written_in_the_spec_is_refused_before_allocating() {
    let spec = common::small_spec(2).replace("gru(id, hidden = 16, dropout = 0.2)", "gru(id, hidden = 1000000000, dropout = 0.2)");
    let (data, path) = setup(200, 300, &spec);
    let (code, message) = train(&data, &path, &[]);
    assert_eq!(code, Some(4), "{message}");
    insta::assert_snapshot!(message);
}

#[test]
fn a_batch_of_a_billion_is_refused_with_the_rows_the_data_gives_it() {
    let (data, path) = setup(3_000, 300, &common::small_spec(2));
    let (code, message) = train(&data, &path, &["batch=1000000000"]);
    assert_eq!(code, Some(4), "{message}");
    insta::assert_snapshot!(message);
}

#[test]
fn a_billion_extra_negatives_are_refused() {
    let (data, path) = setup(200, 300, &common::small_spec(2));
    let (code, message) = train(&data, &path, &["extra=1000000000"]);
    assert_eq!(code, Some(4), "{message}");
    insta::assert_snapshot!(message);
}

#[test]
fn a_catalogue_too_large_for_the_memory_is_refused_and_the_same_spec_fits_a_smaller_one() {
    let spec = common::small_spec(2).replace("hidden = 16, dropout", "hidden = 500, dropout").replace("hidden = 16)", "hidden = 500)");
    let (data, path) = setup(10_000, 5_000, &spec);
    let (code, message) = train(&data, &path, &["epochs=1", "max_batches=1"]);
    assert_eq!(code, Some(4), "{message}");
    insta::assert_snapshot!(message);
    let (small, path) = setup(200, 300, &spec);
    let (code, message) = train(&small, &path, &["epochs=1", "max_batches=1"]);
    assert_eq!(code, Some(0), "300 items fit where 5,000 did not: {message}");
}

#[test]
fn evaluation_is_checked_too_and_a_bad_limit_is_a_usage_error() {
    let (data, path) = setup(200, 300, &common::small_spec(2));
    let (code, message) = train(&data, &path, &["epochs=1"]);
    assert_eq!(code, Some(0), "a small run fits: {message}");
    let run = data.dir.path().join("run");
    let output = prnn_torch().arg("eval").arg(&run).env("PRNN_MEMORY_LIMIT", "16MiB").output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(!run.join("eval.json").exists(), "nothing is evaluated");
    insta::assert_snapshot!(stderr(&output));
    let output = prnn_torch().arg("eval").arg(&run).env("PRNN_MEMORY_LIMIT", "lots").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("PRNN_MEMORY_LIMIT=`lots` is not a size"), "{}", stderr(&output));
}

/// `text` with every occurrence of the test's folder written `[dir]`, so that snapshots do not depend on it.
fn in_dir(text: &str, data: &common::Synthetic) -> String {
    text.replace(&data.dir.path().display().to_string(), "[dir]")
}

#[test]
fn a_batch_of_a_billion_written_in_the_spec_trains_on_the_rows_the_data_has() {
    // 10^9 rows of 16 units: the step's multiply-adds that decide the thread count passed u64 (a panic in debug
    // builds); the batcher reserves rows for the 200 sessions there are, not for 10^9.
    let spec = common::small_spec(2).replace("batch     = 16", "batch     = 1000000000");
    assert!(spec.contains("batch     = 1000000000"), "{spec}");
    let (data, path) = setup(200, 300, &spec);
    let (code, message) = train(&data, &path, &["max_batches=2"]);
    assert_eq!(code, Some(0), "{message}");
    assert!(data.dir.path().join("run/checkpoint.safetensors").exists(), "{message}");
}

#[test]
fn an_eval_batch_beyond_a_billion_is_a_config_error_for_training_and_evaluation() {
    let (data, path) = setup(200, 300, &common::small_spec(2));
    let (code, message) = train(&data, &path, &["max_batches=1"]);
    assert_eq!(code, Some(0), "a small run fits: {message}");
    // 2^63 - 1, the largest integer TOML has.
    let config = std::fs::read_to_string(&data.config).unwrap().replace("[eval]\n", "[eval]\nbatch = 9223372036854775807\n");
    let huge = data.dir.path().join("huge-eval-batch.toml");
    std::fs::write(&huge, config).unwrap();
    let run = data.dir.path().join("run");
    let output = prnn_torch().arg("eval").arg(&run).arg("--config").arg(&huge).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(!run.join("eval-huge-eval-batch.json").exists(), "nothing is evaluated");
    let refused = stderr(&output);
    insta::assert_snapshot!(in_dir(&refused, &data));
    let output =
        prnn_torch().arg("train").arg(&path).arg("--config").arg(&huge).arg("--out").arg(data.dir.path().join("other")).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(stderr(&output), refused, "training reads the same config");
}

#[test]
fn a_hidden_size_of_a_hundred_thousand_is_refused_with_what_it_needs() {
    let spec = common::small_spec(2).replace("gru(id, hidden = 16, dropout = 0.2)", "gru(id, hidden = 100000, dropout = 0.2)");
    let (data, path) = setup(200, 300, &spec);
    let (code, message) = train(&data, &path, &[]);
    assert_eq!(code, Some(4), "{message}");
    insta::assert_snapshot!(message);
}

#[test]
fn under_an_address_space_limit_a_run_that_fits_the_machine_but_not_the_limit_is_refused() {
    // `ulimit -v` of 8 GiB: a model of 9,000 units needs about 9 GiB, which many machines have. Counted only by
    // MemAvailable, it passed the check and aborted at its first large tensor ("memory allocation of ... failed").
    use std::os::unix::process::CommandExt;
    let spec = common::small_spec(2).replace("gru(id, hidden = 16, dropout = 0.2)", "gru(id, hidden = 9000, dropout = 0.2)");
    let (data, path) = setup(200, 300, &spec);
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"));
    command.args(["--color", "never", "train"]).arg(&path).arg("--config").arg(&data.config).arg("--out").arg(data.dir.path().join("run"));
    command.env_remove("PRNN_MEMORY_LIMIT");
    // Safety: the closure runs in the child between fork and exec and calls only getrlimit and setrlimit, which
    // are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_AS, &mut limit);
            // A hard limit below 8 GiB (a test run under `ulimit -v`) stays: it only makes the refusal surer.
            limit.rlim_cur = limit.rlim_max.min(8 << 30);
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let output = command.output().unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "refused, not aborted: {message}");
    assert!(!data.dir.path().join("run").exists(), "a refused run writes nothing: {message}");
    // What is available depends on the machine: the room under the limit, or less memory than that.
    let (head, parts) = message.split_once("; the largest parts:").unwrap_or_else(|| panic!("{message}"));
    assert!(head.starts_with("error: training `small` needs about 9.4 GiB of memory, but "), "{message}");
    if read_mem_available().is_some_and(|bytes| bytes > 8 << 30) {
        assert!(head.contains("(the address-space limit `ulimit -v` sets)") || head.contains("cgroup"), "{message}");
    }
    let (terms, help) = parts.split_once("\n  = help: ").unwrap_or_else(|| panic!("{message}"));
    assert!(help.starts_with("lower `hidden`"), "{message}");
    insta::assert_snapshot!(terms.trim_start_matches('\n'));
}

/// The host's MemAvailable in bytes, where /proc tells it.
fn read_mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn threads_beyond_four_per_core_are_cut_with_one_warning() {
    let (data, path) = setup(200, 300, &common::small_spec(2));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let redact = |text: &str| {
        text.replace(&format!("using {}, 4 per core on the {cores} cores", 4 * cores), "using [4 x cores], 4 per core on the [cores] cores")
    };
    // `--threads` of `prnn baseline`.
    let output = prnn_torch()
        .args(["baseline", "popularity", "--threads", "100000", "--config"])
        .arg(&data.config)
        .arg("--out")
        .arg(data.dir.path().join("popularity"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!(redact(&in_dir(&stderr(&output), &data)));
    // `[run] threads` of the config, which training reads twice (evaluation's threads, then the step's): one warning.
    let config = std::fs::read_to_string(&data.config).unwrap().replace("[run]\n", "[run]\nthreads = 100000\n");
    std::fs::write(&data.config, config).unwrap();
    let (code, message) = train(&data, &path, &["max_batches=1", "--eval"]);
    assert_eq!(code, Some(0), "{message}");
    // Other tests' runs may add a warning of their own about sharing the cores.
    let warnings: Vec<&str> = message.lines().filter(|line| line.contains("CPU threads asked for")).collect();
    assert_eq!(warnings.len(), 1, "{message}");
    assert_eq!(redact(warnings[0]), redact(stderr(&output).lines().next().unwrap()));
}
