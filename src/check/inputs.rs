//! Inputs: their declarations (one namespace with the subnets), kinds and embeddings, and inputs no subnet reads.

use std::collections::{HashMap, HashSet};

use super::args::{read_integer, Range};
use super::{Checker, Embedding, Input, InputKind, Merge, Subnet};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Ident, Statement, Value, ValueKind};

const INPUT_KINDS: &[&str] = &["item_id", "dense", "sparse", "feature"];

impl Checker<'_> {
    pub(super) fn inputs(&mut self, declarations: &[&Statement]) -> Vec<Input> {
        let mut seen = HashMap::new();
        let mut inputs = Vec::new();
        for statement in declarations {
            match statement {
                Statement::Input { name, kind } => {
                    if !self.declare(&mut seen, name) {
                        continue;
                    }
                    // A broken kind still declares the name, so subnets reading it get no second error.
                    let kind = self.input_kind(kind).unwrap_or(InputKind::Feature);
                    inputs.push(Input { name: name.text.clone(), kind, span: name.span });
                }
                Statement::Subnet { name, .. } => {
                    self.declare(&mut seen, name);
                }
                Statement::Setting { .. } => {}
            }
        }
        inputs
    }

    /// Checks a declared name against every earlier one: inputs and subnets share one namespace.
    fn declare<'a>(&mut self, seen: &mut HashMap<&'a str, Span>, name: &'a Ident) -> bool {
        if let Some(first) = seen.get(name.text.as_str()) {
            let d = Diagnostic::error(Code::DuplicateName, format!("`{}` is declared twice", name.text))
                .at(name.span, "declared again here")
                .also(*first, "first declared here")
                .help("inputs and subnets share one namespace; rename one of them");
            self.push(d);
            return false;
        }
        seen.insert(&name.text, name.span);
        true
    }

    fn input_kind(&mut self, value: &Value) -> Option<InputKind> {
        let (kind, args) = self.function(value, "input kind", INPUT_KINDS, |kind| match kind {
            "item_id" => (&["embedding", "dropout"][..], 0),
            _ => (&[][..], 0),
        })?;
        Some(match kind {
            "item_id" => {
                let embedding = match args.get("embedding") {
                    None => Some(Embedding::OneHot),
                    Some(value) => self.embedding(value),
                };
                let dropout = args.real("dropout", 0.0, Range::Fraction, self.sink);
                // A broken embedding is reported already; judging its dropout would guess at what was meant.
                if dropout > 0.0 && embedding == Some(Embedding::OneHot) {
                    let span = args.get("dropout").map_or(value.span, |v| v.span);
                    self.push(
                        Diagnostic::error(Code::Embedding, "embedding dropout needs an embedding")
                            .at(span, "this input is one-hot: there is no embedding vector to drop units from")
                            .help("give it `embedding = separate(dim = N)` or `constrained`, or use the subnet's hidden `dropout`"),
                    );
                }
                InputKind::ItemId { embedding: embedding.unwrap_or(Embedding::OneHot), dropout }
            }
            "dense" => InputKind::Dense,
            "sparse" => InputKind::Sparse,
            _ => InputKind::Feature,
        })
    }

    fn embedding(&mut self, value: &Value) -> Option<Embedding> {
        let (mode, args) = self.function(value, "embedding", &["one_hot", "separate", "constrained"], |mode| match mode {
            "separate" => (&["dim"][..], 1),
            _ => (&[][..], 0),
        })?;
        Some(match mode {
            "one_hot" => Embedding::OneHot,
            "constrained" => Embedding::Constrained,
            _ => {
                let dim = match (args.positional.first().copied(), args.get("dim")) {
                    (Some(value), None) | (None, Some(value)) => read_integer(value, "dim", Range::Positive, self.sink)?,
                    (Some(_), Some(named)) => {
                        self.push(
                            Diagnostic::error(Code::DuplicateArgument, "argument `dim` given twice")
                                .at(named.span, "given by name here, and unnamed before it"),
                        );
                        return None;
                    }
                    (None, None) => {
                        self.push(
                            Diagnostic::error(Code::MissingArgument, "`separate` needs the embedding size")
                                .at(value.span, "no `dim` given")
                                .help("write `separate(dim = 64)`"),
                        );
                        return None;
                    }
                };
                Embedding::Separate { dim }
            }
        })
    }

    /// An input is used when any subnet statement names it, even one with errors of its own: those errors
    /// are reported already, and "unused" on top would only mislead.
    pub(super) fn unused_inputs(&mut self, inputs: &[Input], declarations: &[&Statement]) {
        let mut named = HashSet::new();
        for statement in declarations {
            if let Statement::Subnet { layer: Value { kind: ValueKind::Call { args, .. }, .. }, .. } = statement {
                named.extend(args.iter().filter(|a| a.name.is_none()).filter_map(|a| a.value.head()));
            }
        }
        for input in inputs {
            if !named.contains(input.name.as_str()) {
                let d = Diagnostic::error(Code::UnusedInput, format!("input `{}` is read by no subnet", input.name))
                    .at(input.span, "declared here, never used")
                    .help(format!("feed it to a subnet, e.g. `subnet {0}_net = gru({0}, hidden = 100)`, or remove it", input.name));
                self.push(d);
            }
        }
    }

    pub(super) fn embeddings(&mut self, inputs: &[Input], subnets: &[Subnet], merge: &Option<Merge>) {
        let shared_output = matches!(merge, Some(Merge::SharedW { .. }));
        for input in inputs {
            let InputKind::ItemId { embedding, .. } = input.kind else { continue };
            let readers: Vec<&Subnet> = subnets.iter().filter(|s| s.inputs.contains(&input.name)).collect();
            if readers.len() < 2 {
                continue;
            }
            let (message, label, reader_label, fix) = match embedding {
                Embedding::OneHot => continue,
                Embedding::Constrained if shared_output => continue,
                Embedding::Constrained => (
                    format!("constrained embedding of `{}` has no single output matrix to tie to", input.name),
                    "constrained: the input embedding is the reading subnet's output matrix",
                    "reads it, with its own output matrix",
                    "feed the input to one subnet, use `separate(dim = N)`, or merge with `shared_w`",
                ),
                Embedding::Separate { .. } => (
                    format!("separate embedding of `{}` is read by {} subnets", input.name, readers.len()),
                    "an embedding's parameters belong to the one subnet that reads it",
                    "reads it",
                    "declare one embedded input per subnet, e.g. `input id2 : item_id(embedding = separate(dim = 64))`",
                ),
            };
            let mut d = Diagnostic::error(Code::Embedding, message).at(input.span, label);
            for reader in &readers {
                d = d.also(reader.span, reader_label);
            }
            self.push(d.help(fix));
        }
    }
}
