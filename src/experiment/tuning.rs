//! The setting tuning keeps for each model: the best MRR on the validation split at the experiment's cut-off.

use std::collections::HashMap;

use std::path::Path;

use crate::eval::CutoffMetrics;
use crate::report::TuningRow;
use crate::run::metrics::StopRecord;
use crate::train::stopping::GroupEnd;

use super::plan::{setting_label, Setting};

/// A cell of the tuning grid: a model trained with one setting on the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct TuningCell {
    pub model: String,
    pub setting: Setting,
    /// Its folder under the experiment folder, e.g. `tune/id_only-lr0.1`.
    pub name: String,
}

/// What tuning decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tuning {
    /// Every finished setting, model by model, the chosen one marked.
    pub rows: Vec<TuningRow>,
    /// Each model's chosen setting.
    pub chosen: HashMap<String, Setting>,
    /// Models none of whose tuning cells finished: they train with their spec's settings.
    pub unfinished: Vec<String>,
}

/// For each of `models`, the setting of its finished tuning cells with the highest MRR; on equal MRR the first
/// in grid order. `metrics` gives a cell's metrics at the cut-off, None when it did not finish.
pub fn choose(models: &[String], cells: &[TuningCell], metrics: impl Fn(&TuningCell) -> Option<CutoffMetrics>) -> Tuning {
    let mut tuning = Tuning::default();
    for model in models {
        let mut best: Option<(f64, usize, &Setting)> = None;
        for cell in cells.iter().filter(|c| &c.model == model) {
            let Some(metrics) = metrics(cell) else { continue };
            if best.is_none_or(|(mrr, _, _)| metrics.mrr > mrr) {
                best = Some((metrics.mrr, tuning.rows.len(), &cell.setting));
            }
            tuning.rows.push(TuningRow {
                model: model.clone(),
                setting: setting_label(&cell.setting),
                recall: metrics.recall,
                mrr: metrics.mrr,
                chosen: false,
            });
        }
        match best {
            Some((_, row, setting)) => {
                tuning.rows[row].chosen = true;
                tuning.chosen.insert(model.clone(), setting.clone());
            }
            None => tuning.unfinished.push(model.clone()),
        }
    }
    tuning
}

/// The overrides that train a tuned setting again, on all the training data, for the epochs early stopping
/// kept in its trial: `stop=none` with `epochs=K`, or `schedule.SUBNET=K` for each phase of residual training.
/// Empty when the trial's model did not stop early. `model` is the trial's resolved model (its `run.json`).
pub fn kept_epochs(model: &serde_json::Value, records: &[(u64, StopRecord)]) -> Setting {
    let train = &model["train"];
    if train.get("stop").is_none_or(|stop| stop.is_null()) {
        return Setting::new();
    }
    let ends: Vec<GroupEnd> = records.iter().filter_map(|(_, record)| record.end).collect();
    let mut setting = vec![("stop".to_string(), "none".to_string())];
    let schedule = &train["schedule"];
    if schedule["kind"] == "residual" {
        let mut first_epoch = 1;
        for (group, phase) in schedule["phases"].as_array().into_iter().flatten().enumerate() {
            let (subnet, epochs) = (phase["subnet"].as_str().unwrap_or_default(), phase["epochs"].as_u64().unwrap_or(1));
            let kept = ends.iter().find(|end| end.group == group).map_or(epochs, |end| end.kept_epoch + 1 - first_epoch);
            setting.push((format!("schedule.{subnet}"), kept.to_string()));
            first_epoch += epochs;
        }
    } else if let Some(end) = ends.first() {
        setting.push(("epochs".to_string(), end.kept_epoch.to_string()));
    }
    setting
}

/// [`kept_epochs`] of a trial's run folder.
pub fn kept_epochs_of(dir: &Path) -> Setting {
    match crate::run::read_run(dir) {
        Ok(folder) => kept_epochs(&folder.record.model, &crate::run::metrics::stop_records(dir)),
        Err(_) => Setting::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(model: &str, lr: &str) -> TuningCell {
        TuningCell { model: model.into(), setting: vec![("lr".into(), lr.into())], name: format!("tune/{model}-lr{lr}") }
    }

    #[test]
    fn the_best_validation_mrr_is_chosen_per_model() {
        let cells = [cell("ids", "0.05"), cell("ids", "0.1"), cell("ids", "0.2"), cell("both", "0.1"), cell("gru", "0.1")];
        let mrr = HashMap::from([("tune/ids-lr0.05", 0.2), ("tune/ids-lr0.1", 0.3), ("tune/ids-lr0.2", 0.3), ("tune/both-lr0.1", 0.1)]);
        let models: Vec<String> = ["ids", "both", "gru"].iter().map(|m| m.to_string()).collect();
        let tuning = choose(&models, &cells, |c| {
            mrr.get(c.name.as_str()).map(|&mrr| CutoffMetrics { cutoff: 20, recall: 2.0 * mrr, mrr, hit_rate: None, ndcg: None })
        });
        assert_eq!(tuning.chosen["ids"], cells[1].setting, "the first of two equal MRRs");
        assert_eq!(tuning.chosen["both"], cells[3].setting);
        assert_eq!(tuning.unfinished, ["gru"]);
        let rows: Vec<(&str, &str, bool)> = tuning.rows.iter().map(|r| (r.model.as_str(), r.setting.as_str(), r.chosen)).collect();
        assert_eq!(rows, [("ids", "lr=0.05", false), ("ids", "lr=0.1", true), ("ids", "lr=0.2", false), ("both", "lr=0.1", true)]);
        assert_eq!(tuning.rows[1].recall, 0.6);
    }

    #[test]
    fn a_stopped_trial_is_retrained_for_the_epochs_it_kept() {
        use crate::train::stopping::StopReason;
        let end = |group, kept_epoch| {
            let reason = StopReason::Patience { patience: 2, min_delta: 0.0 };
            let end = GroupEnd { group, stopped_after: kept_epoch + 2, kept_epoch, kept_score: 0.3, reason };
            (kept_epoch + 2, StopRecord { metric: "MRR@20".into(), score: 0.2, best: false, end: Some(end) })
        };
        let simultaneous = serde_json::json!({"train": {"stop": {"patience": 2}, "schedule": {"kind": "simultaneous", "epochs": 10}}});
        let pairs = |s: Setting| s.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(pairs(kept_epochs(&simultaneous, &[end(0, 4)])), ["stop=none", "epochs=4"]);
        let residual = serde_json::json!({"train": {"stop": {"patience": 2}, "schedule": {"kind": "residual", "phases": [
            {"subnet": "id_net", "epochs": 10}, {"subnet": "content_net", "epochs": 5}]}}});
        // Phase 2 covers epochs 11-15: keeping epoch 13 is 3 of its epochs.
        assert_eq!(pairs(kept_epochs(&residual, &[end(0, 6), end(1, 13)])), ["stop=none", "schedule.id_net=6", "schedule.content_net=3"]);
        let unstopped = serde_json::json!({"train": {"schedule": {"kind": "simultaneous", "epochs": 10}}});
        assert!(kept_epochs(&unstopped, &[]).is_empty());
    }
}
