//! Semantic checks: syntax tree -> checked [`Model`], or every problem found, each with a precise message.
//!
//! The checker never stops at the first problem: each part of the spec is read on its own, a broken part
//! falls back to its default so later checks still run, and all diagnostics come back together.

mod args;
pub mod model;

use std::collections::HashMap;

use args::{backticked, form_of, read_epochs, read_integer, read_name, read_real, wrong_type, Args, Form, Range, Sink};
pub use model::*;

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Block, Ident, SpecFile, Statement, Value, ValueKind};

const MODEL_KEYS: &[&str] = &["merge", "output", "loss"];
const TRAIN_KEYS: &[&str] = &["optimizer", "batch", "seed", "negatives", "schedule"];
const INPUT_KINDS: &[&str] = &["item_id", "dense", "sparse", "feature"];
const MERGES: &[&str] = &["parallel", "shared_w", "interaction"];
const ACTIVATIONS: &[&str] = &["tanh", "linear", "elu", "softmax"];
const LOSSES: &[&str] = &["top1", "bpr", "top1_max", "bpr_max", "cross_entropy"];
const SCHEDULES: &[&str] = &["simultaneous", "alternating", "residual", "interleaving"];

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

    fn inputs(&mut self, declarations: &[&Statement]) -> Vec<Input> {
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

    fn subnets(&mut self, declarations: &[&Statement], inputs: &[Input]) -> Vec<Subnet> {
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

    /// An input is used when any subnet statement names it, even one with errors of its own: those errors
    /// are reported already, and "unused" on top would only mislead.
    fn unused_inputs(&mut self, inputs: &[Input], declarations: &[&Statement]) {
        let mut named = std::collections::HashSet::new();
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

    /// Resolves a list of subnet references, reporting unknown names, inputs named as subnets and repeats.
    fn subnet_refs(
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

    fn unknown_subnet(&mut self, name: &str, span: Span, subnets: &[Subnet], inputs: &[Input]) {
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

    fn merge(&mut self, setting: Option<(&Ident, &Value)>, subnets: &[Subnet], inputs: &[Input], block: &Block) -> Option<Merge> {
        let Some((key, value)) = setting else {
            return match subnets {
                [] => None,
                [only] => Some(Merge::Single { subnet: only.name.clone() }),
                _ => {
                    let names: Vec<&str> = subnets.iter().map(|s| s.name.as_str()).collect();
                    let d = Diagnostic::error(Code::MissingMerge, format!("{} subnets but no `merge`", subnets.len()))
                        .at(block.name.as_ref().map_or(block.kind.span, |n| n.span), "in this model")
                        .help(format!("say how they combine, e.g. `merge = parallel({})`", names.join(", ")))
                        .note("merges: `parallel`, `shared_w`, `interaction(primary = ...)`");
                    self.push(d);
                    None
                }
            };
        };
        let (kind, args) = self.function(value, "merge", MERGES, |kind| match kind {
            "interaction" => (&["primary"][..], usize::MAX),
            _ => (&["weights"][..], usize::MAX),
        })?;
        if subnets.len() < 2 {
            let d = Diagnostic::error(Code::MergeArity, format!("`{kind}` merges several subnets, but the model has {}", subnets.len()))
                .at(key.span.to(value.span), "nothing to merge")
                .help("remove the `merge` line: a single subnet scores items on its own");
            self.push(d);
            return None;
        }
        // A bare `merge = parallel` merges every subnet in declaration order.
        let listed: Vec<(String, Span)> = if args.positional.is_empty() {
            subnets.iter().map(|s| (s.name.clone(), value.span)).collect()
        } else {
            self.subnet_refs(&args.positional, subnets, inputs, "the merge", Code::MergeArity)
        };
        let merge = match kind {
            "interaction" => self.interaction(&args, listed, subnets, inputs, value)?,
            _ => {
                let weights = self.weights(&args, listed.len());
                // Unresolved references are reported already; a subnet they may have meant is not "left out".
                if all_known(&args.positional, subnets) {
                    for subnet in subnets {
                        if !args.positional.is_empty() && !listed.iter().any(|(n, _)| *n == subnet.name) {
                            self.unmerged(subnet, value.span);
                        }
                    }
                }
                let names: Vec<String> = listed.into_iter().map(|(n, _)| n).collect();
                if kind == "shared_w" {
                    self.equal_hidden(&names, subnets, "shared_w", "their weighted sum is multiplied by one output matrix");
                    Merge::SharedW { subnets: names, weights }
                } else {
                    Merge::Parallel { subnets: names, weights }
                }
            }
        };
        Some(merge)
    }

    fn unmerged(&mut self, subnet: &Subnet, merge_span: Span) {
        let d = Diagnostic::error(Code::UnmergedSubnet, format!("subnet `{}` is left out of the merge", subnet.name))
            .at(merge_span, format!("`{}` is not listed here", subnet.name))
            .also(subnet.span, "declared here")
            .help("list it in the merge, or remove the subnet");
        self.push(d);
    }

    fn weights(&mut self, args: &Args, count: usize) -> Vec<f64> {
        let Some(value) = args.get("weights") else {
            return vec![1.0; count];
        };
        let ValueKind::List(items) = &value.kind else {
            self.push(wrong_type(value, "weights", "a list of numbers, one per subnet"));
            return vec![1.0; count];
        };
        // A zero weight is allowed: it leaves a subnet out of the scores (the model without it), which is
        // how an ablation is written without editing the rest of the spec.
        let weights: Vec<f64> = items.iter().map(|v| read_real(v, "weights", Range::NonNegative, self.sink).unwrap_or(1.0)).collect();
        if weights.len() == count && weights.iter().all(|w| *w == 0.0) {
            let d = Diagnostic::error(Code::OutOfRange, "every merge weight is 0")
                .at(value.span, "no subnet would contribute to the scores")
                .help("give at least one subnet a positive weight");
            self.push(d);
            return vec![1.0; count];
        }
        if weights.len() != count {
            let d = Diagnostic::error(Code::WeightCount, format!("{} weights for {count} subnets", weights.len()))
                .at(value.span, format!("expected {count} weights, one per merged subnet, in the merge's order"));
            self.push(d);
            return vec![1.0; count];
        }
        weights
    }

    fn interaction(
        &mut self,
        args: &Args,
        listed: Vec<(String, Span)>,
        subnets: &[Subnet],
        inputs: &[Input],
        value: &Value,
    ) -> Option<Merge> {
        let is_id_subnet = |subnet: &Subnet| {
            subnet.inputs.len() == 1 && inputs.iter().any(|i| i.name == subnet.inputs[0] && matches!(i.kind, InputKind::ItemId { .. }))
        };
        let primary = match args.get("primary") {
            Some(primary_value) => {
                let name = read_name(primary_value, "primary", self.sink)?;
                let Some(subnet) = subnets.iter().find(|s| s.name == name) else {
                    self.unknown_subnet(name, primary_value.span, subnets, inputs);
                    return None;
                };
                if !is_id_subnet(subnet) {
                    let d =
                        Diagnostic::error(Code::InteractionPrimary, format!("the interaction's primary `{name}` is not an item-ID subnet"))
                            .at(primary_value.span, "the primary must read exactly one `item_id` input")
                            .also(
                                subnet.span,
                                format!("`{name}` reads {}", backticked(&subnet.inputs.iter().map(String::as_str).collect::<Vec<_>>())),
                            )
                            .note("the paper promotes the ID subnet to the primary representation of the session");
                    self.push(d);
                    return None;
                }
                subnet.name.clone()
            }
            None => {
                let candidates: Vec<&Subnet> = subnets.iter().filter(|s| is_id_subnet(s)).collect();
                match candidates.as_slice() {
                    [only] => only.name.clone(),
                    [] => {
                        let d = Diagnostic::error(Code::InteractionPrimary, "`interaction` needs an item-ID subnet as its primary")
                            .at(value.span, "no subnet reads an `item_id` input alone")
                            .help("add `input id : item_id` and `subnet id_net = gru(id)`, then `interaction(primary = id_net, ...)`");
                        self.push(d);
                        return None;
                    }
                    _ => {
                        let d = Diagnostic::error(Code::InteractionPrimary, "`interaction` needs `primary = ...`")
                            .at(value.span, "several item-ID subnets could be the primary")
                            .help(format!("name one, e.g. `interaction(primary = {}, ...)`", candidates[0].name));
                        self.push(d);
                        return None;
                    }
                }
            }
        };
        let mut features: Vec<String> = Vec::new();
        for (name, span) in listed {
            if name == primary {
                if !args.positional.is_empty() {
                    let d = Diagnostic::error(Code::MergeArity, format!("`{name}` is the primary and a feature subnet"))
                        .at(span, "listed as a feature subnet")
                        .help("list only the feature subnets; the primary goes in `primary = ...`");
                    self.push(d);
                }
            } else {
                features.push(name);
            }
        }
        if !args.positional.is_empty() && all_known(&args.positional, subnets) {
            for subnet in subnets {
                if subnet.name != primary && !features.contains(&subnet.name) {
                    self.unmerged(subnet, value.span);
                }
            }
        }
        let mut all = vec![primary.clone()];
        all.extend(features.iter().cloned());
        self.equal_hidden(&all, subnets, "interaction", "their hidden states are multiplied element-wise");
        Some(Merge::Interaction { primary, features })
    }

    fn equal_hidden(&mut self, names: &[String], subnets: &[Subnet], merge: &str, why: &str) {
        let chosen: Vec<&Subnet> = names.iter().filter_map(|n| subnets.iter().find(|s| &s.name == n)).collect();
        let Some(first) = chosen.first() else { return };
        if chosen.iter().all(|s| s.hidden == first.hidden) {
            return;
        }
        let mut d = Diagnostic::error(Code::HiddenSizeMismatch, format!("`{merge}` needs subnets of equal hidden size"))
            .at(first.hidden_span, format!("`{}` has {} units", first.name, first.hidden));
        for other in chosen.iter().skip(1).filter(|s| s.hidden != first.hidden) {
            d = d.also(other.hidden_span, format!("`{}` has {} units", other.name, other.hidden));
        }
        d = d.note(why).help("give every merged subnet the same `hidden`, or use `parallel`");
        self.push(d);
    }

    fn loss(&mut self, value: Option<&Value>) -> Loss {
        let Some(value) = value else { return Loss::Top1 };
        let Some((kind, args)) = self.function(value, "loss", LOSSES, |kind| match kind {
            "bpr_max" => (&["bpreg"][..], 0),
            "cross_entropy" => (&["logq"][..], 0),
            _ => (&[][..], 0),
        }) else {
            return Loss::Top1;
        };
        match kind {
            "top1" => Loss::Top1,
            "bpr" => Loss::Bpr,
            "top1_max" => Loss::Top1Max,
            "bpr_max" => Loss::BprMax { bpreg: args.real("bpreg", 1.0, Range::NonNegative, self.sink) },
            _ => Loss::CrossEntropy { logq: args.real("logq", 0.0, Range::NonNegative, self.sink) },
        }
    }

    /// `output = scores(activation = ...)`; the default activation follows the loss.
    fn output(&mut self, value: Option<&Value>, loss: Loss) -> Activation {
        let default = match loss {
            Loss::CrossEntropy { .. } => Activation::Softmax,
            Loss::BprMax { .. } => Activation::Elu { alpha: 1.0 },
            _ => Activation::Tanh,
        };
        let Some(value) = value else { return default };
        let Some((_, args)) = self.function(value, "output", &["scores"], |_| (&["activation"][..], 0)) else {
            return default;
        };
        let Some(activation_value) = args.get("activation") else { return default };
        let Some((kind, activation_args)) = self.function(activation_value, "activation", ACTIVATIONS, |kind| match kind {
            "elu" => (&["alpha"][..], 1),
            _ => (&[][..], 0),
        }) else {
            return default;
        };
        let activation = match kind {
            "tanh" => Activation::Tanh,
            "linear" => Activation::Linear,
            "softmax" => Activation::Softmax,
            _ => {
                let alpha = match activation_args.positional.first() {
                    Some(value) => read_real(value, "alpha", Range::Positive, self.sink).unwrap_or(1.0),
                    None => activation_args.real("alpha", 1.0, Range::Positive, self.sink),
                };
                Activation::Elu { alpha }
            }
        };
        self.loss_activation(loss, activation, activation_value.span);
        activation
    }

    fn loss_activation(&mut self, loss: Loss, activation: Activation, span: Span) {
        let problem = match (loss, activation) {
            (Loss::CrossEntropy { .. }, Activation::Tanh | Activation::Elu { .. }) => Some((
                "cross_entropy takes raw logits: a squashing activation before its softmax distorts them",
                "use `activation = softmax` (the softmax lives inside the loss) or `linear`",
            )),
            (Loss::CrossEntropy { .. }, _) => None,
            (_, Activation::Softmax) => Some((
                "pairwise losses compare raw scores; a softmax over the sampled items would be applied twice for \
                 top1_max and bpr_max, and squashes top1 and bpr",
                "use `tanh` (the paper's choice) or `linear`; `elu(1)` is GRU4Rec's choice for bpr_max",
            )),
            _ => None,
        };
        if let Some((why, fix)) = problem {
            let d = Diagnostic::error(
                Code::LossActivation,
                format!("`{}` does not go with the {} loss", activation_name(activation), loss_name(loss)),
            )
            .at(span, "this activation")
            .note(why)
            .help(fix);
            self.push(d);
        }
    }

    fn embeddings(&mut self, inputs: &[Input], subnets: &[Subnet], merge: &Option<Merge>) {
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

    fn train(&mut self, settings: &Settings, subnets: &[Subnet], inputs: &[Input]) -> Train {
        let value = |key: &str| settings.get(key).map(|(_, v)| *v);
        let optimizer = match value("optimizer") {
            None => Optimizer { learning_rate: 0.05, momentum: 0.0, eps: 1e-6 },
            Some(v) => self.optimizer(v),
        };
        let batch = value("batch").and_then(|v| read_integer(v, "batch", Range::Positive, self.sink)).unwrap_or(50);
        let seed = value("seed").and_then(|v| read_integer(v, "seed", Range::NonNegative, self.sink)).unwrap_or(42);
        let negatives = match value("negatives") {
            None => Negatives { extra: 0, alpha: 0.5 },
            Some(v) => match self.function(v, "negatives", &["in_batch"], |_| (&["extra", "alpha"][..], 0)) {
                Some((_, args)) => Negatives {
                    extra: args.integer("extra", 0, Range::NonNegative, self.sink),
                    alpha: args.real("alpha", 0.5, Range::NonNegative, self.sink),
                },
                None => Negatives { extra: 0, alpha: 0.5 },
            },
        };
        let schedule = match settings.get("schedule") {
            None => Schedule::Simultaneous { epochs: 10 },
            Some((key, v)) => self.schedule(key, v, subnets, inputs).unwrap_or(Schedule::Simultaneous { epochs: 10 }),
        };
        if batch == 1 && negatives.extra == 0 {
            if let Some(batch_value) = value("batch") {
                let d = Diagnostic::error(Code::OutOfRange, "a mini-batch of 1 has no negatives to rank against")
                    .at(batch_value.span, "with in-batch negatives only, the other targets of the batch are the negatives")
                    .help("use `batch = 2` or more, or add sampled negatives: `negatives = in_batch(extra = 100)`");
                self.push(d);
            }
        }
        Train { optimizer, batch, seed, negatives, schedule }
    }

    fn optimizer(&mut self, value: &Value) -> Optimizer {
        let default = Optimizer { learning_rate: 0.05, momentum: 0.0, eps: 1e-6 };
        let Some((_, args)) = self.function(value, "optimizer", &["adagrad"], |_| (&["lr", "momentum", "eps"][..], 0)) else {
            return default;
        };
        Optimizer {
            learning_rate: args.real("lr", default.learning_rate, Range::Positive, self.sink),
            momentum: args.real("momentum", default.momentum, Range::Fraction, self.sink),
            eps: args.real("eps", default.eps, Range::Positive, self.sink),
        }
    }

    fn schedule(&mut self, key: &Ident, value: &Value, subnets: &[Subnet], inputs: &[Input]) -> Option<Schedule> {
        if let ValueKind::EntryBlock { head, entries } = &value.kind {
            if head.text != "residual" {
                let d = if SCHEDULES.contains(&head.text.as_str()) {
                    Diagnostic::error(Code::WrongType, format!("`{}` takes its arguments in parentheses", head.text))
                        .at(value.span, "only `residual` lists per-subnet epochs in braces")
                        .help(format!("write `{}(epochs = 10, order = [...])`", head.text))
                } else {
                    Diagnostic::error(Code::UnknownFunction, format!("unknown schedule `{}`", head.text))
                        .at(head.span, format!("expected one of {}", backticked(SCHEDULES)))
                        .suggest(&head.text, SCHEDULES.iter().copied())
                };
                self.push(d);
                return None;
            }
            self.multi_subnet_schedule("residual", key, value, subnets)?;
            let mut phases: Vec<ResidualPhase> = Vec::new();
            let mut spans: Vec<Span> = Vec::new();
            for entry in entries {
                let epochs = read_epochs(&entry.value, self.sink);
                if let Some(index) = phases.iter().position(|p| p.subnet == entry.key.text) {
                    let d = Diagnostic::error(Code::ScheduleRepeatsSubnet, format!("`{}` has two residual phases", entry.key.text))
                        .at(entry.key.span, "listed again here")
                        .also(spans[index], "first listed here")
                        .note("residual training does not cycle: each subnet trains once, after the ones before it");
                    self.push(d);
                } else if !subnets.iter().any(|s| s.name == entry.key.text) {
                    self.unknown_subnet(&entry.key.text, entry.key.span, subnets, inputs);
                } else if let Some(epochs) = epochs {
                    phases.push(ResidualPhase { subnet: entry.key.text.clone(), epochs });
                    spans.push(entry.key.span);
                }
            }
            let order: Vec<String> = phases.iter().map(|p| p.subnet.clone()).collect();
            if entries.iter().all(|e| subnets.iter().any(|s| s.name == e.key.text)) {
                self.schedule_covers("residual", &order, subnets, value.span);
            }
            return Some(Schedule::Residual { phases });
        }
        if value.head() == Some("residual") {
            let d = Diagnostic::error(Code::WrongType, "`residual` lists each subnet's epochs in braces")
                .at(value.span, format!("found {}", value.describe()))
                .help(format!(
                    "write `residual {{ {} }}`",
                    subnets.iter().map(|s| format!("{}: 10 epochs", s.name)).collect::<Vec<_>>().join(", ")
                ));
            self.push(d);
            return None;
        }
        let (kind, args) = self.function(value, "schedule", SCHEDULES, |kind| match kind {
            "simultaneous" => (&["epochs"][..], 0),
            _ => (&["epochs", "order"][..], 0),
        })?;
        let epochs = args.get("epochs").map_or(Some(10), |v| read_epochs(v, self.sink)).unwrap_or(10);
        if kind == "simultaneous" {
            return Some(Schedule::Simultaneous { epochs });
        }
        self.multi_subnet_schedule(kind, key, value, subnets)?;
        let order: Vec<String> = match args.get("order") {
            None => subnets.iter().map(|s| s.name.clone()).collect(),
            Some(order_value) => {
                let ValueKind::List(items) = &order_value.kind else {
                    self.push(wrong_type(order_value, "order", "a list of subnets"));
                    return None;
                };
                let items: Vec<&Value> = items.iter().collect();
                let order: Vec<String> = self
                    .subnet_refs(&items, subnets, inputs, "the schedule's order", Code::ScheduleRepeatsSubnet)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                if all_known(&items, subnets) {
                    self.schedule_covers(kind, &order, subnets, order_value.span);
                }
                order
            }
        };
        if kind == "alternating" && (epochs as usize) < subnets.len() {
            let d = Diagnostic::error(
                Code::ScheduleMissesSubnet,
                format!("{epochs} alternating epoch(s) cannot train {} subnets", subnets.len()),
            )
            .at(args.get("epochs").map_or(value.span, |v| v.span), "one subnet trains per epoch")
            .help(format!("give at least {} epochs; `epochs` counts all epochs, not epochs per subnet", subnets.len()));
            self.push(d);
        }
        Some(if kind == "alternating" { Schedule::Alternating { epochs, order } } else { Schedule::Interleaving { epochs, order } })
    }

    /// Residual and interleaving leave later subnets out of earlier steps, but an interaction part cannot be
    /// scored without the primary's hidden state: the primary must come first.
    fn interaction_order(&mut self, primary: &str, schedule: &Schedule, span: Span) {
        let first = match schedule {
            Schedule::Residual { phases } => phases.first().map(|p| p.subnet.as_str()),
            Schedule::Interleaving { order, .. } => order.first().map(String::as_str),
            _ => None,
        };
        if let Some(first) = first.filter(|first| *first != primary) {
            let d = Diagnostic::error(
                Code::InteractionPrimary,
                format!("the {} schedule must start with the primary `{primary}`", schedule.name()),
            )
            .at(span, format!("starts with `{first}`"))
            .note(format!("`{first}`'s scores multiply its hidden state with `{primary}`'s, which is left out until its own turn"))
            .help(format!("put `{primary}` first"));
            self.push(d);
        }
    }

    fn multi_subnet_schedule(&mut self, kind: &str, key: &Ident, value: &Value, subnets: &[Subnet]) -> Option<()> {
        if subnets.len() >= 2 {
            return Some(());
        }
        let d = Diagnostic::error(
            Code::SingleSubnetSchedule,
            format!("`{kind}` training needs several subnets, and this model has {}", subnets.len()),
        )
        .at(key.span.to(value.span), "a p-RNN training strategy")
        .help("use `schedule = simultaneous(epochs = 10)` for a single-subnet model");
        self.push(d);
        None
    }

    fn schedule_covers(&mut self, kind: &str, order: &[String], subnets: &[Subnet], span: Span) {
        let missing: Vec<&str> = subnets.iter().map(|s| s.name.as_str()).filter(|n| !order.iter().any(|o| o == n)).collect();
        if missing.is_empty() {
            return;
        }
        let d = Diagnostic::error(Code::ScheduleMissesSubnet, format!("the {kind} schedule leaves out {}", backticked(&missing)))
            .at(span, format!("{} never trains", backticked(&missing)))
            .help(format!("list every subnet: {}", backticked(&subnets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())));
        self.push(d);
    }
}

/// Whether every value names a subnet; when one does not, it has its own error, and follow-on checks
/// ("left out", "never trains") would only guess at what was meant.
fn all_known(values: &[&Value], subnets: &[Subnet]) -> bool {
    values.iter().all(|v| v.head().is_some_and(|name| subnets.iter().any(|s| s.name == name)))
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

pub fn activation_name(activation: Activation) -> String {
    match activation {
        Activation::Tanh => "tanh".into(),
        Activation::Linear => "linear".into(),
        Activation::Softmax => "softmax".into(),
        Activation::Elu { alpha } => format!("elu(alpha = {})", args::format_number(alpha)),
    }
}

pub fn loss_name(loss: Loss) -> String {
    match loss {
        Loss::Top1 => "top1".into(),
        Loss::Bpr => "bpr".into(),
        Loss::Top1Max => "top1_max".into(),
        Loss::BprMax { bpreg } => format!("bpr_max(bpreg = {})", args::format_number(bpreg)),
        Loss::CrossEntropy { logq } => format!("cross_entropy(logq = {})", args::format_number(logq)),
    }
}

pub use args::format_number;
