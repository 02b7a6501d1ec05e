//! Preprocessing: the paper's filters, the time split, item renumbering and features, into a [`Dataset`].
//!
//! Order, as in the paper and GRU4Rec's scripts: remove consecutive repeats (optional); drop sessions
//! shorter or longer than the limits; drop items with too little support, repeatedly, until no item or
//! session falls under a limit; split by time; drop test events whose item is unseen in training, then
//! test sessions left with fewer than 2 events. A shipped split runs the first three on the training side
//! only (and only when asked), and always the last.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::error::{DataCode, DataError};
use super::features::{self, Feature, FeatureReport};
use super::intern::Interner;
use super::sessions::{self, Sessions, SkippedRows};
use crate::config::{InputBinding, Preprocess, RunConfig};

/// A training-ready dataset: sessions with dense item indices, and one feature per bound input.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Item IDs by dense index: the items of the prepared training set, in order of first appearance.
    pub items: Interner,
    pub train: Sessions,
    pub test: Sessions,
    pub features: IndexMap<String, Feature>,
    pub report: Report,
}

impl Dataset {
    /// The sizes the data gives a compiled spec: the catalogue, and every feature input's width.
    pub fn sizes(&self) -> crate::ir::Bindings {
        crate::ir::Bindings {
            items: Some(self.items.len() as u64),
            widths: self.features.iter().map(|(name, feature)| (name.clone(), feature.width() as u64)).collect(),
            ..Default::default()
        }
    }

    /// Training support of every item: its number of training events.
    pub fn item_support(&self) -> Vec<u64> {
        let mut support = vec![0u64; self.items.len()];
        for event in &self.train.events {
            support[event.item as usize] += 1;
        }
        support
    }
}

/// Counts of one side of the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub sessions: u64,
    pub items: u64,
    /// From the first session's start to the last event, in days.
    pub days: f64,
}

impl Counts {
    pub fn of(sessions: &Sessions) -> Counts {
        let mut seen = hashbrown::HashSet::new();
        let mut last = f64::NEG_INFINITY;
        for s in 0..sessions.len() {
            let events = sessions.session(s);
            seen.extend(events.iter().map(|e| e.item));
            if let Some(end) = events.iter().map(|e| sessions.start[s] + f64::from(e.offset)).reduce(f64::max) {
                last = last.max(end);
            }
        }
        let first = sessions.start.first().copied().unwrap_or(0.0);
        Counts {
            events: sessions.event_count() as u64,
            sessions: sessions.len() as u64,
            items: seen.len() as u64,
            days: if sessions.is_empty() { 0.0 } else { (last - first) / 86_400.0 },
        }
    }

    pub fn mean_length(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            self.events as f64 / self.sessions as f64
        }
    }
}

/// One preprocessing step and what it removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub what: String,
    pub events: u64,
    pub sessions: u64,
    pub items: u64,
}

/// Everything `prnn data prepare` and `prnn data stats` print.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `train` and `test` as read (for a time split: `sessions`, the one file).
    pub read: IndexMap<String, Counts>,
    pub skipped: IndexMap<String, SkippedRows>,
    pub steps: Vec<Step>,
    pub train: Counts,
    pub test: Counts,
    pub features: Vec<FeatureReport>,
}

/// Reads, cleans and splits the config's sessions and builds every bound feature.
pub fn prepare(config: &RunConfig) -> Result<Dataset, DataError> {
    let format = &config.data.format;
    let settings = &config.preprocess;
    let mut items = Interner::new();
    let mut read = IndexMap::new();
    let mut skipped = IndexMap::new();
    let mut steps = Vec::new();
    let (mut train, mut test) = match (&config.data.sessions, &config.data.train, &config.data.test) {
        (Some(path), _, _) => {
            let all = sessions::read_file(path.get_ref(), format, &mut items)?;
            read.insert("sessions".to_string(), Counts::of(&all.sessions));
            skipped.insert("sessions".to_string(), all.skipped);
            let mut all = all.sessions;
            clean(&mut all, settings, items.len(), &mut steps);
            let (train, test) = split_by_time(all, settings.test_days);
            steps.push(Step {
                what: format!("sessions starting in the last {} day(s) moved to test", settings.test_days),
                events: test.event_count() as u64,
                sessions: test.len() as u64,
                items: 0,
            });
            if train.is_empty() || test.is_empty() {
                let side = if train.is_empty() { "training" } else { "test" };
                return Err(DataError::new(DataCode::Preprocess, path.get_ref(), format!("the time split leaves the {side} set empty"))
                    .help("choose `[preprocess] test_days` smaller than the time the data spans (`prnn data stats` shows the span)"));
            }
            (train, test)
        }
        (None, Some(train_path), Some(test_path)) => {
            let train = sessions::read_file(train_path.get_ref(), format, &mut items)?;
            let test = sessions::read_file(test_path.get_ref(), format, &mut items)?;
            read.insert("train".to_string(), Counts::of(&train.sessions));
            read.insert("test".to_string(), Counts::of(&test.sessions));
            skipped.insert("train".to_string(), train.skipped);
            skipped.insert("test".to_string(), test.skipped);
            let (mut train, mut test) = (train.sessions, test.sessions);
            clean(&mut train, settings, items.len(), &mut steps);
            if settings.remove_repeats {
                let removed = remove_repeats(&mut test);
                steps.push(Step { what: "consecutive repeats removed from test".into(), events: removed, sessions: 0, items: 0 });
            }
            if train.is_empty() {
                return Err(DataError::new(DataCode::Preprocess, train_path.get_ref(), "no training session is left after the filters")
                    .help("relax `[preprocess] min_item_support` or `min_session_length`"));
            }
            (train, test)
        }
        _ => unreachable!("the config checks name either sessions or train and test"),
    };

    // Training learns each click's next one: sessions of one event teach nothing, and training on none of
    // anything else would "succeed" on 0 events.
    if !(0..train.len()).any(|s| train.session(s).len() >= 2) {
        let train_file = config.data.train.as_ref().or(config.data.sessions.as_ref()).expect("a config names its sessions");
        return Err(DataError::new(DataCode::Preprocess, train_file.get_ref(), "no training session has 2 or more events: there is no next click to learn")
            .note(format!("all {} training session(s) left after the filters hold a single event", train.len()))
            .help("set `[preprocess] min_session_length` to 2 (the paper's setting), or give sessions of at least two clicks"));
    }

    // Test events need an item the model has seen; test sessions need a next event to predict.
    let mut in_train = vec![false; items.len()];
    for event in &train.events {
        in_train[event.item as usize] = true;
    }
    keep_predictable(&mut test, &in_train, "test", &mut steps);

    if test.is_empty() {
        let test_file = config.data.test.as_ref().or(config.data.sessions.as_ref()).expect("a config names its sessions");
        return Err(DataError::new(
            DataCode::Preprocess,
            test_file.get_ref(),
            "no test session is left with 2 or more events whose items occur in training",
        )
        .note("dropping the test events whose item is not in training, then the test sessions left with fewer than 2 events, left none")
        .help("check that train and test come from the same catalogue (the same item IDs), or, for a time split, raise `test_days`"));
    }

    // Dense indices for the training items only, in order of first appearance.
    let (items, mapping) = items.retain(&in_train);
    for event in train.events.iter_mut().chain(test.events.iter_mut()) {
        event.item = mapping[event.item as usize].expect("prepared events only hold training items");
    }

    let mut features = IndexMap::new();
    let mut feature_reports = Vec::new();
    for (name, binding) in &config.inputs {
        if matches!(binding.get_ref(), InputBinding::ItemId {}) {
            continue;
        }
        let (feature, report) = features::build(name.get_ref(), binding.get_ref(), &items)?;
        features.insert(name.get_ref().clone(), feature);
        feature_reports.push(report);
    }
    let report = Report { read, skipped, steps, train: Counts::of(&train), test: Counts::of(&test), features: feature_reports };
    Ok(Dataset { items, train, test, features, report })
}

/// Drops the events of `sessions` (a test or validation side) whose item is not `in_train`, then the sessions
/// left with fewer than 2 events, recording both steps: a model can only rank items it has seen, and a session
/// needs a next event to predict.
pub(crate) fn keep_predictable(sessions: &mut Sessions, in_train: &[bool], side: &str, steps: &mut Vec<Step>) {
    let before = sessions.event_count();
    sessions.retain_events(|_, session, i| in_train[session[i].item as usize]);
    steps.push(Step {
        what: format!("{side} events whose item is unseen in training"),
        events: (before - sessions.event_count()) as u64,
        sessions: 0,
        items: 0,
    });
    let before = (sessions.len(), sessions.event_count());
    sessions.retain_sessions(|_, events| events.len() >= 2);
    steps.push(Step {
        what: format!("{side} sessions left with fewer than 2 events"),
        events: (before.1 - sessions.event_count()) as u64,
        sessions: (before.0 - sessions.len()) as u64,
        items: 0,
    });
}

/// The filters that shape the training data (and, for a time split, all of it).
fn clean(sessions: &mut Sessions, settings: &Preprocess, item_count: usize, steps: &mut Vec<Step>) {
    if settings.remove_repeats {
        let removed = remove_repeats(sessions);
        steps.push(Step { what: "consecutive repeats removed".into(), events: removed, sessions: 0, items: 0 });
    }
    let min_length = settings.min_session_length() as usize;
    let max_length = settings.max_session_length.map_or(usize::MAX, |m| m as usize);
    if let Some(max) = settings.max_session_length {
        let before = (sessions.len(), sessions.event_count());
        sessions.retain_sessions(|_, events| events.len() <= max_length);
        steps.push(Step {
            what: format!("sessions longer than {max} events (bots)"),
            events: (before.1 - sessions.event_count()) as u64,
            sessions: (before.0 - sessions.len()) as u64,
            items: 0,
        });
    }
    let drop_short = |sessions: &mut Sessions| {
        let before = (sessions.len(), sessions.event_count());
        sessions.retain_sessions(|_, events| events.len() >= min_length);
        (before.0 - sessions.len(), before.1 - sessions.event_count())
    };
    if min_length > 1 {
        let (dropped_sessions, dropped_events) = drop_short(sessions);
        steps.push(Step {
            what: format!("sessions shorter than {min_length} events"),
            events: dropped_events as u64,
            sessions: dropped_sessions as u64,
            items: 0,
        });
    }
    let min_support = settings.min_item_support() as usize;
    if min_support > 1 {
        // Dropping rare items shortens sessions, dropping short sessions lowers support: repeat until stable.
        let mut support = vec![0u32; item_count];
        let mut total = Step { what: String::new(), events: 0, sessions: 0, items: 0 };
        let mut rounds = 0;
        loop {
            support.iter_mut().for_each(|s| *s = 0);
            for event in &sessions.events {
                support[event.item as usize] += 1;
            }
            let rare = support.iter().filter(|&&s| s > 0 && (s as usize) < min_support).count();
            if rare == 0 {
                break;
            }
            rounds += 1;
            let before = sessions.event_count();
            sessions.retain_events(|_, session, i| support[session[i].item as usize] as usize >= min_support);
            total.items += rare as u64;
            total.events += (before - sessions.event_count()) as u64;
            let (dropped_sessions, dropped_events) = drop_short(sessions);
            total.sessions += dropped_sessions as u64;
            total.events += dropped_events as u64;
        }
        total.what = format!("items with support < {min_support} ({rounds} round{})", if rounds == 1 { "" } else { "s" });
        steps.push(total);
    }
    // Sessions emptied by the item filter with min_length 1 are dropped too: an empty session is no session.
    sessions.retain_sessions(|_, events| !events.is_empty());
}

/// Collapses runs of the same item within a session to one event; returns how many events went.
fn remove_repeats(sessions: &mut Sessions) -> u64 {
    let before = sessions.event_count();
    sessions.retain_events(|_, session, i| i == 0 || session[i].item != session[i - 1].item);
    (before - sessions.event_count()) as u64
}

/// Sessions that start within `test_days` of the last event go to test. Sessions are ordered by start
/// time, so test is a suffix.
fn split_by_time(mut all: Sessions, test_days: f64) -> (Sessions, Sessions) {
    let last_event = (0..all.len())
        .flat_map(|s| all.session(s).iter().map(move |e| (s, e.offset)))
        .map(|(s, offset)| all.start[s] + f64::from(offset))
        .fold(f64::NEG_INFINITY, f64::max);
    let cutoff = last_event - test_days * 86_400.0;
    let first_test = all.start.partition_point(|&start| start < cutoff);
    let event_split = all.offsets[first_test] as usize;
    let test = Sessions {
        events: all.events[event_split..].to_vec(),
        offsets: all.offsets[first_test..].iter().map(|&o| o - event_split as u32).collect(),
        start: all.start[first_test..].to_vec(),
        key: all.key[first_test..].to_vec(),
        keys: all.keys.clone(),
    };
    all.events.truncate(event_split);
    all.events.shrink_to_fit();
    all.offsets.truncate(first_test + 1);
    all.start.truncate(first_test);
    all.key.truncate(first_test);
    (all, test)
}

/// The report as a table in the style of the paper's Table 1, then the steps and features.
pub fn render_report(report: &Report) -> String {
    use std::fmt::Write;
    let group = crate::diagnostic::group_thousands;
    let mut out = String::new();
    let _ = writeln!(out, "{:<8} {:<9} {:>12} {:>10} {:>8} {:>7} {:>7}", "", "", "events", "sessions", "items", "length", "days");
    let row = |out: &mut String, side: &str, stage: &str, c: &Counts| {
        let _ = writeln!(
            out,
            "{:<8} {:<9} {:>12} {:>10} {:>8} {:>7.2} {:>7.1}",
            side,
            stage,
            group(c.events),
            group(c.sessions),
            group(c.items),
            c.mean_length(),
            c.days
        );
    };
    for (side, counts) in &report.read {
        row(&mut out, side, "as read", counts);
    }
    row(&mut out, "train", "prepared", &report.train);
    row(&mut out, "test", "prepared", &report.test);
    let skipped: Vec<_> = report.skipped.iter().filter(|(_, s)| s.total() > 0).collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nskipped rows (bad_rows = \"skip\"):");
        for (side, rows) in skipped {
            for (reason, r) in &rows.reasons {
                let _ = writeln!(out, "  {side}: {} × {reason} (first at {})", group(r.count), r.first());
            }
        }
    }
    if !report.steps.is_empty() {
        let _ = writeln!(out, "\npreprocessing:");
        for step in &report.steps {
            let mut parts = Vec::new();
            if step.items > 0 {
                parts.push(format!("{} item{}", group(step.items), if step.items == 1 { "" } else { "s" }));
            }
            if step.sessions > 0 {
                parts.push(format!("{} session{}", group(step.sessions), if step.sessions == 1 { "" } else { "s" }));
            }
            parts.push(format!("{} event{}", group(step.events), if step.events == 1 { "" } else { "s" }));
            let _ = writeln!(out, "  {}: {}", step.what, parts.join(", "));
        }
    }
    for feature in &report.features {
        let _ = writeln!(
            out,
            "\ninput {}: {}, width {}, {:.2} non-zeros per item",
            feature.input,
            feature.encoding,
            group(feature.width as u64),
            feature.mean_nonzeros
        );
        let _ = writeln!(
            out,
            "  {} items with features, {} without (zero rows), {} rows for items not in the data (ignored)",
            group(feature.items_with_features as u64),
            group(feature.items_without_features as u64),
            group(feature.ignored_rows as u64)
        );
        for note in &feature.notes {
            let _ = writeln!(out, "  {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionFormat;
    use std::path::Path;

    fn sessions_from(text: &str, items: &mut Interner) -> Sessions {
        sessions::read(text.as_bytes(), Path::new("t.tsv"), &SessionFormat::default(), items, 8).unwrap().sessions
    }

    fn lengths(sessions: &Sessions) -> Vec<usize> {
        (0..sessions.len()).map(|s| sessions.session(s).len()).collect()
    }

    #[test]
    fn item_support_filter_repeats_until_stable() {
        // x (support 1) goes; session 1 is then a single click and goes, which takes y's support from 3 to 2,
        // so y goes in a second round, and with it sessions 2 and 3. Item a keeps support 3.
        let text = "SessionId\tItemId\tTime\n1\tx\t1\n1\ty\t2\n2\ty\t3\n2\ta\t4\n3\ty\t5\n3\tb\t6\n4\ta\t7\n4\ta\t8\n4\ta\t9\n";
        let mut items = Interner::new();
        let mut all = sessions_from(text, &mut items);
        let settings = Preprocess { min_item_support: Some(3), min_session_length: Some(2), ..Preprocess::default() };
        let mut steps = Vec::new();
        clean(&mut all, &settings, items.len(), &mut steps);
        assert_eq!(lengths(&all), vec![3]);
        assert_eq!(all.key, vec![4]);
        let step = steps.last().unwrap();
        assert!(step.what.contains("2 rounds"), "{steps:?}");
        assert_eq!((step.items, step.sessions), (3, 3), "x, y and b; sessions 1, 2 and 3");
    }

    #[test]
    fn repeats_bots_and_short_sessions() {
        let text = "SessionId\tItemId\tTime\n1\ta\t1\n1\ta\t2\n1\tb\t3\n2\tc\t4\n3\ta\t5\n3\tb\t6\n3\tc\t7\n3\ta\t8\n";
        let mut items = Interner::new();
        let mut all = sessions_from(text, &mut items);
        let settings = Preprocess {
            remove_repeats: true,
            max_session_length: Some(3),
            min_session_length: Some(2),
            min_item_support: Some(1),
            ..Preprocess::default()
        };
        clean(&mut all, &settings, items.len(), &mut Vec::new());
        // Session 1 becomes a, b; session 2 is a single click; session 3 has 4 events (a bot here).
        assert_eq!(lengths(&all), vec![2]);
    }

    #[test]
    fn time_split_moves_late_starting_whole_sessions() {
        let day = 86_400;
        let text = format!(
            "SessionId\tItemId\tTime\n1\ta\t0\n1\tb\t{}\n2\ta\t{}\n2\tb\t{}\n3\ta\t{}\n3\tb\t{}\n",
            day / 2,
            day,
            day + 10,
            2 * day,
            3 * day
        );
        let mut items = Interner::new();
        let all = sessions_from(&text, &mut items);
        let (train, test) = split_by_time(all, 1.0);
        // The last event is at 3 days: sessions starting at or after 2 days are test.
        assert_eq!(train.key, vec![1, 2]);
        assert_eq!(test.key, vec![3]);
        assert_eq!(test.offsets, vec![0, 2]);
    }
}
