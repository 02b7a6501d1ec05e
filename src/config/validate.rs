//! Cross-field checks that serde cannot express, each pointing at the setting it is about.

use toml::de::DeTable;

use super::schema::{override_text, parse_device, InputBinding, RunConfig, Split, BASELINE_NAMES, TUNE_METHODS};
use super::span;
use crate::check::MAX_WHOLE;
use crate::diagnostic::{closest, group_thousands, Code, Diagnostic, Span};

/// Cross-field checks that serde cannot express.
pub(super) fn validate(config: &RunConfig, errors: &mut Vec<Diagnostic>) {
    let data = &config.data;
    match (&data.train, &data.test, &data.sessions) {
        (Some(_), Some(_), None) => {
            if config.preprocess.split == Split::ByTime {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, "`split = \"by_time\"` needs one `sessions` file")
                        .at(span(data.train.as_ref().unwrap().span()), "a train/test split is given")
                        .help("use `split = \"shipped\"`, or give `[data] sessions = ...` instead of train and test"),
                );
            }
        }
        (None, None, Some(sessions)) => {
            if config.preprocess.split == Split::Shipped {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, "one `sessions` file needs `split = \"by_time\"`")
                        .at(span(sessions.span()), "no test set is given")
                        .help("add `[preprocess] split = \"by_time\"`, or give `train` and `test` files"),
                );
            }
        }
        (Some(one), None, None) | (None, Some(one), None) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data]` needs both `train` and `test`")
                .at(span(one.span()), "only one of the two is given"),
        ),
        (None, None, None) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data]` names no session file")
                .note("expected `train` and `test`, or `sessions`")
                .help("e.g. `[data]` then `train = \"train.tsv\"` and `test = \"test.tsv\"`"),
        ),
        (_, _, Some(sessions)) => errors.push(
            Diagnostic::error(Code::ConfigSyntax, "give either `train` and `test`, or `sessions`, not both")
                .at(span(sessions.span()), "`sessions` given together with a train/test split"),
        ),
    }
    let device = &config.run.device;
    if parse_device(device.get_ref()).is_none() {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, format!("unknown device `{}`", device.get_ref()))
                .at(span(device.span()), "expected `auto`, `cpu`, `cuda` or `cuda:N`"),
        );
    }
    let one_character = |separator: &str| matches!(separator.as_bytes(), [byte] if byte.is_ascii());
    if !one_character(&data.format.separator) {
        errors.push(
            Diagnostic::error(
                Code::ConfigSyntax,
                format!("`[data.format] separator` {:?} is not one ASCII character", data.format.separator),
            )
            .help("e.g. `separator = \"\\t\"`, `\",\"` or `\";\"`"),
        );
    }
    if data.format.time.is_empty() {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[data.format] time` names no column")
                .note("sessions are ordered and split by time")
                .help("name the time column, e.g. `time = [\"Time\"]`"),
        );
    }
    for (name, binding) in &config.inputs {
        if let InputBinding::Sparse { separator, min_df, ngrams, columns, .. } = binding.get_ref() {
            let input = name.get_ref();
            let mut problem = |message: String, help: &str| {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, message)
                        .at(span(binding.span()), format!("in `[inputs.{input}]`"))
                        .help(help.to_string()),
                )
            };
            if !one_character(separator) {
                problem(format!("separator {separator:?} is not one ASCII character"), "e.g. `separator = \",\"`; the default is a tab");
            }
            if *min_df < 1 {
                problem("`min_df` must be at least 1".into(), "1 keeps every term; the paper's 2 drops terms found in one item only");
            }
            if *ngrams < 1 {
                problem("`ngrams` must be at least 1".into(), "1 for unigrams, 2 to add bigrams as in the paper");
            }
            if columns.is_empty() {
                problem("`columns` names no column".into(), "list the item columns to read, e.g. `columns = [\"title\"]`");
            }
        }
    }
    let preprocess = &config.preprocess;
    let mut range_error =
        |what: &str, fix: &str| errors.push(Diagnostic::error(Code::ConfigSyntax, format!("{what} is out of range")).help(fix.to_string()));
    if preprocess.test_days.is_nan() || preprocess.test_days <= 0.0 {
        range_error("`[preprocess] test_days`", "give a positive number of days, e.g. `test_days = 1`");
    }
    if preprocess.min_session_length() < 1 {
        range_error("`[preprocess] min_session_length`", "sessions need at least one event; the paper drops single clicks with 2");
    }
    if preprocess.max_session_length.is_some_and(|max| max < preprocess.min_session_length()) {
        range_error("`[preprocess] max_session_length`", "it must be at least `min_session_length`");
    }
    if config.eval.batch == 0 {
        range_error("`[eval] batch`", "give a positive batch size, e.g. `batch = 512`");
    }
    if config.eval.cutoffs.is_empty() || config.eval.cutoffs.contains(&0) {
        errors.push(
            Diagnostic::error(Code::ConfigSyntax, "`[eval] cutoffs` must list positive cut-offs").help("e.g. `cutoffs = [5, 10, 20]`"),
        );
    }
}

/// Where an error about `key` of `[table]` (a dotted path) points: from the key's first character to the
/// end of its value, else the table itself (its `[table]` header), else nowhere when the file has no such table.
fn setting_span(document: &DeTable<'_>, table: &str, key: &str) -> Option<Span> {
    let mut table_span = None;
    let mut current = document;
    for part in table.split('.') {
        let value = current.get(part)?;
        current = value.get_ref().as_table()?;
        table_span = Some(value.span());
    }
    match current.get_key_value(key) {
        Some((key, value)) => Some(Span::new(key.span().start, value.span().end)),
        None => table_span.map(span),
    }
}

/// Checks `[run]`, `[baselines]`, `[experiment]` and the upper bound of `[eval] batch`; `document` is the config
/// as read, with spans, which the typed config keeps none of for these tables.
pub(super) fn validate_baselines_and_experiment(config: &RunConfig, document: &DeTable<'_>, errors: &mut Vec<Diagnostic>) {
    let mut problem = |table: &str, key: &str, message: String, help: &str| {
        let mut diagnostic = Diagnostic::error(Code::ConfigSyntax, message);
        if let Some(at) = setting_span(document, table, key) {
            diagnostic = diagnostic.at(at, format!("in `[{table}]`"));
        }
        errors.push(diagnostic.help(help.to_string()));
    };
    // The spec's `batch` stops at the same bound. Evaluation never holds more rows than there are test sessions,
    // so a larger batch buys nothing, and a number of that size is a typo.
    if config.eval.batch > MAX_WHOLE {
        problem(
            "eval",
            "batch",
            format!("`[eval] batch` must be a whole number from 1 to {}, not {}", group_thousands(MAX_WHOLE), group_thousands(config.eval.batch)),
            "a batch of more sessions than the test set has scores them all at once; e.g. `batch = 512`",
        );
    }
    let minutes = config.run.checkpoint_minutes;
    if !(minutes.is_finite() && minutes >= 0.0) {
        problem(
            "run",
            "checkpoint_minutes",
            format!("`[run] checkpoint_minutes` must be a number ≥ 0, not {minutes}"),
            "10 (the default) writes an in-epoch checkpoint every 10 minutes; 0 turns them off",
        );
    }
    let knn = &config.baselines.item_knn;
    if !(knn.lambda.is_finite() && knn.lambda >= 0.0) {
        problem("baselines.item_knn", "lambda", "`[baselines.item_knn] lambda` must be a number ≥ 0".into(), "GRU4Rec's value is 20");
    }
    if !(0.0..=1.0).contains(&knn.alpha) {
        problem(
            "baselines.item_knn",
            "alpha",
            "`[baselines.item_knn] alpha` must lie in [0, 1]".into(),
            "0.5 weighs both supports equally",
        );
    }
    if knn.neighbours == 0 {
        problem("baselines.item_knn", "neighbours", "`[baselines.item_knn] neighbours` must be at least 1".into(), "GRU4Rec keeps 100");
    }
    let sknn = &config.baselines.sknn;
    for (key, value) in [("k", sknn.k), ("sample", sknn.sample)] {
        if value == 0 {
            problem(
                "baselines.sknn",
                key,
                format!("`[baselines.sknn] {key}` must be at least 1"),
                "session-rec uses k = 50 among a sample of 500",
            );
        }
    }
    let experiment = &config.experiment;
    for name in &experiment.baselines {
        if !BASELINE_NAMES.contains(&name.as_str()) {
            let hint = closest(name, BASELINE_NAMES).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
            problem(
                "experiment",
                "baselines",
                format!("`[experiment] baselines` names an unknown baseline `{name}`{hint}"),
                "the baselines are `popularity`, `item_knn` and `sknn`",
            );
        }
    }
    if experiment.seeds.is_empty() {
        problem("experiment", "seeds", "`[experiment] seeds` lists no seed".into(), "e.g. `seeds = [1, 2, 3]`");
    }
    if experiment.jobs == 0 {
        problem("experiment", "jobs", "`[experiment] jobs` must be at least 1".into(), "1 trains one cell at a time");
    }
    if let Some(cutoff) = experiment.cutoff.filter(|c| !config.eval.cutoffs.contains(c)) {
        problem(
            "experiment",
            "cutoff",
            format!("`[experiment] cutoff = {cutoff}` is not one of `[eval] cutoffs`"),
            "add it to `[eval] cutoffs`, or pick one of them",
        );
    }
    if experiment.plot_metrics.is_empty() {
        problem(
            "experiment",
            "plot_metrics",
            "`[experiment] plot_metrics` lists no metric".into(),
            "e.g. `plot_metrics = [\"mrr\", \"recall\", \"ndcg\"]`; leave it out for MRR and Recall",
        );
    }
    match &experiment.plot_cutoffs {
        Some(cutoffs) if cutoffs.is_empty() => problem(
            "experiment",
            "plot_cutoffs",
            "`[experiment] plot_cutoffs` lists no cut-off".into(),
            "e.g. `plot_cutoffs = [5, 20]`; leave it out to plot `[experiment] cutoff`",
        ),
        Some(cutoffs) => {
            for cutoff in cutoffs.iter().filter(|c| !config.eval.cutoffs.contains(c)) {
                problem(
                    "experiment",
                    "plot_cutoffs",
                    format!("`[experiment] plot_cutoffs` lists {cutoff}, which is not one of `[eval] cutoffs`"),
                    "add it to `[eval] cutoffs`, or pick one of them",
                );
            }
        }
        None => {}
    }
    for (table, grid) in [("experiment.sweep", &experiment.sweep), ("experiment.tune", &experiment.tune.grid)] {
        for (key, values) in grid {
            if values.is_empty() || values.iter().any(|v| override_text(v).is_none()) {
                let at = if table == "experiment.tune" { "grid" } else { key.as_str() };
                problem(
                    table,
                    at,
                    format!("`[{table}{}] {key}` must list one or more numbers", if table == "experiment.tune" { ".grid" } else { "" }),
                    "e.g. `lr = [0.05, 0.1, 0.2]`",
                );
            }
        }
    }
    let tune = &experiment.tune;
    if !tune.grid.is_empty() && !tune.space.is_empty() {
        problem(
            "experiment.tune",
            "space",
            "`[experiment.tune]` has both `grid` and `space`".into(),
            "a grid lists values (`grid = { lr = [0.05, 0.1] }`); a space gives ranges for `method`: keep one",
        );
    }
    if let Some(method) = tune.method.as_deref().filter(|m| !TUNE_METHODS.contains(m)) {
        problem("experiment.tune", "method", format!("unknown search method `{method}`"), "`method` is one of `grid`, `random`, `tpe`");
    }
    if tune.method.as_deref().is_some_and(|m| m != "grid") && !tune.grid.is_empty() {
        problem(
            "experiment.tune",
            "method",
            "random and TPE search draw from ranges, not from a grid".into(),
            "give the ranges as `space`, e.g. `space.lr = { log = [0.01, 0.25] }`",
        );
    }
    let tpe_settings = [("startup", tune.startup.is_some()), ("gamma", tune.gamma.is_some()), ("candidates", tune.candidates.is_some())];
    if let Some((key, _)) = tpe_settings.iter().find(|(_, given)| *given).filter(|_| tune.method.as_deref() != Some("tpe")) {
        problem(
            "experiment.tune",
            key,
            format!("`[experiment.tune] {key}` is a setting of TPE search"),
            "add `method = \"tpe\"`, or leave it out",
        );
    }
    if let Some(gamma) = tune.gamma.filter(|gamma| !(*gamma > 0.0 && *gamma <= 1.0)) {
        problem(
            "experiment.tune",
            "gamma",
            format!("`[experiment.tune] gamma = {gamma}` is not a share of the trials"),
            "give a number in (0, 1]; Optuna's default is 0.1",
        );
    }
    if tune.candidates == Some(0) {
        problem("experiment.tune", "candidates", "`[experiment.tune] candidates` must be at least 1".into(), "the default is 24");
    }
    if let Some(key) = experiment.sweep.keys().find(|key| tune.space.contains_key(*key)) {
        problem(
            "experiment.sweep",
            key,
            format!("`{key}` is both swept and tuned"),
            "keep it in `[experiment.sweep]` or in `[experiment.tune.space]`, not both",
        );
    }
    if let Some(key) = experiment.sweep.keys().find(|key| experiment.tune.grid.contains_key(*key)) {
        problem(
            "experiment.sweep",
            key,
            format!("`{key}` is both swept and tuned"),
            "keep it in `[experiment.sweep]` or in `[experiment.tune.grid]`, not both",
        );
    }
    if !experiment.tune.models.is_empty() && experiment.tune.grid.is_empty() && experiment.tune.space.is_empty() {
        problem(
            "experiment.tune",
            "models",
            "`[experiment.tune] models` are given but `grid` is empty".into(),
            "e.g. `grid = { lr = [0.02, 0.05, 0.1] }`",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointed_at<'t>(text: &'t str, table: &str, key: &str) -> Option<&'t str> {
        let document = DeTable::parse(text).unwrap();
        setting_span(document.get_ref(), table, key).map(|at| &text[at.start..at.end])
    }

    #[test]
    fn settings_are_found_however_their_table_is_written() {
        let text =
            "[experiment] # what to run\njobs = 0 # none\ntune = { models = [\"a\"] }\nsweep.lr = []\n\n[baselines.sknn]\nk   =  0\n";
        assert_eq!(pointed_at(text, "experiment", "jobs"), Some("jobs = 0"));
        assert_eq!(pointed_at(text, "experiment.tune", "models"), Some("models = [\"a\"]"));
        assert_eq!(pointed_at(text, "experiment.sweep", "lr"), Some("lr = []"));
        assert_eq!(pointed_at(text, "baselines.sknn", "k"), Some("k   =  0"));
        // A key left at its default points at the table's header; a table not in the file, nowhere.
        assert_eq!(pointed_at(text, "experiment", "seeds"), Some("[experiment]"));
        assert_eq!(pointed_at(text, "baselines.item_knn", "alpha"), None);
    }
}
