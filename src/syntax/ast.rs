//! The spanned syntax tree of a spec, as written: no defaults filled in, no names resolved.

use crate::diagnostic::Span;

/// A parsed spec file: its blocks in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    pub blocks: Vec<Block>,
}

/// `model NAME { ... }` or `train { ... }` (the kind is checked later, so misspellings get suggestions).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub name: Option<Ident>,
    pub statements: Vec<Statement>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `input NAME : KIND`
    Input { name: Ident, kind: Value },
    /// `subnet NAME = LAYER`
    Subnet { name: Ident, layer: Value },
    /// `KEY = VALUE`
    Setting { key: Ident, value: Value },
}

impl Statement {
    pub fn span(&self) -> Span {
        match self {
            Statement::Input { name, kind } => name.span.to(kind.span),
            Statement::Subnet { name, layer } => name.span.to(layer.span),
            Statement::Setting { key, value } => key.span.to(value.span),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// A number as written; `is_integer` when it has neither a fraction nor an exponent.
    Number {
        value: f64,
        is_integer: bool,
    },
    /// `10 epochs`
    Quantity {
        value: f64,
        is_integer: bool,
        unit: Ident,
    },
    Name(String),
    Call {
        callee: Ident,
        args: Vec<Argument>,
    },
    EntryBlock {
        head: Ident,
        entries: Vec<Entry>,
    },
    List(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    pub name: Option<Ident>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Ident,
    pub value: Value,
}

impl Value {
    /// A short description of what was written, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            ValueKind::Number { is_integer: true, .. } => "an integer".into(),
            ValueKind::Number { .. } => "a number".into(),
            ValueKind::Quantity { unit, .. } => format!("a quantity in {}", unit.text),
            ValueKind::Name(name) => format!("the name `{name}`"),
            ValueKind::Call { callee, .. } => format!("a call to `{}`", callee.text),
            ValueKind::EntryBlock { head, .. } => format!("a `{} {{ ... }}` block", head.text),
            ValueKind::List(_) => "a list".into(),
        }
    }

    /// The leading name of a name, call or entry block value: what a reader sees as "which one".
    pub fn head(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Name(name) => Some(name),
            ValueKind::Call { callee, .. } => Some(&callee.text),
            ValueKind::EntryBlock { head, .. } => Some(&head.text),
            _ => None,
        }
    }
}
