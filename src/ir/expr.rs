//! Symbolic sizes: widths, shapes and parameter counts as linear expressions over the sizes that only data
//! can tell (n_items, an input's width), until a run config binds them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::diagnostic::group_thousands;

/// A size that the spec alone does not fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "symbol", content = "input")]
pub enum Symbol {
    /// The catalogue size.
    Items,
    /// The width of a dense input: `dim(image)`.
    Dim(String),
    /// The vocabulary of a sparse input: `vocab(text)`.
    Vocab(String),
    /// A `feature` input whose dense-or-sparse kind the run config has not decided: `width(feature)`.
    Width(String),
    /// The mini-batch size B.
    Batch,
    /// The scored items per example: B in-batch targets plus the extra negatives.
    Sampled,
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Symbol::Items => write!(f, "n_items"),
            Symbol::Dim(input) => write!(f, "dim({input})"),
            Symbol::Vocab(input) => write!(f, "vocab({input})"),
            Symbol::Width(input) => write!(f, "width({input})"),
            Symbol::Batch => write!(f, "B"),
            Symbol::Sampled => write!(f, "S"),
        }
    }
}

/// `constant + sum(coefficient * symbol)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expr {
    pub constant: u64,
    pub terms: BTreeMap<Symbol, u64>,
}

impl Expr {
    pub fn constant(value: u64) -> Self {
        Expr { constant: value, terms: BTreeMap::new() }
    }

    pub fn symbol(symbol: Symbol) -> Self {
        Expr { constant: 0, terms: BTreeMap::from([(symbol, 1)]) }
    }

    // Sizes saturate instead of wrapping or panicking: an override may ask for a hidden size near 2^64, and such
    // a model must reach the memory estimate (`memory.rs`), which refuses it with the sizes it was given.
    pub fn add(&self, other: &Expr) -> Expr {
        let mut sum = self.clone();
        sum.constant = sum.constant.saturating_add(other.constant);
        for (symbol, coefficient) in &other.terms {
            let term = sum.terms.entry(symbol.clone()).or_default();
            *term = term.saturating_add(*coefficient);
        }
        sum
    }

    pub fn times(&self, factor: u64) -> Expr {
        Expr {
            constant: self.constant.saturating_mul(factor),
            terms: self.terms.iter().map(|(s, c)| (s.clone(), c.saturating_mul(factor))).collect(),
        }
    }

    /// `self + other`, or None when the constant or a coefficient would pass `u64::MAX`.
    pub fn checked_add(&self, other: &Expr) -> Option<Expr> {
        let mut sum = self.clone();
        sum.constant = sum.constant.checked_add(other.constant)?;
        for (symbol, coefficient) in &other.terms {
            let term = sum.terms.entry(symbol.clone()).or_default();
            *term = term.checked_add(*coefficient)?;
        }
        Some(sum)
    }

    /// `self * factor`, or None when the constant or a coefficient would pass `u64::MAX`.
    pub fn checked_times(&self, factor: u64) -> Option<Expr> {
        let mut terms = BTreeMap::new();
        for (symbol, coefficient) in &self.terms {
            terms.insert(symbol.clone(), coefficient.checked_mul(factor)?);
        }
        Some(Expr { constant: self.constant.checked_mul(factor)?, terms })
    }

    /// Whether a saturating operation stopped at `u64::MAX` somewhere in this size: its true value is that or
    /// more, and only a count that says so is honest.
    pub fn is_saturated(&self) -> bool {
        self.constant == u64::MAX || self.terms.values().any(|&c| c == u64::MAX)
    }

    /// Replaces every bound symbol by its value.
    pub fn bind(&self, bindings: &Bindings) -> Expr {
        let mut bound = Expr::constant(self.constant);
        for (symbol, coefficient) in &self.terms {
            match bindings.value(symbol) {
                Some(value) => bound.constant = bound.constant.saturating_add(coefficient.saturating_mul(value)),
                None => {
                    bound.terms.insert(symbol.clone(), *coefficient);
                }
            }
        }
        bound
    }

    pub fn as_constant(&self) -> Option<u64> {
        self.terms.is_empty().then_some(self.constant)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .terms
            .iter()
            .map(|(symbol, &c)| if c == 1 { symbol.to_string() } else { format!("{}·{symbol}", group_thousands(c)) })
            .collect();
        if self.constant != 0 || parts.is_empty() {
            parts.push(group_thousands(self.constant));
        }
        write!(f, "{}", parts.join(" + "))
    }
}

/// A known size is a number; a symbolic one an object of coefficients, e.g.
/// `{"constant": 30300, "n_items": 401}`, so programs need not parse the display form.
impl Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let Some(value) = self.as_constant() {
            return serializer.serialize_u64(value);
        }
        let mut map = serializer.serialize_map(Some(self.terms.len() + 1))?;
        map.serialize_entry("constant", &self.constant)?;
        for (symbol, coefficient) in &self.terms {
            map.serialize_entry(&symbol.to_string(), coefficient)?;
        }
        map.end()
    }
}

/// Sizes known from data or from the training settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    pub items: Option<u64>,
    /// Width per input name (dense dimension or sparse vocabulary).
    pub widths: BTreeMap<String, u64>,
    pub batch: Option<u64>,
    pub sampled: Option<u64>,
}

impl Bindings {
    fn value(&self, symbol: &Symbol) -> Option<u64> {
        match symbol {
            Symbol::Items => self.items,
            Symbol::Dim(input) | Symbol::Vocab(input) | Symbol::Width(input) => self.widths.get(input).copied(),
            Symbol::Batch => self.batch,
            Symbol::Sampled => self.sampled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_terms_then_constant() {
        let gru = Expr::symbol(Symbol::Items).times(300).add(&Expr::constant(30_300));
        assert_eq!(gru.to_string(), "300·n_items + 30,300");
        assert_eq!(Expr::constant(0).to_string(), "0");
    }

    #[test]
    fn binding_folds_known_symbols() {
        let width = Expr::symbol(Symbol::Items).add(&Expr::symbol(Symbol::Dim("image".into())));
        let bindings = Bindings { items: Some(1000), ..Default::default() };
        assert_eq!(width.bind(&bindings).to_string(), "dim(image) + 1,000");
        let all = Bindings { items: Some(1000), widths: [("image".into(), 512)].into(), ..Default::default() };
        assert_eq!(width.bind(&all).as_constant(), Some(1512));
    }

    #[test]
    fn checked_arithmetic_refuses_what_saturating_arithmetic_clips() {
        // 2^63: twice that is one past u64::MAX.
        let big = Expr::symbol(Symbol::Items).times(3).add(&Expr::constant(1 << 63));
        assert_eq!(big.checked_add(&Expr::constant(1)).map(|e| e.constant), Some((1 << 63) + 1));
        assert_eq!(big.checked_add(&big), None, "the constant passes u64::MAX");
        assert_eq!(big.checked_times(3), None);
        assert_eq!(Expr::symbol(Symbol::Items).times(u64::MAX).checked_times(2), None, "a coefficient passes u64::MAX");
        assert!(big.add(&big).is_saturated() && !big.is_saturated());
    }
}
