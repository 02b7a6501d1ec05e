//! The numbers of the results table and the plot, read back from the cells' run folders: metrics over seeds, the
//! change against the reference row, the paired bootstrap against the base model, and the metrics per epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::eval::bootstrap::paired_bootstrap;
use crate::run::{self, metrics, results, RunError};

use super::plot::{EpochSeries, Level};
use super::{ResultRow, Spread, Versus};

/// A row of the table and the run folders of its cells: one per seed, or one for a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct RowCells {
    pub label: String,
    pub baseline: bool,
    pub cells: Vec<CellFolder>,
}

/// A cell's run folder, and how the table names the cell when it did not finish (e.g. `seed=2 did not finish`).
#[derive(Debug, Clone, PartialEq)]
pub struct CellFolder {
    pub dir: PathBuf,
    pub unfinished: String,
}

/// The trained rows whose label ends with `suffix` (a sweep setting, or nothing) are tested against the row
/// `base` by the paired bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub base: String,
    pub suffix: String,
}

/// A test session's hits and reciprocal ranks within the cut-off, and its events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionSum {
    pub hits: f64,
    pub reciprocal: f64,
    pub events: f64,
}

/// Per-session sums, keyed by the session's ID, in the order of `ranks.tsv`.
pub type SessionSums = IndexMap<String, SessionSum>;

/// The per-session sums of one run folder's `ranks.tsv`.
pub fn session_sums(dir: &Path, cutoff: u64) -> Result<SessionSums, RunError> {
    let mut sums = SessionSums::new();
    results::visit_ranks(dir, |line| {
        let sum = sums.entry(line.session.to_string()).or_default();
        if line.rank <= cutoff as f64 {
            sum.hits += 1.0;
            sum.reciprocal += 1.0 / line.rank;
        }
        sum.events += 1.0;
    })?;
    Ok(sums)
}

/// The per-session sums of a row's cells, hits and reciprocal ranks averaged over the cells (seeds) that were
/// evaluated. None when none was, or when the cells did not rank the same sessions.
pub fn mean_session_sums<'a>(dirs: impl IntoIterator<Item = &'a Path>, cutoff: u64) -> Option<SessionSums> {
    let mut total: Option<SessionSums> = None;
    let mut n = 0.0;
    for dir in dirs {
        let Ok(sums) = session_sums(dir, cutoff) else { continue };
        n += 1.0;
        match &mut total {
            None => total = Some(sums),
            Some(total) => {
                for (session, sum) in sums {
                    let entry = total.get_mut(&session)?;
                    entry.hits += sum.hits;
                    entry.reciprocal += sum.reciprocal;
                }
            }
        }
    }
    let mut total = total?;
    for sum in total.values_mut() {
        sum.hits /= n;
        sum.reciprocal /= n;
    }
    Some(total)
}

/// What a trained run's `metrics.jsonl` says: training seconds and events over its epochs, and its metrics at
/// the cut-off after each epoch it was evaluated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Training {
    pub seconds: f64,
    pub events: f64,
    /// `(epoch, recall, mrr)`.
    pub points: Vec<(u32, f64, f64)>,
    /// The epochs that begin a new phase of the plan (after the first).
    pub phase_starts: Vec<u32>,
}

pub fn training(dir: &Path, cutoff: u64) -> Training {
    let mut training = Training::default();
    let mut phase = None;
    for epoch in metrics::read(dir) {
        if phase.is_some_and(|phase| phase != epoch.phase) {
            training.phase_starts.push(epoch.epoch);
        }
        phase = Some(epoch.phase);
        training.seconds += epoch.seconds;
        training.events += epoch.events;
        if let Some(m) = epoch.eval.iter().flatten().find(|m| m.cutoff == cutoff) {
            training.points.push((epoch.epoch, m.recall, m.mrr));
        }
    }
    training
}

/// The table's rows, in the order given: each row's metrics over its finished cells, the change of every
/// finished row against the `reference` row, and the bootstrap of each `comparisons` entry.
pub fn rows(table: &[RowCells], cutoff: u64, reference: Option<&str>, comparisons: &[Comparison], bootstrap: u64) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = table.iter().map(|row| result_row(row, cutoff)).collect();
    if let Some(reference) = reference.and_then(|r| rows.iter().find(|row| row.label == r).cloned()) {
        for row in rows.iter_mut() {
            let finished = row.baseline || row.seeds > 0;
            if finished && reference.recall.mean > 0.0 && reference.mrr.mean > 0.0 {
                row.recall_change = Some(100.0 * (row.recall.mean / reference.recall.mean - 1.0));
                row.mrr_change = Some(100.0 * (row.mrr.mean / reference.mrr.mean - 1.0));
            }
        }
    }
    for comparison in comparisons {
        let Some(base_sums) = mean_session_sums(dirs_of(table, &comparison.base), cutoff) else { continue };
        for (k, row) in rows.iter_mut().enumerate() {
            let label = &table[k].label;
            if row.baseline || *label == comparison.base || !label.ends_with(&comparison.suffix) {
                continue;
            }
            let Some(sums) = mean_session_sums(dirs_of(table, label), cutoff) else { continue };
            let (mut hit_differences, mut reciprocal_differences, mut events) = (Vec::new(), Vec::new(), Vec::new());
            for (session, sum) in &sums {
                let Some(base) = base_sums.get(session) else { continue };
                hit_differences.push(sum.hits - base.hits);
                reciprocal_differences.push(sum.reciprocal - base.reciprocal);
                events.push(sum.events);
            }
            // One stream per row, so adding a row elsewhere in the table never changes this row's interval.
            let seed = 0x5EED_u64.wrapping_add(k as u64);
            row.versus = Some(Versus {
                base: comparison.base.clone(),
                mrr: paired_bootstrap(&reciprocal_differences, &events, bootstrap, seed),
                recall: paired_bootstrap(&hit_differences, &events, bootstrap, seed),
            });
        }
    }
    rows
}

/// The cell folders of the rows labelled `label`: labels may repeat (a model named like a baseline), and a label
/// stands for the cells of every row that has it.
fn dirs_of<'a>(table: &'a [RowCells], label: &'a str) -> impl Iterator<Item = &'a Path> + 'a {
    table.iter().filter(move |row| row.label == label).flat_map(|row| row.cells.iter().map(|c| c.dir.as_path()))
}

fn result_row(row: &RowCells, cutoff: u64) -> ResultRow {
    let (mut recalls, mut mrrs, mut seconds, mut rates, mut failures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ndcgs: Option<Vec<f64>> = Some(Vec::new());
    for cell in &row.cells {
        let Some(m) = results::read_metrics_at(&cell.dir, cutoff) else {
            failures.push(cell.unfinished.clone());
            continue;
        };
        recalls.push(m.recall);
        mrrs.push(m.mrr);
        // A cell evaluated before prnn reported NDCG leaves the row without it rather than with a partial mean.
        ndcgs = ndcgs.zip(m.ndcg).map(|(mut all, ndcg)| {
            all.push(ndcg);
            all
        });
        if row.baseline {
            seconds.extend(run::read_fit_seconds(&cell.dir));
        } else {
            let training = training(&cell.dir, cutoff);
            seconds.push(training.seconds);
            rates.push(training.events / training.seconds.max(1e-9));
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    ResultRow {
        label: row.label.clone(),
        baseline: row.baseline,
        seeds: if row.baseline { 0 } else { recalls.len() },
        recall: Spread::of(&recalls),
        mrr: Spread::of(&mrrs),
        ndcg: ndcgs.filter(|all| !all.is_empty()).map(|all| Spread::of(&all)),
        recall_change: None,
        mrr_change: None,
        seconds: mean(&seconds),
        events_per_second: mean(&rates),
        versus: None,
        failures,
    }
}

/// The plot's lines: each trained row's metrics per epoch, averaged over the seeds evaluated after that epoch.
pub fn epoch_series(table: &[RowCells], cutoff: u64) -> Vec<EpochSeries> {
    let mut series = Vec::new();
    for row in table.iter().filter(|row| !row.baseline) {
        let mut by_epoch: BTreeMap<u32, (f64, f64, f64)> = BTreeMap::new();
        let mut phase_starts = std::collections::BTreeSet::new();
        for cell in &row.cells {
            let training = training(&cell.dir, cutoff);
            phase_starts.extend(training.phase_starts);
            for (epoch, recall, mrr) in training.points {
                let entry = by_epoch.entry(epoch).or_insert((0.0, 0.0, 0.0));
                entry.0 += recall;
                entry.1 += mrr;
                entry.2 += 1.0;
            }
        }
        if !by_epoch.is_empty() {
            let points = by_epoch.into_iter().map(|(epoch, (recall, mrr, n))| (epoch, recall / n, mrr / n)).collect();
            series.push(EpochSeries { label: row.label.clone(), points, phase_starts: phase_starts.into_iter().collect() });
        }
    }
    series
}

/// The plot's dashed levels: the baselines' metrics.
pub fn baseline_levels(rows: &[ResultRow]) -> Vec<Level> {
    rows.iter().filter(|r| r.baseline).map(|r| (r.label.clone(), r.recall.mean, r.mrr.mean)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell folder with an evaluation at cut-off 20, its ranks as `(session, rank)`, and epochs as
    /// `(seconds, events, Some(mrr))` lines of `metrics.jsonl`.
    fn cell(
        root: &Path,
        name: &str,
        recall_mrr: Option<(f64, f64)>,
        ranks: &[(&str, f64)],
        epochs: &[(f64, f64, Option<f64>)],
    ) -> CellFolder {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((recall, mrr)) = recall_mrr {
            let eval = serde_json::json!({ "model": name, "metrics": [{ "cutoff": 20, "recall": recall, "mrr": mrr }] });
            std::fs::write(dir.join(run::EVAL_FILE), eval.to_string()).unwrap();
            let lines: String = ranks.iter().enumerate().map(|(i, (session, rank))| format!("{session}\t{i}\titem\t{rank}\n")).collect();
            std::fs::write(dir.join(run::RANKS_FILE), format!("SessionId\tPosition\tItemId\tRank\n{lines}")).unwrap();
        }
        let lines: String = epochs
            .iter()
            .enumerate()
            .map(|(i, (seconds, events, mrr))| {
                let eval = mrr.map(|mrr| serde_json::json!([{ "cutoff": 20, "recall": 2.0 * mrr, "mrr": mrr }]));
                let mut line = serde_json::json!({ "epoch": i + 1, "seconds": seconds, "events": events });
                if let Some(eval) = eval {
                    line["eval"] = eval;
                }
                format!("{line}\n")
            })
            .collect();
        std::fs::write(dir.join(run::METRICS_FILE), lines).unwrap();
        CellFolder { dir, unfinished: format!("{name} did not finish") }
    }

    fn table(root: &Path) -> Vec<RowCells> {
        let knn = cell(root, "item_knn", Some((0.4, 0.2)), &[("s1", 2.0), ("s2", 1.0)], &[]);
        std::fs::write(knn.dir.join(run::BASELINE_FILE), r#"{ "fit_seconds": 1.5 }"#).unwrap();
        let ids = vec![
            cell(
                root,
                "ids-seed1",
                Some((0.6, 0.3)),
                &[("s1", 1.0), ("s1", 30.0), ("s2", 2.0)],
                &[(10.0, 1000.0, Some(0.2)), (10.0, 1000.0, Some(0.3))],
            ),
            cell(
                root,
                "ids-seed2",
                Some((0.8, 0.5)),
                &[("s1", 3.0), ("s1", 4.0), ("s2", 50.0)],
                &[(30.0, 1000.0, Some(0.4)), (30.0, 1000.0, None)],
            ),
        ];
        let both = vec![
            cell(root, "both-seed1", Some((0.9, 0.6)), &[("s1", 1.0), ("s1", 1.0), ("s2", 1.0)], &[(5.0, 500.0, None)]),
            cell(root, "both-seed2", None, &[], &[]),
        ];
        vec![
            RowCells { label: "item_knn".into(), baseline: true, cells: vec![knn] },
            RowCells { label: "ids".into(), baseline: false, cells: ids },
            RowCells { label: "both".into(), baseline: false, cells: both },
        ]
    }

    #[test]
    fn seeds_are_averaged_and_unfinished_cells_named() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows(&table(dir.path()), 20, Some("item_knn"), &[], 100);
        let [knn, ids, both] = &rows[..] else { panic!("three rows") };
        assert_eq!((knn.seeds, knn.seconds, knn.events_per_second), (0, Some(1.5), None));
        assert_eq!((ids.seeds, ids.recall.mean, ids.mrr), (2, 0.7, Spread::of(&[0.3, 0.5])));
        // Training seconds summed over epochs, then averaged over seeds; rates per seed, then averaged.
        assert_eq!((ids.seconds, ids.events_per_second), (Some(40.0), Some((100.0 + 2000.0 / 60.0) / 2.0)));
        assert_eq!((both.seeds, both.failures.as_slice()), (1, ["both-seed2 did not finish".to_string()].as_slice()));
        let change = ids.mrr_change.unwrap();
        assert!((change - 100.0).abs() < 1e-9, "MRR 0.4 against item_knn's 0.2: {change}");
        assert!(rows.iter().all(|row| row.versus.is_none()), "no comparison asked");
    }

    #[test]
    fn rows_are_compared_with_the_base_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        // ids, averaged over its two seeds: s1 has 1.5 hits and (1 + 1/3 + 1/4) / 2 reciprocal rank; s2 0.5 and 1/4.
        let ids = mean_session_sums(table[1].cells.iter().map(|c| c.dir.as_path()), 20).unwrap();
        assert_eq!(ids.keys().collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!((ids["s1"].hits, ids["s1"].events, ids["s2"].hits, ids["s2"].reciprocal), (1.5, 2.0, 0.5, 0.25));
        assert!((ids["s1"].reciprocal - (1.0 + 1.0 / 3.0 + 0.25) / 2.0).abs() < 1e-12);

        let rows = rows(&table, 20, None, &[Comparison { base: "ids".into(), suffix: String::new() }], 200);
        assert!(rows[0].versus.is_none() && rows[1].versus.is_none(), "baselines and the base itself are not compared");
        let versus = rows[2].versus.as_ref().expect("both is compared with ids");
        assert_eq!(versus.base, "ids");
        // both ranks every target first: per event, 2 - 0.7917 and 1 - 0.25 reciprocal rank over 3 events.
        let expected = ((2.0 - (1.0 + 1.0 / 3.0 + 0.25) / 2.0) + 0.75) / 3.0;
        assert!((versus.mrr.difference - expected).abs() < 1e-12, "{versus:?}");
        assert!((versus.recall.difference - 1.0 / 3.0).abs() < 1e-12, "{versus:?}");
        assert!(rows[0].mrr_change.is_none(), "no reference row, no change");
    }

    #[test]
    fn the_plot_averages_seeds_per_epoch_and_draws_baselines_as_levels() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        let series = epoch_series(&table, 20);
        assert_eq!(series.len(), 1, "only ids was evaluated after its epochs");
        assert_eq!(series[0].label, "ids");
        let points: Vec<(u32, f64)> = series[0].points.iter().map(|p| (p.0, p.2)).collect();
        assert_eq!(points.len(), 2);
        assert!((points[0].1 - 0.3).abs() < 1e-12 && (points[1].1 - 0.3).abs() < 1e-12, "{points:?}");
        let rows = rows(&table, 20, None, &[], 0);
        assert_eq!(baseline_levels(&rows), [("item_knn".to_string(), 0.4, 0.2)]);
    }

    #[test]
    fn training_marks_the_epochs_that_begin_a_phase() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = [1, 1, 2, 2, 3]
            .iter()
            .enumerate()
            .map(|(k, phase)| format!(r#"{{"epoch":{},"phase":{phase},"seconds":1.0,"events":10}}"#, k + 1))
            .collect();
        std::fs::write(dir.path().join(crate::run::METRICS_FILE), lines.join("\n") + "\n").unwrap();
        assert_eq!(training(dir.path(), 20).phase_starts, [3, 5]);
    }
}
