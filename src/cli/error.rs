//! Failures on the command line: spec and config diagnostics carried up to be rendered, the errors the commands
//! raise themselves, and the one mapping from any error's chain to an exit code and to what to do about it.

use std::error::Error;
use std::fmt;
#[cfg(feature = "torch")]
use std::path::PathBuf;

use prnn::config::overrides::OverrideError;
use prnn::data::{DataCode, DataError};
use prnn::diagnostic::{render_plain, Diagnostic, Source};
use prnn::run::{FileError, RunError};

use super::data::DataCommandError;
use super::Exit;

/// Which stage's diagnostics: it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Spec,
    Config,
}

/// Spec or run-config diagnostics with the source they point into. The top level renders them with their
/// snippets, coloured per `--color`.
#[derive(Debug)]
pub struct Diagnostics {
    pub stage: Stage,
    pub source: Source,
    pub diagnostics: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn spec(source: &Source, diagnostics: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { stage: Stage::Spec, source: source.clone(), diagnostics }
    }

    pub fn config(source: &Source, diagnostics: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { stage: Stage::Config, source: source.clone(), diagnostics }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(render_plain(&self.source, &self.diagnostics).trim_end())
    }
}

impl Error for Diagnostics {}

/// What a damaged or missing checkpoint was needed for: it decides the advice, and for `prnn eval` the exit code.
#[cfg(feature = "torch")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointUse {
    Resume,
    Eval,
    Recommend,
}

/// Failures of `train`, `eval`, `baseline`, `recommend` and `run` that no library call reports.
#[cfg(feature = "torch")]
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("the validation split leaves no session to evaluate")]
    NoValidationSessions,
    #[error("early stopping chooses its epoch on held-out sessions, and this run trains on the whole training set")]
    StopNeedsValidation,
    #[error("cannot use the fused step: {0}")]
    FusedStep(#[source] prnn::lower::Unsupported),
    #[error("the run folder `{}` exists and is not empty", dir.display())]
    RunFolderTaken { dir: PathBuf, resumable: bool },
    #[error("the run in `{}` no longer matches its own spec and config", .0.display())]
    EditedRun(PathBuf),
    #[error("`{}` has no checkpoint yet", dir.display())]
    NoCheckpoint { dir: PathBuf, needed_for: CheckpointUse },
    #[error("{source}")]
    Checkpoint { needed_for: CheckpointUse, source: prnn::train::checkpoint::Unusable },
    #[error("{} does not fit the run's spec and config: {why}", path.display())]
    CatalogueMismatch { path: PathBuf, why: String },
    #[error("training diverged: the loss became NaN or infinite in epoch {epoch} (found by mini-batch {batch}); {}", match kept {
        Some(epoch) => format!("the checkpoint of epoch {epoch} is kept"),
        None => "no checkpoint was written".to_string(),
    })]
    Diverged { epoch: u64, batch: u64, kept: Option<u64> },
    #[error("unknown baseline `{0}`")]
    UnknownBaseline(String),
    #[error("`-k 0` asks for no items")]
    NoItemsAsked,
    #[error("no item of the session occurs in the training data")]
    NoKnownItem,
    #[error("`{}` is a baseline's folder; `prnn serve` serves trained networks", .0.display())]
    ServeBaseline(PathBuf),
    #[error("the {what} `{}` is not valid UTF-8, and prnn records it in the run folder's JSON, which holds text", path.display())]
    NotUtf8 { what: &'static str, path: PathBuf },
    #[error("{} cell(s) did not finish: {}", .0.len(), .0.join("; "))]
    UnfinishedCells(Vec<String>),
    #[error("cannot find the prnn executable to run cells with: {0}")]
    NoExecutable(#[source] std::io::Error),
    #[error("`--cutoff {cutoff}` is not one of `[eval] cutoffs` ({})", evaluated.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    CutoffNotEvaluated { cutoff: u64, evaluated: Vec<u64> },
}

#[cfg(feature = "torch")]
impl CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::NoValidationSessions => Exit::Data,
            CliError::StopNeedsValidation => Exit::Usage,
            CliError::FusedStep(_)
            | CliError::UnknownBaseline(_)
            | CliError::NoItemsAsked
            | CliError::NoKnownItem
            | CliError::ServeBaseline(_)
            | CliError::NotUtf8 { .. }
            | CliError::CutoffNotEvaluated { .. } => Exit::Usage,
            CliError::RunFolderTaken { .. } | CliError::NoCheckpoint { .. } | CliError::CatalogueMismatch { .. } => Exit::Io,
            CliError::EditedRun(_) => Exit::Config,
            // Evaluating with another config is the usual way to meet a checkpoint of other items.
            CliError::Checkpoint { source, .. } if source.is_damage() => Exit::Io,
            CliError::Checkpoint { needed_for: CheckpointUse::Eval, .. } => Exit::Config,
            CliError::Checkpoint { .. } => Exit::Io,
            CliError::Diverged { .. } | CliError::UnfinishedCells(_) => Exit::Diverged,
            CliError::NoExecutable(_) => Exit::Internal,
        }
    }

    fn help(&self) -> Option<String> {
        let help = match self {
            CliError::NoValidationSessions => "the training set's last sessions share no item with the rest; train without `--validation`",
            CliError::StopNeedsValidation => {
                "train with `--validation` to find the epochs, then on all the data with `stop=none epochs=K`; `prnn run` does both"
            }
            CliError::FusedStep(_) => "use `--step autograd`, or `--device cpu`",
            CliError::RunFolderTaken { resumable: true, .. } => {
                "give a new `--out` folder, or continue that run with `prnn train --resume DIR`"
            }
            CliError::RunFolderTaken { resumable: false, .. } => "give a new `--out` folder",
            CliError::EditedRun(_) => "its files were edited after training started; start a new run instead",
            CliError::CatalogueMismatch { .. } => {
                "the run folder's files were edited after training; delete catalogue.safetensors to read the items and \
                 features from the data files again, or train again"
            }
            CliError::NoCheckpoint { needed_for: CheckpointUse::Recommend, .. } => "finish training first: `prnn train --resume DIR`",
            CliError::NoCheckpoint { .. } => "the run stopped before its first epoch ended; continue it with `prnn train --resume DIR`",
            // A damaged file's own advice (`Unusable::help`) says what to do.
            CliError::Checkpoint { source, .. } if source.is_damage() => return None,
            CliError::Checkpoint { needed_for: CheckpointUse::Resume, .. } => "start a new run; this folder's checkpoint cannot be continued",
            CliError::Checkpoint { needed_for: CheckpointUse::Eval, .. } => "evaluate with the run's own config, whose data the run was trained on",
            CliError::Checkpoint { needed_for: CheckpointUse::Recommend, .. } => {
                "the run folder's checkpoint does not match its data; train again"
            }
            CliError::Diverged { .. } => "lower the learning rate (`lr=...`), or check the features for extreme values",
            CliError::UnknownBaseline(name) => {
                let names = prnn::config::BASELINE_NAMES;
                let hint = prnn::diagnostic::closest(name, names).map(|b| format!("did you mean `{b}`? ")).unwrap_or_default();
                return Some(format!("{hint}the baselines are {}", names.join(", ")));
            }
            CliError::NoItemsAsked => "e.g. `-k 20`",
            CliError::NotUtf8 { .. } => {
                "rename it, or name it through a symbolic link whose path is UTF-8 (`ln -s` it under a plain name); \
                 run folders (`--out`) may have any name"
            }
            CliError::ServeBaseline(_) => "recommend from a baseline with `prnn recommend DIR --session ...`, or serve a run of `prnn train`",
            CliError::NoKnownItem => {
                "give item IDs as the session files write them (`prnn data stats` lists the data); the model can only continue sessions of items it was trained on"
            }
            CliError::UnfinishedCells(_) => {
                "their logs are in the experiment's `logs/` folder; run the same command again to retry them"
            }
            CliError::NoExecutable(_) => return None,
            CliError::CutoffNotEvaluated { .. } => "the cells are evaluated at `[eval] cutoffs` only: plot one of them, or add it there",
        };
        Some(help.to_string())
    }
}

/// The exit code of a failure: that of the outermost error in its chain whose kind decides one, so that a caller
/// which knows better (an override in a sweep is a config problem, not a command-line one) wraps the cause.
pub fn exit_code(error: &anyhow::Error) -> Exit {
    error.chain().find_map(exit_of).unwrap_or(Exit::Internal)
}

fn exit_of(cause: &(dyn Error + 'static)) -> Option<Exit> {
    if let Some(diagnostics) = cause.downcast_ref::<Diagnostics>() {
        return Some(match diagnostics.stage {
            Stage::Spec => Exit::Spec,
            Stage::Config => Exit::Config,
        });
    }
    if let Some(error) = cause.downcast_ref::<DataError>() {
        return Some(if error.code == DataCode::File { Exit::Io } else { Exit::Data });
    }
    if let Some(error) = cause.downcast_ref::<DataCommandError>() {
        return Some(error.exit());
    }
    if cause.is::<prnn::run::lock::LockError>() {
        return Some(Exit::Io);
    }
    if cause.is::<FileError>() || cause.is::<RunError>() || cause.is::<std::io::Error>() {
        return Some(Exit::Io);
    }
    if cause.is::<OverrideError>() {
        return Some(Exit::Usage);
    }
    // Settings (spec, overrides or run config) that this machine cannot hold: the run as configured cannot go.
    if cause.is::<prnn::ir::memory::TooLarge>() {
        return Some(Exit::Config);
    }
    #[cfg(not(feature = "torch"))]
    if cause.is::<super::runtime::RuntimeMissing>() {
        return Some(Exit::Io);
    }
    #[cfg(feature = "torch")]
    {
        use prnn::experiment::{Conflict, PlanError};
        if cause.is::<prnn::runtime::memory::BadLimit>() {
            return Some(Exit::Usage);
        }
        if let Some(error) = cause.downcast_ref::<CliError>() {
            return Some(error.exit());
        }
        if let Some(error) = cause.downcast_ref::<PlanError>() {
            return Some(match error {
                PlanError::NotASweep(_) | PlanError::EmptySweep(_) | PlanError::NothingToRun | PlanError::SameModel { .. } => Exit::Usage,
                PlanError::UnknownKey(_)
                | PlanError::SeedSwept
                | PlanError::StopSweptWhileTuning(_)
                | PlanError::UnknownRow { .. }
                | PlanError::UnknownTunedModel(_)
                | PlanError::Space(_)
                | PlanError::Search(_) => Exit::Config,
            });
        }
        if cause.is::<Conflict>() || cause.is::<prnn::experiment::search::SearchError>() {
            return Some(Exit::Config);
        }
        if cause.is::<prnn::lower::DeviceError>() || cause.is::<prnn::lower::Unsupported>() {
            return Some(Exit::Usage);
        }
        if cause.is::<prnn::checkpoint_file::Unusable>() {
            return Some(Exit::Io);
        }
        // The address is taken or Redis does not answer: the server's surroundings, like a missing file.
        if cause.is::<prnn::serve::ServeError>() {
            return Some(Exit::Io);
        }
    }
    None
}

/// What to do about a failure: the advice of each error in its chain, outermost first.
pub fn helps(error: &anyhow::Error) -> Vec<String> {
    let mut helps: Vec<String> = Vec::new();
    for help in error.chain().filter_map(help_of) {
        if !helps.contains(&help) {
            helps.push(help);
        }
    }
    helps
}

fn help_of(cause: &(dyn Error + 'static)) -> Option<String> {
    if let Some(error) = cause.downcast_ref::<FileError>() {
        return error.help().map(str::to_string);
    }
    if let Some(error) = cause.downcast_ref::<RunError>() {
        return error.help().map(str::to_string);
    }
    if let Some(error) = cause.downcast_ref::<prnn::run::lock::LockError>() {
        return Some(error.help());
    }
    if let Some(error) = cause.downcast_ref::<prnn::checkpoint_file::Unusable>() {
        return error.help().map(str::to_string);
    }
    if let Some(error) = cause.downcast_ref::<DataCommandError>() {
        return error.help().map(str::to_string);
    }
    if let Some(error) = cause.downcast_ref::<prnn::ir::memory::TooLarge>() {
        return Some(error.help());
    }
    #[cfg(feature = "torch")]
    {
        if let Some(error) = cause.downcast_ref::<CliError>() {
            return error.help();
        }
        if let Some(error) = cause.downcast_ref::<prnn::experiment::PlanError>() {
            return error.help().map(str::to_string);
        }
        if let Some(error) = cause.downcast_ref::<prnn::experiment::Conflict>() {
            return Some(error.help().to_string());
        }
        if cause.is::<prnn::lower::DeviceError>() {
            return Some("use `--device cpu`, or `auto` to take CUDA only when it is there".to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outermost_error_that_knows_its_class_decides_the_exit_code() {
        let read = || FileError::Read { what: "spec", path: "a.prnn".into(), source: std::io::ErrorKind::NotFound.into() };
        assert_eq!(exit_code(&anyhow::Error::new(read())), Exit::Io);
        assert_eq!(exit_code(&anyhow::Error::new(read()).context("while reading")), Exit::Io, "a context has no class of its own");
        assert_eq!(exit_code(&anyhow::anyhow!("a bare message")), Exit::Internal);
        let spec = Diagnostics::spec(&Source::new("a.prnn", ""), vec![]);
        assert_eq!(exit_code(&anyhow::Error::new(spec)), Exit::Spec);
        let data = DataError::new(DataCode::Row, std::path::Path::new("t.tsv"), "bad row");
        assert_eq!(exit_code(&anyhow::Error::new(data)), Exit::Data);
        let missing = DataError::new(DataCode::File, std::path::Path::new("t.tsv"), "missing");
        assert_eq!(exit_code(&anyhow::Error::new(missing)), Exit::Io);
        assert_eq!(exit_code(&anyhow::Error::new(OverrideError::NoNegatives)), Exit::Usage);
    }

    #[cfg(feature = "torch")]
    #[test]
    fn a_wrapper_overrides_the_class_of_its_cause() {
        use prnn::experiment::PlanError;
        let unknown = prnn::config::overrides::check_key("rate").unwrap_err();
        assert_eq!(exit_code(&anyhow::Error::new(unknown.clone())), Exit::Usage);
        assert_eq!(exit_code(&anyhow::Error::new(PlanError::UnknownKey(unknown))), Exit::Config, "a swept key lives in the config");
        let damaged = || prnn::train::checkpoint::Unusable::Damaged { path: "c".into(), why: "torn".into() };
        assert_eq!(exit_code(&anyhow::Error::new(damaged())), Exit::Io);
        let other_items = prnn::train::checkpoint::Unusable::OtherItems { path: "c".into(), saved: 3, now: 4 };
        let eval = CliError::Checkpoint { needed_for: CheckpointUse::Eval, source: other_items };
        assert_eq!(exit_code(&anyhow::Error::new(eval).context("cannot evaluate")), Exit::Config, "another config's data");
        let eval = CliError::Checkpoint { needed_for: CheckpointUse::Eval, source: damaged() };
        assert_eq!(exit_code(&anyhow::Error::new(eval).context("cannot evaluate")), Exit::Io, "a damaged file is a file problem");
    }

    #[test]
    fn every_error_in_the_chain_gives_its_advice_once() {
        let dir = tempfile::tempdir().unwrap();
        let error = anyhow::Error::new(prnn::run::read_run(&dir.path().join("absent")).unwrap_err());
        assert_eq!(helps(&error), ["give the folder `prnn train` wrote", "check the path; relative paths start from the current folder"]);
        assert!(helps(&anyhow::anyhow!("no advice")).is_empty());
    }
}
