//! The pipeline's shape: every library module imports only its own stage and earlier ones, and nothing after
//! the IR reads the checked model (the IR is what later stages know of the model).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, stage by stage in pipeline order. A module may use the modules of its
/// own stage and of earlier ones.
const STAGES: &[&[&str]] = &[
    &["diagnostic", "rng", "runtime", "checkpoint_file"],
    &["syntax"],
    &["check"],
    &["ir", "compile"],
    &["config"],
    &["data"],
    &["lower"],
    &["train"],
    &["eval", "baseline"],
    &["run"],
    &["report"],
    &["experiment"],
    &["serve"],
];

/// Stages after the IR: they know the model only through it.
const AFTER_IR: &[&str] = &["lower", "train", "eval", "baseline", "run", "report", "experiment", "serve"];

fn rank(module: &str) -> Option<usize> {
    STAGES.iter().position(|stage| stage.contains(&module))
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Every library file with its top-level module (`src/lower/fused/mod.rs` -> `lower`); the binary's files
/// (`main.rs`, `cli/`), `lib.rs` and the module list it shares with the front binary (`compiler_half.rs`) are
/// not a stage.
fn library_files() -> Vec<(String, PathBuf)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
            let module = first.trim_end_matches(".rs").to_string();
            (!["main", "lib", "compiler_half", "cli"].contains(&module.as_str())).then_some((module, path))
        })
        .collect()
}

/// The top-level modules a file names as `crate::NAME`, outside comments.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

#[test]
fn every_module_imports_only_its_own_and_earlier_stages() {
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, path) in library_files() {
        let own =
            rank(&module).unwrap_or_else(|| panic!("`{module}` ({}) has no stage in STAGES: add it where it belongs", path.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        for used in crate_paths(&text) {
            let used_rank = rank(&used).unwrap_or_else(|| panic!("{} names `crate::{used}`, which has no stage", path.display()));
            if used_rank > own {
                wrong.entry(path.display().to_string()).or_default().push(format!("{module} -> {used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "modules importing a later stage:\n{wrong:#?}");
}

#[test]
fn stages_after_the_ir_never_read_the_checked_model() {
    let mut readers = Vec::new();
    for (module, path) in library_files() {
        if AFTER_IR.contains(&module.as_str()) && crate_paths(&std::fs::read_to_string(&path).unwrap()).contains("check") {
            readers.push(path.display().to_string());
        }
    }
    assert!(readers.is_empty(), "these read `crate::check` instead of the IR: {readers:?}");
}

#[test]
fn the_rule_sees_a_later_stage_and_ignores_comments() {
    let text = "use crate::data::Dataset;\n// crate::cli is not code\nfn f() { crate::lower::device(\"cpu\"); }\n";
    assert_eq!(crate_paths(text), BTreeSet::from(["data".to_string(), "lower".to_string()]));
    assert!(rank("train") > rank("lower") && rank("ir") < rank("config"));
}
