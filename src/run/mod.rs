//! Run folders: the files `prnn train`, `eval` and `baseline` leave, and how they are read back.
//!
//! A trained run's folder holds `spec.prnn` and `config.toml` (copies of what it was made from), `run.json`
//! (a [`RunRecord`]), `metrics.jsonl` (a line per epoch, [`metrics`]), `checkpoint.safetensors`
//! (written by `train::checkpoint` in the format of `checkpoint_file`) and `catalogue.safetensors` (the items
//! and feature rows inference needs, `data::catalogue`); `prnn eval` adds `eval.json` and `ranks.tsv` ([`results`]). A baseline's folder holds
//! `config.toml`, `baseline.json` (a [`BaselineRecord`]), `eval.json` and `ranks.tsv`. The cells of `prnn run`
//! are such folders, and its report reads them back through this module.

pub mod file;
pub mod lock;
#[cfg(feature = "torch")]
pub mod metrics;
mod record;
#[cfg(feature = "torch")]
pub mod results;
#[cfg(feature = "torch")]
pub mod tensorboard;

use std::path::{Path, PathBuf};

pub use file::FileError;
pub use record::{
    read_baseline, read_fit_seconds, read_run, write_baseline, write_run, BaselineFolder, BaselineRecord, RunFolder, RunRecord,
};

pub const SPEC_FILE: &str = "spec.prnn";
pub const CONFIG_FILE: &str = "config.toml";
pub const RECORD_FILE: &str = "run.json";
pub const BASELINE_FILE: &str = "baseline.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const EVAL_FILE: &str = "eval.json";
pub const RANKS_FILE: &str = "ranks.tsv";

/// A run folder that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{}` is not a run folder", dir.display())]
    NotARunFolder { dir: PathBuf, source: FileError },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{} is damaged: {source}", path.display())]
    Damaged { path: PathBuf, source: serde_json::Error },
    #[error("{} does not match its checksum: it was changed after prnn wrote it", path.display())]
    Altered { path: PathBuf },
    #[error("{} names an unknown baseline `{name}`", path.display())]
    UnknownBaseline { path: PathBuf, name: String },
    #[error("{}:{line} is not a rank line (`SessionId<tab>Position<tab>ItemId<tab>Rank`)", path.display())]
    BadRank { path: PathBuf, line: usize },
}

impl RunError {
    /// What to do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            RunError::NotARunFolder { .. } => Some("give the folder `prnn train` wrote"),
            RunError::File(error) => error.help(),
            RunError::Damaged { path, .. } if path.ends_with(BASELINE_FILE) => Some("run `prnn baseline` again"),
            RunError::Damaged { .. } => Some("the run folder cannot be used; train again"),
            RunError::Altered { .. } => {
                Some("undo the edit (a run's record says how prnn made the folder), or train a new run with what you want to change")
            }
            RunError::UnknownBaseline { .. } | RunError::BadRank { .. } => None,
        }
    }
}

/// This process's command line as records keep it: an argument that is not UTF-8 (a path is any bytes on
/// Unix) is written with U+FFFD in place of its bad bytes rather than refused.
pub fn command_line() -> Vec<String> {
    std::env::args_os().map(|argument| argument.to_string_lossy().into_owned()).collect()
}

/// BLAKE3 of a text, as run records keep it.
pub fn hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// A new run folder under `out`, named after the model (or baseline) and the time; never an existing one.
pub fn new_run_dir(out: &Path, name: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let base = out.join(format!("{name}-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// Whether a new run must not be written into `dir`: it exists and holds something (or cannot be listed).
pub fn is_taken(dir: &Path) -> bool {
    dir.exists() && std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_folder_never_reuses_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = new_run_dir(dir.path(), "id_only");
        assert!(first.file_name().unwrap().to_string_lossy().starts_with("id_only-"));
        std::fs::create_dir(&first).unwrap();
        let second = new_run_dir(dir.path(), "id_only");
        // Within the same second the stamp repeats, and a counter tells the folders apart.
        assert_ne!(first, second);
        assert!(!second.exists());
    }

    #[test]
    fn only_a_folder_with_files_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert!(!is_taken(&run));
        std::fs::create_dir(&run).unwrap();
        assert!(!is_taken(&run), "an empty folder may hold a new run");
        std::fs::write(run.join("run.json"), "{}").unwrap();
        assert!(is_taken(&run));
    }
}
