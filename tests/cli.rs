//! CLI tests: commands, outputs and the documented exit codes.

use assert_cmd::Command;

fn prnn() -> Command {
    let mut command = Command::cargo_bin("prnn-torch").unwrap();
    command.current_dir(env!("CARGO_MANIFEST_DIR")).arg("--color").arg("never");
    command
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let output = prnn().arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = stdout(&output);
    let commands: &[&str] = if cfg!(feature = "torch") { &["check", "compile", "doctor"] } else { &["check", "compile"] };
    for command in commands {
        assert!(text.contains(command), "--help does not mention `{command}`:\n{text}");
    }
    assert!(text.contains("3 spec errors"), "{text}");
}

#[test]
fn check_accepts_every_paper_spec() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let files = |dir: std::path::PathBuf| {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "prnn"))
    };
    let specs: Vec<_> = files(root.clone()).chain(files(root.join("modern"))).collect();
    let output = prnn().arg("check").args(&specs).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("checked {n} specs: {n} ok, 0 failed", n = specs.len())));
}

#[test]
fn check_reports_spec_errors_with_location_and_exit_code_3() {
    let output = prnn().args(["check", "specs/id_only.prnn", "tests/bad/unknown_setting.prnn"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let err = stderr(&output);
    assert!(err.contains("error[E0204]: unknown setting `los`"), "{err}");
    assert!(err.contains("tests/bad/unknown_setting.prnn:5:3"), "{err}");
    assert!(err.contains("did you mean `loss`?"), "{err}");
    assert!(stdout(&output).contains("checked 2 specs: 1 ok, 1 failed"));
}

/// Issue 19: a spec of unclosed `(` took gigabytes (24 of them aborted under a 3 GB limit, 200 reached 4.3 GB in
/// 20 s). `prnn check` now refuses each file at its 17th bracket, before the grammar runs.
#[test]
fn check_refuses_thousands_of_unclosed_brackets_at_the_nesting_limit() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("unclosed_24.prnn", format!("model m {{\n  subnet a = gru({}\n}}\n", "(".repeat(24))),
        ("unclosed_200.prnn", format!("model m {{\n  subnet a = gru({}\n}}\n", "(".repeat(200))),
        ("unclosed_10000.prnn", format!("model m {{\n  subnet a = gru({}\n}}\n", "(".repeat(10_000))),
        ("one_mebibyte_line.prnn", "(".repeat(1 << 20)),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let output = prnn().current_dir(dir.path()).arg("check").args(files.map(|(name, _)| name)).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stdout(&output).contains("checked 4 specs: 0 ok, 4 failed"), "{}", stdout(&output));
    let err = stderr(&output);
    assert_eq!(err.matches("error[E0101]: brackets nested more than 16 deep").count(), 4, "{err}");
    // A snippet shows a long line up to a little past its last label, not the whole mebibyte.
    assert!(err.len() < 64 * 1024, "{} bytes of messages", err.len());
    insta::assert_snapshot!(runs_counted(&err));
}

/// `text` with every run of more than 20 equal characters written as its first 5 and a count: the snippets of
/// lines of thousands of brackets, and the spaces up to the mark at character 4,097, stay readable.
fn runs_counted(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mut run = 1;
        while chars.next_if_eq(&c).is_some() {
            run += 1;
        }
        if run > 20 {
            out.push_str(&format!("{}<{} more {c:?}>", c.to_string().repeat(5), run - 5));
        } else {
            out.extend(std::iter::repeat_n(c, run));
        }
    }
    out
}

#[test]
fn a_missing_spec_is_an_io_error_with_exit_code_5() {
    let output = prnn().args(["check", "specs/no_such_spec.prnn"]).output().unwrap();
    assert_eq!(output.status.code(), Some(5));
    let err = stderr(&output);
    assert!(err.contains("cannot read spec `specs/no_such_spec.prnn`"), "{err}");
    assert!(err.contains("help:"), "{err}");
}

#[test]
fn a_bad_command_line_exits_with_2() {
    let output = prnn().args(["compile", "specs/id_only.prnn", "--format", "svg"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn compile_prints_text_dot_and_json() {
    let text = prnn().args(["compile", "specs/parallel_res.prnn"]).output().unwrap();
    assert!(text.status.success());
    assert!(stdout(&text).starts_with("model parallel_res\n"));
    assert!(stdout(&text).contains("plan: residual, 20 epochs"));

    let dot = prnn().args(["compile", "specs/parallel_res.prnn", "--format", "dot"]).output().unwrap();
    assert!(stdout(&dot).starts_with("digraph \"parallel_res\" {"));

    let json = prnn().args(["compile", "specs/parallel_res.prnn", "--format", "json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["plan"]["strategy"], "residual");
}

#[test]
fn a_parameter_total_past_u64_is_said_to_overflow_in_text_and_json() {
    // Seven GRUs of 10^9 units (the checker's largest hidden size): 3·10^18 values of W_hh each, 2.1·10^19 in all.
    let subnets: String = (0..7).map(|k| format!("  subnet s{k} = gru(id, hidden = 1000000000)\n")).collect();
    let names: Vec<String> = (0..7).map(|k| format!("s{k}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("giant.prnn");
    std::fs::write(&spec, format!("model giant {{\n  input id : item_id\n{subnets}  merge = parallel({})\n}}\n", names.join(", ")))
        .unwrap();
    let output = prnn().arg("compile").arg(&spec).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let parameters = text.split_once("\nparameters\n").and_then(|(_, rest)| rest.split_once("\n\n")).map(|(table, _)| table);
    insta::assert_snapshot!(parameters.unwrap_or_else(|| panic!("{text}")));
    let json = prnn().arg("compile").arg(&spec).args(["--format", "json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["parameters"]["total"], serde_json::json!({ "overflows": true }));
    assert_eq!(
        value["parameters"]["by_owner"]["s0"],
        serde_json::json!({ "constant": 3_000_000_003_000_000_000u64, "n_items": 4_000_000_001u64 })
    );
}

#[test]
fn compile_with_a_config_decides_feature_kinds_and_concrete_shapes() {
    let output = prnn().args(["compile", "specs/parallel_res.prnn", "--config", "examples/amazon-image-vectors.toml"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // 1,585 training items and 512-d vectors in data/amazon-scientific-small.
    assert!(text.contains("input content: dense, width 512"), "{text}");
    assert!(text.contains("param W_in [1,585, 300] (475,500, sparse row updates)"), "{text}");
    assert!(!text.contains("n_items"), "every size is bound: {text}");
}

#[test]
fn data_stats_prints_the_table_and_prepare_caches_it() {
    let out = tempfile::tempdir().unwrap();
    let stats = prnn().args(["data", "stats", "examples/yoochoose-categories.toml"]).output().unwrap();
    assert!(stats.status.success(), "{}", stderr(&stats));
    let text = stdout(&stats);
    assert!(text.contains("414,561") && text.contains("112,088") && text.contains("10,874"), "{text}");
    assert!(text.contains("input content: categorical, width 47"), "{text}");

    let out_arg = out.path().to_str().unwrap();
    let first = prnn().args(["data", "prepare", "examples/yoochoose-categories.toml", "--out", out_arg]).output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("(written; prepared in"), "{}", stdout(&first));
    let second = prnn().args(["data", "prepare", "examples/yoochoose-categories.toml", "--out", out_arg]).output().unwrap();
    assert!(stdout(&second).contains("(current; loaded in"), "{}", stdout(&second));
    assert_eq!(std::fs::read_dir(out.path().join("cache")).unwrap().count(), 1);
}

#[test]
fn export_and_synth_never_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("prepared");
    let export_arg = export.to_str().unwrap();
    let out_arg = dir.path().join("runs");
    let prepare = |extra: &[&str]| {
        prnn()
            .args(["data", "prepare", "examples/amazon-image-vectors.toml", "--out", out_arg.to_str().unwrap(), "--export", export_arg])
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(prepare(&[]).status.success());
    let train = std::fs::read_to_string(export.join("train.tsv")).unwrap();
    assert!(train.starts_with("SessionId\tItemId\tTime\n"));
    assert_eq!(train.lines().count(), 17_774 + 1);
    std::fs::write(export.join("test.tsv"), "mine").unwrap();
    let refused = prepare(&[]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(export.join("test.tsv")).unwrap(), "mine");
    assert!(prepare(&["--force"]).status.success());
    assert_ne!(std::fs::read_to_string(export.join("test.tsv")).unwrap(), "mine");

    let synth = dir.path().join("synth");
    let args = ["data", "synth", synth.to_str().unwrap(), "--sessions", "300", "--items", "60", "--clusters", "6", "--dim", "4"];
    let written = prnn().args(args).output().unwrap();
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(synth.join("vectors.npy").exists() && synth.join("items.tsv").exists());
    assert_eq!(prnn().args(args).output().unwrap().status.code(), Some(5));
}

#[test]
fn bad_data_exits_with_6_and_names_file_and_line() {
    let output = prnn().args(["data", "stats", "tests/bad-data/too_few_fields/run.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(6));
    let err = stderr(&output);
    assert!(err.contains("error[E0901]") && err.contains("tests/bad-data/too_few_fields/train.tsv:4"), "{err}");
    let missing = prnn().args(["data", "stats", "tests/bad-data/missing_file/run.toml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(5));
}

#[test]
fn config_errors_exit_with_4_and_name_the_config() {
    let output = prnn().args(["compile", "specs/parallel_res.prnn", "--config", "tests/bad-config/unknown_key.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    let err = stderr(&output);
    assert!(err.contains("tests/bad-config/unknown_key.toml:7:1"), "{err}");
    assert!(err.contains("did you mean `cutoffs`?"), "{err}");

    let missing = prnn().args(["compile", "specs/parallel_res.prnn", "--config", "no/such.toml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(5));
}

#[test]
fn an_error_in_an_included_config_is_shown_in_the_included_file() {
    let output = prnn().args(["compile", "specs/parallel_res.prnn", "--config", "tests/bad-include/unknown_key.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    let err = stderr(&output);
    assert!(err.contains("tests/bad-include/included/unknown_key.toml:3:1"), "{err}");
    assert!(err.contains("= note: included by tests/bad-include/unknown_key.toml"), "{err}");
}

#[cfg(feature = "torch")]
#[test]
fn doctor_reports_libtorch_and_tests_the_cpu() {
    let output = prnn().arg("doctor").output().unwrap();
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("libtorch      2.11.0"), "{text}");
    assert!(text.contains("cpu      ok"), "{text}");
}
