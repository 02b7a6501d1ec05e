//! Resource bounds: settings the checker accepts but no machine holds are refused before anything is allocated,
//! with the memory they would need, what is available and which setting to lower (src/ir/memory.rs).
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
