//! Experiments (`prnn run`): the cells a run config and its specs make, the settings a tuning search proposes, the
//! setting tuning keeps for each model, and whether an existing experiment folder holds what the plan would make.
//!
//! An experiment folder holds `config.toml` (the run config it was made with), `cells/` and `tune/` (one run
//! folder per cell, [`crate::run`]), `logs/` (each cell's output) and the report: `results.md`, `results.csv`,
//! `results.json` and `epochs.svg`. Running the cells is the command line's part: each is a child `prnn`
//! process.

pub mod existing;
pub mod plan;
pub mod search;
pub mod tuning;

use std::path::{Path, PathBuf};

pub use existing::{CellState, Conflict};
pub use plan::{Cell, Plan, PlanError, PlannedSpec, Setting, Work};
pub use tuning::{Tuning, TuningCell};

pub const CONFIG_FILE: &str = "config.toml";
pub const LOGS_DIR: &str = "logs";
pub const RESULTS_MD: &str = "results.md";
pub const RESULTS_CSV: &str = "results.csv";
pub const RESULTS_JSON: &str = "results.json";
pub const PLOT_SVG: &str = "epochs.svg";

/// The log a cell's child processes write into: `logs/cells-id_only-seed1.log` for `cells/id_only-seed1`.
pub fn log_path(out: &Path, cell: &Cell) -> PathBuf {
    out.join(LOGS_DIR).join(format!("{}.log", cell.name.replace('/', "-")))
}
