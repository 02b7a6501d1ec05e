//! `key=value` overrides of a spec's training settings: `prnn train KEY=VALUE`, and the sweeps and tuning grids of
//! `prnn run`, which pass their settings to `prnn train` the same way.

use crate::check::{Model, Schedule};

/// The keys overrides take, as error messages list them.
pub const KEYS: &str = "seed, batch, lr, momentum, eps, epochs, extra, alpha, max_batches";

/// An override that cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    #[error("override `{0}` is not `key=value` (keys: {KEYS})")]
    NotKeyValue(String),
    #[error("unknown override `{key}`{}; keys: {KEYS}", closest.map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default())]
    UnknownKey { key: String, closest: Option<&'static str> },
    #[error("override `{key}` needs a whole number ≥ 0, got `{value}`")]
    NotWholeNumber { key: String, value: String },
    #[error("override `{key}` needs a number ≥ 0, got `{value}`")]
    NotNumber { key: String, value: String },
    #[error("override `{key}` must be at least 1")]
    Zero { key: String },
    #[error("override `lr` must be above 0")]
    ZeroLearningRate,
    #[error("override `momentum` must be below 1")]
    MomentumOfOne,
    #[error("a mini-batch of 1 has no negatives with in-batch negatives only: use `batch=2` or more, or `extra=N`")]
    NoNegatives,
}

/// Whether `key` is an override key; the error names the closest one.
pub fn check_key(key: &str) -> Result<(), OverrideError> {
    let names = KEYS.split(", ");
    if names.clone().any(|name| name == key) {
        return Ok(());
    }
    let closest = crate::diagnostic::closest(key, names);
    Err(OverrideError::UnknownKey { key: key.to_string(), closest })
}

/// Applies `key=value` overrides, in order, to the model's training settings. Returns the run-only
/// `max_batches` (a cap on every epoch, which no spec setting holds).
pub fn apply(model: &mut Model, overrides: &[String]) -> Result<Option<u64>, OverrideError> {
    let mut max_batches = None;
    for text in overrides {
        let (key, value) = text.split_once('=').ok_or_else(|| OverrideError::NotKeyValue(text.clone()))?;
        let (key, value) = (key.trim(), value.trim());
        let integer = || value.parse::<u64>().map_err(|_| OverrideError::NotWholeNumber { key: key.into(), value: value.into() });
        let real = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| OverrideError::NotNumber { key: key.into(), value: value.into() })
        };
        let positive = |n: u64| if n == 0 { Err(OverrideError::Zero { key: key.into() }) } else { Ok(n) };
        let train = &mut model.train;
        match key {
            "seed" => train.seed = integer()?,
            "batch" => train.batch = positive(integer()?)?,
            "lr" => {
                train.optimizer.learning_rate = real().and_then(|v| if v > 0.0 { Ok(v) } else { Err(OverrideError::ZeroLearningRate) })?
            }
            "momentum" => {
                train.optimizer.momentum = real().and_then(|v| if v < 1.0 { Ok(v) } else { Err(OverrideError::MomentumOfOne) })?
            }
            "eps" => train.optimizer.eps = real()?,
            "extra" => train.negatives.extra = integer()?,
            "alpha" => train.negatives.alpha = real()?,
            "max_batches" => max_batches = Some(positive(integer()?)?),
            "epochs" => {
                let epochs = positive(integer()?)?;
                match &mut train.schedule {
                    Schedule::Simultaneous { epochs: e }
                    | Schedule::Alternating { epochs: e, .. }
                    | Schedule::Interleaving { epochs: e, .. } => *e = epochs,
                    // Every phase gets the same number: a residual ensemble needs each subnet trained.
                    Schedule::Residual { phases } => phases.iter_mut().for_each(|p| p.epochs = epochs),
                }
            }
            _ => return Err(check_key(key).expect_err("every known key has an arm above")),
        }
    }
    if model.train.batch == 1 && model.train.negatives.extra == 0 {
        return Err(OverrideError::NoNegatives);
    }
    Ok(max_batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "model m {
  input id    : item_id
  input image : dense
  subnet id_net    = gru(id, hidden = 8)
  subnet image_net = gru(image, hidden = 8)
  merge = parallel(id_net, image_net)
}
train {
  batch    = 16
  schedule = residual { id_net: 2 epochs, image_net: 3 epochs }
}
";

    fn model() -> Model {
        crate::compile::check_source(&crate::diagnostic::Source::new("m.prnn", SPEC)).unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
    }

    fn apply_to_model(overrides: &[&str]) -> Result<(Model, Option<u64>), OverrideError> {
        let mut model = model();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let max_batches = apply(&mut model, &overrides)?;
        Ok((model, max_batches))
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
    fn epochs_reach_every_phase_of_a_residual_schedule() {
        let (model, _) = apply_to_model(&["epochs=4"]).unwrap();
        let Schedule::Residual { phases } = &model.train.schedule else { panic!("the spec is residual") };
        assert_eq!(phases.iter().map(|p| p.epochs).collect::<Vec<_>>(), [4, 4]);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let error = |overrides: &[&str]| apply_to_model(overrides).unwrap_err().to_string();
        assert_eq!(error(&["epoch=2"]), format!("unknown override `epoch` (did you mean `epochs`?); keys: {KEYS}"));
        assert_eq!(error(&["zzz=2"]), format!("unknown override `zzz`; keys: {KEYS}"));
        assert_eq!(error(&["batch"]), format!("override `batch` is not `key=value` (keys: {KEYS})"));
        assert_eq!(error(&["lr=fast"]), "override `lr` needs a number ≥ 0, got `fast`");
        assert_eq!(error(&["lr=0"]), "override `lr` must be above 0");
        assert_eq!(error(&["momentum=1"]), "override `momentum` must be below 1");
        assert_eq!(error(&["seed=-1"]), "override `seed` needs a whole number ≥ 0, got `-1`");
        assert_eq!(error(&["epochs=0"]), "override `epochs` must be at least 1");
        assert_eq!(error(&["batch=1"]), OverrideError::NoNegatives.to_string());
        assert!(apply_to_model(&["batch=1", "extra=2"]).is_ok(), "extra negatives make a mini-batch of 1 trainable");
    }

    #[test]
    fn keys_are_checked_on_their_own() {
        assert_eq!(check_key("lr"), Ok(()));
        assert_eq!(check_key("rate"), Err(OverrideError::UnknownKey { key: "rate".into(), closest: None }));
    }
}
