//! The search space: typed ranges over override keys, the values a setting takes, and how a value is written as
//! override text.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::rng::Xoshiro256;

/// Continuous draws (floats without a step, log-scale floats) keep this many significant digits: finer than any
/// hyperparameter needs, and the table, the folder names and the recorded overrides stay readable.
pub const SIGNIFICANT_DIGITS: usize = 4;

/// Past this many decimals a bound or step is not a short decimal (a third, say), and rounding to it would move
/// grid values instead of cleaning them.
const MAX_GRID_DECIMALS: usize = 15;

/// An override value: a whole number, a real number or a word.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The number, for the numeric kinds.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(n) => Some(*n as f64),
            Value::Float(x) => Some(*x),
            Value::Text(_) => None,
        }
    }

    /// A float with `-0` made `0`, so that no override reads `-0`.
    fn float(x: f64) -> Value {
        Value::Float(x + 0.0)
    }
}

/// As override text: integers without a fraction, floats in their shortest form that reads back to the same
/// number (`0.05`, `1`), words as they are.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(text) => f.write_str(text),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Integer(n) => serializer.serialize_i64(*n),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Integer(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
                i64::try_from(n).map(Value::Integer).map_err(|_| E::custom(format!("{n} is too large")))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
                Ok(Value::float(x))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
                Ok(Value::Text(text.to_string()))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The values one key may take. Bounds are inclusive.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// `low`, `low + step`, ... up to `high` (which need not be on the grid).
    Integer {
        low: i64,
        high: i64,
        step: i64,
    },
    /// Uniform between the bounds, or on the grid `low + k * step` when a step is given.
    Float {
        low: f64,
        high: f64,
        step: Option<f64>,
    },
    /// Uniform in the logarithm: as likely between 0.01 and 0.1 as between 0.1 and 1.
    LogFloat {
        low: f64,
        high: f64,
    },
    Categorical(Vec<Value>),
}

impl Range {
    /// What the range is called in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Range::Integer { .. } => "int",
            Range::Float { .. } => "float",
            Range::LogFloat { .. } => "log",
            Range::Categorical(_) => "choice",
        }
    }

    fn check(&self, key: &str) -> Result<(), SpaceError> {
        let key = || key.to_string();
        let (low, high) = match self {
            Range::Integer { low, high, step } => {
                if *step < 1 {
                    return Err(SpaceError::NonPositiveStep { key: key(), step: *step as f64 });
                }
                (*low as f64, *high as f64)
            }
            Range::Float { low, high, step } => {
                if let Some(step) = step {
                    if !step.is_finite() {
                        return Err(SpaceError::NotFinite { key: key() });
                    }
                    if *step <= 0.0 {
                        return Err(SpaceError::NonPositiveStep { key: key(), step: *step });
                    }
                }
                (*low, *high)
            }
            Range::LogFloat { low, high } => {
                if *low <= 0.0 {
                    return Err(SpaceError::NonPositiveLog { key: key(), low: *low });
                }
                (*low, *high)
            }
            Range::Categorical(choices) => {
                if choices.is_empty() {
                    return Err(SpaceError::EmptyChoice { key: key() });
                }
                if let Some(value) = choices.iter().enumerate().find_map(|(i, value)| choices[..i].contains(value).then_some(value)) {
                    return Err(SpaceError::RepeatedChoice { key: key(), value: value.clone() });
                }
                if choices.iter().any(|value| value.as_f64().is_some_and(|x| !x.is_finite())) {
                    return Err(SpaceError::NotFinite { key: key() });
                }
                return Ok(());
            }
        };
        if !low.is_finite() || !high.is_finite() {
            return Err(SpaceError::NotFinite { key: key() });
        }
        if low > high {
            return Err(SpaceError::Reversed { key: key(), low, high });
        }
        Ok(())
    }

    /// How many values the range holds, for the ranges that hold finitely many.
    pub fn grid_len(&self) -> Option<u64> {
        match self {
            Range::Integer { low, high, step } => {
                Some(u64::try_from((*high as i128 - *low as i128) / *step as i128 + 1).unwrap_or(u64::MAX))
            }
            Range::Float { low, high, step: Some(step) } => {
                // The division may land a hair under a whole number of steps; the loop takes back a step that
                // overshoots `high` after rounding.
                let mut len = (((high - low) / step + 1e-9).floor() as u64).saturating_add(1);
                while len > 1 && stepped_float(*low, *step, len - 1) > *high {
                    len -= 1;
                }
                Some(len)
            }
            Range::Float { step: None, .. } | Range::LogFloat { .. } => None,
            Range::Categorical(choices) => Some(choices.len() as u64),
        }
    }

    /// Value `index` (below [`Range::grid_len`]) of a range that holds finitely many.
    pub(super) fn grid_value(&self, index: u64) -> Value {
        match self {
            Range::Integer { low, step, .. } => Value::Integer((*low as i128 + index as i128 * *step as i128) as i64),
            Range::Float { low, step: Some(step), .. } => Value::float(stepped_float(*low, *step, index)),
            Range::Categorical(choices) => choices[index as usize].clone(),
            Range::Float { step: None, .. } | Range::LogFloat { .. } => unreachable!("a continuous range has no grid"),
        }
    }

    /// A value drawn uniformly (in the logarithm for [`Range::LogFloat`]).
    pub fn sample(&self, rng: &mut Xoshiro256) -> Value {
        match (self, self.grid_len()) {
            (_, Some(len)) => self.grid_value(index_below(rng, len)),
            (Range::Float { low, high, .. }, None) => self.continuous_value(low + rng.unit() * (high - low)),
            (Range::LogFloat { low, high }, None) => self.continuous_value((low.ln() + rng.unit() * (high.ln() - low.ln())).exp()),
            (Range::Integer { .. } | Range::Categorical(_), None) => unreachable!("grid_len is Some for these"),
        }
    }

    /// A real number of a continuous range as the value proposed: rounded to [`SIGNIFICANT_DIGITS`] and kept
    /// within the bounds, which rounding could cross.
    pub(super) fn continuous_value(&self, x: f64) -> Value {
        let (low, high) = match self {
            Range::Float { low, high, .. } | Range::LogFloat { low, high } => (*low, *high),
            Range::Integer { .. } | Range::Categorical(_) => unreachable!("only continuous ranges take any real"),
        };
        Value::float(round_significant(x).clamp(low, high))
    }

    /// Whether `value` is one this range proposes: of its type, within its bounds, and on its grid.
    pub fn contains(&self, value: &Value) -> bool {
        match (self, value) {
            (Range::Integer { low, high, step }, Value::Integer(n)) => low <= n && n <= high && (n - low) % step == 0,
            (Range::Float { low, high, step }, Value::Float(x)) => {
                let Some(step) = step else { return low <= x && x <= high };
                let index = ((x - low) / step).round();
                index >= 0.0 && (index as u64) < self.grid_len().unwrap_or(0) && stepped_float(*low, *step, index as u64) == *x
            }
            (Range::LogFloat { low, high }, Value::Float(x)) => low <= x && x <= high,
            (Range::Categorical(choices), value) => choices.contains(value),
            _ => false,
        }
    }
}

/// Uniform in `0..n` by multiply-shift over 64 bits, for grids larger than `below`'s `u32`.
fn index_below(rng: &mut Xoshiro256, n: u64) -> u64 {
    ((rng.next_u64() as u128 * n as u128) >> 64) as u64
}

/// `low + index * step`, rounded to the decimals of `low` and `step`, so that `0.01 + 3 * 0.01` is `0.04` and not
/// `0.04000000000000001`. The rounding goes through decimal text: the result is the double nearest to the decimal.
fn stepped_float(low: f64, step: f64, index: u64) -> f64 {
    let raw = low + index as f64 * step;
    let places = decimals(low).max(decimals(step));
    if places > MAX_GRID_DECIMALS {
        return raw;
    }
    format!("{raw:.places$}").parse().unwrap_or(raw)
}

/// Digits after the point in the shortest decimal that reads back as `x`.
fn decimals(x: f64) -> usize {
    x.to_string().split_once('.').map_or(0, |(_, fraction)| fraction.len())
}

fn round_significant(x: f64) -> f64 {
    format!("{x:.precision$e}", precision = SIGNIFICANT_DIGITS - 1).parse().unwrap_or(x)
}

/// Keys and their ranges, in order: proposals list their values in this order and a grid varies the last key
/// fastest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space {
    params: Vec<(String, Range)>,
}

impl Space {
    /// Checks each range; the keys must differ. Whether they are override keys is the plan's to check.
    pub fn new(params: impl IntoIterator<Item = (String, Range)>) -> Result<Space, SpaceError> {
        let params: Vec<(String, Range)> = params.into_iter().collect();
        for (index, (key, range)) in params.iter().enumerate() {
            if params[..index].iter().any(|(earlier, _)| earlier == key) {
                return Err(SpaceError::RepeatedKey(key.clone()));
            }
            range.check(key)?;
        }
        Ok(Space { params })
    }

    /// The body of a `space` table: `lr = { log = [0.01, 0.25] }`, one key a line.
    pub fn parse(text: &str) -> Result<Space, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn params(&self) -> &[(String, Range)] {
        &self.params
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(key, _)| key.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// A setting drawn uniformly, key by key in order from one stream.
    pub fn sample(&self, rng: &mut Xoshiro256) -> Setting {
        Setting { values: self.params.iter().map(|(key, range)| (key.clone(), range.sample(rng))).collect() }
    }

    /// Whether `setting` has this space's keys, in order, each with a value its range proposes.
    pub fn contains(&self, setting: &Setting) -> bool {
        self.params.len() == setting.values.len()
            && self.params.iter().zip(&setting.values).all(|((key, range), (its_key, value))| key == its_key && range.contains(value))
    }
}

/// One range as the config writes it: `{ int = [64, 512], step = 32 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeTable {
    int: Option<[i64; 2]>,
    float: Option<[f64; 2]>,
    log: Option<[f64; 2]>,
    choice: Option<Vec<Value>>,
    step: Option<f64>,
}

impl RangeTable {
    fn into_range(self, key: &str) -> Result<Range, SpaceError> {
        let given: Vec<&'static str> = [("int", self.int.is_some()), ("float", self.float.is_some())]
            .into_iter()
            .chain([("log", self.log.is_some()), ("choice", self.choice.is_some())])
            .filter_map(|(kind, present)| present.then_some(kind))
            .collect();
        let range = match (self.int, self.float, self.log, self.choice) {
            (Some([low, high]), None, None, None) => Range::Integer { low, high, step: integer_step(key, self.step)? },
            (None, Some([low, high]), None, None) => Range::Float { low, high, step: self.step },
            (None, None, Some([low, high]), None) => Range::LogFloat { low, high },
            (None, None, None, Some(choices)) => Range::Categorical(choices),
            _ => return Err(SpaceError::Kinds { key: key.to_string(), given }),
        };
        if self.step.is_some() && matches!(range, Range::LogFloat { .. } | Range::Categorical(_)) {
            return Err(SpaceError::StepNotTaken { key: key.to_string(), kind: range.kind() });
        }
        Ok(range)
    }
}

/// An integer range's step: 1 when not given, else a whole number of at least 1.
fn integer_step(key: &str, step: Option<f64>) -> Result<i64, SpaceError> {
    match step {
        None => Ok(1),
        Some(step) if step < 1.0 => Err(SpaceError::NonPositiveStep { key: key.to_string(), step }),
        Some(step) if step.fract() != 0.0 || step > i64::MAX as f64 => Err(SpaceError::FractionalStep { key: key.to_string(), step }),
        Some(step) => Ok(step as i64),
    }
}

impl<'de> Deserialize<'de> for Space {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Space, D::Error> {
        let table = IndexMap::<String, RangeTable>::deserialize(deserializer)?;
        let params = table.into_iter().map(|(key, range)| range.into_range(&key).map(|range| (key, range)));
        let params = params.collect::<Result<Vec<_>, SpaceError>>().map_err(de::Error::custom)?;
        Space::new(params).map_err(de::Error::custom)
    }
}

/// A range that proposes nothing, or a space that cannot be searched. Each names its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    #[error("`{0}` has two ranges")]
    RepeatedKey(String),
    #[error("the range of `{key}` has a bound or step that is not a finite number")]
    NotFinite { key: String },
    #[error("the range of `{key}` runs from {low} down to {high}: write the low bound first")]
    Reversed { key: String, low: f64, high: f64 },
    #[error("the step of `{key}` is {step}: it must be above 0 (and a whole number for `int`)")]
    NonPositiveStep { key: String, step: f64 },
    #[error("the step of `{key}` is {step}, but an `int` range steps by whole numbers")]
    FractionalStep { key: String, step: f64 },
    #[error("the log range of `{key}` starts at {low}: a log scale needs bounds above 0")]
    NonPositiveLog { key: String, low: f64 },
    #[error("`{key}` lists no choice")]
    EmptyChoice { key: String },
    #[error("`{key}` lists the choice {value} twice")]
    RepeatedChoice { key: String, value: Value },
    #[error("the range of `{key}` {}", if given.is_empty() { "gives no kind".to_string() } else { format!("gives {}", given.join(" and ")) })]
    Kinds { key: String, given: Vec<&'static str> },
    #[error("`{key}` is a `{kind}` range, which takes no `step`")]
    StepNotTaken { key: String, kind: &'static str },
}

impl SpaceError {
    /// What to do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            SpaceError::Kinds { .. } => {
                Some("give exactly one of `int = [low, high]`, `float = [low, high]`, `log = [low, high]` or `choice = [...]`")
            }
            SpaceError::StepNotTaken { kind: "log", .. } => Some("list the values with `choice = [...]` to search a log grid"),
            SpaceError::NonPositiveLog { .. } => Some("use `float` for a range that includes 0"),
            _ => None,
        }
    }
}

/// One proposal: a value for each key of the space, in the space's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Setting {
    pub values: Vec<(String, Value)>,
}

impl Setting {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.iter().find(|(its_key, _)| its_key == key).map(|(_, value)| value)
    }

    /// `["lr=0.05", "id_net.hidden=128"]`: the arguments `prnn train` takes.
    pub fn as_overrides(&self) -> Vec<String> {
        self.values.iter().map(|(key, value)| format!("{key}={value}")).collect()
    }

    /// The keys and values as text, the form the plan's cells, labels and folder names use.
    pub fn as_text(&self) -> crate::experiment::plan::Setting {
        self.values.iter().map(|(key, value)| (key.clone(), value.to_string())).collect()
    }
}

/// `lr=0.05 id_net.hidden=128`.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_overrides().join(" "))
    }
}
