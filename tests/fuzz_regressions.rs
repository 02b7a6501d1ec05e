//! The fuzz targets' regression files and seed corpora, replayed on stable Rust through the same checks the
//! fuzzers run (fuzz/harness.rs), so what a fuzzer once found stays fixed without a fuzzer in CI.
//!
//! fuzz/regressions/TARGET/NAME holds an input that once crashed, hung or broke an invariant of TARGET,
//! named after what it caught; fuzz/seeds/TARGET holds the small corpus fuzzing starts from.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>`, sorted; none when the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs every seed and regression file of `target`; fails naming each file that panics.
fn replay(target: &str) {
    let (_, run) = harness::TARGETS.iter().find(|(name, _)| *name == target).expect("a known target");
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} holds no seed");
    let mut failed = Vec::new();
    for file in seeds.iter().chain(&inputs("regressions", target)) {
        let bytes = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            failed.push(file.strip_prefix(fuzz_dir()).unwrap_or(file).display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: {} input(s) failed (panic messages above): {failed:?}", failed.len());
}

#[test]
fn spec_inputs() {
    replay("spec");
}

#[test]
fn config_inputs() {
    replay("config");
}

#[test]
fn sessions_inputs() {
    replay("sessions");
}

#[test]
fn item_table_inputs() {
    replay("item_table");
}

#[test]
fn npy_inputs() {
    replay("npy");
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint");
}

/// A folder under fuzz/seeds or fuzz/regressions that names no target would never be replayed, and a
/// target without a test above would never be either.
#[test]
fn every_folder_and_target_is_replayed() {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file!())).unwrap();
    for (target, _) in harness::TARGETS {
        assert!(source.contains(&format!("replay(\"{target}\")")), "no test replays target `{target}`");
    }
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else { continue };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(harness::TARGETS.iter().any(|(target, _)| *target == name), "fuzz/{kind}/{name} names no fuzz target");
        }
    }
}
