//! Semantic checks: syntax tree -> checked [`Model`], or every problem found, each with a precise message.
//!
//! The checker never stops at the first problem: each part of the spec is read on its own, a broken part
//! falls back to its default so later checks still run, and all diagnostics come back together.
//!
//! This file reads the blocks and hands each part to its own file: `inputs.rs` (inputs and their
//! embeddings), `subnets.rs` (GRU layers and references to them), `merge.rs` (how subnets combine),
//! `output.rs` (loss, activation and their pairing) and `training.rs` (the `train` block and its schedule).

mod args;
mod inputs;
mod merge;
pub mod model;
mod output;
mod subnets;
mod training;

use std::collections::HashMap;

pub use args::{format_number, Range, MAX_EPOCHS, MAX_WHOLE};
use args::{backticked, form_of, wrong_type, Args, Form, Sink};
pub use model::*;
pub use output::{activation_name, loss_name};

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Block, Ident, SpecFile, Statement, Value};

const MODEL_KEYS: &[&str] = &["merge", "output", "loss"];
const TRAIN_KEYS: &[&str] = &["optimizer", "batch", "seed", "negatives", "schedule", "stop"];

/// Checks a parsed spec and fills in defaults.
pub fn check(spec: &SpecFile) -> Result<Model, Vec<Diagnostic>> {
    let mut sink = Sink::default();
    let model = Checker { sink: &mut sink }.spec(spec);
    match model {
        Some(model) if sink.diagnostics.is_empty() => Ok(model),
        _ => Err(sink.diagnostics),
    }
}

struct Checker<'s> {
    sink: &'s mut Sink,
}

/// The settings of one block, by key, first occurrence kept.
type Settings<'a> = HashMap<&'a str, (&'a Ident, &'a Value)>;

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.sink.push(diagnostic);
    }

    fn spec(&mut self, spec: &SpecFile) -> Option<Model> {
        let mut model_block: Option<&Block> = None;
        let mut train_block: Option<&Block> = None;
        for block in &spec.blocks {
            let slot = match block.kind.text.as_str() {
                "model" => &mut model_block,
                "train" => &mut train_block,
                other => {
                    let d = Diagnostic::error(Code::UnknownBlock, format!("unknown block `{other}`"))
                        .at(block.kind.span, "expected `model` or `train`")
                        .suggest(other, ["model", "train"]);
                    self.push(d);
                    continue;
                }
            };
            if let Some(first) = slot {
                let d = Diagnostic::error(Code::DuplicateBlock, format!("a spec has one `{}` block", block.kind.text))
                    .at(block.kind.span, "second block here")
                    .also(first.kind.span, "first block here")
                    .help("merge the two blocks into one");
                self.sink.push(d);
                continue;
            }
            *slot = Some(block);
        }
        let Some(model_block) = model_block else {
            let d = Diagnostic::error(Code::MissingModel, "the spec has no `model` block")
                .at(Span::new(0, 0), "expected `model NAME { ... }`")
                .help("a spec starts with `model NAME {` and lists its inputs and subnets");
            self.push(d);
            return None;
        };
        let name = match &model_block.name {
            Some(name) => name.text.clone(),
            None => {
                let d = Diagnostic::error(Code::MissingModelName, "the model has no name")
                    .at(model_block.kind.span, "expected `model NAME {`")
                    .help("name the model, e.g. `model parallel_res {`; runs and results are labelled with it");
                self.push(d);
                String::from("unnamed")
            }
        };
        if let Some(train) = train_block {
            if let Some(name) = &train.name {
                let d = Diagnostic::error(Code::WrongBlock, "a `train` block takes no name")
                    .at(name.span, "remove this name")
                    .note("the model's name labels the run");
                self.push(d);
            }
        }

        let (inputs_subnets, model_settings) = self.collect(model_block, BlockKind::Model);
        let train_settings = match train_block {
            Some(block) => self.collect(block, BlockKind::Train).1,
            None => Settings::new(),
        };

        let inputs = self.inputs(&inputs_subnets);
        let subnets = self.subnets(&inputs_subnets, &inputs);
        if subnets.is_empty() && !inputs_subnets.iter().any(|s| matches!(s, Statement::Subnet { .. })) {
            let d = Diagnostic::error(Code::NoSubnet, format!("model `{name}` has no subnet"))
                .at(model_block.name.as_ref().map_or(model_block.kind.span, |n| n.span), "this model")
                .help("add a GRU subnet, e.g. `subnet id_net = gru(id, hidden = 100)`");
            self.push(d);
        }
        self.unused_inputs(&inputs, &inputs_subnets);
        let merge = self.merge(model_settings.get("merge").copied(), &subnets, &inputs, model_block);
        let loss = self.loss(model_settings.get("loss").map(|(_, v)| *v));
        let activation = self.output(model_settings.get("output").map(|(_, v)| *v), loss);
        self.embeddings(&inputs, &subnets, &merge);
        // Schedules list subnets in merge order unless told otherwise (the primary first for interaction).
        let mut in_merge_order = subnets.clone();
        if let Some(merge) = &merge {
            let order = merge.subnets();
            in_merge_order.sort_by_key(|s| order.iter().position(|n| *n == s.name).unwrap_or(usize::MAX));
        }
        let train = self.train(&train_settings, &in_merge_order, &inputs);
        if let (Some(Merge::Interaction { primary, .. }), Some((_, schedule_value))) = (&merge, train_settings.get("schedule")) {
            self.interaction_order(primary, &train.schedule, schedule_value.span);
        }

        Some(Model { name, inputs, subnets, merge: merge?, activation, loss, train })
    }

    /// Splits a block into declarations and settings, reporting misplaced, unknown and repeated statements.
    fn collect<'a>(&mut self, block: &'a Block, kind: BlockKind) -> (Vec<&'a Statement>, Settings<'a>) {
        let (own_keys, other_keys, other_block) = match kind {
            BlockKind::Model => (MODEL_KEYS, TRAIN_KEYS, "train"),
            BlockKind::Train => (TRAIN_KEYS, MODEL_KEYS, "model"),
        };
        let mut declarations = Vec::new();
        let mut settings = Settings::new();
        for statement in &block.statements {
            match statement {
                Statement::Input { .. } | Statement::Subnet { .. } => {
                    if kind == BlockKind::Train {
                        let d = Diagnostic::error(Code::WrongBlock, "inputs and subnets belong in the `model` block")
                            .at(statement.span(), "declared in the `train` block")
                            .help("move this line into the `model` block");
                        self.push(d);
                    } else {
                        declarations.push(statement);
                    }
                }
                Statement::Setting { key, value } => {
                    let text = key.text.as_str();
                    if other_keys.contains(&text) {
                        let d = Diagnostic::error(Code::WrongBlock, format!("`{text}` belongs in the `{other_block}` block"))
                            .at(key.span, format!("set in the `{}` block", kind.name()))
                            .help(format!("move this line into the `{other_block}` block"));
                        self.push(d);
                    } else if !own_keys.contains(&text) {
                        let d = Diagnostic::error(Code::UnknownSetting, format!("unknown setting `{text}`"))
                            .at(key.span, format!("the `{}` block accepts {}", kind.name(), backticked(own_keys)))
                            .suggest(text, own_keys.iter().chain(other_keys).copied());
                        self.push(d);
                    } else if let Some((first, _)) = settings.get(text) {
                        let d = Diagnostic::error(Code::DuplicateSetting, format!("`{text}` is set twice"))
                            .at(key.span, "set again here")
                            .also(first.span, "first set here")
                            .help("keep one of the two lines");
                        self.push(d);
                    } else {
                        settings.insert(text, (key, value));
                    }
                }
            }
        }
        (declarations, settings)
    }

    /// Reads a value written as `name` or `name(args)` where `name` is one of `known`.
    /// `signature` gives, per name, the accepted argument names and how many unnamed arguments it takes.
    fn function<'v>(
        &mut self,
        value: &'v Value,
        what: &str,
        known: &[&'static str],
        signature: impl Fn(&str) -> (&'static [&'static str], usize),
    ) -> Option<(&'static str, Args<'v>)> {
        let Some(form) = form_of(value) else {
            let expected = format!("one of {}", backticked(known));
            self.push(wrong_type(value, what, &expected));
            return None;
        };
        let (written, span) = match &form {
            Form::Name { name, span } => (*name, *span),
            Form::Call { callee, .. } => (callee.text.as_str(), callee.span),
        };
        let Some(&name) = known.iter().find(|k| **k == written) else {
            let d = Diagnostic::error(Code::UnknownFunction, format!("unknown {what} `{written}`"))
                .at(span, format!("expected one of {}", backticked(known)))
                .suggest(written, known.iter().copied());
            self.push(d);
            return None;
        };
        let (accepted, max_positional) = signature(name);
        let args = match form {
            Form::Name { .. } => Args::none(),
            Form::Call { callee, args } => Args::bind(callee, args, accepted, max_positional, self.sink),
        };
        Some((name, args))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Model,
    Train,
}

impl BlockKind {
    fn name(self) -> &'static str {
        match self {
            BlockKind::Model => "model",
            BlockKind::Train => "train",
        }
    }
}
