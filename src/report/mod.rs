//! Experiment reports: the results table (markdown, CSV, JSON) and the plot of metrics per epoch (SVG).
//!
//! The table follows the paper's Tables 2-4: Recall and MRR at one cut-off, their change against a reference
//! row (item-kNN by default), NDCG at the cut-off, plus what the paper leaves out and a reader needs to trust a difference: the
//! spread over seeds, a paired bootstrap of one metric against a base model, and the training time.

pub mod plot;
pub mod table;

use serde::Serialize;

use crate::config::RankingMetric;
use crate::eval::bootstrap::PairedDifference;

/// Mean and sample standard deviation over seeds (0 for a single seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        Spread { mean, std }
    }
}

/// One row of the results table: a baseline, or a model (with one sweep setting) over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub label: String,
    pub baseline: bool,
    /// Seeds that finished (a baseline has none).
    pub seeds: usize,
    pub recall: Spread,
    pub mrr: Spread,
    /// NDCG at the cut-off, when every finished cell reported it (cells evaluated before prnn did have none).
    pub ndcg: Option<Spread>,
    /// Relative change of the mean against the reference row, in percent.
    pub recall_change: Option<f64>,
    pub mrr_change: Option<f64>,
    /// Mean seconds of training (baselines: fitting), and training events per second.
    pub seconds: Option<f64>,
    pub events_per_second: Option<f64>,
    /// The paired bootstrap against the base model at the cut-off (seeds averaged per event).
    pub versus: Option<Versus>,
    /// Cells of this row that did not finish, with why.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versus {
    pub base: String,
    /// The metric tested: `[experiment] bootstrap_metric`.
    pub metric: RankingMetric,
    pub difference: PairedDifference,
}

/// One setting tried on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuningRow {
    pub model: String,
    pub setting: String,
    pub recall: f64,
    pub mrr: f64,
    pub chosen: bool,
}

fn percent(change: Option<f64>) -> String {
    change.map_or("".into(), |c| format!("{c:+.1}%"))
}

fn spread(value: Spread, seeds: usize) -> String {
    if seeds > 1 {
        format!("{:.4} ± {:.4}", value.mean, value.std)
    } else {
        format!("{:.4}", value.mean)
    }
}

/// The results table as markdown, then the tuning table when there is one. `tested` is the metric of the
/// bootstrap column.
pub fn markdown(rows: &[ResultRow], tuning: &[TuningRow], cutoff: u64, reference: Option<&str>, tested: RankingMetric) -> String {
    let change = reference.map_or("change".to_string(), |r| format!("vs {r}"));
    let tested = tested.label();
    let mut out = format!(
        "| model | seeds | Recall@{cutoff} | {change} | MRR@{cutoff} | {change} | NDCG@{cutoff} | Δ{tested} vs base [95% CI], p | train s | events/s |\n|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for row in rows {
        let versus = row.versus.as_ref().map_or(String::new(), |v| {
            let d = &v.difference;
            format!("{:+.4} [{:+.4}, {:+.4}], p={:.3} (vs {})", d.difference, d.low, d.high, d.p_value, v.base)
        });
        let (recall, mrr, ndcg) = if row.seeds == 0 && !row.baseline {
            ("failed".to_string(), "failed".to_string(), "failed".to_string())
        } else {
            (spread(row.recall, row.seeds), spread(row.mrr, row.seeds), row.ndcg.map_or("-".to_string(), |ndcg| spread(ndcg, row.seeds)))
        };
        out += &format!(
            "| {}{} | {} | {recall} | {} | {mrr} | {} | {ndcg} | {versus} | {} | {} |\n",
            row.label,
            if row.failures.is_empty() { String::new() } else { format!(" ({})", row.failures.join("; ")) },
            if row.baseline { "-".to_string() } else { row.seeds.to_string() },
            percent(row.recall_change),
            percent(row.mrr_change),
            row.seconds.map_or(String::new(), |s| format!("{s:.1}")),
            row.events_per_second.map_or(String::new(), |e| format!("{e:.0}")),
        );
    }
    if !tuning.is_empty() {
        out += &format!("\nTuning on the validation split (first seed):\n\n| model | setting | Recall@{cutoff} | MRR@{cutoff} | chosen |\n|---|---|---|---|---|\n");
        for row in tuning {
            out += &format!(
                "| {} | {} | {:.4} | {:.4} | {} |\n",
                row.model,
                row.setting,
                row.recall,
                row.mrr,
                if row.chosen { "yes" } else { "" }
            );
        }
    }
    out
}

/// The results table as CSV, one row per table row, numbers unrounded; the bootstrap's columns are named after
/// `tested`, its metric (`delta_mrr`, ...).
pub fn csv(rows: &[ResultRow], cutoff: u64, tested: RankingMetric) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let recall = format!("recall@{cutoff}");
    let mrr = format!("mrr@{cutoff}");
    let delta = format!("delta_{}", tested.key());
    let header = [
        "model",
        "baseline",
        "seeds",
        &recall,
        &format!("{recall}_std"),
        &format!("{recall}_change_pct"),
        &mrr,
        &format!("{mrr}_std"),
        &format!("{mrr}_change_pct"),
        &format!("ndcg@{cutoff}"),
        &format!("ndcg@{cutoff}_std"),
        "base",
        &delta,
        &format!("{delta}_low"),
        &format!("{delta}_high"),
        &format!("{delta}_p"),
        "train_seconds",
        "events_per_second",
        "failures",
    ];
    writer.write_record(header).expect("writing to memory");
    let number = |value: Option<f64>| value.map_or(String::new(), |v| v.to_string());
    for row in rows {
        let versus = row.versus.as_ref().map(|v| &v.difference);
        writer
            .write_record([
                row.label.clone(),
                row.baseline.to_string(),
                row.seeds.to_string(),
                row.recall.mean.to_string(),
                row.recall.std.to_string(),
                number(row.recall_change),
                row.mrr.mean.to_string(),
                row.mrr.std.to_string(),
                number(row.mrr_change),
                number(row.ndcg.map(|ndcg| ndcg.mean)),
                number(row.ndcg.map(|ndcg| ndcg.std)),
                row.versus.as_ref().map_or(String::new(), |v| v.base.clone()),
                number(versus.map(|d| d.difference)),
                number(versus.map(|d| d.low)),
                number(versus.map(|d| d.high)),
                number(versus.map(|d| d.p_value)),
                number(row.seconds),
                number(row.events_per_second),
                row.failures.join("; "),
            ])
            .expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("UTF-8 in, UTF-8 out")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, baseline: bool, seeds: usize, mrr: f64) -> ResultRow {
        ResultRow {
            label: label.into(),
            baseline,
            seeds,
            recall: Spread { mean: 0.5, std: 0.01 },
            mrr: Spread { mean: mrr, std: 0.002 },
            ndcg: Some(Spread { mean: mrr + 0.07, std: 0.003 }),
            recall_change: Some(0.0),
            mrr_change: Some(12.5),
            seconds: Some(61.25),
            events_per_second: Some(80000.4),
            versus: None,
            failures: vec![],
        }
    }

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        let s = Spread::of(&[1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.std), (2.0, 1.0));
        assert_eq!(Spread::of(&[0.3]).std, 0.0);
    }

    #[test]
    fn the_table_shows_spreads_changes_and_the_bootstrap() {
        let mut model = row("parallel_alt", false, 3, 0.27);
        model.versus = Some(Versus {
            base: "id_only".into(),
            metric: RankingMetric::Mrr,
            difference: PairedDifference { difference: 0.012, low: 0.004, high: 0.02, p_value: 0.004, resamples: 1000 },
        });
        let mut failed = row("interaction_sim", false, 0, 0.0);
        failed.failures.push("seed 1 diverged".into());
        (failed.recall_change, failed.mrr_change, failed.seconds, failed.events_per_second) = (None, None, None, None);
        failed.ndcg = None;
        let tuning = [TuningRow { model: "id_only".into(), setting: "lr=0.1".into(), recall: 0.6, mrr: 0.25, chosen: true }];
        let rows = [row("item_knn", true, 0, 0.24), model, failed];
        insta::assert_snapshot!(markdown(&rows, &tuning, 20, Some("item_knn"), RankingMetric::Mrr));
        let csv = csv(&rows, 20, RankingMetric::Mrr);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().next().unwrap().contains(",base,delta_mrr,delta_mrr_low,delta_mrr_high,delta_mrr_p,train_seconds,"), "{csv}");
        assert!(csv.lines().nth(2).unwrap().contains("0.34,0.003,id_only,0.012,0.004,0.02,0.004,61.25"), "{csv}");
    }

    #[test]
    fn the_table_names_the_metric_the_bootstrap_tested() {
        let mut model = row("parallel_alt", false, 2, 0.27);
        let difference = PairedDifference { difference: 0.0125, low: 0.0025, high: 0.0225, p_value: 0.01, resamples: 500 };
        model.versus = Some(Versus { base: "id_only".into(), metric: RankingMetric::Ndcg, difference });
        let rows = [model];
        let table = markdown(&rows, &[], 10, None, RankingMetric::Ndcg);
        let (header, row) = (table.lines().next().unwrap(), table.lines().nth(2).unwrap());
        assert!(header.contains("| NDCG@10 | ΔNDCG vs base [95% CI], p |"), "{table}");
        assert!(row.contains("| +0.0125 [+0.0025, +0.0225], p=0.010 (vs id_only) |"), "{table}");
        let csv = csv(&rows, 10, RankingMetric::Ndcg);
        assert!(csv.lines().next().unwrap().contains(",base,delta_ndcg,delta_ndcg_low,delta_ndcg_high,delta_ndcg_p,"), "{csv}");
        assert!(csv.lines().nth(1).unwrap().contains(",id_only,0.0125,0.0025,0.0225,0.01,"), "{csv}");
        let json = serde_json::to_value(&rows[0].versus).unwrap();
        assert_eq!((json["metric"].as_str(), json["difference"]["difference"].as_f64()), (Some("ndcg"), Some(0.0125)));
    }
}
