//! The numbers of the results table and the plot, read back from the cells' run folders: metrics over seeds, the
//! change against the reference row, the paired bootstrap of one metric against the base model, and the
//! metrics per epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::config::RankingMetric;
use crate::eval::bootstrap::{event_value, paired_bootstrap};
use crate::eval::CutoffMetrics;
use crate::run::{self, metrics, results, RunError};

use super::plot::{EpochSeries, Level, Panels};
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

/// A test session's metric summed over its events (see [`event_value`]), and its events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionSum {
    pub value: f64,
    pub events: f64,
}

/// Per-session sums, keyed by the session's ID, in the order of `ranks.tsv`.
pub type SessionSums = IndexMap<String, SessionSum>;

/// The per-session sums of `metric` at `cutoff` over one run folder's `ranks.tsv`.
pub fn session_sums(dir: &Path, metric: RankingMetric, cutoff: u64) -> Result<SessionSums, RunError> {
    let mut sums = SessionSums::new();
    results::visit_ranks(dir, |line| {
        let sum = sums.entry(line.session.to_string()).or_default();
        sum.value += event_value(metric, line.rank, cutoff);
        sum.events += 1.0;
    })?;
    Ok(sums)
}

/// The per-session sums of a row's cells, averaged over the cells (seeds) that were evaluated. None when none
/// was, or when the cells did not rank the same sessions.
pub fn mean_session_sums<'a>(dirs: impl IntoIterator<Item = &'a Path>, metric: RankingMetric, cutoff: u64) -> Option<SessionSums> {
    let mut total: Option<SessionSums> = None;
    let mut n = 0.0;
    for dir in dirs {
        let Ok(sums) = session_sums(dir, metric, cutoff) else { continue };
        n += 1.0;
        match &mut total {
            None => total = Some(sums),
            Some(total) => {
                for (session, sum) in sums {
                    total.get_mut(&session)?.value += sum.value;
                }
            }
        }
    }
    let mut total = total?;
    for sum in total.values_mut() {
        sum.value /= n;
    }
    Some(total)
}

/// What a trained run's `metrics.jsonl` says: training seconds and events over its epochs, and its metrics
/// after each epoch it was evaluated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Training {
    pub seconds: f64,
    pub events: f64,
    /// `(epoch, metrics at every cut-off evaluated)`.
    pub evaluations: Vec<(u32, Vec<CutoffMetrics>)>,
    /// The epochs that begin a new phase of the plan (after the first).
    pub phase_starts: Vec<u32>,
}

pub fn training(dir: &Path) -> Training {
    let mut training = Training::default();
    let mut phase = None;
    for epoch in metrics::read(dir) {
        if phase.is_some_and(|phase| phase != epoch.phase) {
            training.phase_starts.push(epoch.epoch);
        }
        phase = Some(epoch.phase);
        training.seconds += epoch.seconds;
        training.events += epoch.events;
        if let Some(evaluation) = epoch.eval {
            training.evaluations.push((epoch.epoch, evaluation));
        }
    }
    training
}

/// The table's rows, in the order given: each row's metrics over its finished cells, the change of every
/// finished row against the `reference` row, and the bootstrap of `tested` at `cutoff` for each `comparisons`
/// entry, with `resamples` resamples.
pub fn rows(
    table: &[RowCells],
    cutoff: u64,
    reference: Option<&str>,
    comparisons: &[Comparison],
    resamples: u64,
    tested: RankingMetric,
) -> Vec<ResultRow> {
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
        let Some(base_sums) = mean_session_sums(dirs_of(table, &comparison.base), tested, cutoff) else { continue };
        for (k, row) in rows.iter_mut().enumerate() {
            let label = &table[k].label;
            if row.baseline || *label == comparison.base || !label.ends_with(&comparison.suffix) {
                continue;
            }
            let Some(sums) = mean_session_sums(dirs_of(table, label), tested, cutoff) else { continue };
            let (mut differences, mut events) = (Vec::new(), Vec::new());
            for (session, sum) in &sums {
                let Some(base) = base_sums.get(session) else { continue };
                differences.push(sum.value - base.value);
                events.push(sum.events);
            }
            // One stream per row, so adding a row elsewhere in the table never changes this row's interval.
            let seed = 0x5EED_u64.wrapping_add(k as u64);
            let difference = paired_bootstrap(&differences, &events, resamples, seed);
            row.versus = Some(Versus { base: comparison.base.clone(), metric: tested, difference });
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
            let training = training(&cell.dir);
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

/// The mean over `evaluations` (one per seed) of each panel's metric at its cut-off; a panel is None when one
/// of them lacks it, rather than a mean over fewer seeds than the others.
fn panel_means(panels: &Panels, evaluations: &[Vec<CutoffMetrics>]) -> Vec<Option<f64>> {
    panels
        .each()
        .into_iter()
        .map(|(metric, cutoff)| {
            let values: Option<Vec<f64>> =
                evaluations.iter().map(|evaluation| evaluation.iter().find(|m| m.cutoff == cutoff)?.value(metric)).collect();
            values.filter(|values| !values.is_empty()).map(|values| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect()
}

/// The plot's lines: each trained row's metrics per epoch, averaged over the seeds evaluated after that epoch.
pub fn epoch_series(table: &[RowCells], panels: &Panels) -> Vec<EpochSeries> {
    let mut series = Vec::new();
    for row in table.iter().filter(|row| !row.baseline) {
        let mut by_epoch: BTreeMap<u32, Vec<Vec<CutoffMetrics>>> = BTreeMap::new();
        let mut phase_starts = std::collections::BTreeSet::new();
        for cell in &row.cells {
            let training = training(&cell.dir);
            phase_starts.extend(training.phase_starts);
            for (epoch, evaluation) in training.evaluations {
                by_epoch.entry(epoch).or_default().push(evaluation);
            }
        }
        if !by_epoch.is_empty() {
            let points = by_epoch.into_iter().map(|(epoch, evaluations)| (epoch, panel_means(panels, &evaluations))).collect();
            series.push(EpochSeries { label: row.label.clone(), points, phase_starts: phase_starts.into_iter().collect() });
        }
    }
    series
}

/// The plot's dashed levels: each evaluated baseline's metrics, from its `eval.json`.
pub fn baseline_levels(table: &[RowCells], panels: &Panels) -> Vec<Level> {
    let mut levels = Vec::new();
    for row in table.iter().filter(|row| row.baseline) {
        let evaluations: Vec<Vec<CutoffMetrics>> = row.cells.iter().filter_map(|cell| results::read_metrics(&cell.dir)).collect();
        if !evaluations.is_empty() {
            levels.push(Level { label: row.label.clone(), values: panel_means(panels, &evaluations) });
        }
    }
    levels
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
        let rows = rows(&table(dir.path()), 20, Some("item_knn"), &[], 100, RankingMetric::Mrr);
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
        let ids_sums = |metric| mean_session_sums(table[1].cells.iter().map(|c| c.dir.as_path()), metric, 20).unwrap();
        // ids ranks s1's events 1 and 30 (seed 1), 3 and 4 (seed 2); s2's 2 (seed 1) and 50 (seed 2). Averaged over
        // the seeds, s1 has 1.5 hits and (1 + 1/3 + 1/4) / 2 reciprocal rank; s2 0.5 and 1/4.
        let (hits, reciprocal) = (ids_sums(RankingMetric::Recall), ids_sums(RankingMetric::Mrr));
        assert_eq!(hits.keys().collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!((hits["s1"].value, hits["s1"].events, hits["s2"].value, reciprocal["s2"].value), (1.5, 2.0, 0.5, 0.25));
        assert!((reciprocal["s1"].value - (1.0 + 1.0 / 3.0 + 0.25) / 2.0).abs() < 1e-12);
        assert_eq!(ids_sums(RankingMetric::HitRate), hits, "one target per event: HitRate is Recall");
        // NDCG, float64 fixtures computed apart from prnn: s1 (1 + 1/log2(4) + 1/log2(5)) / 2, s2 1/log2(3) / 2.
        let ndcg = ids_sums(RankingMetric::Ndcg);
        assert!((ndcg["s1"].value - 0.9653382790366966).abs() < 1e-15, "{ndcg:?}");
        assert!((ndcg["s2"].value - 0.31546487678572877).abs() < 1e-15, "{ndcg:?}");

        let compare = [Comparison { base: "ids".into(), suffix: String::new() }];
        let rows_testing = |metric| rows(&table, 20, None, &compare, 200, metric);
        let rows = rows_testing(RankingMetric::Mrr);
        assert!(rows[0].versus.is_none() && rows[1].versus.is_none(), "baselines and the base itself are not compared");
        let versus = rows[2].versus.as_ref().expect("both is compared with ids");
        assert_eq!((versus.base.as_str(), versus.metric), ("ids", RankingMetric::Mrr));
        // both ranks every target first: per event, 2 - 0.7917 and 1 - 0.25 reciprocal rank over 3 events.
        let expected = ((2.0 - (1.0 + 1.0 / 3.0 + 0.25) / 2.0) + 0.75) / 3.0;
        assert!((versus.difference.difference - expected).abs() < 1e-12, "{versus:?}");
        assert!(rows[0].mrr_change.is_none(), "no reference row, no change");
        let recall = rows_testing(RankingMetric::Recall)[2].versus.clone().unwrap();
        assert!((recall.difference.difference - 1.0 / 3.0).abs() < 1e-12, "{recall:?}");
        // NDCG: both ranks every target first, gaining 2 - 0.96534 in s1 and 1 - 0.31546 in s2, over 3 events.
        let ndcg = rows_testing(RankingMetric::Ndcg)[2].versus.clone().unwrap();
        assert_eq!(ndcg.metric, RankingMetric::Ndcg);
        assert!((ndcg.difference.difference - 0.5730656147258583).abs() < 1e-15, "{ndcg:?}");
        assert!(ndcg.difference.low <= ndcg.difference.difference && ndcg.difference.difference <= ndcg.difference.high, "{ndcg:?}");
    }

    #[test]
    fn the_plot_averages_seeds_per_epoch_and_draws_baselines_as_levels() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        let panels = Panels { metrics: vec![RankingMetric::Mrr, RankingMetric::Recall], cutoffs: vec![20] };
        let series = epoch_series(&table, &panels);
        assert_eq!(series.len(), 1, "only ids was evaluated after its epochs");
        assert_eq!(series[0].label, "ids");
        // Epoch 1: MRR 0.2 and 0.4 over the two seeds; epoch 2: seed 1's 0.3 alone. Recall is twice MRR here.
        let points: Vec<(u32, f64, f64)> = series[0].points.iter().map(|(epoch, v)| (*epoch, v[0].unwrap(), v[1].unwrap())).collect();
        assert_eq!(points.len(), 2);
        assert!((points[0].1 - 0.3).abs() < 1e-12 && (points[1].1 - 0.3).abs() < 1e-12, "{points:?}");
        assert!((points[0].2 - 0.6).abs() < 1e-12, "{points:?}");
        assert_eq!(baseline_levels(&table, &panels), [Level { label: "item_knn".into(), values: vec![Some(0.2), Some(0.4)] }]);
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
        assert_eq!(training(dir.path()).phase_starts, [3, 5]);
    }

    #[test]
    fn the_plot_reads_every_chosen_metric_and_cutoff_and_leaves_out_what_a_run_did_not_record() {
        let dir = tempfile::tempdir().unwrap();
        let at = |cutoff: u64, recall: f64, mrr: f64, ndcg: Option<f64>| {
            let mut metric = serde_json::json!({ "cutoff": cutoff, "recall": recall, "mrr": mrr, "hit_rate": recall });
            if let Some(ndcg) = ndcg {
                metric["ndcg"] = ndcg.into();
            }
            metric
        };
        // Epoch 1 was evaluated before prnn recorded NDCG (and HitRate); epoch 2 has every metric at 5 and 20.
        let epoch_one = serde_json::json!({ "epoch": 1, "seconds": 1.0, "events": 10,
            "eval": [{ "cutoff": 5, "recall": 0.25, "mrr": 0.125 }, { "cutoff": 20, "recall": 0.5, "mrr": 0.15 }] });
        let epoch_two = serde_json::json!({ "epoch": 2, "seconds": 1.0, "events": 10, "eval": [at(5, 0.375, 0.1875, Some(0.25)), at(20, 0.625, 0.2, Some(0.3125))] });
        let cell = dir.path().join("ids-seed1");
        std::fs::create_dir_all(&cell).unwrap();
        std::fs::write(cell.join(run::METRICS_FILE), format!("{epoch_one}\n{epoch_two}\n")).unwrap();
        let knn = dir.path().join("item_knn");
        std::fs::create_dir_all(&knn).unwrap();
        let eval = serde_json::json!({ "model": "item_knn", "metrics": [at(5, 0.2, 0.1, Some(0.125)), at(20, 0.4, 0.125, Some(0.1875))] });
        std::fs::write(knn.join(run::EVAL_FILE), eval.to_string()).unwrap();
        let folder = |dir: PathBuf| CellFolder { dir, unfinished: String::new() };
        let table = [
            RowCells { label: "item_knn".into(), baseline: true, cells: vec![folder(knn)] },
            RowCells { label: "ids".into(), baseline: false, cells: vec![folder(cell)] },
        ];
        let panels = Panels { metrics: vec![RankingMetric::Ndcg, RankingMetric::HitRate], cutoffs: vec![20, 5] };
        let series = epoch_series(&table, &panels);
        // Panels row by row: NDCG@20, HitRate@20, NDCG@5, HitRate@5. A missing HitRate is the Recall.
        assert_eq!(
            series[0].points,
            [(1, vec![None, Some(0.5), None, Some(0.25)]), (2, vec![Some(0.3125), Some(0.625), Some(0.25), Some(0.375)])]
        );
        assert_eq!(baseline_levels(&table, &panels)[0].values, [Some(0.1875), Some(0.4), Some(0.125), Some(0.2)]);
    }
}
