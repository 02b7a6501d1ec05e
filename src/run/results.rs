//! `eval.json` and `ranks.tsv`: an evaluation's summary and the rank of every test event.
//!
//! A folder with `eval.json` counts as evaluated (`prnn run` skips it), so `ranks.tsv` is written first.

use std::io::Write;
use std::path::Path;

use crate::config::Eval;
use crate::data::Dataset;
use crate::eval::{CutoffMetrics, Evaluation};

use super::file::write_text;
use super::{FileError, RunError, EVAL_FILE, RANKS_FILE};

/// The content of `eval.json`: the model's name, then `extra` fields (epochs, device, baseline settings),
/// then the protocol, the counts, the speed and the metrics.
pub fn summary(name: &str, extra: serde_json::Value, settings: &Eval, evaluation: &Evaluation) -> serde_json::Value {
    let mut summary = serde_json::json!({ "model": name });
    let fields = summary.as_object_mut().expect("an object");
    if let serde_json::Value::Object(extra) = extra {
        fields.extend(extra);
    }
    let serde_json::Value::Object(results) = serde_json::json!({
        "ties": settings.ties,
        "candidates": evaluation.candidates,
        "events": evaluation.events,
        "sessions": evaluation.sessions,
        "seconds": evaluation.seconds,
        "events_per_second": evaluation.events_per_second,
        "metrics": evaluation.metrics,
    }) else {
        unreachable!("json! of braces is an object")
    };
    fields.extend(results);
    summary
}

/// Writes `ranks.tsv`, then `eval.json`, into a run folder.
pub fn write(
    dir: &Path,
    name: &str,
    extra: serde_json::Value,
    settings: &Eval,
    dataset: &Dataset,
    evaluation: &Evaluation,
) -> Result<(), FileError> {
    write_as(dir, None, name, extra, settings, dataset, evaluation)
}

/// The files an evaluation is written to: `eval.json` and `ranks.tsv`, or, for the evaluation under another
/// config named `label`, `eval-LABEL.json` and `ranks-LABEL.tsv` beside them.
pub fn file_names(label: Option<&str>) -> (String, String) {
    match label {
        None => (EVAL_FILE.to_string(), RANKS_FILE.to_string()),
        Some(label) => (format!("eval-{label}.json"), format!("ranks-{label}.tsv")),
    }
}

/// [`write`] into the files of [`file_names`].
pub fn write_as(
    dir: &Path,
    label: Option<&str>,
    name: &str,
    extra: serde_json::Value,
    settings: &Eval,
    dataset: &Dataset,
    evaluation: &Evaluation,
) -> Result<(), FileError> {
    let (eval_file, ranks_file) = file_names(label);
    let ranks_path = dir.join(ranks_file);
    write_ranks(&ranks_path, dataset, evaluation).map_err(|source| FileError::write("", &ranks_path, source))?;
    let summary = summary(name, extra, settings, evaluation);
    write_text(&dir.join(eval_file), "", &(serde_json::to_string_pretty(&summary).expect("json") + "\n"))
}

/// One line per test event: its session's key, its position in the session, its item's ID and its rank.
pub fn write_ranks(path: &Path, dataset: &Dataset, evaluation: &Evaluation) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "SessionId\tPosition\tItemId\tRank")?;
    for rank in &evaluation.ranks {
        let session = dataset.test.key_text(rank.session as usize);
        writeln!(out, "{session}\t{}\t{}\t{}", rank.position, dataset.items.get_str(rank.item), rank.rank)?;
    }
    out.flush()
}

/// Whether the folder has been evaluated.
pub fn is_evaluated(dir: &Path) -> bool {
    dir.join(EVAL_FILE).exists()
}

/// The metrics of `eval.json`, every cut-off; None when the folder has no readable evaluation.
pub fn read_metrics(dir: &Path) -> Option<Vec<CutoffMetrics>> {
    let text = std::fs::read_to_string(dir.join(EVAL_FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(value.get("metrics")?.clone()).ok()
}

/// The metrics of `eval.json` at one cut-off.
pub fn read_metrics_at(dir: &Path, cutoff: u64) -> Option<CutoffMetrics> {
    read_metrics(dir)?.into_iter().find(|m| m.cutoff == cutoff)
}

/// One line of `ranks.tsv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankLine<'a> {
    pub session: &'a str,
    pub position: &'a str,
    pub item: &'a str,
    pub rank: f64,
}

/// Calls `visit` with each line of `ranks.tsv`, in order, without holding them all.
pub fn visit_ranks(dir: &Path, mut visit: impl FnMut(RankLine<'_>)) -> Result<(), RunError> {
    let path = dir.join(RANKS_FILE);
    let text = super::file::read_text(&path, "ranks")?;
    for (index, line) in text.lines().enumerate().skip(1) {
        let mut fields = line.split('\t');
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next().map(str::parse::<f64>)) {
            (Some(session), Some(position), Some(item), Some(Ok(rank))) => Some(RankLine { session, position, item, rank }),
            _ => None,
        };
        visit(parsed.ok_or_else(|| RunError::BadRank { path: path.clone(), line: index + 1 })?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::EventRank;

    fn dataset(dir: &Path) -> Dataset {
        let settings = crate::data::synth::SynthConfig { sessions: 60, items: 30, clusters: 3, dim: 2, ..Default::default() };
        crate::data::synth::write_dataset(&settings, dir, false).unwrap();
        let config = crate::config::parse("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n[run]\nout = \"runs\"\n", dir).unwrap();
        crate::data::load(&config, false).unwrap().0
    }

    #[test]
    fn an_evaluation_reads_back_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dataset(dir.path());
        let evaluation = Evaluation {
            metrics: vec![
                CutoffMetrics { cutoff: 5, recall: 0.5, mrr: 0.25, hit_rate: Some(0.5), ndcg: Some(0.3) },
                CutoffMetrics { cutoff: 20, recall: 0.75, mrr: 0.3125, hit_rate: Some(0.75), ndcg: Some(0.4) },
            ],
            events: 2,
            sessions: 1,
            candidates: dataset.items.len() as u64,
            seconds: 0.5,
            events_per_second: 4.0,
            ranks: vec![
                EventRank { session: 0, position: 1, item: 3, rank: 2.0 },
                EventRank { session: 0, position: 2, item: 7, rank: 12.5 },
            ],
        };
        assert!(!is_evaluated(dir.path()));
        write(dir.path(), "ids", serde_json::json!({ "epochs_trained": 2 }), &Eval::default(), &dataset, &evaluation).unwrap();
        assert!(is_evaluated(dir.path()));
        assert_eq!(read_metrics(dir.path()), Some(evaluation.metrics.clone()));
        assert_eq!(read_metrics_at(dir.path(), 20), Some(evaluation.metrics[1]));
        assert_eq!(read_metrics_at(dir.path(), 10), None);
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(EVAL_FILE)).unwrap()).unwrap();
        let keys: Vec<&str> = summary.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            ["model", "epochs_trained", "ties", "candidates", "events", "sessions", "seconds", "events_per_second", "metrics"]
        );

        let mut lines = Vec::new();
        visit_ranks(dir.path(), |line| lines.push((line.session.to_string(), line.position.to_string(), line.item.to_string(), line.rank)))
            .unwrap();
        let session = dataset.test.key_text(0);
        assert_eq!(
            lines,
            [
                (session.clone(), "1".to_string(), dataset.items.get_str(3).to_string(), 2.0),
                (session, "2".to_string(), dataset.items.get_str(7).to_string(), 12.5)
            ]
        );
    }

    #[test]
    fn a_broken_rank_line_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RANKS_FILE), "SessionId\tPosition\tItemId\tRank\n1\t1\ta\t3\n1\t2\tb\n").unwrap();
        let error = visit_ranks(dir.path(), |_| {}).unwrap_err();
        assert!(error.to_string().contains("ranks.tsv:3 is not a rank line"), "{error}");
        assert!(read_metrics(dir.path()).is_none(), "no eval.json: not evaluated");
    }
}
