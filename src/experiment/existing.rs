//! What an experiment folder already holds: the run config it was made with, and the state and origin of each
//! cell. Running an experiment again continues it, so a cell made from another spec, config or overrides must be
//! refused rather than mixed into the table.

use std::path::{Path, PathBuf};

use crate::run::{RunRecord, BASELINE_FILE, EVAL_FILE, RECORD_FILE};

use super::plan::{Cell, PlannedSpec, Work};
use super::CONFIG_FILE;

/// An experiment folder that holds something the plan would not make.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Conflict {
    #[error("`{}` holds an experiment made with another run config", out.display())]
    OtherConfig { out: PathBuf },
    #[error("the cell `{}` was made with {why}", dir.display())]
    Cell { dir: PathBuf, why: Mismatch },
}

impl Conflict {
    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            Conflict::OtherConfig { .. } => "give a new `--out` folder; cells made with different data or settings must not share a table",
            Conflict::Cell { .. } => "give a new `--out` folder, or delete that cell's folder to train it again",
        }
    }
}

/// How an existing cell differs from the plan's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("another version of its spec")]
    Spec,
    #[error("another run config")]
    Config,
    #[error("other overrides (a changed sweep or tuning result)")]
    Overrides,
    #[error("a damaged run.json")]
    DamagedRecord,
}

/// Whether the folder was made with `config_text`: Ok(true) when it records that config, Ok(false) when it
/// records none yet (a new experiment).
pub fn check_config(out: &Path, config_text: &str) -> Result<bool, Conflict> {
    match std::fs::read_to_string(out.join(CONFIG_FILE)) {
        Ok(recorded) if recorded != config_text => Err(Conflict::OtherConfig { out: out.to_path_buf() }),
        Ok(_) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// Whether a trained cell that exists was made as the plan would make it: from the same spec text, config and
/// overrides. A cell not started yet, or a baseline (refitted in seconds), always fits.
pub fn check_cell(out: &Path, cell: &Cell, specs: &[PlannedSpec], config_hash: &str) -> Result<(), Conflict> {
    let Work::Train { spec, overrides, validation } = &cell.work else { return Ok(()) };
    let dir = out.join(&cell.name);
    let Ok(text) = std::fs::read_to_string(dir.join(RECORD_FILE)) else { return Ok(()) };
    let mismatch = match serde_json::from_str::<RunRecord>(&text) {
        Ok(record) if record.spec_hash != specs[*spec].text_hash => Some(Mismatch::Spec),
        Ok(record) if record.config_hash != config_hash => Some(Mismatch::Config),
        Ok(record) if &record.overrides != overrides || record.validation != *validation => Some(Mismatch::Overrides),
        Ok(_) => None,
        Err(_) => Some(Mismatch::DamagedRecord),
    };
    match mismatch {
        Some(why) => Err(Conflict::Cell { dir, why }),
        None => Ok(()),
    }
}

/// Where a cell stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// Evaluated: skipped when the experiment runs again.
    Finished,
    /// Trained for some epochs: continued from its checkpoint.
    Started,
    ToRun,
}

impl CellState {
    pub fn of(dir: &Path) -> CellState {
        if dir.join(EVAL_FILE).exists() {
            CellState::Finished
        } else if dir.join(RECORD_FILE).exists() {
            CellState::Started
        } else {
            CellState::ToRun
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CellState::Finished => "finished",
            CellState::Started => "started",
            CellState::ToRun => "to run",
        }
    }
}

/// Removes what a cell that did not finish left, when it is not worth continuing: a folder with no record (a
/// child stopped before writing anything worth keeping), or a baseline's (refitted in seconds).
pub fn remove_unfinished(dir: &Path) {
    let finished = dir.join(EVAL_FILE).exists();
    let baseline = dir.join(BASELINE_FILE).exists();
    let started = dir.join(RECORD_FILE).exists();
    if dir.exists() && !finished && (baseline || !started) {
        // Nothing to keep in either case; a folder that cannot be removed makes the child fail and say why.
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    fn record(overrides: &[&str]) -> RunRecord {
        RunRecord {
            prnn_version: "0.1.0".into(),
            torch_version: None,
            command_line: vec![],
            spec_path: "ids.prnn".into(),
            config_path: "run.toml".into(),
            config_dir: "/".into(),
            spec_hash: run::hash("spec"),
            config_hash: run::hash("config"),
            model_hash: String::new(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            max_batches: None,
            device: "cpu".into(),
            step: "fused".into(),
            parameters: 0,
            validation: false,
            model: serde_json::Value::Null,
            checksum: None,
        }
    }

    #[test]
    fn an_existing_cell_must_come_from_the_same_spec_config_and_overrides() {
        let out = tempfile::tempdir().unwrap();
        let specs = [PlannedSpec::new("ids.prnn".into(), "ids", "spec")];
        let cell = Cell {
            name: "cells/ids-seed1".into(),
            work: Work::Train { spec: 0, overrides: vec!["seed=1".into()], validation: false },
            row: "ids".into(),
        };
        let check = |record: &str| {
            let dir = out.path().join(&cell.name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(RECORD_FILE), record).unwrap();
            check_cell(out.path(), &cell, &specs, &run::hash("config")).map_err(|e| e.to_string())
        };
        assert_eq!(check_cell(out.path(), &cell, &specs, &run::hash("config")), Ok(()), "not started yet");
        assert_eq!(check(&serde_json::to_string(&record(&["seed=1"])).unwrap()), Ok(()));
        let dir = out.path().join("cells/ids-seed1").display().to_string();
        assert_eq!(
            check(&serde_json::to_string(&record(&["seed=2"])).unwrap()),
            Err(format!("the cell `{dir}` was made with other overrides (a changed sweep or tuning result)"))
        );
        let mut other = record(&["seed=1"]);
        other.config_hash = run::hash("another");
        assert_eq!(check(&serde_json::to_string(&other).unwrap()), Err(format!("the cell `{dir}` was made with another run config")));
        assert_eq!(check("{"), Err(format!("the cell `{dir}` was made with a damaged run.json")));
    }

    #[test]
    fn the_folder_remembers_its_config() {
        let out = tempfile::tempdir().unwrap();
        assert_eq!(check_config(out.path(), "a = 1\n"), Ok(false));
        std::fs::write(out.path().join(CONFIG_FILE), "a = 1\n").unwrap();
        assert_eq!(check_config(out.path(), "a = 1\n"), Ok(true));
        assert_eq!(check_config(out.path(), "a = 2\n"), Err(Conflict::OtherConfig { out: out.path().to_path_buf() }));
    }

    #[test]
    fn unfinished_cells_worth_nothing_are_removed() {
        let out = tempfile::tempdir().unwrap();
        let folder = |name: &str, files: &[&str]| {
            let dir = out.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for file in files {
                std::fs::write(dir.join(file), "").unwrap();
            }
            remove_unfinished(&dir);
            (dir.exists(), CellState::of(&dir))
        };
        assert_eq!(folder("empty", &[]), (false, CellState::ToRun));
        assert_eq!(folder("started", &[RECORD_FILE]), (true, CellState::Started));
        assert_eq!(folder("baseline", &[BASELINE_FILE]), (false, CellState::ToRun));
        assert_eq!(folder("finished", &[BASELINE_FILE, EVAL_FILE]), (true, CellState::Finished));
    }
}
