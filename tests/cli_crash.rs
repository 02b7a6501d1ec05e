//! Crash safety of `prnn train`: a kill inside an epoch resumes to the same weights, one writer per run folder
//! (a killed writer's lock never blocks), and damaged checkpoints reported as such.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{checkpoint_tensors, prnn, stderr};

/// Synthetic data, the spec, and a config that writes an in-epoch checkpoint every 20 mini-batches.
fn setup(sessions: u64) -> (common::Synthetic, PathBuf) {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions, items: 300, clusters: 6, dim: 4, ..Default::default() });
    let spec = data.dir.path().join("small.prnn");
    std::fs::write(&spec, common::small_spec(2)).unwrap();
    let config = std::fs::read_to_string(&data.config).unwrap().replace("[run]\n", "[run]\ncheckpoint_batches = 20\n");
    std::fs::write(&data.config, config).unwrap();
    (data, spec)
}

fn train(spec: &Path, config: &Path, out: &Path) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"))
        .arg("train")
        .arg(spec)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `ready` holds, failing if the child ends first.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "training ended before {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A message with what differs between runs taken out, for snapshots: the temporary folder, the repository's
/// path, the holder's process ID and start time.
fn plain(message: &str, dir: &Path, pid: Option<u32>) -> String {
    let mut text = message.replace(&dir.display().to_string(), "TMP").replace(env!("CARGO_MANIFEST_DIR"), "REPO");
    if let Some(pid) = pid {
        text = text.replace(&pid.to_string(), "PID");
    }
    match (text.find(" since "), text.find(" UTC")) {
        (Some(start), Some(end)) if start < end => format!("{} since TIME{}", &text[..start], &text[end + 4..]),
        _ => text,
    }
}

#[test]
fn a_run_killed_inside_an_epoch_resumes_there_to_the_weights_of_an_uninterrupted_run() {
    let (data, spec) = setup(1_500);
    let whole = data.dir.path().join("whole");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&whole).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!whole.join("partial.safetensors").exists(), "a finished epoch removes its in-epoch checkpoint");

    let killed = data.dir.path().join("killed");
    let mut child = train(&spec, &data.config, &killed);
    // Inside the first epoch: an in-epoch checkpoint is written and the epoch's own is not yet.
    wait_for(&mut child, "an in-epoch checkpoint", || killed.join("partial.safetensors").exists());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let epoch_done = killed.join("checkpoint.safetensors").exists();
    let lock = std::fs::read_to_string(killed.join(".lock")).unwrap();
    assert!(lock.starts_with(&format!("process {} ", child.id())), "the killed process held the folder: {lock}");

    // The lock file the killed process left does not block: the kernel released its lock.
    let output = prnn().arg("train").arg("--resume").arg(&killed).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    if !epoch_done {
        assert!(stderr(&output).contains("resuming epoch 1 after"), "{}", stderr(&output));
    }
    let (a, b) = (checkpoint_tensors(&whole.join("checkpoint.safetensors")), checkpoint_tensors(&killed.join("checkpoint.safetensors")));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "`{name}` differs between the run resumed mid-epoch and the uninterrupted one");
    }
    let losses = |run: &Path| -> Vec<f64> {
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
    };
    assert_eq!(losses(&whole), losses(&killed), "the resumed epoch's loss counts its first half too");
    assert!(!killed.join("partial.safetensors").exists());
}

#[test]
fn a_second_writer_is_refused_with_the_holders_process_id() {
    let (data, spec) = setup(200);
    let run = data.dir.path().join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=1").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // This test process holds the folder as a training process would.
    let held = prnn::run::lock::lock_folder(&run).unwrap();
    let output = prnn().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("process {}", std::process::id())), "the holder's process ID: {message}");
    insta::assert_snapshot!("second_writer", plain(&message, data.dir.path(), Some(std::process::id())));
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "eval writes into the run folder too: {}", stderr(&output));
    drop(held);
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_truncated_or_altered_checkpoint_is_reported_with_what_to_do() {
    let (data, spec) = setup(300);
    let run = data.dir.path().join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=1").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let path = run.join("checkpoint.safetensors");
    let intact = std::fs::read(&path).unwrap();

    std::fs::write(&path, &intact[..intact.len() - 100]).unwrap();
    let output = prnn().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    insta::assert_snapshot!("truncated_checkpoint", plain(&stderr(&output), data.dir.path(), None));

    let mut altered = intact.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    std::fs::write(&path, &altered).unwrap();
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_ne!(output.status.code(), Some(0));
    insta::assert_snapshot!("altered_checkpoint", plain(&stderr(&output), data.dir.path(), None));

    // A damaged in-epoch checkpoint costs only the epoch in progress: the run resumes from the last whole epoch.
    std::fs::write(&path, &intact).unwrap();
    std::fs::write(run.join("partial.safetensors"), b"not a checkpoint").unwrap();
    let output = prnn().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("resuming from the end of epoch 1 instead"), "{}", stderr(&output));
    assert!(!run.join("partial.safetensors").exists());
}
