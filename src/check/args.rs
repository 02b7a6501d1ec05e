//! Reading values and call arguments against what a function accepts, with one diagnostic per problem.

use indexmap::IndexMap;

use crate::diagnostic::{group_thousands, Code, Diagnostic, Span};
use crate::syntax::ast::{Argument, Ident, Value, ValueKind};

/// The diagnostics of one check run; every reader pushes here and carries on.
#[derive(Default)]
pub struct Sink {
    pub diagnostics: Vec<Diagnostic>,
}

impl Sink {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }
}

/// A call's arguments, checked against the names the callee accepts.
pub struct Args<'a> {
    pub positional: Vec<&'a Value>,
    named: IndexMap<&'a str, (&'a Ident, &'a Value)>,
}

/// What a value may be written as: a bare name (`top1`) or a call (`bpr_max(bpreg = 0.5)`).
pub enum Form<'a> {
    Name { name: &'a str, span: Span },
    Call { callee: &'a Ident, args: &'a [Argument] },
}

pub fn form_of(value: &Value) -> Option<Form<'_>> {
    match &value.kind {
        ValueKind::Name(name) => Some(Form::Name { name, span: value.span }),
        ValueKind::Call { callee, args } => Some(Form::Call { callee, args }),
        _ => None,
    }
}

impl<'a> Args<'a> {
    /// Splits a call's arguments. Unknown and repeated names are reported; so are positional arguments
    /// beyond `max_positional`.
    pub fn bind(callee: &'a Ident, args: &'a [Argument], accepted: &[&str], max_positional: usize, sink: &mut Sink) -> Args<'a> {
        let mut positional = Vec::new();
        let mut named: IndexMap<&str, (&Ident, &Value)> = IndexMap::new();
        for argument in args {
            match &argument.name {
                None => {
                    if positional.len() < max_positional {
                        positional.push(&argument.value);
                    } else {
                        let wanted = if max_positional == 0 {
                            format!("`{}` takes only named arguments", callee.text)
                        } else {
                            format!("`{}` takes at most {max_positional} unnamed argument(s)", callee.text)
                        };
                        let mut d = Diagnostic::error(Code::UnknownArgument, format!("unexpected argument to `{}`", callee.text))
                            .at(argument.value.span, wanted.clone());
                        if !accepted.is_empty() {
                            d = d.help(format!("name it: `{}` accepts {}", callee.text, backticked(accepted)));
                        }
                        sink.push(d);
                    }
                }
                Some(name) if !accepted.contains(&name.text.as_str()) => {
                    let label = if accepted.is_empty() {
                        format!("`{}` takes no named arguments", callee.text)
                    } else {
                        format!("`{}` accepts {}", callee.text, backticked(accepted))
                    };
                    sink.push(
                        Diagnostic::error(Code::UnknownArgument, format!("unknown argument `{}` to `{}`", name.text, callee.text))
                            .at(name.span, label)
                            .suggest(&name.text, accepted.iter().copied()),
                    );
                }
                Some(name) => {
                    if let Some((first, _)) = named.get(name.text.as_str()) {
                        sink.push(
                            Diagnostic::error(Code::DuplicateArgument, format!("argument `{}` given twice", name.text))
                                .at(name.span, "given again here")
                                .also(first.span, "first given here"),
                        );
                    } else {
                        named.insert(name.text.as_str(), (name, &argument.value));
                    }
                }
            }
        }
        Args { positional, named }
    }

    /// Arguments of a value written as a bare name: there are none.
    pub fn none() -> Args<'a> {
        Args { positional: Vec::new(), named: IndexMap::new() }
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.named.get(name).map(|(_, value)| *value)
    }

    pub fn real(&self, name: &str, default: f64, range: Range, sink: &mut Sink) -> f64 {
        match self.get(name) {
            None => default,
            Some(value) => read_real(value, name, range, sink).unwrap_or(default),
        }
    }

    pub fn integer(&self, name: &str, default: u64, range: Range, sink: &mut Sink) -> u64 {
        match self.get(name) {
            None => default,
            Some(value) => read_integer(value, name, range, sink).unwrap_or(default),
        }
    }
}

/// Allowed values of a number.
#[derive(Clone, Copy)]
pub enum Range {
    /// > 0
    Positive,
    /// >= 0
    NonNegative,
    /// [0, 1): dropout rates, momentum
    Fraction,
}

/// No size, seed or count in a spec comes near this; larger values are typos that would overflow later.
pub const MAX_WHOLE: u64 = 1_000_000_000;
/// Epochs beyond this are a typo: alternating training lowers to one phase per epoch.
pub const MAX_EPOCHS: u64 = 100_000;

impl Range {
    /// What a number in this range is, as every message about it says, whatever was wrong with it:
    /// `a number > 0`, or for whole numbers (up to `max`) `a whole number from 1 to 100,000`. The overrides
    /// (src/config/overrides.rs) say the same.
    pub fn expected(self, whole_up_to: Option<u64>) -> String {
        match (self, whole_up_to) {
            (Range::Positive, None) => "a number > 0".into(),
            (Range::NonNegative, None) => "a number ≥ 0".into(),
            (Range::Fraction, None) => "a number in [0, 1)".into(),
            (Range::Positive, Some(max)) => format!("a whole number from 1 to {}", group_thousands(max)),
            (Range::NonNegative | Range::Fraction, Some(max)) => format!("a whole number from 0 to {}", group_thousands(max)),
        }
    }

    fn contains(self, value: f64) -> bool {
        match self {
            Range::Positive => value > 0.0,
            Range::NonNegative => value >= 0.0,
            Range::Fraction => (0.0..1.0).contains(&value),
        }
    }
}

/// The diagnostic for a number outside its range: `NotPositive` where the least allowed value is excluded
/// (`> 0`, or 1 for whole numbers), `OutOfRange` otherwise.
fn out_of_range(value: f64, span: Span, what: &str, range: Range, whole_up_to: Option<u64>) -> Diagnostic {
    let expected = range.expected(whole_up_to);
    let number = format_number(value);
    let (code, label) = match (range, whole_up_to) {
        (_, _) if !value.is_finite() => (Code::OutOfRange, format!("{number} is not a finite number")),
        (_, Some(max)) if value > max as f64 => (Code::OutOfRange, format!("{number} is more than {}", group_thousands(max))),
        (Range::Positive, Some(_)) => (Code::NotPositive, format!("{number} is less than 1")),
        (Range::Positive, None) => (Code::NotPositive, format!("{number} is not > 0")),
        (Range::NonNegative, _) => (Code::OutOfRange, format!("{number} is < 0")),
        (Range::Fraction, _) => (Code::OutOfRange, format!("{number} is outside [0, 1)")),
    };
    let diagnostic = Diagnostic::error(code, format!("`{what}` must be {expected}")).at(span, label);
    match range {
        Range::Fraction => diagnostic.note(format!("`{what}` is a probability or a decay factor, not a percentage")),
        _ => diagnostic,
    }
}

pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

pub fn read_real(value: &Value, what: &str, range: Range, sink: &mut Sink) -> Option<f64> {
    match &value.kind {
        ValueKind::Number { value: number, .. } if number.is_finite() && range.contains(*number) => Some(*number),
        ValueKind::Number { value: number, .. } => {
            sink.push(out_of_range(*number, value.span, what, range, None));
            None
        }
        _ => {
            sink.push(wrong_type(value, what, &range.expected(None)));
            None
        }
    }
}

pub fn read_integer(value: &Value, what: &str, range: Range, sink: &mut Sink) -> Option<u64> {
    read_whole(value, what, range, MAX_WHOLE, sink)
}

/// A whole number in `range` and at most `max`.
fn read_whole(value: &Value, what: &str, range: Range, max: u64, sink: &mut Sink) -> Option<u64> {
    let expected = range.expected(Some(max));
    match &value.kind {
        ValueKind::Number { value: number, .. } if number.fract() == 0.0 => {
            if range.contains(*number) && *number <= max as f64 {
                Some(*number as u64)
            } else {
                sink.push(out_of_range(*number, value.span, what, range, Some(max)));
                None
            }
        }
        ValueKind::Number { value: number, .. } => {
            let label = if number.is_finite() { "has a fraction" } else { "is not a finite number" };
            sink.push(
                Diagnostic::error(Code::WrongType, format!("`{what}` must be {expected}"))
                    .at(value.span, format!("{} {label}", format_number(*number))),
            );
            None
        }
        _ => {
            sink.push(wrong_type(value, what, &expected));
            None
        }
    }
}

/// A number of epochs, written `10` or `10 epochs`.
pub fn read_epochs(value: &Value, sink: &mut Sink) -> Option<u64> {
    match &value.kind {
        ValueKind::Quantity { value: number, is_integer, .. } => {
            let as_number = Value { kind: ValueKind::Number { value: *number, is_integer: *is_integer }, span: value.span };
            read_whole(&as_number, "epochs", Range::Positive, MAX_EPOCHS, sink)
        }
        _ => read_whole(value, "epochs", Range::Positive, MAX_EPOCHS, sink),
    }
}

pub fn read_name<'a>(value: &'a Value, what: &str, sink: &mut Sink) -> Option<&'a str> {
    match &value.kind {
        ValueKind::Name(name) => Some(name),
        _ => {
            sink.push(wrong_type(value, what, "a name"));
            None
        }
    }
}

pub fn wrong_type(value: &Value, what: &str, expected: &str) -> Diagnostic {
    Diagnostic::error(Code::WrongType, format!("`{what}` must be {expected}")).at(value.span, format!("found {}", value.describe()))
}

pub fn backticked(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
