//! `metrics.jsonl`: one JSON line per trained epoch (an `EpochSummary`), with the epoch's evaluation under
//! `"eval"` when the run evaluates after every epoch.
//!
//! Each line is also an event of the run's TensorBoard event file ([`super::tensorboard`]).
//!
//! A line is appended and synced once the epoch's checkpoint is in place, never before, so a full disk never
//! leaves a line for an epoch without its checkpoint. The checkpoint keeps its epoch's line too: a run killed
//! between the two gets the line back when it resumes ([`restore_line`]). Lines of epochs after the
//! checkpoint (written by earlier prnn versions, which wrote the line first) are dropped then ([`keep_up_to`]).

use std::io::Write;
use std::path::Path;

use crate::eval::{CutoffMetrics, Evaluation};
use crate::train::stopping::GroupEnd;
use crate::train::EpochSummary;

use super::{FileError, METRICS_FILE};

/// Early stopping's record of an epoch, under `"stopping"` in its line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StopRecord {
    /// The metric stopped on, e.g. `MRR@20`, always on the validation split.
    pub metric: String,
    pub score: f64,
    /// The epoch is its group's best so far.
    pub best: bool,
    /// Set on the epoch that ended its group: the epoch kept and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<GroupEnd>,
}

/// An epoch's line: its summary, its evaluation under `"eval"`, early stopping's record under `"stopping"`,
/// and when the epoch ended under `"time"`.
pub fn line(summary: &EpochSummary, evaluation: Option<&Evaluation>, stop: Option<&StopRecord>) -> serde_json::Value {
    let mut line = serde_json::to_value(summary).expect("summaries serialise");
    let fields = line.as_object_mut().expect("a summary is an object");
    if let Some(evaluation) = evaluation {
        fields.insert("eval".into(), serde_json::to_value(&evaluation.metrics).expect("metrics serialise"));
    }
    if let Some(stop) = stop {
        fields.insert("stopping".into(), serde_json::to_value(stop).expect("stop records serialise"));
    }
    // In Unix seconds: TensorBoard's wall time of the epoch.
    fields.insert("time".into(), serde_json::json!(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0));
    line
}

/// Appends a line made by [`line`] to `metrics.jsonl` at `path`, and its event to the TensorBoard event file.
pub fn append_line(path: &Path, line: &serde_json::Value) -> Result<(), FileError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(file, "{line}")?;
        file.sync_all()
    };
    write().map_err(|source| FileError::write("metrics", path, source))?;
    super::tensorboard::append(path.parent().unwrap_or(Path::new(".")), line)
}

/// Appends `line`, the line of epoch `epoch` that its checkpoint keeps, when `metrics.jsonl` at `path` has
/// none: the run was stopped after the checkpoint was in place and before its line was written.
pub fn restore_line(path: &Path, epoch: u64, line: &serde_json::Value) -> Result<bool, FileError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let present = text.lines().any(|l| serde_json::from_str::<EpochSummary>(l).is_ok_and(|s| s.epoch == epoch));
    if present {
        return Ok(false);
    }
    append_line(path, line)?;
    Ok(true)
}

/// Drops the lines of epochs after `last` (epochs that ran but whose checkpoint was never written), and writes
/// the TensorBoard event file again from the lines kept.
pub fn keep_up_to(path: &Path, last: u64) -> Result<(), FileError> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<EpochSummary>(line).is_ok_and(|s| s.epoch <= last))
        .map(|line| format!("{line}\n"))
        .collect();
    if kept != text {
        std::fs::write(path, kept).map_err(|source| FileError::write("metrics", path, source))?;
    }
    super::tensorboard::rewrite(path.parent().unwrap_or(Path::new(".")))
}

/// The early-stopping records of a run folder's epochs, in order.
pub fn stop_records(dir: &Path) -> Vec<(u64, StopRecord)> {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|value| {
            let epoch = value["epoch"].as_u64()?;
            Some((epoch, serde_json::from_value(value.get("stopping")?.clone()).ok()?))
        })
        .collect()
}

/// What the report reads of an epoch's line; a field a line lacks reads as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLine {
    pub epoch: u32,
    /// The plan's phase the epoch belongs to, from 1 (alternating and residual training change it).
    pub phase: u32,
    pub seconds: f64,
    pub events: f64,
    /// The evaluation after the epoch, when the run made one.
    pub eval: Option<Vec<CutoffMetrics>>,
}

/// The epochs of a run folder, in order; no file or an unreadable line gives fewer epochs, not an error, since
/// a cell that never trained is reported as unfinished elsewhere.
pub fn read(dir: &Path) -> Vec<EpochLine> {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|value| EpochLine {
            epoch: value["epoch"].as_u64().unwrap_or(0) as u32,
            phase: value["phase"].as_u64().unwrap_or(1) as u32,
            seconds: value["seconds"].as_f64().unwrap_or(0.0),
            events: value["events"].as_f64().unwrap_or(0.0),
            eval: value.get("eval").and_then(|e| serde_json::from_value(e.clone()).ok()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(epoch: u64) -> EpochSummary {
        EpochSummary {
            epoch,
            phase: 1,
            trains: vec!["id_net".into()],
            loss: 0.5,
            batches: 10,
            events: 400,
            seconds: 2.0,
            events_per_second: 200.0,
            batches_per_second: 5.0,
        }
    }

    fn evaluation(mrr: f64) -> Evaluation {
        Evaluation {
            metrics: vec![CutoffMetrics { cutoff: 20, recall: 0.5, mrr, hit_rate: Some(0.5), ndcg: Some(mrr) }],
            events: 0,
            sessions: 0,
            candidates: 0,
            seconds: 0.0,
            events_per_second: 0.0,
            ranks: vec![],
        }
    }

    #[test]
    fn epochs_read_back_with_their_evaluations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        append_line(&path, &line(&summary(1), None, None)).unwrap();
        append_line(&path, &line(&summary(2), Some(&evaluation(0.25)), None)).unwrap();
        let epochs = read(dir.path());
        assert_eq!(epochs.len(), 2);
        assert_eq!((epochs[0].epoch, epochs[0].seconds, epochs[0].events, epochs[0].eval.as_ref()), (1, 2.0, 400.0, None));
        assert_eq!(epochs[1].eval, Some(evaluation(0.25).metrics));
        // Every line is an `EpochSummary` as training wrote it.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|line| serde_json::from_str::<EpochSummary>(line).is_ok()), "{text}");
    }

    #[test]
    fn a_resume_drops_the_epochs_after_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        for epoch in 1..=3 {
            append_line(&path, &line(&summary(epoch), None, None)).unwrap();
        }
        keep_up_to(&path, 2).unwrap();
        assert_eq!(read(dir.path()).iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2]);
        keep_up_to(&dir.path().join("absent.jsonl"), 2).unwrap();
        assert!(read(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn stop_records_read_back_with_their_epochs() {
        use crate::train::stopping::StopReason;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        let kept = |score, best, end| StopRecord { metric: "MRR@20".into(), score, best, end };
        let end = GroupEnd {
            group: 0,
            stopped_after: 3,
            kept_epoch: 2,
            kept_score: 0.3,
            reason: StopReason::Patience { patience: 1, min_delta: 0.0 },
        };
        append_line(&path, &line(&summary(1), None, None)).unwrap();
        append_line(&path, &line(&summary(2), Some(&evaluation(0.3)), Some(&kept(0.3, true, None)))).unwrap();
        append_line(&path, &line(&summary(3), Some(&evaluation(0.2)), Some(&kept(0.2, false, Some(end))))).unwrap();
        assert_eq!(stop_records(dir.path()), [(2, kept(0.3, true, None)), (3, kept(0.2, false, Some(end)))]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|line| serde_json::from_str::<EpochSummary>(line).is_ok()), "{text}");
    }
}
