//! An experiment's plan: baselines, the tuning search and the validation runs of specs that stop early first,
//! then every spec × sweep setting × seed; each cell with its folder, its `prnn train` overrides and its row of
//! the table.
//!
//! Everything a typo could break is checked here, before a cell runs: the sweep keys, the search space, model
//! names, and the rows `compare_to` and `reference` name.

use std::collections::HashMap;
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::config::overrides::{self, OverrideError};
use crate::config::{override_text, Experiment, Tune};
use serde::Deserialize;

use super::search::{Method, Observation, Range, Search, SearchError, Space, TpeOptions, Value};
use crate::report::table::{CellFolder, Comparison, RowCells};

use super::tuning::TuningCell;

/// Override keys and the values each takes, in order.
pub type Grid = IndexMap<String, Vec<String>>;

/// One combination of a grid: a value for each key, in the grid's order.
pub type Setting = Vec<(String, String)>;

/// Settings that make no plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("`--sweep {0}` is not `key=v1,v2,...`")]
    NotASweep(String),
    #[error("`--sweep {0}` lists no value")]
    EmptySweep(String),
    #[error(transparent)]
    UnknownKey(OverrideError),
    #[error("`seed` cannot be swept or tuned")]
    SeedSwept,
    #[error("the sweep sets `{0}`, but `[experiment.tune]` decides when tuned models stop")]
    StopSweptWhileTuning(String),
    #[error("the experiment has nothing to run")]
    NothingToRun,
    #[error("`{}` and `{}` both define the model `{model}`", earlier.display(), later.display())]
    SameModel { earlier: PathBuf, later: PathBuf, model: String },
    #[error("`[experiment] {setting} = \"{name}\"` is neither a model of the given specs nor a baseline of the experiment")]
    UnknownRow { setting: &'static str, name: String },
    #[error("`[experiment.tune] models` names `{0}`, which no given spec defines")]
    UnknownTunedModel(String),
    #[error("`[experiment.tune] space`: {0}")]
    Space(String),
    #[error("`[experiment.tune]`: {0}")]
    Search(#[from] SearchError),
}

impl PlanError {
    /// What to do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            PlanError::NotASweep(_) | PlanError::EmptySweep(_) => Some("e.g. `--sweep lr=0.05,0.1,0.2`"),
            PlanError::UnknownKey(_) => Some("sweeps and tuning grids take the keys of `prnn train KEY=VALUE`"),
            PlanError::SeedSwept => Some("list the seeds in `[experiment] seeds` or `--seeds`"),
            PlanError::StopSweptWhileTuning(_) => Some(
                "a tuned model trains again for the epochs its best trial kept; sweep `stop` in an experiment without `[experiment.tune]`",
            ),
            PlanError::NothingToRun => {
                Some("name specs on the command line or in `[experiment] specs`, or baselines in `[experiment] baselines`")
            }
            PlanError::SameModel { .. } => Some("rows and cell folders are named after the model: give each spec its own model name"),
            PlanError::UnknownRow { .. } => None,
            PlanError::UnknownTunedModel(_) => Some("list model names as the specs write them after `model`"),
            PlanError::Space(_) => {
                Some("e.g. `space.lr = { log = [0.01, 0.25] }`, `space.\"id_net.hidden\" = { int = [64, 512], step = 64 }`")
            }
            PlanError::Search(error) => error.help(),
        }
    }
}

/// `key=v1,v2` → (key, values). Whether the key is an override key is checked with the grid's other keys.
pub fn parse_sweep(text: &str) -> Result<(String, Vec<String>), PlanError> {
    let (key, values) = text.split_once('=').ok_or_else(|| PlanError::NotASweep(text.to_string()))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(PlanError::EmptySweep(text.to_string()));
    }
    Ok((key.trim().to_string(), values))
}

/// Every combination of a grid, in order (the last key varies fastest); one empty combination for no grid.
pub fn combinations(grid: &Grid) -> Vec<Setting> {
    let mut all = vec![Vec::new()];
    for (key, values) in grid {
        all = all
            .into_iter()
            .flat_map(|prefix: Setting| {
                values.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push((key.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

/// `lr=0.1 batch=32`: how the table names a setting.
pub fn setting_label(setting: &[(String, String)]) -> String {
    setting.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// `-lr0.1-batch32`: how a cell's folder name carries a setting.
pub fn folder_label(setting: &[(String, String)]) -> String {
    setting.iter().map(|(k, v)| format!("-{k}{v}")).collect()
}

/// The setting as `prnn train` overrides.
pub fn as_overrides(setting: &[(String, String)]) -> Vec<String> {
    setting.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A config's grid (`lr = [0.05, 0.1]`) with its values as override text.
pub fn grid_of(grid: &IndexMap<String, Vec<toml::Value>>) -> Grid {
    grid.iter().map(|(k, values)| (k.clone(), values.iter().filter_map(override_text).collect())).collect()
}

/// The config's tuning as a search: a `grid` is a grid search over its values; a `space` is searched by
/// `method`.
pub fn search_of(tune: &Tune) -> Result<Option<Search>, PlanError> {
    if tune.models.is_empty() {
        return Ok(None);
    }
    let method = match tune.method.as_deref() {
        None | Some("grid") => Method::Grid,
        Some("random") => Method::Random,
        Some(_) => Method::Tpe,
    };
    let space = if tune.space.is_empty() {
        let ranges = tune.grid.iter().map(|(key, values)| {
            let values = values
                .iter()
                .filter_map(|value| match value {
                    toml::Value::Integer(n) => Some(Value::Integer(*n)),
                    toml::Value::Float(x) => Some(Value::Float(*x)),
                    other => override_text(other).map(Value::Text),
                })
                .collect();
            (key.clone(), Range::Categorical(values))
        });
        Space::new(ranges).map_err(|e| PlanError::Space(e.to_string()))?
    } else {
        let table: toml::Table = tune.space.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Space::deserialize(toml::Value::Table(table)).map_err(|e| PlanError::Space(e.to_string().trim().to_string()))?
    };
    let search = Search::new(method, space, tune.trials, tune.seed)?;
    if method != Method::Tpe {
        return Ok(Some(search));
    }
    let defaults = TpeOptions::default();
    let options = TpeOptions {
        startup: tune.startup.unwrap_or(defaults.startup),
        gamma: tune.gamma.unwrap_or(defaults.gamma),
        candidates: tune.candidates.unwrap_or(defaults.candidates),
    };
    Ok(Some(search.with_tpe_options(options)?))
}

/// A spec of the experiment, checked and bound to the config by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSpec {
    pub path: PathBuf,
    pub model: String,
    /// BLAKE3 of its text, to tell whether an existing cell was trained from this version.
    pub text_hash: String,
    /// For each sweep setting ([`Plan::sweep_settings`]), whether the spec with that setting stops early: then
    /// its epochs are found on the validation split before it trains on all the data.
    pub stops: Vec<bool>,
}

impl PlannedSpec {
    pub fn new(path: PathBuf, model: impl Into<String>, text: &str) -> PlannedSpec {
        PlannedSpec { path, model: model.into(), text_hash: crate::run::hash(text), stops: Vec::new() }
    }

    /// The same spec, marked for each sweep setting as stopping early or not (`stop = early(...)` in the spec,
    /// or a swept `stop`).
    pub fn stopping(self, stops: Vec<bool>) -> PlannedSpec {
        PlannedSpec { stops, ..self }
    }
}

/// What a cell runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Baseline(String),
    /// `prnn train` (then `prnn eval`) of the plan's spec `spec`.
    Train {
        spec: usize,
        overrides: Vec<String>,
        validation: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The folder under the experiment folder, e.g. `cells/id_only-seed1` or `tune/id_only-lr0.1`.
    pub name: String,
    pub work: Work,
    /// The table row it belongs to.
    pub row: String,
}

impl Cell {
    /// How the table names the cell when it did not finish: by its seed, the last override.
    pub fn unfinished(&self) -> String {
        match &self.work {
            Work::Train { overrides, .. } => format!("{} did not finish", overrides.last().cloned().unwrap_or_default()),
            Work::Baseline(_) => "did not finish".to_string(),
        }
    }
}

/// A tuning trial: its cell, its place in the tuning table, and the setting as the search proposed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub cell: Cell,
    pub tuning: TuningCell,
    pub proposed: super::search::Setting,
}

/// An experiment's settings, checked, with its specs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The specs to read: the command line's, else `[experiment] specs`.
    pub spec_paths: Vec<PathBuf>,
    /// The specs read so far ([`Plan::add_spec`]); cells refer to them by index.
    pub specs: Vec<PlannedSpec>,
    pub baselines: Vec<String>,
    pub seeds: Vec<u64>,
    pub sweep: Grid,
    pub tune_models: Vec<String>,
    /// How the tuned models' settings are searched; `None` when nothing is tuned.
    pub tune: Option<Search>,
    pub compare_to: Option<String>,
    /// `[experiment] reference` as written; see [`Plan::reference`].
    pub reference_setting: Option<String>,
}

impl Plan {
    /// The config's sweep with `sweeps` (`key=v1,v2`, from the command line) added, its tuning grid, and the specs
    /// to run. Checks what can be checked before any spec is read: the sweeps' form, the grids' keys, and that
    /// there is something to run.
    pub fn new(settings: &Experiment, sweeps: &[String], spec_paths: &[PathBuf]) -> Result<Plan, PlanError> {
        let mut sweep = grid_of(&settings.sweep);
        for text in sweeps {
            let (key, values) = parse_sweep(text)?;
            sweep.insert(key, values);
        }
        let tune = search_of(&settings.tune)?;
        let tuned_keys: Vec<String> = tune.iter().flat_map(|search| search.space().keys().map(str::to_string)).collect();
        for key in sweep.keys().chain(&tuned_keys) {
            overrides::check_key(key).map_err(PlanError::UnknownKey)?;
            if key == "seed" {
                return Err(PlanError::SeedSwept);
            }
        }
        if !settings.tune.models.is_empty() {
            if let Some(key) = sweep.keys().find(|key| *key == "stop" || key.starts_with("stop.")) {
                return Err(PlanError::StopSweptWhileTuning(key.clone()));
            }
        }
        let spec_paths = if spec_paths.is_empty() { settings.specs.clone() } else { spec_paths.to_vec() };
        if spec_paths.is_empty() && settings.baselines.is_empty() {
            return Err(PlanError::NothingToRun);
        }
        Ok(Plan {
            spec_paths,
            specs: Vec::new(),
            baselines: settings.baselines.clone(),
            seeds: settings.seeds.clone(),
            sweep,
            tune_models: settings.tune.models.clone(),
            tune,
            compare_to: settings.compare_to.clone(),
            reference_setting: settings.reference.clone(),
        })
    }

    /// Adds a spec; its model must be new, since rows and folders are named after models.
    pub fn add_spec(&mut self, spec: PlannedSpec) -> Result<(), PlanError> {
        if let Some(earlier) = self.specs.iter().find(|s| s.model == spec.model) {
            return Err(PlanError::SameModel { earlier: earlier.path.clone(), later: spec.path, model: spec.model });
        }
        self.specs.push(spec);
        Ok(())
    }

    /// The sweep's settings in order: one empty setting when nothing is swept.
    pub fn sweep_settings(&self) -> Vec<Setting> {
        combinations(&self.sweep)
    }

    fn spec_of(&self, model: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.model == model)
    }

    /// Checks, once every spec is added, that the rows `compare_to` and `reference` name and the models to tune
    /// exist.
    pub fn check_names(&self) -> Result<(), PlanError> {
        for (setting, name) in [("compare_to", &self.compare_to), ("reference", &self.reference_setting)] {
            if let Some(name) = name {
                if self.spec_of(name).is_none() && !self.baselines.contains(name) {
                    return Err(PlanError::UnknownRow { setting, name: name.clone() });
                }
            }
        }
        match self.tune_models.iter().find(|name| self.spec_of(name).is_none()) {
            Some(name) => Err(PlanError::UnknownTunedModel(name.clone())),
            None => Ok(()),
        }
    }

    /// The row the table's changes are relative to: `[experiment] reference`, else item-kNN when it runs.
    pub fn reference(&self) -> Option<String> {
        self.reference_setting.clone().or_else(|| self.baselines.iter().find(|b| *b == "item_knn").cloned())
    }

    /// Phase 1's cells that no search proposes: the baselines, and for every spec that stops early and is not
    /// tuned, one run with its own settings on the validation split, which finds its epochs.
    pub fn baseline_cells(&self) -> Vec<Cell> {
        let baselines =
            self.baselines.iter().map(|name| Cell { name: format!("cells/{name}"), work: Work::Baseline(name.clone()), row: name.clone() });
        baselines.chain(self.stopping_cells().into_iter().map(|(cell, _)| cell)).collect()
    }

    /// For every sweep setting under which an untuned spec stops early: its validation run (`tune/MODEL`, or
    /// `tune/MODEL-KEYVALUE` in a sweep), as a cell of that setting's row, whose kept epochs the row's cells on
    /// all the data train for. Each setting finds its own epochs: a larger network may need fewer.
    pub fn stopping_cells(&self) -> Vec<(Cell, TuningCell)> {
        let first_seed = self.seeds[0];
        let settings = self.sweep_settings();
        let mut cells = Vec::new();
        for (index, spec) in self.specs.iter().enumerate().filter(|(_, spec)| !self.tune_models.contains(&spec.model)) {
            for (setting, _) in settings.iter().zip(&spec.stops).filter(|(_, stops)| **stops) {
                let name = format!("tune/{}{}", spec.model, folder_label(setting));
                let mut overrides = as_overrides(setting);
                overrides.push(format!("seed={first_seed}"));
                let row = Self::row_label(&spec.model, setting);
                let cell = Cell { name: name.clone(), work: Work::Train { spec: index, overrides, validation: true }, row };
                cells.push((cell, TuningCell { model: spec.model.clone(), setting: setting.clone(), name }));
            }
        }
        cells
    }

    /// Trials per tuned model.
    pub fn trials(&self) -> usize {
        self.tune.as_ref().map_or(0, Search::trials)
    }

    /// Whether a trial's setting depends on the results of earlier trials (TPE), so trials run in rounds.
    pub fn learns_from_results(&self) -> bool {
        self.tune.as_ref().is_some_and(|search| search.method() == Method::Tpe)
    }

    /// Phase 1's tuning: trials `trials` of `model`, trained with the first seed on the validation split.
    /// `history` holds the model's finished trials before them, in trial order (only TPE reads it).
    pub fn tuning_trials(&self, model: &str, trials: std::ops::Range<usize>, history: &[Observation]) -> Result<Vec<Trial>, SearchError> {
        let Some(search) = &self.tune else { return Ok(Vec::new()) };
        let spec = self.spec_of(model).expect("check_names found every model to tune");
        let width = search.trials().to_string().len();
        trials
            .map(|trial| {
                let proposed = search.propose(trial, history)?;
                let setting = proposed.as_text();
                let name = match search.method() {
                    // A grid cell is named by its values, as before searches had other methods.
                    Method::Grid => format!("tune/{model}{}", folder_label(&setting)),
                    Method::Random | Method::Tpe => format!("tune/{model}-trial{:0width$}", trial + 1),
                };
                let mut overrides = proposed.as_overrides();
                overrides.push(format!("seed={}", self.seeds[0]));
                let cell = Cell { name: name.clone(), work: Work::Train { spec, overrides, validation: true }, row: model.to_string() };
                Ok(Trial { cell, tuning: TuningCell { model: model.to_string(), setting, name }, proposed })
            })
            .collect()
    }

    /// Phase 1 whole, where no trial depends on another's result (grid and random search): the baselines,
    /// then every trial of every model to tune.
    pub fn first_phase(&self) -> Result<(Vec<Cell>, Vec<TuningCell>), SearchError> {
        let mut cells = self.baseline_cells();
        let mut tuning = Vec::new();
        for model in &self.tune_models {
            for trial in self.tuning_trials(model, 0..self.trials(), &[])? {
                cells.push(trial.cell);
                tuning.push(trial.tuning);
            }
        }
        Ok((cells, tuning))
    }

    /// How the table names a model's row for a sweep setting: `id_only`, or `id_only lr=0.1`.
    fn row_label(model: &str, setting: &[(String, String)]) -> String {
        if setting.is_empty() {
            model.to_string()
        } else {
            format!("{model} {}", setting_label(setting))
        }
    }

    /// Phase 2: every spec × sweep setting × seed, on the full training set, with each tuned model's chosen
    /// setting (`chosen`, by model) after the sweep's, and the epochs a stopping row's validation run kept
    /// (`kept`, by row) after those.
    pub fn second_phase(&self, chosen: &HashMap<String, Setting>, kept: &HashMap<String, Setting>) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (index, spec) in self.specs.iter().enumerate() {
            for setting in combinations(&self.sweep) {
                let row = Self::row_label(&spec.model, &setting);
                for &seed in &self.seeds {
                    let mut overrides = as_overrides(&setting);
                    for found in [chosen.get(&spec.model), kept.get(&row)].into_iter().flatten() {
                        overrides.extend(as_overrides(found));
                    }
                    overrides.push(format!("seed={seed}"));
                    let name = format!("cells/{}{}-seed{seed}", spec.model, folder_label(&setting));
                    cells.push(Cell { name, work: Work::Train { spec: index, overrides, validation: false }, row: row.clone() });
                }
            }
        }
        cells
    }

    /// The table's rows in order: the baselines, then each spec's row for every sweep setting.
    pub fn rows(&self) -> Vec<String> {
        let settings = combinations(&self.sweep);
        let models = self.specs.iter().flat_map(|spec| settings.iter().map(|setting| Self::row_label(&spec.model, setting)));
        self.baselines.iter().cloned().chain(models).collect()
    }

    /// The bootstrap's pairs: for each sweep setting, every trained row of that setting against `compare_to`'s.
    pub fn comparisons(&self) -> Vec<Comparison> {
        let Some(base) = &self.compare_to else { return Vec::new() };
        combinations(&self.sweep)
            .iter()
            .map(|setting| {
                let suffix = if setting.is_empty() { String::new() } else { format!(" {}", setting_label(setting)) };
                Comparison { base: format!("{base}{suffix}"), suffix }
            })
            .collect()
    }

    /// The table's rows with the folders of their cells under `out`. Cells on the validation split (tuning) are
    /// not part of the table, which is about the test set.
    pub fn table(&self, out: &std::path::Path, cells: &[Cell]) -> Vec<RowCells> {
        let tested = |cell: &&Cell| !matches!(cell.work, Work::Train { validation: true, .. });
        self.rows()
            .into_iter()
            .map(|label| {
                let members: Vec<&Cell> = cells.iter().filter(tested).filter(|c| c.row == label).collect();
                RowCells {
                    baseline: members.iter().any(|c| matches!(c.work, Work::Baseline(_))),
                    cells: members.iter().map(|c| CellFolder { dir: out.join(&c.name), unfinished: c.unfinished() }).collect(),
                    label,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> Experiment {
        let text = format!("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n{toml_text}");
        crate::config::parse(&text, std::path::Path::new(".")).unwrap_or_else(|e| panic!("{e:?}")).experiment
    }

    fn spec(model: &str) -> PlannedSpec {
        PlannedSpec::new(PathBuf::from(format!("{model}.prnn")), model, model)
    }

    #[test]
    fn a_grid_expands_to_every_combination_in_order() {
        let grid: Grid = [
            ("lr".to_string(), vec!["0.1".to_string(), "0.2".to_string()]),
            ("batch".to_string(), vec!["32".to_string(), "50".to_string()]),
        ]
        .into_iter()
        .collect();
        let all = combinations(&grid);
        let labels: Vec<String> = all.iter().map(|c| setting_label(c)).collect();
        assert_eq!(labels, ["lr=0.1 batch=32", "lr=0.1 batch=50", "lr=0.2 batch=32", "lr=0.2 batch=50"]);
        assert_eq!(folder_label(&all[1]), "-lr0.1-batch50");
        assert_eq!(as_overrides(&all[2]), ["lr=0.2", "batch=32"]);
        assert_eq!(combinations(&IndexMap::new()), vec![Setting::new()]);
    }

    #[test]
    fn sweeps_parse_from_the_command_line() {
        assert_eq!(parse_sweep("lr=0.05, 0.1").unwrap(), ("lr".to_string(), vec!["0.05".to_string(), "0.1".to_string()]));
        assert_eq!(parse_sweep("lr"), Err(PlanError::NotASweep("lr".into())));
        assert_eq!(parse_sweep("lr="), Err(PlanError::EmptySweep("lr=".into())));
    }

    #[test]
    fn settings_that_make_no_plan_are_refused_in_order() {
        let refused = |toml_text: &str, sweeps: &[&str]| {
            let sweeps: Vec<String> = sweeps.iter().map(|s| s.to_string()).collect();
            Plan::new(&settings(toml_text), &sweeps, &[PathBuf::from("a.prnn")]).unwrap_err()
        };
        // A malformed `--sweep` is found before the config's grid keys.
        assert_eq!(refused("[experiment.sweep]\nrate = [1]\n", &["lr"]), PlanError::NotASweep("lr".into()));
        assert!(matches!(refused("[experiment.sweep]\nrate = [1]\n", &[]), PlanError::UnknownKey(_)));
        assert!(matches!(refused("", &["rate=1,2"]), PlanError::UnknownKey(_)));
        assert_eq!(refused("[experiment.tune]\nmodels = [\"a\"]\ngrid = { seed = [1] }\n", &[]), PlanError::SeedSwept);
        assert_eq!(Plan::new(&settings(""), &[], &[]).unwrap_err(), PlanError::NothingToRun);
    }

    #[test]
    fn names_are_checked_against_the_specs_and_baselines() {
        let mut plan = Plan::new(&settings("[experiment]\ncompare_to = \"ids\"\nbaselines = [\"sknn\"]\n"), &[], &[]).unwrap();
        assert_eq!(plan.check_names(), Err(PlanError::UnknownRow { setting: "compare_to", name: "ids".into() }));
        plan.add_spec(spec("ids")).unwrap();
        assert_eq!(plan.check_names(), Ok(()));
        let twice = plan.add_spec(PlannedSpec::new("copy.prnn".into(), "ids", "")).unwrap_err();
        assert_eq!(twice.to_string(), "`ids.prnn` and `copy.prnn` both define the model `ids`");
        assert_eq!(plan.reference(), None, "item-kNN is the default reference only when it runs");

        let specs = [PathBuf::from("ids.prnn")];
        let mut plan = Plan::new(&settings("[experiment.tune]\nmodels = [\"gru\"]\ngrid = { lr = [0.1] }\n"), &[], &specs).unwrap();
        assert_eq!(plan.spec_paths, specs);
        plan.add_spec(spec("ids")).unwrap();
        assert_eq!(plan.check_names(), Err(PlanError::UnknownTunedModel("gru".into())));
    }

    #[test]
    fn cells_cover_baselines_tuning_specs_sweeps_and_seeds() {
        let config = "[experiment]\nseeds = [1, 2]\nbaselines = [\"item_knn\"]\ncompare_to = \"ids\"\n\
                      [experiment.tune]\nmodels = [\"ids\"]\ngrid = { lr = [0.05, 0.2] }\n";
        let mut plan = Plan::new(&settings(config), &["batch=8,16".to_string()], &[]).unwrap();
        plan.add_spec(spec("ids")).unwrap();
        plan.add_spec(spec("both")).unwrap();
        plan.check_names().unwrap();
        assert_eq!(plan.reference().as_deref(), Some("item_knn"));

        let (first, tuning) = plan.first_phase().unwrap();
        let names: Vec<&str> = first.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cells/item_knn", "tune/ids-lr0.05", "tune/ids-lr0.2"]);
        assert_eq!(first[1].work, Work::Train { spec: 0, overrides: vec!["lr=0.05".into(), "seed=1".into()], validation: true });
        assert_eq!(tuning[1].setting, vec![("lr".to_string(), "0.2".to_string())]);

        let chosen = HashMap::from([("ids".to_string(), tuning[1].setting.clone())]);
        let second = plan.second_phase(&chosen, &HashMap::new());
        assert_eq!(second.len(), 2 * 2 * 2);
        let cell = second.iter().find(|c| c.name == "cells/ids-batch16-seed2").unwrap();
        assert_eq!(
            cell.work,
            Work::Train { spec: 0, overrides: vec!["batch=16".into(), "lr=0.2".into(), "seed=2".into()], validation: false }
        );
        assert_eq!((cell.row.as_str(), cell.unfinished()), ("ids batch=16", "seed=2 did not finish".to_string()));
        let untuned = second.iter().find(|c| c.name == "cells/both-batch8-seed1").unwrap();
        assert!(matches!(&untuned.work, Work::Train { overrides, .. } if overrides == &["batch=8", "seed=1"]));

        assert_eq!(plan.rows(), ["item_knn", "ids batch=8", "ids batch=16", "both batch=8", "both batch=16"]);
        let bases: Vec<(String, String)> = plan.comparisons().into_iter().map(|c| (c.base, c.suffix)).collect();
        assert_eq!(bases, [("ids batch=8".to_string(), " batch=8".to_string()), ("ids batch=16".to_string(), " batch=16".to_string())]);

        let all: Vec<Cell> = first.into_iter().chain(second).collect();
        let table = plan.table(std::path::Path::new("out"), &all);
        assert_eq!(table.len(), 5);
        assert!(table[0].baseline && table[0].cells[0].dir == std::path::Path::new("out/cells/item_knn"));
        assert_eq!(table[1].cells.len(), 2, "the tuning cells are not rows of the table");
    }

    #[test]
    fn a_spec_that_stops_early_finds_its_epochs_on_the_validation_split_unless_it_is_tuned() {
        let config =
            "[experiment]\nseeds = [4, 5]\nbaselines = [\"sknn\"]\n[experiment.tune]\nmodels = [\"tuned\"]\ngrid = { lr = [0.1] }\n";
        let mut plan = Plan::new(&settings(config), &[], &[]).unwrap();
        plan.add_spec(spec("plain")).unwrap();
        plan.add_spec(spec("stops").stopping(vec![true])).unwrap();
        plan.add_spec(spec("tuned").stopping(vec![true])).unwrap();
        let names: Vec<String> = plan.baseline_cells().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["cells/sknn", "tune/stops"]);
        let (cell, trial) = plan.stopping_cells().remove(0);
        assert_eq!(cell.work, Work::Train { spec: 1, overrides: vec!["seed=4".into()], validation: true });
        assert_eq!((trial.model.as_str(), trial.setting.len()), ("stops", 0));
        let (first, _) = plan.first_phase().unwrap();
        assert!(first.iter().any(|c| c.name == "tune/tuned-lr0.1") && first.iter().any(|c| c.name == "tune/stops"));
    }

    #[test]
    fn each_sweep_setting_that_stops_finds_its_own_epochs() {
        let mut plan =
            Plan::new(&settings("[experiment]\nseeds = [1]\n"), &["stop=none,early".to_string()], &[PathBuf::from("gru.prnn")]).unwrap();
        assert_eq!(plan.sweep_settings().len(), 2);
        // The spec stops only where the sweep says `stop=early`.
        plan.add_spec(spec("gru").stopping(vec![false, true])).unwrap();
        let stopping = plan.stopping_cells();
        assert_eq!(stopping.len(), 1);
        let (cell, run) = &stopping[0];
        assert_eq!((cell.name.as_str(), cell.row.as_str()), ("tune/gru-stopearly", "gru stop=early"));
        assert_eq!(cell.work, Work::Train { spec: 0, overrides: vec!["stop=early".into(), "seed=1".into()], validation: true });
        assert_eq!(run.setting, vec![("stop".to_string(), "early".to_string())]);

        let kept =
            HashMap::from([(cell.row.clone(), vec![("stop".to_string(), "none".to_string()), ("epochs".to_string(), "4".to_string())])]);
        let second = plan.second_phase(&HashMap::new(), &kept);
        let overrides_of = |name: &str| match &second.iter().find(|c| c.name == name).unwrap().work {
            Work::Train { overrides, .. } => overrides.clone(),
            Work::Baseline(_) => unreachable!(),
        };
        assert_eq!(overrides_of("cells/gru-stopearly-seed1"), ["stop=early", "stop=none", "epochs=4", "seed=1"]);
        assert_eq!(overrides_of("cells/gru-stopnone-seed1"), ["stop=none", "seed=1"], "a setting that does not stop keeps its epochs");
    }

    #[test]
    fn a_sweep_cannot_decide_when_tuned_models_stop() {
        let config = "[experiment.tune]\nmodels = [\"a\"]\ngrid = { lr = [0.1] }\n";
        for sweep in ["stop=none,early", "stop.patience=1,3"] {
            let error = Plan::new(&settings(config), &[sweep.to_string()], &[PathBuf::from("a.prnn")]).unwrap_err();
            assert!(matches!(&error, PlanError::StopSweptWhileTuning(key) if sweep.starts_with(key.as_str())), "{error:?}");
            assert!(error.help().is_some());
        }
        assert!(Plan::new(&settings(""), &["stop.patience=1,3".to_string()], &[PathBuf::from("a.prnn")]).is_ok());
    }

    #[test]
    fn tpe_starts_learning_after_the_configured_startup_trials() {
        let tune = |extra: &str| {
            let text =
                format!("[experiment.tune]\nmodels = [\"a\"]\nmethod = \"tpe\"\ntrials = 6\nspace.lr = {{ log = [0.01, 0.3] }}\n{extra}");
            search_of(&settings(&text).tune).unwrap().unwrap()
        };
        let (default, early) = (tune(""), tune("startup = 2\n"));
        let history: Vec<Observation> =
            (0..2).map(|trial| Observation { setting: default.propose(trial, &[]).unwrap(), score: Some(trial as f64) }).collect();
        // The startup trials are the same random draws; trial 2 is TPE's proposal only where startup is 2.
        assert_eq!(early.propose(1, &history[..1]).unwrap(), default.propose(1, &history[..1]).unwrap());
        assert_ne!(early.propose(2, &history).unwrap(), default.propose(2, &history).unwrap());
        assert_eq!(early.propose(2, &history).unwrap(), tune("startup = 2\ngamma = 0.1\ncandidates = 24\n").propose(2, &history).unwrap());
    }
}
