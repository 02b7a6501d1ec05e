//! Subnets: GRU layers over declared inputs, and the references to subnets that merges and schedules list.

use super::args::{backticked, read_name, read_real, Range};
use super::{Checker, Input, Subnet};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Statement, Value};

impl Checker<'_> {
    pub(super) fn subnets(&mut self, declarations: &[&Statement], inputs: &[Input]) -> Vec<Subnet> {
        let subnet_names: Vec<&str> = declarations
            .iter()
            .filter_map(|s| match s {
                Statement::Subnet { name, .. } => Some(name.text.as_str()),
                _ => None,
            })
            .collect();
        let mut subnets: Vec<Subnet> = Vec::new();
        for statement in declarations {
            let Statement::Subnet { name, layer } = statement else { continue };
            if subnets.iter().any(|s| s.name == name.text) || inputs.iter().any(|i| i.name == name.text) {
                continue; // reported as a duplicate name already
            }
            let Some((_, args)) = self.function(layer, "layer", &["gru"], |_| (&["hidden", "dropout", "lr"][..], usize::MAX)) else {
                continue;
            };
            let mut subnet_inputs: Vec<String> = Vec::new();
            for value in &args.positional {
                let Some(input) = read_name(value, "a GRU's input", self.sink) else { continue };
                if subnet_names.contains(&input) {
                    let d = Diagnostic::error(Code::WrongNameKind, format!("`{input}` is a subnet, not an input"))
                        .at(value.span, "a GRU reads inputs declared with `input`")
                        .note("subnets combine through `merge`, not by feeding one another");
                    self.push(d);
                } else if !inputs.iter().any(|i| i.name == input) {
                    let d = Diagnostic::error(Code::UnknownName, format!("unknown input `{input}`"))
                        .at(value.span, "no input has this name")
                        .suggest(input, inputs.iter().map(|i| i.name.as_str()));
                    self.push(d);
                } else if subnet_inputs.iter().any(|i| i == input) {
                    let d = Diagnostic::error(Code::DuplicateArgument, format!("`{input}` is read twice by `{}`", name.text))
                        .at(value.span, "listed again here");
                    self.push(d);
                } else {
                    subnet_inputs.push(input.to_string());
                }
            }
            if args.positional.is_empty() {
                let d = Diagnostic::error(Code::MissingArgument, format!("subnet `{}` reads no input", name.text))
                    .at(layer.span, "a GRU needs at least one input")
                    .help("name its input first, e.g. `gru(id, hidden = 100)`; several inputs are concatenated");
                self.push(d);
            }
            let hidden = args.integer("hidden", 100, Range::Positive, self.sink);
            let hidden_span = args.get("hidden").map_or(layer.span, |v| v.span);
            let dropout = args.real("dropout", 0.0, Range::Fraction, self.sink);
            let learning_rate = args.get("lr").and_then(|v| read_real(v, "lr", Range::Positive, self.sink));
            subnets.push(Subnet {
                name: name.text.clone(),
                inputs: subnet_inputs,
                hidden,
                dropout,
                learning_rate,
                span: name.span,
                hidden_span,
            });
        }
        subnets
    }

    /// Resolves a list of subnet references, reporting unknown names, inputs named as subnets and repeats.
    pub(super) fn subnet_refs(
        &mut self,
        values: &[&Value],
        subnets: &[Subnet],
        inputs: &[Input],
        context: &str,
        repeat_code: Code,
    ) -> Vec<(String, Span)> {
        let mut resolved: Vec<(String, Span)> = Vec::new();
        for value in values {
            let Some(name) = read_name(value, context, self.sink) else { continue };
            if let Some((_, first)) = resolved.iter().find(|(n, _)| n == name) {
                let d = Diagnostic::error(repeat_code, format!("`{name}` is listed twice in {context}"))
                    .at(value.span, "listed again here")
                    .also(*first, "first listed here");
                self.push(d);
            } else if subnets.iter().any(|s| s.name == name) {
                resolved.push((name.to_string(), value.span));
            } else {
                self.unknown_subnet(name, value.span, subnets, inputs);
            }
        }
        resolved
    }

    pub(super) fn unknown_subnet(&mut self, name: &str, span: Span, subnets: &[Subnet], inputs: &[Input]) {
        let d = if inputs.iter().any(|i| i.name == name) {
            Diagnostic::error(Code::WrongNameKind, format!("`{name}` is an input, not a subnet"))
                .at(span, "expected a subnet")
                .help(format!("the subnets are {}", backticked(&subnets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())))
        } else {
            Diagnostic::error(Code::UnknownName, format!("unknown subnet `{name}`"))
                .at(span, "no subnet has this name")
                .suggest(name, subnets.iter().map(|s| s.name.as_str()))
        };
        self.push(d);
    }
}

/// Whether every value names a subnet; when one does not, it has its own error, and follow-on checks
/// ("left out", "never trains") would only guess at what was meant.
pub(super) fn all_known(values: &[&Value], subnets: &[Subnet]) -> bool {
    values.iter().all(|v| v.head().is_some_and(|name| subnets.iter().any(|s| s.name == name)))
}
