//! Tests of the search: the config's form and its errors, override text, grids, reproducibility, and TPE against
//! random draws on an objective with a known optimum.

use serde::Deserialize;

use super::*;

/// The `[experiment.tune]` fields a search reads, as the run config will hold them.
#[derive(Debug, Deserialize)]
struct Tune {
    method: Method,
    trials: Option<usize>,
    seed: u64,
    space: Space,
}

const TUNE: &str = r#"
method = "tpe"
trials = 20
seed = 1
space.lr = { log = [0.01, 0.25] }
space."id_net.hidden" = { int = [64, 512], step = 32 }
space."id_net.dropout" = { float = [0.0, 0.5], step = 0.05 }
space.momentum = { float = [0, 0.9] }
space.batch = { choice = [32, 64, 128, 256] }
space."loss.kind" = { choice = ["xe", "bpr_max"] }
"#;

fn tune_search(text: &str) -> Search {
    let tune: Tune = toml::from_str(text).unwrap();
    Search::new(tune.method, tune.space, tune.trials, tune.seed).unwrap()
}

fn words(words: &[&str]) -> Vec<Value> {
    words.iter().map(|w| Value::Text(w.to_string())).collect()
}

#[test]
fn the_config_form_reads_into_ordered_typed_ranges() {
    let search = tune_search(TUNE);
    assert_eq!((search.method(), search.trials(), search.seed()), (Method::Tpe, 20, 1));
    let expected = [
        ("lr", Range::LogFloat { low: 0.01, high: 0.25 }),
        ("id_net.hidden", Range::Integer { low: 64, high: 512, step: 32 }),
        ("id_net.dropout", Range::Float { low: 0.0, high: 0.5, step: Some(0.05) }),
        ("momentum", Range::Float { low: 0.0, high: 0.9, step: None }),
        ("batch", Range::Categorical([32, 64, 128, 256].map(Value::Integer).to_vec())),
        ("loss.kind", Range::Categorical(words(&["xe", "bpr_max"]))),
    ];
    let expected: Vec<(String, Range)> = expected.into_iter().map(|(key, range)| (key.to_string(), range)).collect();
    assert_eq!(search.space().params(), expected);
    let grid: Tune = toml::from_str("method = \"grid\"\nseed = 0\nspace.batch = { choice = [32, 64] }").unwrap();
    assert_eq!((grid.method, grid.trials), (Method::Grid, None));
}

#[test]
fn a_bad_range_is_refused_with_its_key_named() {
    let cases = [
        (r#"lr = { log = [0, 0.25] }"#, "the log range of `lr` starts at 0"),
        (r#""id_net.hidden" = { int = [512, 64] }"#, "the range of `id_net.hidden` runs from 512 down to 64"),
        (r#"dropout = { float = [0, 0.5], step = 0 }"#, "the step of `dropout` is 0"),
        (r#"dropout = { float = [0, 0.5], step = -0.1 }"#, "the step of `dropout` is -0.1"),
        (r#"hidden = { int = [64, 512], step = 0.5 }"#, "the step of `hidden` is 0.5"),
        (r#"hidden = { int = [64, 512], step = 2.5 }"#, "`hidden` is 2.5, but an `int` range steps by whole numbers"),
        (r#"batch = { choice = [] }"#, "`batch` lists no choice"),
        (r#"batch = { choice = [32, 64, 32] }"#, "`batch` lists the choice 32 twice"),
        (r#"lr = { log = [0.01, 0.1], step = 0.01 }"#, "`lr` is a `log` range, which takes no `step`"),
        (r#"kind = { choice = ["a"], step = 1 }"#, "`kind` is a `choice` range, which takes no `step`"),
        (r#"lr = { float = [0, 1], log = [0.1, 1] }"#, "the range of `lr` gives float and log"),
        (r#"lr = { step = 1 }"#, "the range of `lr` gives no kind"),
        (r#"lr = { float = [0, nan] }"#, "`lr` has a bound or step that is not a finite number"),
        (r#"lr = { flaot = [0, 1] }"#, "unknown field `flaot`"),
        (r#"kind = { choice = [true] }"#, "expected a number or a string"),
    ];
    for (text, message) in cases {
        let error = Space::parse(text).unwrap_err().to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
    let repeated = Space::new(vec![("lr".to_string(), Range::LogFloat { low: 0.1, high: 1.0 }); 2]).unwrap_err();
    assert_eq!(repeated, SpaceError::RepeatedKey("lr".into()));
    assert_eq!(Space::new([("x".to_string(), Range::Float { low: 1.0, high: 1.0, step: None })]).map(|s| s.params().len()), Ok(1));
}

#[test]
fn values_are_written_as_override_text() {
    assert_eq!(Value::Integer(64).to_string(), "64");
    assert_eq!(Value::Float(0.05).to_string(), "0.05");
    assert_eq!(Value::Float(1.0).to_string(), "1");
    assert_eq!(Value::Text("bpr_max".into()).to_string(), "bpr_max");
    let cents = Range::Float { low: 0.01, high: 1.0, step: Some(0.01) };
    assert_eq!(cents.grid_value(3).to_string(), "0.04", "0.01 + 3 * 0.01");
    assert_eq!(cents.grid_len(), Some(100));
    let dropout = Range::Float { low: 0.0, high: 0.5, step: Some(0.05) };
    let texts: Vec<String> = (0..dropout.grid_len().unwrap()).map(|k| dropout.grid_value(k).to_string()).collect();
    assert_eq!(texts, ["0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.35", "0.4", "0.45", "0.5"]);
    let uneven = Range::Float { low: -0.3, high: 0.7, step: Some(0.3) };
    let texts: Vec<String> = (0..uneven.grid_len().unwrap()).map(|k| uneven.grid_value(k).to_string()).collect();
    assert_eq!(texts, ["-0.3", "0", "0.3", "0.6"], "no `-0`; a step that does not divide the range stops inside it");
    let lr = Range::LogFloat { low: 0.01, high: 0.25 };
    assert_eq!(lr.continuous_value(0.0734912384719234).to_string(), "0.07349");
    assert_eq!(lr.continuous_value(0.2500049).to_string(), "0.25", "rounding stays within the bounds");
    let setting = Setting { values: vec![("lr".into(), Value::Float(0.05)), ("id_net.hidden".into(), Value::Integer(128))] };
    assert_eq!(setting.as_overrides(), ["lr=0.05", "id_net.hidden=128"]);
    assert_eq!(setting.to_string(), "lr=0.05 id_net.hidden=128");
    assert_eq!(setting.as_text(), [("lr".to_string(), "0.05".to_string()), ("id_net.hidden".to_string(), "128".to_string())]);
    assert_eq!(serde_json::to_string(&setting.values).unwrap(), r#"[["lr",0.05],["id_net.hidden",128]]"#);
}

#[test]
fn a_grid_enumerates_exactly_the_product_last_key_fastest() {
    let space =
        Space::parse("n = { int = [1, 5], step = 2 }\nkind = { choice = [\"a\", \"b\"] }\np = { float = [0, 0.1], step = 0.05 }").unwrap();
    let search = Search::new(Method::Grid, space, None, 0).unwrap();
    assert_eq!(search.trials(), 18);
    let proposed: Vec<String> = (0..18).map(|trial| search.propose(trial, &[]).unwrap().to_string()).collect();
    let mut expected = Vec::new();
    for n in [1, 3, 5] {
        for kind in ["a", "b"] {
            for p in ["0", "0.05", "0.1"] {
                expected.push(format!("n={n} kind={kind} p={p}"));
            }
        }
    }
    assert_eq!(proposed, expected);
    assert_eq!(search.propose(18, &[]), Err(SearchError::TrialOutOfRange { trial: 18, trials: 18 }));
    let same = Search::new(Method::Grid, search.space().clone(), Some(18), 5).unwrap();
    assert_eq!(same.propose(7, &[]), search.propose(7, &[]), "a grid ignores the seed");
}

#[test]
fn a_grid_refuses_continuous_ranges_and_other_trial_counts() {
    let space = |text: &str| Space::parse(text).unwrap();
    let no_grid = Search::new(Method::Grid, space("n = { int = [1, 3] }\nlr = { log = [0.01, 0.1] }"), None, 0);
    assert_eq!(no_grid, Err(SearchError::NoGrid { key: "lr".into(), kind: "log" }));
    let no_grid = Search::new(Method::Grid, space("m = { float = [0, 0.9] }"), None, 0);
    assert_eq!(no_grid, Err(SearchError::NoGrid { key: "m".into(), kind: "float" }));
    let trials = Search::new(Method::Grid, space("n = { int = [1, 3] }"), Some(5), 0);
    assert_eq!(trials, Err(SearchError::GridTrials { size: 3, trials: 5 }));
    let huge = Search::new(
        Method::Grid,
        space("a = { int = [0, 4000000000] }\nb = { int = [0, 4000000000] }\nc = { int = [0, 4000000000] }"),
        None,
        0,
    );
    assert_eq!(huge, Err(SearchError::GridTooLarge));
    assert_eq!(Search::new(Method::Random, space("n = { int = [1, 3] }"), None, 0), Err(SearchError::NoTrials(Method::Random)));
    assert_eq!(Search::new(Method::Tpe, space("n = { int = [1, 3] }"), Some(0), 0), Err(SearchError::NoTrials(Method::Tpe)));
    assert_eq!(Search::new(Method::Tpe, Space::default(), Some(4), 0), Err(SearchError::EmptySpace));
    let search = Search::new(Method::Tpe, space("n = { int = [1, 3] }"), Some(4), 0).unwrap();
    assert_eq!(search.clone().with_tpe_options(TpeOptions { gamma: 0.0, ..TpeOptions::default() }), Err(SearchError::Gamma(0.0)));
    assert_eq!(search.with_tpe_options(TpeOptions { candidates: 0, ..TpeOptions::default() }), Err(SearchError::NoCandidates));
}

/// The known optimum is lr = 0.03, hidden = 320, dropout = 0.35, loss = "xe", scoring 0; every other setting
/// scores below. A learning rate above 0.5 diverges.
const SYNTHETIC: &str = r#"
lr = { log = [0.0001, 1.0] }
hidden = { int = [32, 1024], step = 32 }
dropout = { float = [0.0, 0.9], step = 0.05 }
loss = { choice = ["top1", "bpr", "xe", "bpr_max"] }
"#;

fn synthetic_score(setting: &Setting) -> Option<f64> {
    let number = |key: &str| setting.get(key).and_then(Value::as_f64).unwrap();
    let (lr, hidden, dropout) = (number("lr"), number("hidden"), number("dropout"));
    if lr > 0.5 {
        return None;
    }
    let loss_penalty = match setting.get("loss") {
        Some(Value::Text(loss)) if loss == "xe" => 0.0,
        Some(Value::Text(loss)) if loss == "bpr_max" => 0.2,
        Some(Value::Text(loss)) if loss == "top1" => 0.5,
        _ => 0.6,
    };
    Some(-((lr / 0.03).log10().powi(2) + ((hidden - 320.0) / 320.0).powi(2) + ((dropout - 0.35) / 0.3).powi(2) + loss_penalty))
}

/// Every trial of a search, each proposed from the results of the trials before it.
fn run(search: &Search, score: impl Fn(&Setting) -> Option<f64>) -> Vec<Observation> {
    let mut history = Vec::new();
    for trial in 0..search.trials() {
        let setting = search.propose(trial, &history).unwrap();
        let score = score(&setting);
        history.push(Observation { setting, score });
    }
    history
}

fn best_score(history: &[Observation]) -> f64 {
    history.iter().filter_map(|o| o.score).fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn random_and_tpe_trials_follow_from_the_seed() {
    let space = Space::parse(SYNTHETIC).unwrap();
    for method in [Method::Random, Method::Tpe] {
        let search = |seed| Search::new(method, space.clone(), Some(25), seed).unwrap();
        let first = run(&search(7), synthetic_score);
        assert_eq!(run(&search(7), synthetic_score), first, "{method}: the same seed, the same trials");
        let other = run(&search(8), synthetic_score);
        assert!(first.iter().zip(&other).all(|(a, b)| a.setting != b.setting), "{method}: another seed, other trials");
        // A random trial depends on its index alone, not on the trials before it or their results.
        assert_eq!(search(7).propose(3, &[]).unwrap(), first[3].setting);
    }
    // TPE starts with the random search's trials.
    let random = run(&Search::new(Method::Random, space.clone(), Some(25), 7).unwrap(), synthetic_score);
    let tpe = run(&Search::new(Method::Tpe, space, Some(25), 7).unwrap(), synthetic_score);
    assert_eq!(tpe[..10], random[..10]);
    assert_ne!(tpe[10..], random[10..]);
}

#[test]
fn every_proposal_respects_its_ranges_types_and_steps() {
    let space = Space::parse(
        r#"
        lr = { log = [0.003, 0.7] }
        narrow = { log = [0.5, 0.5] }
        hidden = { int = [50, 500], step = 45 }
        layers = { int = [-2, 3] }
        one = { int = [7, 7], step = 3 }
        dropout = { float = [0.0, 0.95], step = 0.1 }
        offset = { float = [-1.25, 2.0], step = 0.375 }
        momentum = { float = [-0.5, 0.9] }
        batch = { choice = [32, 64.5, "large"] }
        "#,
    )
    .unwrap();
    let score = |setting: &Setting| {
        let number = |key: &str| setting.get(key).and_then(Value::as_f64).unwrap();
        let sum = number("lr").ln() + number("hidden") / 500.0 - number("dropout") + number("momentum") * number("offset");
        (number("layers") != 3.0).then_some(sum)
    };
    for seed in 0..40 {
        for method in [Method::Random, Method::Tpe] {
            let search = Search::new(method, space.clone(), Some(30), seed).unwrap();
            for observation in run(&search, score) {
                let setting = &observation.setting;
                assert!(space.contains(setting), "{method} seed {seed}: {setting}");
                for (key, value) in &setting.values {
                    if let Value::Float(x) = value {
                        assert_eq!(value.to_string().parse::<f64>(), Ok(*x), "{key}={value} reads back as itself");
                    }
                }
                assert_eq!(setting.get("narrow"), Some(&Value::Float(0.5)));
                assert_eq!(setting.get("one"), Some(&Value::Integer(7)));
            }
        }
    }
}

#[test]
fn tpe_regenerates_the_same_trials_when_resumed_from_recorded_scores() {
    let search = tune_search(TUNE);
    let objective = |setting: &Setting| {
        let lr = setting.get("lr").and_then(Value::as_f64).unwrap();
        (lr < 0.2).then(|| lr + setting.get("id_net.dropout").and_then(Value::as_f64).unwrap())
    };
    let uninterrupted = run(&search, objective);
    // Killed after trial 13: the recorded scores survive, the settings are proposed again from them.
    let recorded: Vec<Option<f64>> = uninterrupted[..13].iter().map(|o| o.score).collect();
    let resumed_search = tune_search(TUNE);
    let mut history: Vec<Observation> = Vec::new();
    for (trial, &score) in recorded.iter().enumerate() {
        history.push(Observation { setting: resumed_search.propose(trial, &history).unwrap(), score });
    }
    for trial in 13..resumed_search.trials() {
        let setting = resumed_search.propose(trial, &history).unwrap();
        let score = objective(&setting);
        history.push(Observation { setting, score });
    }
    assert_eq!(history, uninterrupted);
    assert!(uninterrupted.iter().any(|o| o.score.is_none()), "the history includes a failed trial");
}

/// Measured on seeds 0..20 with 40 trials: the best score found averages -0.681 for random draws and -0.341 for
/// TPE (a margin of 0.340, half the distance to the optimum), TPE is ahead on 18 seeds of 20, and after the 10
/// shared random trials TPE diverges 25 times against random's 41. The assertions leave a little room under
/// those figures; other seed sets measured margins of 0.27 and 0.28.
#[test]
fn tpe_finds_a_better_setting_than_random_draws_on_the_same_budget() {
    let space = Space::parse(SYNTHETIC).unwrap();
    let (mut margin, mut tpe_ahead, mut diverged) = (0.0, 0, [0, 0]);
    let seeds = 0..20u64;
    for seed in seeds.clone() {
        let random = run(&Search::new(Method::Random, space.clone(), Some(40), seed).unwrap(), synthetic_score);
        let tpe = run(&Search::new(Method::Tpe, space.clone(), Some(40), seed).unwrap(), synthetic_score);
        margin += (best_score(&tpe) - best_score(&random)) / seeds.clone().count() as f64;
        tpe_ahead += usize::from(best_score(&tpe) > best_score(&random));
        for (count, history) in diverged.iter_mut().zip([&random, &tpe]) {
            *count += history[10..].iter().filter(|o| o.score.is_none()).count();
        }
    }
    assert!(margin > 0.3, "TPE's best is {margin:.4} above random's on average");
    assert!(tpe_ahead >= 16, "TPE ahead on {tpe_ahead} seeds of 20");
    assert!(diverged[1] * 4 < diverged[0] * 3, "diverged trials after the start, random and TPE: {diverged:?}");
}
