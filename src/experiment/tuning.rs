//! The setting tuning keeps for each model: the best MRR on the validation split at the experiment's cut-off.

use std::collections::HashMap;

use crate::eval::CutoffMetrics;
use crate::report::TuningRow;

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
        let tuning = choose(&models, &cells, |c| mrr.get(c.name.as_str()).map(|&mrr| CutoffMetrics { cutoff: 20, recall: 2.0 * mrr, mrr }));
        assert_eq!(tuning.chosen["ids"], cells[1].setting, "the first of two equal MRRs");
        assert_eq!(tuning.chosen["both"], cells[3].setting);
        assert_eq!(tuning.unfinished, ["gru"]);
        let rows: Vec<(&str, &str, bool)> = tuning.rows.iter().map(|r| (r.model.as_str(), r.setting.as_str(), r.chosen)).collect();
        assert_eq!(rows, [("ids", "lr=0.05", false), ("ids", "lr=0.1", true), ("ids", "lr=0.2", false), ("both", "lr=0.1", true)]);
        assert_eq!(tuning.rows[1].recall, 0.6);
    }
}
