//! `prnn train` and `prnn eval` from the command line: run folders, kill and resume, divergence, bad overrides.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{checkpoint_tensors, prnn, stderr};

fn setup(sessions: u64) -> (common::Synthetic, std::path::PathBuf) {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions, items: 300, clusters: 6, dim: 4, ..Default::default() });
    let spec = data.dir.path().join("small.prnn");
    std::fs::write(&spec, common::small_spec(4)).unwrap();
    (data, spec)
}

#[test]
fn the_autograd_step_is_chosen_on_the_command_line_and_recorded() {
    let (data, spec) = setup(200);
    let run = data.dir.path().join("autograd");
    let output = prnn()
        .arg("train")
        .arg(&spec)
        .arg("--config")
        .arg(&data.config)
        .arg("--out")
        .arg(&run)
        .arg("--step")
        .arg("autograd")
        .arg("epochs=1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("on cpu (1 thread), autograd step"), "{}", stderr(&output));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["step"], serde_json::json!("autograd"));
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--step").arg("symbolic").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "an unknown step is a usage error: {}", stderr(&output));
}

#[test]
fn train_then_eval_leaves_a_complete_run_folder() {
    let (data, spec) = setup(400);
    let run = data.dir.path().join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=2").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for file in ["spec.prnn", "config.toml", "run.json", "metrics.jsonl", "checkpoint.safetensors"] {
        assert!(run.join(file).is_file(), "no {file} in the run folder");
    }
    assert_eq!(std::fs::read_to_string(run.join("spec.prnn")).unwrap(), common::small_spec(4));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["overrides"], serde_json::json!(["epochs=2"]));
    assert_eq!(record["step"], serde_json::json!("fused"), "the CPU trains with the fused step by default");
    assert_eq!(record["spec_hash"], serde_json::json!(blake3::hash(common::small_spec(4).as_bytes()).to_hex().to_string()));
    assert_eq!(record["model"]["train"]["schedule"]["epochs"], serde_json::json!(2));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0]["trains"], serde_json::json!(["id_net"]));
    assert_eq!(epochs[1]["trains"], serde_json::json!(["category_net"]));
    assert!(epochs.iter().all(|e| e["loss"].as_f64().unwrap().is_finite() && e["events"].as_u64().unwrap() > 0));
    // TensorBoard's event file holds the same epochs: a version event, then each epoch's scalars at its step.
    let events = prnn::run::tensorboard::read_events(&std::fs::read(run.join("events.out.tfevents.prnn")).unwrap()).unwrap();
    assert_eq!(events.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    for (event, line) in events[1..].iter().zip(&epochs) {
        let loss = event.summary.as_ref().unwrap().value.iter().find(|v| v.tag == "train/loss").unwrap().simple_value.unwrap();
        assert_eq!(loss, line["loss"].as_f64().unwrap() as f32);
        assert_eq!(event.wall_time, line["time"].as_f64().unwrap());
    }

    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("recall") && table.contains("      20"), "{table}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let events = summary["events"].as_u64().unwrap();
    let ranks = std::fs::read_to_string(run.join("ranks.tsv")).unwrap();
    assert_eq!(ranks.lines().next(), Some("SessionId\tPosition\tItemId\tRank"));
    assert_eq!(ranks.lines().count() as u64, events + 1, "one rank per test event");
    // The mean of the ranks' hits reproduces the reported Recall@20.
    let hits = ranks.lines().skip(1).filter(|l| l.rsplit('\t').next().unwrap().parse::<f64>().unwrap() <= 20.0).count();
    let recall = summary["metrics"].as_array().unwrap().iter().find(|m| m["cutoff"] == 20).unwrap()["recall"].as_f64().unwrap();
    assert!((hits as f64 / events as f64 - recall).abs() < 1e-12);

    // An existing, non-empty run folder is never overwritten.
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("exists and is not empty"), "{}", stderr(&output));
}

#[test]
fn a_run_trained_with_a_bare_config_name_evaluates_and_recommends_from_another_folder() {
    let (data, spec) = setup(200);
    // `--config run.toml`, a bare name in the current folder, and a relative `--out`.
    let output = prnn()
        .current_dir(data.dir.path())
        .arg("train")
        .arg(&spec)
        .args(["--config", "run.toml", "--out", "runs/bare", "epochs=1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = data.dir.path().join("runs/bare");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let config_dir = Path::new(record["config_dir"].as_str().unwrap());
    assert!(config_dir.is_absolute(), "run.json records the config's folder absolute: {config_dir:?}");
    assert_eq!(config_dir.canonicalize().unwrap(), data.dir.path().canonicalize().unwrap());

    let elsewhere = tempfile::tempdir().unwrap();
    let output = prnn().current_dir(elsewhere.path()).arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "eval from another folder: {}", stderr(&output));
    let test = std::fs::read_to_string(data.dir.path().join("test.tsv")).unwrap();
    let item = test.lines().nth(1).unwrap().split('\t').nth(1).unwrap().to_string();
    let output = prnn().current_dir(elsewhere.path()).arg("recommend").arg(&run).args(["--session", &item, "-k", "3"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "recommend from another folder: {}", stderr(&output));
    let json = |output: &std::process::Output| -> serde_json::Value { serde_json::from_slice(&output.stdout).unwrap() };
    let ask = || {
        prnn()
            .current_dir(elsewhere.path())
            .arg("recommend")
            .arg(&run)
            .args(["--session", &item, "-k", "5", "--format", "json"])
            .output()
            .unwrap()
    };
    let with_data = ask();
    assert_eq!(with_data.status.code(), Some(0), "{}", stderr(&with_data));

    // The run folder alone answers: its catalogue holds the items and the category rows the model reads.
    assert!(run.join("catalogue.safetensors").is_file());
    for file in ["train.tsv", "test.tsv", "items.tsv", "vectors.npy", "vectors.ids", "run.toml"] {
        std::fs::remove_file(data.dir.path().join(file)).unwrap();
    }
    std::fs::remove_dir_all(data.dir.path().join("runs/cache")).unwrap();
    let without_data = ask();
    assert_eq!(without_data.status.code(), Some(0), "recommend without the data: {}", stderr(&without_data));
    assert_eq!(json(&without_data), json(&with_data), "the same items and scores as with the data");
    assert_eq!(json(&without_data)["items"].as_array().unwrap().len(), 5);
    // Evaluating needs the test set, and says which file is gone.
    let output = prnn().current_dir(elsewhere.path()).arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("train.tsv"), "{}", stderr(&output));

    // A damaged catalogue is an error naming it, with what to do.
    let catalogue = run.join("catalogue.safetensors");
    let mut bytes = std::fs::read(&catalogue).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&catalogue, &bytes).unwrap();
    let output = ask();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("catalogue.safetensors") && stderr(&output).contains("delete the file"), "{}", stderr(&output));
}

#[test]
fn a_run_of_a_config_that_includes_another_keeps_every_setting_when_that_file_is_gone() {
    let (data, spec) = setup(200);
    // The dataset's config is the shared base; the experiment's own file, in another folder, adds to it.
    let experiments = data.dir.path().join("experiments");
    std::fs::create_dir(&experiments).unwrap();
    std::fs::write(experiments.join("top.toml"), "include = [\"../run.toml\"]\n\n[eval]\ncutoffs = [3, 7]\n").unwrap();
    let run = data.dir.path().join("run");
    let output = prnn()
        .arg("train")
        .arg(&spec)
        .arg("--config")
        .arg(experiments.join("top.toml"))
        .arg("--out")
        .arg(&run)
        .arg("epochs=1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let recorded = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(!recorded.contains("include =") && recorded.contains("cutoffs = [3, 7]"), "{recorded}");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["config_hash"], serde_json::json!(blake3::hash(recorded.as_bytes()).to_hex().to_string()));

    std::fs::rename(data.dir.path().join("run.toml"), data.dir.path().join("moved.toml")).unwrap();
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "the run folder's own config is enough: {}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let cutoffs: Vec<u64> = summary["metrics"].as_array().unwrap().iter().map(|m| m["cutoff"].as_u64().unwrap()).collect();
    assert_eq!(cutoffs, [3, 7], "the including file's settings");
}

#[test]
fn train_with_eval_evaluates_and_another_configs_results_go_beside_the_runs_own() {
    let (data, spec) = setup(200);
    let run = data.dir.path().join("run");
    let output = prnn()
        .arg("train")
        .arg(&spec)
        .arg("--config")
        .arg(&data.config)
        .arg("--out")
        .arg(&run)
        .args(["--eval", "epochs=1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("recall"), "train --eval prints the table");
    let own = std::fs::read_to_string(run.join("eval.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&own).unwrap();
    assert_eq!(summary["epochs_trained"], serde_json::json!(1));
    // The same figures as `prnn eval` on the run.
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(again["metrics"], summary["metrics"]);
    let own = std::fs::read_to_string(run.join("eval.json")).unwrap();

    let other = data.dir.path().join("top 50.toml");
    let text = std::fs::read_to_string(&data.config).unwrap().replace("cutoffs = [5, 20]", "cutoffs = [1, 50]");
    std::fs::write(&other, text).unwrap();
    let output = prnn().arg("eval").arg(&run).arg("--config").arg(&other).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(run.join("eval.json")).unwrap(), own, "the run's own eval.json is left alone");
    let beside: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval-top_50.json")).unwrap()).unwrap();
    let cutoffs: Vec<u64> = beside["metrics"].as_array().unwrap().iter().map(|m| m["cutoff"].as_u64().unwrap()).collect();
    assert_eq!(cutoffs, [1, 50]);
    assert!(run.join("ranks-top_50.tsv").is_file());
}

#[test]
fn recommend_answers_many_sessions_from_a_file_or_standard_input_one_json_line_each() {
    let (data, spec) = setup(200);
    let run = data.dir.path().join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=1").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let test = std::fs::read_to_string(data.dir.path().join("test.tsv")).unwrap();
    let items: Vec<String> = test.lines().skip(1).take(3).map(|l| l.split('\t').nth(1).unwrap().to_string()).collect();
    let first = format!("{},{}", items[0], items[1]);
    let sessions = format!("{first}\n\nno-such-item,{}\nnothing,known\n", items[2]);
    let file = data.dir.path().join("sessions.txt");
    std::fs::write(&file, &sessions).unwrap();
    let json_lines = |output: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let output = prnn().arg("recommend").arg(&run).arg("--sessions").arg(&file).args(["-k", "3"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let answers = json_lines(&output);
    assert_eq!(answers.len(), 3, "one line per session, blank lines skipped");
    assert_eq!((answers[0]["line"].clone(), answers[1]["line"].clone(), answers[2]["line"].clone()), (1.into(), 3.into(), 4.into()));
    assert_eq!(answers[0]["items"].as_array().unwrap().len(), 3);
    assert_eq!(answers[1]["unknown"], serde_json::json!(["no-such-item"]));
    assert_eq!(answers[1]["events"], 1);
    assert_eq!(answers[2]["error"]["code"], "no_known_item", "a session with no known item is answered with an error");
    assert!(stderr(&output).contains("2 session(s) answered, 1 with no known item"), "{}", stderr(&output));
    // The same answer as one session on the command line.
    let output = prnn().arg("recommend").arg(&run).args(["--session", &first, "-k", "3", "--format", "json"]).output().unwrap();
    let single = json_lines(&output);
    assert_eq!(single[0]["items"], answers[0]["items"]);
    // Standard input.
    let output = prnn().arg("recommend").arg(&run).args(["--sessions", "-", "-k", "3"]).write_stdin(sessions).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json_lines(&output), answers);
    // One or the other.
    let output = prnn().arg("recommend").arg(&run).arg("--sessions").arg(&file).args(["--session", &first]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_the_weights_of_an_uninterrupted_run() {
    let (data, spec) = setup(3_000);
    let whole = data.dir.path().join("whole");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&whole).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let killed = data.dir.path().join("killed");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"))
        .arg("train")
        .arg(&spec)
        .arg("--config")
        .arg(&data.config)
        .arg("--out")
        .arg(&killed)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first checkpoint is in place: it is then in its second epoch, or already writing the
    // next metrics line or checkpoint.
    loop {
        if killed.join("checkpoint.safetensors").exists() {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "training ended before the first epoch was recorded");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed; give it more data");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let output = prnn().arg("train").arg("--resume").arg(&killed).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("resuming after epoch"), "{}", stderr(&output));
    let (a, b) = (checkpoint_tensors(&whole.join("checkpoint.safetensors")), checkpoint_tensors(&killed.join("checkpoint.safetensors")));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "`{name}` differs between the resumed and the uninterrupted run");
    }
    let metrics = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> =
        metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3, 4], "one metrics line per epoch, none repeated");
    let events = prnn::run::tensorboard::read_events(&std::fs::read(killed.join("events.out.tfevents.prnn")).unwrap()).unwrap();
    assert_eq!(events.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "TensorBoard sees each epoch once");

    // A finished run has nothing left to do.
    let output = prnn().arg("train").arg("--resume").arg(&killed).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("finished all 4 epochs"), "{}", stderr(&output));
}

#[test]
fn a_diverging_loss_stops_with_its_own_exit_code_and_keeps_the_last_checkpoint() {
    let (data, _) = setup(400);
    // The second epoch trains a subnet whose learning rate makes its weights overflow.
    let spec = data.dir.path().join("diverge.prnn");
    std::fs::write(&spec, common::small_spec(4).replace("gru(category, hidden = 16)", "gru(category, hidden = 16, lr = 3e38)")).unwrap();
    let run = data.dir.path().join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("training diverged") && message.contains("epoch 2"), "{message}");
    let saved = checkpoint_tensors(&run.join("checkpoint.safetensors"));
    let info = prnn::train::checkpoint::read_info(&run.join("checkpoint.safetensors")).unwrap().0;
    assert_eq!(info.epoch, 1, "the checkpoint of the last good epoch is kept");
    assert!(!saved.is_empty());
}

#[test]
fn bad_overrides_and_devices_are_usage_errors() {
    let (data, spec) = setup(200);
    for (arguments, expected) in [
        (vec!["epoch=2"], "unknown override `epoch` (did you mean `epochs`?)"),
        (vec!["lr=fast"], "override `lr` needs a number"),
        (vec!["batch"], "is not `key=value`"),
        (vec!["--device", "tpu"], "unknown device `tpu`"),
    ] {
        let run = data.dir.path().join("never");
        let output =
            prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).args(&arguments).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{arguments:?}: {}", stderr(&output));
        assert!(!run.exists(), "nothing is written for a bad command line");
    }
    let output = prnn().arg("eval").arg(data.dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("is not a run folder") || stderr(&output).contains("run record"), "{}", stderr(&output));
}

/// The `"stopping"` records of a run's `metrics.jsonl`, by epoch.
fn stopping_lines(run: &Path) -> Vec<(u64, serde_json::Value)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|line| (line["epoch"].as_u64().unwrap(), line["stopping"].clone()))
        .collect()
}

#[test]
fn early_stopping_keeps_the_best_epoch_and_resumes_in_the_middle_of_its_patience() {
    let (data, spec) = setup(3_000);
    // No later epoch can gain more than 1 in MRR: epoch 1 is the best, and patience 2 stops after epoch 3.
    let stop = ["epochs=6", "stop.patience=2", "stop.min_delta=1"];
    let train = |out: &Path| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"));
        command.arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(out).arg("--validation").args(stop);
        command
    };
    // Without held-out sessions there is nothing to stop on, and the test set never chooses.
    let refused = data.dir.path().join("refused");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&refused).args(stop).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("train with `--validation` to find the epochs"), "{}", stderr(&output));
    assert!(!refused.exists(), "nothing is written for a refused run");
    let whole = data.dir.path().join("whole");
    let output = train(&whole).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("training stopped after epoch 3 (2 epochs without a gain above 1); kept epoch 1"),
        "{}",
        stderr(&output)
    );
    let lines = stopping_lines(&whole);
    assert_eq!(lines.iter().map(|(e, _)| *e).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(lines.iter().map(|(_, s)| s["best"].as_bool().unwrap()).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(lines[2].1["end"]["kept_epoch"], 1);
    assert_eq!(lines[2].1["end"]["reason"]["why"], "patience");
    assert!(lines[..2].iter().all(|(_, s)| s.get("end").is_none()));
    // The run folder's checkpoint is the kept epoch's weights.
    let best = checkpoint_tensors(&whole.join("best.safetensors"));
    assert!(checkpoint_tensors(&whole.join("checkpoint.safetensors")) == best, "the final checkpoint holds the best epoch");

    // Killed once epoch 2 is recorded, that is while patience is running, and resumed.
    let killed = data.dir.path().join("killed");
    let mut child = train(&killed).stderr(Stdio::null()).spawn().unwrap();
    loop {
        let recorded = std::fs::read_to_string(killed.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
        if recorded >= 2 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "training ended before epoch 2 was recorded");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let output = prnn().arg("train").arg("--resume").arg(&killed).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stopping_lines(&killed), lines, "the resumed run makes the same decisions");
    let (a, b) = (checkpoint_tensors(&whole.join("checkpoint.safetensors")), checkpoint_tensors(&killed.join("checkpoint.safetensors")));
    assert!(a == b, "the resumed run keeps the same weights");
    let output = prnn().arg("train").arg("--resume").arg(&killed).output().unwrap();
    assert!(stderr(&output).contains("finished all its epochs"), "{}", stderr(&output));
}
