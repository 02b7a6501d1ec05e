//! `prnn baseline`, `prnn run` and `prnn recommend` from the command line, and the library modules behind `run`
//! and `recommend` called directly.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{prnn, stderr};
use prnn::experiment::{Cell, Plan, PlannedSpec};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn metric(eval_json: &Path, cutoff: u64) -> (f64, f64) {
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(eval_json).unwrap()).unwrap();
    let m = summary["metrics"].as_array().unwrap().iter().find(|m| m["cutoff"] == cutoff).unwrap();
    (m["recall"].as_f64().unwrap(), m["mrr"].as_f64().unwrap())
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn item_knn_on_yoochoose_cat_gives_the_reference_figures() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    let data = repository().join("data/yoochoose-cat");
    std::fs::write(
        &config,
        format!(
            "[data]\ntrain = \"{}\"\ntest = \"{}\"\n[eval]\ncutoffs = [20]\nties = \"conservative\"\n[run]\nout = \"{}\"\n",
            data.join("train.tsv.gz").display(),
            data.join("test.tsv.gz").display(),
            dir.path().join("runs").display()
        ),
    )
    .unwrap();
    let run = dir.path().join("knn");
    let output = prnn().args(["baseline", "item_knn", "--config"]).arg(&config).arg("--out").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // reference-notes.md: counted over sessions, conservative ties, every training item ranked.
    let (recall, mrr) = metric(&run.join("eval.json"), 20);
    assert!((recall - 0.4859).abs() < 0.001 && (mrr - 0.2256).abs() < 0.001, "Recall@20 {recall}, MRR@20 {mrr}");
    let ranks = std::fs::read_to_string(run.join("ranks.tsv")).unwrap();
    // 14,462 test events in 3,685 sessions; those whose item is unseen in training dropped, every event after a
    // session's first is predicted: the same 10,157 predictions a trained model is scored on.
    assert_eq!(ranks.lines().count(), 1 + 10157);
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("baseline.json")).unwrap()).unwrap();
    assert_eq!(record["settings"]["neighbours"], 100);

    let output = prnn().args(["baseline", "item_kn", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("did you mean `item_knn`?"), "{}", stderr(&output));
}

const SPEC_ID: &str = "model ids {
  input id : item_id
  subnet id_net = gru(id, hidden = 16)
}
train {
  optimizer = adagrad(lr = 0.1)
  batch     = 16
  schedule  = simultaneous(epochs = 2)
}
";

const SPEC_PARALLEL: &str = "model both {
  input id       : item_id
  input category : sparse
  subnet id_net       = gru(id, hidden = 16)
  subnet category_net = gru(category, hidden = 16)
  merge = parallel(id_net, category_net)
}
train {
  optimizer = adagrad(lr = 0.1)
  batch     = 16
  schedule  = alternating(epochs = 2, order = [id_net, category_net])
}
";

#[test]
fn an_experiment_tunes_trains_seeds_compares_and_continues_where_it_stopped() {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 300, items: 120, clusters: 6, dim: 4, ..Default::default() });
    let root = data.dir.path();
    std::fs::write(root.join("ids.prnn"), SPEC_ID).unwrap();
    std::fs::write(root.join("both.prnn"), SPEC_PARALLEL).unwrap();
    let mut config = std::fs::read_to_string(&data.config).unwrap();
    config +=
        "\n[experiment]\nspecs = [\"ids.prnn\", \"both.prnn\"]\nseeds = [1, 2]\nbaselines = [\"popularity\", \"item_knn\", \"sknn\"]\n\
               compare_to = \"ids\"\nbootstrap = 200\n\n[experiment.tune]\nmodels = [\"ids\"]\ngrid = { lr = [0.05, 0.2] }\n";
    let config_path = root.join("experiment.toml");
    std::fs::write(&config_path, &config).unwrap();
    let out = root.join("experiment");
    let run = || {
        prnn()
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--out")
            .arg(&out)
            .args(["--sweep", "batch=8,16"])
            .current_dir(root)
            .output()
            .unwrap()
    };

    let output = run();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert_eq!(stdout(&output).trim_end(), table.trim_end(), "the table printed is the table written");
    for row in
        ["| popularity |", "| item_knn |", "| sknn |", "| ids batch=8 |", "| ids batch=16 |", "| both batch=8 |", "| both batch=16 |"]
    {
        assert!(table.contains(row), "no row `{row}` in\n{table}");
    }
    // Each p-RNN row is tested against the ID-only row of the same sweep setting.
    assert!(table.contains("(vs ids batch=8)") && table.contains("(vs ids batch=16)"), "{table}");
    // The tuned learning rate reaches the full-data cells of the tuned model only.
    let chosen = table.lines().find(|l| l.starts_with("| ids | lr=") && l.ends_with("| yes |")).expect("a chosen setting");
    let lr = chosen.split('|').nth(2).unwrap().trim().to_string();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cells/ids-batch8-seed2/run.json")).unwrap()).unwrap();
    assert_eq!(record["overrides"], serde_json::json!(["batch=8", lr, "seed=2"]));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cells/both-batch16-seed1/run.json")).unwrap()).unwrap();
    assert_eq!(record["overrides"], serde_json::json!(["batch=16", "seed=1"]));
    let tuned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("tune/ids-lr0.05/run.json")).unwrap()).unwrap();
    assert_eq!(tuned["validation"], true);
    // Two seeds differ, so each trained row has a spread.
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 + 4);
    let svg = std::fs::read_to_string(out.join("epochs.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("both batch=16"), "the plot names every trained row");
    let metrics = std::fs::read_to_string(out.join("cells/both-batch8-seed1/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"eval\":")).count(), 2, "evaluated after each epoch");

    // Interrupted: one cell lost its evaluation, another never started. Only those two run again.
    std::fs::remove_file(out.join("cells/ids-batch16-seed1/eval.json")).unwrap();
    std::fs::remove_dir_all(out.join("cells/both-batch8-seed2")).unwrap();
    let output = run();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert_eq!(log.matches("finished earlier").count(), 3 + 2 + 8 - 2, "{log}");
    assert!(log.contains("cells/ids-batch16-seed1: done") && log.contains("cells/both-batch8-seed2: done"), "{log}");

    // Another config in the same folder would mix results: refused, nothing touched.
    std::fs::write(&config_path, config.replace("bootstrap = 200", "bootstrap = 300")).unwrap();
    let output = run();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("made with another run config"), "{}", stderr(&output));
    // So is a cell whose overrides are not the ones the experiment would give it now.
    std::fs::write(&config_path, &config).unwrap();
    let record_path = out.join("cells/both-batch8-seed1/run.json");
    let record = std::fs::read_to_string(&record_path).unwrap();
    std::fs::write(&record_path, record.replace("\"batch=8\"", "\"batch=9\"")).unwrap();
    let output = run();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("cells/both-batch8-seed1` was made with other overrides"), "{}", stderr(&output));
    std::fs::write(&record_path, record).unwrap();

    // A trained cell recommends; unknown items are noted and skipped.
    let cell = out.join("cells/ids-batch8-seed1");
    let test = std::fs::read_to_string(root.join("test.tsv")).unwrap();
    let item = test.lines().nth(1).unwrap().split('\t').nth(1).unwrap().to_string();
    let output = prnn().arg("recommend").arg(&cell).args(["--session", &format!("no-such-item,{item}"), "-k", "5"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("item `no-such-item` does not occur in the training data"), "{}", stderr(&output));
    let printed = stdout(&output);
    let listed: Vec<&str> = printed.lines().skip(2).collect();
    assert_eq!(listed.len(), 5, "{}", stdout(&output));
    let scores: Vec<f64> = listed.iter().map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "highest first: {scores:?}");
    let output = prnn().arg("recommend").arg(out.join("cells/item_knn")).args(["--session", &item, "-k", "3"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("item_knn"), "{}", stdout(&output));
    let output = prnn().arg("recommend").arg(&cell).args(["--session", "nothing,known"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn experiment_settings_are_checked_before_anything_runs() {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 100, items: 50, clusters: 5, dim: 4, ..Default::default() });
    let root = data.dir.path();
    std::fs::write(root.join("ids.prnn"), SPEC_ID).unwrap();
    let base = std::fs::read_to_string(&data.config).unwrap();
    let cases = [
        ("[experiment]\nbaselines = [\"itemknn\"]\n", 4, "did you mean `item_knn`?"),
        ("[experiment]\ncutoff = 10\n", 4, "`[experiment] cutoff = 10` is not one of `[eval] cutoffs`"),
        ("[experiment]\nplot_cutoffs = [5, 10]\n", 4, "`[experiment] plot_cutoffs` lists 10, which is not one of `[eval] cutoffs`"),
        ("[experiment]\nbootstrap_metric = \"hit\"\n", 4, "unknown variant `hit`"),
        ("[experiment]\ncompare_to = \"gru\"\n", 4, "neither a model of the given specs nor a baseline"),
        ("[experiment.tune]\nmodels = [\"ids\"]\ngrid = { rate = [0.1] }\n", 4, "unknown override `rate`"),
        ("[experiment.sweep]\nseed = [1, 2]\n", 4, "`seed` cannot be swept"),
        // A swept value is checked against each spec before any cell trains.
        ("[experiment.sweep]\n\"id_net.hidden\" = [8, 0]\n", 2, "the sweep setting `id_net.hidden=0` does not apply to"),
        (
            "[experiment.sweep]\n\"stop.patience\" = [1, 2]\n[experiment.tune]\nmodels = [\"ids\"]\ngrid = { lr = [0.1] }\n",
            4,
            "`[experiment.tune]` decides when tuned models stop",
        ),
        ("[experiment.tune]\nmodels = [\"gru\"]\ngrid = { lr = [0.1] }\n", 4, "names `gru`, which no given spec defines"),
        (
            "[experiment.tune]\nmodels = [\"ids\"]\nmethod = \"bayes\"\ntrials = 3\nspace.lr = { log = [0.01, 0.1] }\n",
            4,
            "unknown search method `bayes`",
        ),
        (
            "[experiment.tune]\nmodels = [\"ids\"]\nmethod = \"tpe\"\nspace.lr = { log = [0.01, 0.1] }\n",
            4,
            "a tpe search needs a number of trials",
        ),
        (
            "[experiment.tune]\nmodels = [\"ids\"]\nmethod = \"tpe\"\ntrials = 3\nspace.rate = { log = [0.01, 0.1] }\n",
            4,
            "unknown override `rate`",
        ),
        ("[experiment.tune]\nmodels = [\"ids\"]\nmethod = \"tpe\"\ntrials = 3\nspace.lr = { log = [0, 0.1] }\n", 4, "`lr`"),
        ("[experiment.tune]\nmodels = [\"ids\"]\nmethod = \"grid\"\nspace.lr = { log = [0.01, 0.1] }\n", 4, "continuous `log` range"),
        ("[experiment.tune]\nmodels = [\"ids\"]\ngrid = { lr = [0.1] }\nspace.lr = { log = [0.01, 0.1] }\n", 4, "both `grid` and `space`"),
    ];
    for (section, code, message) in cases {
        let config = root.join("bad.toml");
        std::fs::write(&config, format!("{base}\n{section}")).unwrap();
        let output = prnn()
            .arg("run")
            .arg(root.join("ids.prnn"))
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(root.join("never"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "{section}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{section}: {}", stderr(&output));
        assert!(!root.join("never").exists(), "{section}: nothing is written for a bad experiment");
    }
    // Two specs defining one model would share rows and folders; no spec and no baseline is nothing to run.
    let output = prnn()
        .arg("run")
        .arg(root.join("ids.prnn"))
        .arg(root.join("ids.prnn"))
        .arg("--config")
        .arg(&data.config)
        .arg("--out")
        .arg(root.join("never"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("both define the model `ids`"), "{}", stderr(&output));
    let output = prnn().arg("run").arg("--config").arg(&data.config).arg("--out").arg(root.join("never")).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("the experiment has nothing to run"), "{}", stderr(&output));
    assert!(!root.join("never").exists());
    // `--plan` lists the cells and writes nothing.
    let plan_of = |extra: &[&str]| {
        let output = prnn()
            .arg("run")
            .arg(root.join("ids.prnn"))
            .arg("--config")
            .arg(&data.config)
            .arg("--out")
            .arg(root.join("plan"))
            .args(extra)
            .arg("--plan")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let plan = plan_of(&["--seeds", "1,2"]);
    assert!(plan.contains("to run   cells/ids-seed1") && plan.contains("to run   cells/ids-seed2"), "{plan}");
    assert!(!root.join("plan").exists(), "--plan creates nothing");
    // A sweep that turns early stopping on gives that setting alone a validation run to find its epochs.
    let plan = plan_of(&["--seeds", "1", "--sweep", "stop=none,early"]);
    let validation: Vec<&str> = plan.lines().filter(|line| line.contains("(validation split)")).collect();
    assert_eq!(validation.len(), 1, "{plan}");
    assert!(validation[0].contains("tune/ids-stopearly"), "{plan}");
}

#[test]
fn the_library_plans_the_cells_that_prnn_run_lists() {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 100, items: 50, clusters: 5, dim: 4, ..Default::default() });
    let root = data.dir.path();
    std::fs::write(root.join("ids.prnn"), SPEC_ID).unwrap();
    std::fs::write(root.join("both.prnn"), SPEC_PARALLEL).unwrap();
    let config_path = root.join("experiment.toml");
    let experiment = "\n[experiment]\nspecs = [\"ids.prnn\", \"both.prnn\"]\nseeds = [1, 2]\nbaselines = [\"item_knn\"]\n\
                      compare_to = \"ids\"\n\n[experiment.tune]\nmodels = [\"both\"]\ngrid = { lr = [0.05, 0.2] }\n";
    std::fs::write(&config_path, std::fs::read_to_string(&data.config).unwrap() + experiment).unwrap();
    let config = common::run_config(&config_path);

    // Planned by the library: the specs come from the config, resolved against its folder.
    let mut plan = Plan::new(&config.experiment, &["batch=8,16".to_string()], &[]).unwrap();
    assert_eq!(plan.spec_paths, [root.join("ids.prnn"), root.join("both.prnn")]);
    for path in plan.spec_paths.clone() {
        let text = std::fs::read_to_string(&path).unwrap();
        let compiled = common::compile(&text, &config);
        plan.add_spec(PlannedSpec::new(path, compiled.model.name.clone(), &text)).unwrap();
    }
    plan.check_names().unwrap();
    let (first, tuning) = plan.first_phase().unwrap();
    let second = plan.second_phase(&HashMap::new(), &HashMap::new());
    let names = |cells: &[Cell]| cells.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), ["cells/item_knn", "tune/both-lr0.05", "tune/both-lr0.2"]);
    assert_eq!(tuning.iter().map(|t| t.model.as_str()).collect::<Vec<_>>(), ["both", "both"]);
    assert_eq!(
        names(&second),
        [
            "cells/ids-batch8-seed1",
            "cells/ids-batch8-seed2",
            "cells/ids-batch16-seed1",
            "cells/ids-batch16-seed2",
            "cells/both-batch8-seed1",
            "cells/both-batch8-seed2",
            "cells/both-batch16-seed1",
            "cells/both-batch16-seed2"
        ]
    );
    assert_eq!(plan.rows(), ["item_knn", "ids batch=8", "ids batch=16", "both batch=8", "both batch=16"]);
    assert_eq!(plan.reference().as_deref(), Some("item_knn"));

    // `prnn run --plan` lists the same cells, in the same order, all still to run.
    let output = prnn()
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .arg("--out")
        .arg(root.join("plan"))
        .args(["--sweep", "batch=8,16", "--plan"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    let listed: Vec<&str> =
        printed.lines().filter_map(|line| line.strip_prefix("  to run   ")).map(|rest| rest.split(' ').next().unwrap()).collect();
    let planned: Vec<String> = names(&first).into_iter().chain(names(&second)).collect();
    assert_eq!(listed, planned, "{printed}");
}

#[test]
fn a_session_scored_alone_ranks_its_next_item_where_evaluation_does() {
    let _serial = common::serial();
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 600, items: 80, clusters: 6, dim: 4, ..Default::default() });
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let network = common::network(common::compile(SPEC_ID, &config), &dataset, common::device());
    let executor = prnn::lower::Autograd::new(network);
    let evaluation = prnn::eval::evaluate(&executor, &dataset, &config.eval);
    assert_eq!(config.eval.ties, prnn::config::Ties::Conservative);
    let (mut checked, mut same) = (0, 0);
    // Evaluation ranks each event after the events before it in its session; `recommend` scores that prefix alone.
    for rank in &evaluation.ranks {
        let prefix: Vec<u32> = dataset.test.session(rank.session as usize)[..rank.position as usize].iter().map(|e| e.item).collect();
        let scores = prnn::eval::recommend::session_scores(&executor, &prefix);
        let target = scores[rank.item as usize];
        let above = scores.iter().filter(|&&s| s > target || s.is_nan()).count();
        let tied_others = scores.iter().filter(|&&s| s == target).count() - 1;
        checked += 1;
        same += usize::from((1 + above + tied_others) as f64 == rank.rank);
        let top = prnn::eval::recommend::top_k(&scores, 1)[0];
        assert!(scores[top] >= target, "the first recommendation scores at least as high as any item");
    }
    assert!(checked >= 40, "{checked} events");
    // Batched and single-row inference may round differently; a near tie can then swap two ranks, nothing more.
    assert!(same * 10 >= checked * 9, "{same} of {checked} ranks agree");
}

const SPEC_STOPPING: &str = "model ids {
  input id : item_id
  subnet id_net = gru(id, hidden = 16)
}
train {
  optimizer = adagrad(lr = 0.1)
  batch     = 16
  schedule  = simultaneous(epochs = 3)
  stop      = early(patience = 1)
}
";

#[test]
fn a_tpe_search_killed_and_resumed_makes_the_same_table_and_retrains_for_the_kept_epochs() {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 300, items: 120, clusters: 6, dim: 4, ..Default::default() });
    let root = data.dir.path();
    std::fs::write(root.join("ids.prnn"), SPEC_STOPPING).unwrap();
    let mut config = std::fs::read_to_string(&data.config).unwrap();
    // Twelve trials: the first ten are TPE's random start-up, the last two are proposed from their results.
    config += "\n[experiment]\nspecs = [\"ids.prnn\"]\nseeds = [1]\njobs = 2\n\n[experiment.tune]\nmodels = [\"ids\"]\n\
               method = \"tpe\"\ntrials = 12\nseed = 3\nspace.lr = { log = [0.01, 0.3] }\nspace.\"id_net.hidden\" = { int = [8, 32], step = 8 }\n";
    let config_path = root.join("experiment.toml");
    std::fs::write(&config_path, &config).unwrap();
    let command = |out: &Path| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"));
        command.arg("run").arg("--config").arg(&config_path).arg("--out").arg(out).current_dir(root);
        command
    };
    let whole = root.join("whole");
    let output = command(&whole).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let results =
        |out: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap() };
    let tuning = results(&whole)["tuning"].clone();
    assert_eq!(tuning.as_array().unwrap().len(), 12, "{tuning}");
    // Every trial's setting lies in the space, on its steps.
    for row in tuning.as_array().unwrap() {
        let setting = row["setting"].as_str().unwrap();
        let hidden: u64 = setting.split("id_net.hidden=").nth(1).unwrap().parse().unwrap();
        let lr: f64 = setting.split("lr=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(hidden.is_multiple_of(8) && (8..=32).contains(&hidden) && (0.01..=0.3).contains(&lr), "{setting}");
    }
    // The chosen trial stopped early; the full-data cell trains for the epochs it kept, without stopping.
    let chosen = tuning.as_array().unwrap().iter().find(|r| r["chosen"] == true).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("cells/ids-seed1/run.json")).unwrap()).unwrap();
    let overrides: Vec<String> = record["overrides"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
    let expected_start: Vec<String> = chosen["setting"].as_str().unwrap().split(' ').map(String::from).collect();
    assert_eq!(overrides[..2], expected_start[..], "{overrides:?}");
    assert_eq!(overrides[2], "stop=none", "{overrides:?}");
    assert!(overrides[3].starts_with("epochs=") && overrides[4] == "seed=1", "{overrides:?}");

    // The same search killed after some trials finished, then run again.
    let killed = root.join("killed");
    let mut child = command(&killed).stderr(std::process::Stdio::null()).stdout(std::process::Stdio::null()).spawn().unwrap();
    loop {
        if killed.join("tune/ids-trial05/eval.json").exists() {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the search ended before trial 5 finished");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let output = command(&killed).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (a, b) = (results(&whole), results(&killed));
    assert_eq!(a["tuning"], b["tuning"], "the resumed search proposes and scores the same trials");
    assert_eq!(a["rows"][0]["mrr"], b["rows"][0]["mrr"]);
}

#[test]
fn an_experiment_folder_follows_from_what_runs_and_a_run_that_adds_to_a_report_says_so() {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions: 120, items: 50, clusters: 5, dim: 4, ..Default::default() });
    let root = data.dir.path();
    std::fs::write(root.join("ids.prnn"), SPEC_ID.replace("epochs = 2", "epochs = 1")).unwrap();
    let config = std::fs::read_to_string(&data.config).unwrap()
        + "\n[experiment]\nspecs = [\"ids.prnn\"]\nseeds = [1]\nbaselines = [\"popularity\"]\n\
           plot_metrics = [\"ndcg\", \"mrr\"]\nplot_cutoffs = [5]\n";
    std::fs::write(root.join("demo.toml"), config).unwrap();
    let run = |extra: &[&str]| prnn().arg("run").args(["--config", "demo.toml"]).args(extra).current_dir(root).output().unwrap();
    let prefix = format!("experiment folder {}/", root.display());
    let folder = |output: &std::process::Output| stdout(output).lines().next().unwrap_or_default().replacen(&prefix, "", 1);

    let output = run(&["--plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(folder(&output), "runs/experiments/demo", "--plan prints the folder first");
    let output = run(&["ids.prnn", "--sweep", "lr=0.05,0.1", "--plan"]);
    assert_eq!(folder(&output), "runs/experiments/demo-ids-lr-0.05-0.1", "specs and sweeps name it");
    let output = run(&["--sweep", "lr=0.05", "--name", "mine", "--plan"]);
    assert_eq!(folder(&output), "runs/experiments/mine");
    assert!(!root.join("runs/experiments").exists(), "--plan creates nothing");

    let output = run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(root.join("runs/experiments/demo/results.md").is_file());
    assert!(!stderr(&output).contains("note:"), "a new experiment has nothing to warn about: {}", stderr(&output));
    // The plot shows `plot_metrics` at `plot_cutoffs`, each panel with the model's one epoch (NDCG is recorded
    // per epoch too), plus the legend's marker; `--cutoff` overrides the cut-offs and redraws finished cells.
    let plot = || std::fs::read_to_string(root.join("runs/experiments/demo/epochs.svg")).unwrap();
    let captions =
        |svg: &str| -> Vec<String> { svg.lines().filter(|line| line.ends_with(" per epoch")).map(String::from).collect::<Vec<_>>() };
    let svg = plot();
    assert_eq!(captions(&svg), ["NDCG@5 per epoch", "MRR@5 per epoch"]);
    assert_eq!(svg.matches("<circle").count(), 2 + 1, "{svg}");
    let output = run(&["--cutoff", "20", "--cutoff", "5"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let svg = plot();
    assert_eq!(captions(&svg), ["NDCG@20 per epoch", "MRR@20 per epoch", "NDCG@5 per epoch", "MRR@5 per epoch"]);
    assert_eq!(svg.matches("<circle").count(), 4 + 1, "{svg}");
    let output = run(&["--cutoff", "10", "--plan"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("`--cutoff 10` is not one of `[eval] cutoffs` (5, 20)"), "{}", stderr(&output));
    // The same experiment again changes nothing: no note.
    let output = run(&["--plan"]);
    assert!(!stderr(&output).contains("note:"), "{}", stderr(&output));
    // Adding cells to it rewrites its report: said before anything runs.
    let output = run(&["--out", "runs/experiments/demo", "--seeds", "1,2", "--plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds an earlier experiment's report; this run adds 1 cell to it and rewrites the report"),
        "{}",
        stderr(&output)
    );
}
