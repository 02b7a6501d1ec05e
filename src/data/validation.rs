//! The validation split: the training set's last sessions held out, for tuning without touching the test set.
//!
//! The paper tunes on "a hold out validation set" without saying how it was cut. prnn holds out the last
//! training sessions by start time, as many as the test set has, so the validation set mirrors the test set's
//! size and its position in time. The held-out sessions are then cleaned as the test set is: events whose item
//! does not occur in the remaining training sessions are dropped, then sessions left with fewer than 2 events.
//! Items are renumbered over the remaining training sessions, so a model never ranks an item it cannot have
//! learnt, and every feature keeps the rows of the items that stay.

use super::prepare::{keep_predictable, Counts, Dataset};

/// `dataset` with its training set cut in two: the earlier sessions train, the last `dataset.test.len()`
/// sessions (at most all but one) become the test set. Returns `None` when nothing would be left to evaluate.
pub fn validation_split(dataset: &Dataset) -> Option<Dataset> {
    let sessions = dataset.train.len();
    let held_out = dataset.test.len().min(sessions.saturating_sub(1));
    if held_out == 0 {
        return None;
    }
    let first_held_out = sessions - held_out;
    let mut train = dataset.train.clone();
    train.retain_sessions(|s, _| s < first_held_out);
    let mut validation = dataset.train.clone();
    validation.retain_sessions(|s, _| s >= first_held_out);

    let mut in_train = vec![false; dataset.items.len()];
    for event in &train.events {
        in_train[event.item as usize] = true;
    }
    let mut steps = dataset.report.steps.clone();
    keep_predictable(&mut validation, &in_train, &format!("validation (the last {held_out} training sessions)"), &mut steps);
    if validation.is_empty() {
        return None;
    }

    let (items, mapping) = dataset.items.retain(&in_train);
    for event in train.events.iter_mut().chain(validation.events.iter_mut()) {
        event.item = mapping[event.item as usize].expect("kept events hold items of the remaining training sessions");
    }
    let kept_rows: Vec<usize> = (0..dataset.items.len()).filter(|&i| in_train[i]).collect();
    let features = dataset.features.iter().map(|(name, feature)| (name.clone(), feature.select_rows(&kept_rows))).collect();
    let mut report = dataset.report.clone();
    report.steps = steps;
    report.train = Counts::of(&train);
    report.test = Counts::of(&validation);
    Some(Dataset { items, train, test: validation, features, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::features::{DenseFeature, Feature};
    use crate::data::intern::Interner;
    use crate::data::prepare::Report;
    use crate::data::sessions::Sessions;

    fn sessions(list: &[&[u32]]) -> Sessions {
        Sessions::from_items(list)
    }

    #[test]
    fn holds_out_the_last_training_sessions_and_renumbers_items() {
        let items = Interner::from_keys(["a", "b", "c", "d", "e"]);
        // Items 3 ("d") and 4 ("e") occur only in the last two sessions.
        let train = sessions(&[&[0, 1], &[1, 2], &[0, 2, 1], &[2, 3, 0], &[4, 4]]);
        let test = sessions(&[&[0, 1], &[1, 2]]);
        let dense = Feature::Dense(DenseFeature { dim: 1, values: vec![10.0, 11.0, 12.0, 13.0, 14.0] });
        let dataset =
            Dataset { items, train, test, features: [("image".to_string(), dense)].into_iter().collect(), report: Report::default() };
        let split = validation_split(&dataset).expect("a validation set is left");
        assert_eq!(split.train.len(), 3);
        assert_eq!(split.items.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        // [2, 3, 0] loses "d"; [4, 4] loses both events and then the session.
        assert_eq!(split.test.len(), 1);
        assert_eq!(split.test.session(0).iter().map(|e| e.item).collect::<Vec<_>>(), [2, 0]);
        assert_eq!(split.test.key, [3]);
        let Feature::Dense(dense) = &split.features["image"] else { panic!("dense stays dense") };
        assert_eq!(dense.values, [10.0, 11.0, 12.0]);
    }

    #[test]
    fn a_split_that_leaves_nothing_to_evaluate_is_none() {
        let dataset = Dataset {
            items: Interner::from_keys(["a", "b"]),
            train: sessions(&[&[0, 1], &[0]]),
            test: sessions(&[&[0, 1]]),
            features: Default::default(),
            report: Report::default(),
        };
        assert!(validation_split(&dataset).is_none());
    }
}
