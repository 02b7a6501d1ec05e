//! `key=value` overrides of a spec's settings: `prnn train KEY=VALUE`, and the sweeps, grids and searches of
//! `prnn run`, which pass their settings to `prnn train` the same way.
//!
//! Every number a spec can hold has a key. Training settings have bare keys (`lr`, `batch`, `epochs`); the
//! rest are addressed by what they belong to: a subnet (`id_net.hidden`, `id_net.dropout`, `id_net.lr`), an
//! input (`id.dropout`, `id.dim`), every subnet's hidden size at once (`hidden`), the loss (`loss.bpreg`, `loss.logq`), the output (`output.alpha`), a merge
//! weight (`merge.id_net`), a residual phase (`schedule.id_net`) and early stopping (`stop`, `stop.patience`,
//! `stop.min_delta`, `stop.cutoff`, `stop.metric`). Values are checked against the same ranges as the spec's
//! own, and what ties settings together (equal hidden sizes under `shared_w` and `interaction`, negatives
//! for a mini-batch of 1) is checked again once every override is applied.

use crate::check::{Activation, EarlyStop, Embedding, InputKind, Loss, Merge, Model, Range, Schedule, StopMetric, MAX_EPOCHS, MAX_WHOLE};

/// The bare keys, as error messages list them.
const GLOBAL_KEYS: &[&str] = &["seed", "batch", "lr", "momentum", "eps", "epochs", "extra", "alpha", "max_batches", "hidden", "stop"];
/// The addressed keys' forms, for messages and for checking a key before any spec is read.
const ADDRESSED_FORMS: &[&str] = &[
    "SUBNET.hidden",
    "SUBNET.dropout",
    "SUBNET.lr",
    "INPUT.dropout",
    "INPUT.dim",
    "loss.bpreg",
    "loss.logq",
    "output.alpha",
    "merge.SUBNET",
    "schedule.SUBNET",
    "stop.patience",
    "stop.min_delta",
    "stop.cutoff",
    "stop.metric",
];
const SUBNET_FIELDS: &[&str] = &["hidden", "dropout", "lr"];
const INPUT_FIELDS: &[&str] = &["dropout", "dim"];
const STOP_FIELDS: &[&str] = &["patience", "min_delta", "cutoff", "metric"];

/// Every key form overrides take, as error messages list them.
pub fn key_forms() -> String {
    GLOBAL_KEYS.iter().chain(ADDRESSED_FORMS).copied().collect::<Vec<_>>().join(", ")
}

/// The values a setting takes, as messages say them: the same ranges, in the same words, as a spec's settings
/// (`Range::expected` in src/check/args.rs), whatever is wrong with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// 0, 1, 2, ... up to 1,000,000,000
    WholeNumber,
    /// 1, 2, ... up to 1,000,000,000
    PositiveWholeNumber,
    /// 1, 2, ... up to 100,000
    Epochs,
    /// > 0
    Positive,
    /// >= 0
    NonNegative,
    /// [0, 1)
    Fraction,
    /// `mrr` or `recall`
    StopMetric,
    /// `early` or `none`
    Stop,
}

impl Expected {
    /// The least and the largest whole number allowed, for the whole-number kinds.
    fn whole_bounds(self) -> Option<(u64, u64)> {
        match self {
            Expected::WholeNumber => Some((0, MAX_WHOLE)),
            Expected::PositiveWholeNumber => Some((1, MAX_WHOLE)),
            Expected::Epochs => Some((1, MAX_EPOCHS)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&match self {
            Expected::WholeNumber => Range::NonNegative.expected(Some(MAX_WHOLE)),
            Expected::PositiveWholeNumber => Range::Positive.expected(Some(MAX_WHOLE)),
            Expected::Epochs => Range::Positive.expected(Some(MAX_EPOCHS)),
            Expected::Positive => Range::Positive.expected(None),
            Expected::NonNegative => Range::NonNegative.expected(None),
            Expected::Fraction => Range::Fraction.expected(None),
            Expected::StopMetric => "`mrr` or `recall`".into(),
            Expected::Stop => "`early` or `none`".into(),
        })
    }
}

/// An override that cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    #[error("override `{0}` is not `key=value` (keys: {keys})", keys = key_forms())]
    NotKeyValue(String),
    #[error("unknown override `{key}`{}; keys: {keys}", closest.as_ref().map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default())]
    UnknownKey { key: String, closest: Option<String>, keys: String },
    #[error("override `{key}` needs {expected}, got `{value}`")]
    BadValue { key: String, value: String, expected: Expected },
    #[error("override `{key}` does not apply to this spec: {why}")]
    NotApplicable { key: String, why: String },
    #[error("the overrides leave `{merge}` subnets of unequal hidden size ({sizes}): {why}; set them all, or use `hidden=N`")]
    UnequalHidden { merge: &'static str, sizes: String, why: &'static str },
    #[error("the overrides make every merge weight 0: no subnet would contribute to the scores")]
    AllWeightsZero,
    #[error("a mini-batch of 1 has no negatives with in-batch negatives only: use `batch=2` or more, or `extra=N`")]
    NoNegatives,
}

fn unknown(key: &str, candidates: impl IntoIterator<Item = String>, keys: String) -> OverrideError {
    let candidates: Vec<String> = candidates.into_iter().collect();
    let closest = crate::diagnostic::closest(key, candidates.iter().map(String::as_str)).map(str::to_string);
    OverrideError::UnknownKey { key: key.to_string(), closest, keys }
}

/// Whether `key` has the form of an override key, before any spec is read; the error names the closest
/// form. Whether the subnet or input it names exists is checked when the override is applied.
pub fn check_key(key: &str) -> Result<(), OverrideError> {
    let known = match key.split_once('.') {
        None => GLOBAL_KEYS.contains(&key),
        Some(("loss", field)) => ["bpreg", "logq"].contains(&field),
        Some(("output", field)) => field == "alpha",
        Some(("stop", field)) => STOP_FIELDS.contains(&field),
        Some(("merge" | "schedule", name)) => is_name(name),
        Some((name, field)) => is_name(name) && (SUBNET_FIELDS.contains(&field) || INPUT_FIELDS.contains(&field)),
    };
    if known {
        return Ok(());
    }
    let forms = GLOBAL_KEYS.iter().chain(ADDRESSED_FORMS).map(|s| s.to_string());
    Err(unknown(key, forms, key_forms()))
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every key that applies to `model`, in the order a user reads a spec.
pub fn keys_of(model: &Model) -> Vec<String> {
    let mut keys: Vec<String> = GLOBAL_KEYS.iter().map(|k| k.to_string()).collect();
    for input in &model.inputs {
        if let InputKind::ItemId { embedding, .. } = &input.kind {
            keys.push(format!("{}.dropout", input.name));
            if matches!(embedding, Embedding::Separate { .. }) {
                keys.push(format!("{}.dim", input.name));
            }
        }
    }
    for subnet in &model.subnets {
        keys.extend(SUBNET_FIELDS.iter().map(|field| format!("{}.{field}", subnet.name)));
    }
    match model.loss {
        Loss::BprMax { .. } => keys.push("loss.bpreg".into()),
        Loss::CrossEntropy { .. } => keys.push("loss.logq".into()),
        Loss::Top1 | Loss::Bpr | Loss::Top1Max => {}
    }
    if matches!(model.activation, Activation::Elu { .. }) {
        keys.push("output.alpha".into());
    }
    if let Merge::Parallel { subnets, .. } | Merge::SharedW { subnets, .. } = &model.merge {
        keys.extend(subnets.iter().map(|s| format!("merge.{s}")));
    }
    if let Schedule::Residual { phases } = &model.train.schedule {
        keys.extend(phases.iter().map(|p| format!("schedule.{}", p.subnet)));
    }
    keys.extend(STOP_FIELDS.iter().map(|field| format!("stop.{field}")));
    keys
}

/// One `key=value`, with its value read as what the key takes.
struct Setting<'a> {
    key: &'a str,
    value: &'a str,
}

impl Setting<'_> {
    fn bad(&self, expected: Expected) -> OverrideError {
        OverrideError::BadValue { key: self.key.into(), value: self.value.into(), expected }
    }

    fn integer(&self, expected: Expected) -> Result<u64, OverrideError> {
        let (least, most) = expected.whole_bounds().expect("a whole-number kind");
        let n = self.value.parse::<u64>().map_err(|_| self.bad(expected))?;
        if (least..=most).contains(&n) {
            Ok(n)
        } else {
            Err(self.bad(expected))
        }
    }

    fn epochs(&self) -> Result<u64, OverrideError> {
        self.integer(Expected::Epochs)
    }

    fn real(&self, expected: Expected) -> Result<f64, OverrideError> {
        let v = self.value.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| self.bad(expected))?;
        let ok = match expected {
            Expected::Positive => v > 0.0,
            Expected::NonNegative => v >= 0.0,
            Expected::Fraction => (0.0..1.0).contains(&v),
            _ => true,
        };
        if ok {
            Ok(v)
        } else {
            Err(self.bad(expected))
        }
    }

    fn not_applicable(&self, why: String) -> OverrideError {
        OverrideError::NotApplicable { key: self.key.into(), why }
    }
}

/// Applies `key=value` overrides, in order, to the model. Returns the run-only `max_batches` (a cap on every
/// epoch, which no spec setting holds).
pub fn apply(model: &mut Model, overrides: &[String]) -> Result<Option<u64>, OverrideError> {
    let mut max_batches = None;
    for text in overrides {
        let (key, value) = text.split_once('=').ok_or_else(|| OverrideError::NotKeyValue(text.clone()))?;
        let setting = Setting { key: key.trim(), value: value.trim() };
        if let Some(n) = apply_one(model, &setting)? {
            max_batches = Some(n);
        }
    }
    // Checked once all are applied: resizing a `shared_w` model takes one override per subnet.
    check_ties(model)?;
    if model.train.batch == 1 && model.train.negatives.extra == 0 {
        return Err(OverrideError::NoNegatives);
    }
    Ok(max_batches)
}

fn apply_one(model: &mut Model, setting: &Setting) -> Result<Option<u64>, OverrideError> {
    let key = setting.key;
    let keys = keys_of(model);
    let train = &mut model.train;
    match key.split_once('.') {
        None => match key {
            "seed" => train.seed = setting.integer(Expected::WholeNumber)?,
            "batch" => train.batch = setting.integer(Expected::PositiveWholeNumber)?,
            "lr" => train.optimizer.learning_rate = setting.real(Expected::Positive)?,
            "momentum" => train.optimizer.momentum = setting.real(Expected::Fraction)?,
            "eps" => train.optimizer.eps = setting.real(Expected::Positive)?,
            "extra" => train.negatives.extra = setting.integer(Expected::WholeNumber)?,
            "alpha" => train.negatives.alpha = setting.real(Expected::NonNegative)?,
            "max_batches" => return Ok(Some(setting.integer(Expected::PositiveWholeNumber)?)),
            // Every subnet at once: the one way to resize a model whose merge needs equal sizes in one setting.
            "hidden" => {
                let hidden = setting.integer(Expected::PositiveWholeNumber)?;
                model.subnets.iter_mut().for_each(|s| s.hidden = hidden);
            }
            "epochs" => {
                let epochs = setting.epochs()?;
                match &mut train.schedule {
                    Schedule::Simultaneous { epochs: e }
                    | Schedule::Alternating { epochs: e, .. }
                    | Schedule::Interleaving { epochs: e, .. } => *e = epochs,
                    // Every phase gets the same number: a residual ensemble needs each subnet trained.
                    Schedule::Residual { phases } => phases.iter_mut().for_each(|p| p.epochs = epochs),
                }
            }
            "stop" => {
                train.stop = match setting.value {
                    "none" => None,
                    "early" => Some(train.stop.unwrap_or(EarlyStop::DEFAULT)),
                    _ => return Err(setting.bad(Expected::Stop)),
                }
            }
            _ => return Err(unknown(key, keys.clone(), keys.join(", "))),
        },
        Some(("stop", field)) => {
            // Setting any part of the rule turns early stopping on, with the defaults for the rest.
            let stop = train.stop.get_or_insert(EarlyStop::DEFAULT);
            match field {
                "patience" => stop.patience = setting.integer(Expected::PositiveWholeNumber)?,
                "min_delta" => stop.min_delta = setting.real(Expected::NonNegative)?,
                "cutoff" => stop.cutoff = setting.integer(Expected::PositiveWholeNumber)?,
                "metric" => stop.metric = StopMetric::from_name(setting.value).ok_or_else(|| setting.bad(Expected::StopMetric))?,
                _ => return Err(unknown(key, keys.clone(), keys.join(", "))),
            }
        }
        Some(("loss", field)) => match (field, &mut model.loss) {
            ("bpreg", Loss::BprMax { bpreg }) => *bpreg = setting.real(Expected::NonNegative)?,
            ("logq", Loss::CrossEntropy { logq }) => *logq = setting.real(Expected::NonNegative)?,
            ("bpreg" | "logq", loss) => {
                let owner = if field == "bpreg" { "bpr_max" } else { "cross_entropy" };
                let loss = crate::check::loss_name(*loss);
                return Err(setting.not_applicable(format!("`{field}` is a setting of `{owner}`, and this spec's loss is `{loss}`")));
            }
            _ => return Err(unknown(key, keys.clone(), keys.join(", "))),
        },
        Some(("output", "alpha")) => match &mut model.activation {
            Activation::Elu { alpha } => *alpha = setting.real(Expected::Positive)?,
            other => {
                let name = crate::check::activation_name(*other);
                return Err(setting.not_applicable(format!("`alpha` is a setting of `elu`, and this spec's activation is `{name}`")));
            }
        },
        Some(("merge", name)) => match &mut model.merge {
            Merge::Parallel { subnets, weights } | Merge::SharedW { subnets, weights } => {
                let Some(index) = subnets.iter().position(|s| s == name) else {
                    return Err(unknown(key, subnets.iter().map(|s| format!("merge.{s}")), keys.join(", ")));
                };
                weights[index] = setting.real(Expected::NonNegative)?;
            }
            Merge::Single { .. } | Merge::Interaction { .. } => {
                return Err(setting.not_applicable("only `parallel` and `shared_w` merges have weights".into()));
            }
        },
        Some(("schedule", name)) => match &mut train.schedule {
            Schedule::Residual { phases } => {
                let Some(phase) = phases.iter_mut().find(|p| p.subnet == name) else {
                    return Err(unknown(key, keys.iter().filter(|k| k.starts_with("schedule.")).cloned(), keys.join(", ")));
                };
                phase.epochs = setting.epochs()?;
            }
            other => {
                let strategy = other.name();
                return Err(setting.not_applicable(format!(
                    "only `residual` schedules give each subnet its own epochs; this spec's is `{strategy}` (use `epochs`)"
                )));
            }
        },
        Some((name, field)) => {
            if let Some(subnet) = model.subnets.iter_mut().find(|s| s.name == name) {
                match field {
                    "hidden" => subnet.hidden = setting.integer(Expected::PositiveWholeNumber)?,
                    "dropout" => subnet.dropout = setting.real(Expected::Fraction)?,
                    "lr" => subnet.learning_rate = Some(setting.real(Expected::Positive)?),
                    _ => {
                        let candidates = SUBNET_FIELDS.iter().map(|f| format!("{name}.{f}"));
                        return Err(unknown(key, candidates, keys.join(", ")));
                    }
                }
            } else if let Some(input) = model.inputs.iter_mut().find(|i| i.name == name) {
                match (field, &mut input.kind) {
                    ("dropout", InputKind::ItemId { dropout, .. }) => *dropout = setting.real(Expected::Fraction)?,
                    ("dim", InputKind::ItemId { embedding: Embedding::Separate { dim }, .. }) => {
                        *dim = setting.integer(Expected::PositiveWholeNumber)?
                    }
                    ("dim", InputKind::ItemId { .. }) => {
                        return Err(setting.not_applicable(format!(
                            "`{name}` has no separate embedding to size (give it `embedding = separate(dim = N)` in the spec)"
                        )));
                    }
                    ("dropout" | "dim", _) => {
                        return Err(setting.not_applicable(format!("`{name}` is a feature input; only item ID inputs have `{field}`")));
                    }
                    _ => {
                        let candidates = INPUT_FIELDS.iter().map(|f| format!("{name}.{f}"));
                        return Err(unknown(key, candidates, keys.join(", ")));
                    }
                }
            } else {
                return Err(unknown(key, keys.clone(), keys.join(", ")));
            }
        }
    }
    Ok(None)
}

/// What one override can break between settings, checked as the spec checker does.
fn check_ties(model: &Model) -> Result<(), OverrideError> {
    let (merge, names, why): (&'static str, Vec<&str>, &'static str) = match &model.merge {
        Merge::SharedW { subnets, .. } => {
            ("shared_w", subnets.iter().map(String::as_str).collect(), "their weighted sum is multiplied by one output matrix")
        }
        Merge::Interaction { .. } => ("interaction", model.merge.subnets(), "their hidden states are multiplied element-wise"),
        Merge::Single { .. } | Merge::Parallel { .. } => ("", Vec::new(), ""),
    };
    let sizes: Vec<(&str, u64)> = names.iter().filter_map(|n| model.subnet(n).map(|s| (*n, s.hidden))).collect();
    if sizes.windows(2).any(|pair| pair[0].1 != pair[1].1) {
        let sizes = sizes.iter().map(|(n, h)| format!("`{n}` {h}")).collect::<Vec<_>>().join(", ");
        return Err(OverrideError::UnequalHidden { merge, sizes, why });
    }
    if let Merge::Parallel { weights, .. } | Merge::SharedW { weights, .. } = &model.merge {
        if weights.iter().all(|w| *w == 0.0) {
            return Err(OverrideError::AllWeightsZero);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "model m {
  input id    : item_id(embedding = separate(dim = 16), dropout = 0.1)
  input image : dense
  subnet id_net    = gru(id, hidden = 8)
  subnet image_net = gru(image, hidden = 8)
  merge = shared_w(id_net, image_net)
  output = scores(activation = elu(0.5))
  loss = bpr_max(bpreg = 1)
}
train {
  batch    = 16
  schedule = residual { id_net: 2 epochs, image_net: 3 epochs }
}
";

    fn model_of(spec: &str) -> Model {
        crate::compile::check_source(&crate::diagnostic::Source::new("m.prnn", spec)).unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
    }

    fn apply_to(spec: &str, overrides: &[&str]) -> Result<(Model, Option<u64>), OverrideError> {
        let mut model = model_of(spec);
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let max_batches = apply(&mut model, &overrides)?;
        Ok((model, max_batches))
    }

    fn apply_to_model(overrides: &[&str]) -> Result<(Model, Option<u64>), OverrideError> {
        apply_to(SPEC, overrides)
    }

    #[test]
    fn overrides_set_the_training_settings() {
        let (model, max_batches) =
            apply_to_model(&["seed=7", "batch = 32", "lr=0.2", "momentum=0.5", "eps=1e-8", "extra=4", "alpha=0.75", "max_batches=3"])
                .unwrap();
        let train = &model.train;
        assert_eq!((train.seed, train.batch, train.negatives.extra), (7, 32, 4));
        assert_eq!((train.optimizer.learning_rate, train.optimizer.momentum, train.optimizer.eps), (0.2, 0.5, 1e-8));
        assert_eq!((train.negatives.alpha, max_batches), (0.75, Some(3)));
    }

    #[test]
    fn addressed_overrides_reach_every_number_of_the_spec() {
        let (model, _) = apply_to_model(&["hidden=24"]).unwrap();
        assert!(model.subnets.iter().all(|s| s.hidden == 24));
        let (model, _) = apply_to_model(&[
            "id_net.hidden=32",
            "image_net.hidden=32",
            "id_net.dropout=0.3",
            "image_net.lr=0.01",
            "id.dropout=0.2",
            "id.dim=64",
            "loss.bpreg=0.5",
            "output.alpha=2",
            "merge.image_net=0.25",
            "schedule.image_net=7",
        ])
        .unwrap();
        let (id_net, image_net) = (model.subnet("id_net").unwrap(), model.subnet("image_net").unwrap());
        assert_eq!((id_net.hidden, id_net.dropout, id_net.learning_rate), (32, 0.3, None));
        assert_eq!((image_net.hidden, image_net.learning_rate), (32, Some(0.01)));
        assert_eq!(model.input("id").unwrap().kind, InputKind::ItemId { embedding: Embedding::Separate { dim: 64 }, dropout: 0.2 });
        assert_eq!(model.loss, Loss::BprMax { bpreg: 0.5 });
        assert_eq!(model.activation, Activation::Elu { alpha: 2.0 });
        assert_eq!(model.merge, Merge::SharedW { subnets: vec!["id_net".into(), "image_net".into()], weights: vec![1.0, 0.25] });
        let Schedule::Residual { phases } = &model.train.schedule else { panic!("the spec is residual") };
        assert_eq!(phases.iter().map(|p| p.epochs).collect::<Vec<_>>(), [2, 7]);
    }

    #[test]
    fn cross_entropy_takes_logq() {
        let spec =
            "model m {\n input id : item_id\n subnet id_net = gru(id)\n output = scores(activation = softmax)\n loss = cross_entropy\n}\n";
        let (model, _) = apply_to(spec, &["loss.logq=1"]).unwrap();
        assert_eq!(model.loss, Loss::CrossEntropy { logq: 1.0 });
    }

    #[test]
    fn stop_overrides_turn_early_stopping_on_and_off() {
        let (model, _) = apply_to_model(&["stop.patience=2"]).unwrap();
        assert_eq!(model.train.stop, Some(EarlyStop { patience: 2, ..EarlyStop::DEFAULT }));
        let (model, _) = apply_to_model(&["stop=early", "stop.metric=recall", "stop.cutoff=10", "stop.min_delta=0.001"]).unwrap();
        assert_eq!(model.train.stop, Some(EarlyStop { metric: StopMetric::Recall, cutoff: 10, patience: 3, min_delta: 0.001 }));
        let (model, _) = apply_to_model(&["stop.patience=2", "stop=none"]).unwrap();
        assert_eq!(model.train.stop, None);
    }

    #[test]
    fn epochs_reach_every_phase_of_a_residual_schedule() {
        let (model, _) = apply_to_model(&["epochs=4"]).unwrap();
        let Schedule::Residual { phases } = &model.train.schedule else { panic!("the spec is residual") };
        assert_eq!(phases.iter().map(|p| p.epochs).collect::<Vec<_>>(), [4, 4]);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let plain = "model m {\n input id : item_id\n subnet id_net = gru(id)\n}\n";
        let error = |spec: &str, overrides: &[&str]| apply_to(spec, overrides).unwrap_err().to_string();
        let messages: Vec<String> = [
            (SPEC, &["epoch=2"][..]),
            (SPEC, &["zzz=2"]),
            (SPEC, &["batch"]),
            (SPEC, &["lr=fast"]),
            (SPEC, &["lr=0"]),
            (SPEC, &["momentum=1"]),
            (SPEC, &["seed=-1"]),
            (SPEC, &["epochs=0"]),
            (SPEC, &["epochs=one"]),
            (SPEC, &["epochs=200000"]),
            (SPEC, &["lr=-1"]),
            (SPEC, &["hidden=2000000000"]),
            (SPEC, &["batch=1"]),
            (SPEC, &["id_net.hiden=200"]),
            (SPEC, &["id_nt.hidden=200"]),
            (SPEC, &["id_net.hidden=0"]),
            (SPEC, &["id_net.hidden=200"]),
            (SPEC, &["id_net.dropout=1.5"]),
            (SPEC, &["image.dropout=0.2"]),
            (SPEC, &["loss.logq=1"]),
            (SPEC, &["merge.text_net=1"]),
            (SPEC, &["merge.id_net=0", "merge.image_net=0"]),
            (SPEC, &["schedule.id_net=0"]),
            (SPEC, &["stop=maybe"]),
            (SPEC, &["stop.metric=ndcg"]),
            (plain, &["output.alpha=1"]),
            (plain, &["merge.id_net=1"]),
            (plain, &["schedule.id_net=3"]),
            (plain, &["id.dim=8"]),
            (plain, &["loss.bpreg=1"]),
        ]
        .iter()
        .map(|(spec, overrides)| format!("{overrides:?}\n  {}", error(spec, overrides)))
        .collect();
        insta::assert_snapshot!(messages.join("\n"));
        assert!(apply_to_model(&["batch=1", "extra=2"]).is_ok(), "extra negatives make a mini-batch of 1 trainable");
    }

    #[test]
    fn keys_are_checked_for_their_form_before_a_spec_is_read() {
        for key in ["lr", "stop", "id_net.hidden", "text.dim", "loss.logq", "merge.anything", "schedule.x", "stop.patience"] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
        let Err(OverrideError::UnknownKey { closest, .. }) = check_key("rate") else { panic!("rate is no key") };
        assert_eq!(closest, None);
        let Err(OverrideError::UnknownKey { closest, .. }) = check_key("loss.logg") else { panic!("loss.logg is no key") };
        assert_eq!(closest.as_deref(), Some("loss.logq"));
        assert!(check_key("id_net.hiden").is_err());
        assert!(check_key("9net.hidden").is_err());
    }

    #[test]
    fn every_key_a_spec_lists_applies_to_it() {
        let model = model_of(SPEC);
        for key in keys_of(&model) {
            let value = match key.as_str() {
                "stop" => "early",
                "stop.metric" => "mrr",
                _ => "1",
            };
            let mut copy = model.clone();
            let result = apply(&mut copy, &[format!("{key}={value}")]);
            assert!(!matches!(result, Err(OverrideError::UnknownKey { .. } | OverrideError::NotApplicable { .. })), "{key}: {result:?}");
            assert_eq!(check_key(&key), Ok(()), "{key}");
        }
    }
}
