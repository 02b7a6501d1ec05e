//! Renderings of a compiled spec: text (the snapshot format, written for a reviewer who knows the paper),
//! Graphviz DOT and JSON.

use std::fmt::Write;

use petgraph::visit::EdgeRef;

use super::expr::Expr;
use super::graph::{Edge, Flow, Graph, Init, InputRepr, Node, Owner, ParamCount, RowSpace};
use super::plan::{Mode, Phase, Step};
use super::{number, Bound, Compiled};
use crate::check::{activation_name, format_number, loss_name, Activation, Schedule};

fn shape(shape: &[Expr]) -> String {
    format!("[{}]", shape.iter().map(Expr::to_string).collect::<Vec<_>>().join(", "))
}

fn flow_name(flow: &Flow) -> &'static str {
    match flow {
        Flow::ItemIds => "item ids",
        Flow::DenseRows => "dense rows",
        Flow::SparseRows => "sparse rows",
        Flow::FeatureRows => "feature rows",
        Flow::Embedded => "embedded",
        Flow::Hidden => "hidden",
        Flow::Scores => "scores",
    }
}

fn weights(weights: &[f64]) -> String {
    weights.iter().map(|w| format_number(*w)).collect::<Vec<_>>().join(", ")
}

/// One line describing a node, without its inputs.
pub fn node_summary(graph: &Graph, node: &Node) -> String {
    match node {
        Node::Input { name, repr, width } => {
            let kind = match repr {
                InputRepr::OneHot => "item_id, one-hot",
                InputRepr::Embedded => "item_id, looked up in an embedding",
                InputRepr::Dense => "dense",
                InputRepr::Sparse => "sparse",
                InputRepr::Feature => "feature (dense or sparse: set by the run config)",
            };
            format!("input {name}: {kind}, width {width}")
        }
        Node::Embedding { input, dim, constrained, dropout, .. } => {
            let mode = if *constrained { "constrained (rows of W_out)" } else { "separate" };
            format!("embedding {input}: {mode}, dim {dim}, dropout {}", format_number(*dropout))
        }
        Node::Gru { subnet, hidden, form, input_width, dropout, learning_rate, .. } => {
            let subnet = &graph.subnet(*subnet).name;
            let mut text = format!(
                "gru {subnet}: hidden {hidden}, input width {input_width}, hidden dropout {}, {}",
                format_number(*dropout),
                form.describe()
            );
            if let Some(lr) = learning_rate {
                write!(text, ", lr {}", format_number(*lr)).unwrap();
            }
            text
        }
        Node::Interact { feature, primary } => {
            format!("interact: h({}) ⊙ h({})", graph.subnet(*feature).name, graph.subnet(*primary).name)
        }
        Node::HiddenSum { weights: w } => format!("hidden sum (shared-W): weights {}", weights(w)),
        Node::Scores { part, .. } => format!("scores {part}: h · W_out[Y]ᵀ + b_out[Y]"),
        Node::ScoreSum { weights: w } => format!("score sum: weights {}", weights(w)),
        Node::Activation { activation: Activation::Softmax } => {
            "activation softmax: logits out; the softmax is computed inside the loss".to_string()
        }
        Node::Activation { activation } => format!("activation {}", activation_name(*activation)),
        Node::Loss { loss, negatives } => {
            let mut text = format!("loss {}, negatives: in-batch", loss_name(*loss));
            if negatives.extra > 0 {
                write!(text, " + {} shared samples ∝ support^{}", negatives.extra, format_number(negatives.alpha)).unwrap();
            }
            text
        }
    }
}

fn edge_summary(edge: &Edge) -> String {
    format!("{} {}", flow_name(&edge.flow), shape(&edge.shape))
}

fn mode_name(mode: Mode, reused: bool) -> &'static str {
    match (mode, reused) {
        (Mode::Train, _) => "train",
        (Mode::Frozen, false) => "frozen",
        (Mode::Frozen, true) => "frozen, forward reused",
    }
}

fn owners(graph: &Graph, owners: &[Owner]) -> String {
    owners
        .iter()
        .map(|&o| match o {
            Owner::Subnet(_) => graph.owner_name(o).to_string(),
            Owner::Shared => "shared output (W_out, b_out)".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loss's ensemble as a formula over subnets, e.g. `top1(tanh(1·s(id_net) + 1·s(image_net)))`.
fn loss_formula(compiled: &Compiled, loss_on: &[super::SubnetId]) -> String {
    let graph = &compiled.graph;
    let name = |k: super::SubnetId| graph.subnet(k).name.clone();
    let weighted = |weights: &[f64], term: &dyn Fn(super::SubnetId) -> String| -> String {
        loss_on.iter().map(|&k| format!("{}·{}", format_number(weights[k.index()]), term(k))).collect::<Vec<_>>().join(" + ")
    };
    let merged = graph.merged();
    let inner = match graph.node(merged) {
        Node::Scores { .. } => match graph.node(graph.sources(merged)[0]) {
            Node::HiddenSum { weights } => format!("W_out·({})", weighted(weights, &|k| format!("h({})", name(k)))),
            _ => format!("s({})", graph.subnet(super::SubnetId::new(0)).name),
        },
        Node::ScoreSum { weights } => {
            let parts = graph.sources(merged);
            let reads = |k: super::SubnetId| graph.node(graph.sources(parts[k.index()])[0]);
            if parts.iter().enumerate().any(|(k, _)| matches!(reads(super::SubnetId::new(k)), Node::Interact { .. })) {
                let term = |k: super::SubnetId| match reads(k) {
                    Node::Interact { feature, primary } => format!("s({} ⊙ {})", name(*feature), name(*primary)),
                    _ => format!("s({})", name(k)),
                };
                loss_on.iter().map(|&k| term(k)).collect::<Vec<_>>().join(" + ")
            } else {
                weighted(weights, &|k| format!("s({})", name(k)))
            }
        }
        other => unreachable!("the activation reads merged scores, not {other:?}"),
    };
    let (Node::Activation { activation }, Node::Loss { loss, .. }) = (graph.node(graph.activation()), graph.node(graph.loss())) else {
        unreachable!("a graph ends in an activation and a loss")
    };
    let scored = match *activation {
        Activation::Softmax => format!("logits {inner}"),
        Activation::Elu { alpha } => format!("elu({inner}, alpha = {})", format_number(alpha)),
        activation => format!("{}({inner})", activation_name(activation)),
    };
    format!("{} on {scored}", loss_name(*loss))
}

fn step_lines(compiled: &Compiled, step: &Step, indent: &str, out: &mut String) {
    let forward = step
        .forward
        .iter()
        .map(|f| format!("{} ({})", compiled.graph.subnet(f.subnet).name, mode_name(f.mode, f.reused)))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(out, "{indent}forward  {forward}").unwrap();
    writeln!(out, "{indent}train    {}", owners(&compiled.graph, &step.trains)).unwrap();
    writeln!(out, "{indent}loss     {}", loss_formula(compiled, &step.loss_on)).unwrap();
}

fn epochs_label(phase: &Phase) -> String {
    if phase.first_epoch == phase.last_epoch {
        format!("epoch {}", phase.first_epoch)
    } else {
        format!("epochs {}-{}", phase.first_epoch, phase.last_epoch)
    }
}

/// A node's parameters as renderings list them: `(label, shape, count, sparse row updates)`. A GRU's
/// per-input weight blocks are shown as the one `W_in` they form, rows stacked in input order.
fn shown_params(graph: &Graph, node: &Node) -> Vec<(String, Vec<Expr>, ParamCount, bool)> {
    let mut shown = Vec::new();
    let mut blocks = Vec::new();
    if let Node::Gru { inputs, .. } = node {
        blocks = inputs.iter().map(|i| i.w_in).collect();
        let params: Vec<&super::Param> = blocks.iter().map(|&id| graph.param(id)).collect();
        let rows = params.iter().fold(Expr::default(), |sum, p| sum.add(&p.shape[0]));
        let count = params.iter().fold(ParamCount::default(), |sum, p| sum.add(&p.count()));
        let sparse = params.iter().all(|p| p.rows.is_sparse());
        shown.push(("W_in".to_string(), vec![rows, params[0].shape[1].clone()], count, sparse));
    }
    for id in node.params().into_iter().filter(|id| !blocks.contains(id)) {
        let param = graph.param(id);
        let tie = if param.tied_to.is_some() { " (= constrained input embedding)" } else { "" };
        shown.push((format!("{}{tie}", param.role.label()), param.shape.clone(), param.count(), param.rows.is_sparse()));
    }
    shown
}

/// The text rendering: what `prnn compile` prints and what the snapshot tests pin.
pub fn text(compiled: &Compiled) -> String {
    let model = &compiled.model;
    let plan = &compiled.plan;
    let graph = &compiled.graph.graph;
    let mut out = String::new();
    writeln!(out, "model {}", model.name).unwrap();
    let (batch, sampled) = compiled.training_sizes();
    let sampled =
        if sampled > batch { format!("S = B + {} = {sampled}", sampled - batch) } else { "S = B (in-batch negatives only)".to_string() };
    writeln!(out, "  B = {batch} (mini-batch), {sampled}").unwrap();
    writeln!(out).unwrap();

    writeln!(out, "graph").unwrap();
    for index in graph.node_indices() {
        let node = &graph[index];
        let sources: Vec<String> = graph
            .edges_directed(index, petgraph::Direction::Incoming)
            .map(|e| (e.source().index(), edge_summary(e.weight())))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(source, summary)| format!("%{source} {summary}"))
            .collect();
        writeln!(out, "  %{:<2} {}", index.index(), node_summary(&compiled.graph, node)).unwrap();
        if !sources.is_empty() {
            writeln!(out, "        <- {}", sources.join(", ")).unwrap();
        }
        for (label, dims, count, sparse) in shown_params(&compiled.graph, node) {
            let sparse = if sparse { ", sparse row updates" } else { "" };
            writeln!(out, "        param {label} {} ({count}{sparse})", shape(&dims)).unwrap();
        }
    }
    writeln!(out).unwrap();

    writeln!(out, "parameters").unwrap();
    for (owner, count) in compiled.graph.param_counts() {
        writeln!(out, "  {:<24} {count}", compiled.graph.owner_name(owner)).unwrap();
    }
    writeln!(out, "  {:<24} {}", "total", compiled.graph.total_params()).unwrap();
    writeln!(out).unwrap();

    let optimizer = &plan.optimizer;
    writeln!(
        out,
        "training: adagrad(lr {}, momentum {}, eps {:e}), seed {}",
        format_number(optimizer.learning_rate),
        format_number(optimizer.momentum),
        optimizer.eps,
        plan.seed
    )
    .unwrap();
    let lr_overrides: Vec<String> = graph
        .node_weights()
        .filter_map(|node| match node {
            Node::Gru { subnet, learning_rate: Some(lr), .. } => {
                Some(format!("{} lr {}", compiled.graph.subnet(*subnet).name, format_number(*lr)))
            }
            _ => None,
        })
        .collect();
    if !lr_overrides.is_empty() {
        writeln!(out, "  per-subnet learning rates: {}", lr_overrides.join(", ")).unwrap();
    }
    let detail = match &model.train.schedule {
        Schedule::Simultaneous { .. } => "every subnet trains on every mini-batch".to_string(),
        Schedule::Alternating { order, .. } => {
            format!("one subnet trains per epoch, cycling {}", order.join(" -> "))
        }
        Schedule::Residual { .. } => "each subnet trains once, on the residual of the frozen ones before it".to_string(),
        Schedule::Interleaving { order, .. } => {
            format!("every mini-batch: {} in turn, each on the residual of the ones before it", order.join(" -> "))
        }
    };
    let epochs = if plan.epochs == 1 { "1 epoch".to_string() } else { format!("{} epochs", plan.epochs) };
    let at_most = if plan.stop.is_some() { "at most " } else { "" };
    writeln!(out, "plan: {}, {at_most}{epochs}; {detail}", plan.strategy).unwrap();
    if let Some(stop) = &plan.stop {
        let rule = &stop.rule;
        let scope = if stop.groups.len() > 1 {
            "each phase stops on its own and goes back to its best epoch before the next phase"
        } else {
            "the run stops and keeps its best epoch"
        };
        writeln!(
            out,
            "  early stopping on the validation split's {}@{}: after {} epoch{} without a gain above {}, {scope}",
            rule.metric.label(),
            rule.cutoff,
            rule.patience,
            if rule.patience == 1 { "" } else { "s" },
            format_number(rule.min_delta)
        )
        .unwrap();
    }
    if plan.phases.iter().flat_map(|p| &p.steps).flat_map(|s| &s.forward).any(|f| f.mode == Mode::Frozen) {
        writeln!(out, "  (frozen: runs forward in inference mode, no dropout, no gradient; its parameters do not change)").unwrap();
    }
    if plan.phases.iter().flat_map(|p| &p.steps).flat_map(|s| &s.forward).any(|f| f.reused) {
        writeln!(
            out,
            "  (forward reused: its hidden state and score part come from its own step earlier in this mini-batch, before its update)"
        )
        .unwrap();
    }
    // Phases that repeat the same steps (alternating's cycle) are shown once, with all their epochs.
    let mut groups: Vec<(Vec<&Phase>, &Vec<Step>)> = Vec::new();
    for phase in &plan.phases {
        match groups.iter_mut().find(|(_, steps)| **steps == phase.steps) {
            Some((phases, _)) => phases.push(phase),
            None => groups.push((vec![phase], &phase.steps)),
        }
    }
    for (i, (phases, steps)) in groups.iter().enumerate() {
        let epochs = if phases.len() == 1 {
            epochs_label(phases[0])
        } else {
            format!(
                "epochs {}",
                phases.iter().map(|p| epochs_label(p).trim_start_matches("epoch ").to_string()).collect::<Vec<_>>().join(", ")
            )
        };
        if steps.len() == 1 {
            writeln!(out, "  phase {}  {epochs}", i + 1).unwrap();
            step_lines(compiled, &steps[0], "    ", &mut out);
        } else {
            writeln!(out, "  phase {}  {epochs}, {} steps per mini-batch", i + 1, steps.len()).unwrap();
            for (k, step) in steps.iter().enumerate() {
                writeln!(out, "    step {}", k + 1).unwrap();
                step_lines(compiled, step, "      ", &mut out);
            }
        }
    }
    out
}

/// Graphviz DOT: one box per node, edges labelled with what flows and its shape.
pub fn dot(compiled: &Compiled) -> String {
    let graph = &compiled.graph.graph;
    let mut out = String::new();
    writeln!(out, "digraph {} {{", quote(&compiled.model.name)).unwrap();
    writeln!(out, "  rankdir=TB;").unwrap();
    writeln!(out, "  node [shape=box, fontname=\"monospace\"];").unwrap();
    for index in graph.node_indices() {
        let node = &graph[index];
        let mut label = node_summary(&compiled.graph, node);
        for (name, dims, _, _) in shown_params(&compiled.graph, node) {
            write!(label, "\n{name} {}", shape(&dims)).unwrap();
        }
        let style = match node {
            Node::Input { .. } => ", shape=ellipse",
            Node::Loss { .. } => ", shape=doubleoctagon",
            _ => "",
        };
        writeln!(out, "  n{} [label={}{style}];", index.index(), quote(&label)).unwrap();
    }
    for edge in graph.edge_references() {
        writeln!(out, "  n{} -> n{} [label={}];", edge.source().index(), edge.target().index(), quote(&edge_summary(edge.weight())))
            .unwrap();
    }
    writeln!(out, "}}").unwrap();
    out
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// JSON: the checked model, the graph's nodes and edges, its subnets and parameter table (which nodes and
/// the plan refer to by index), parameter counts and the plan.
pub fn json(compiled: &Compiled) -> String {
    let graph = &compiled.graph.graph;
    let nodes: Vec<serde_json::Value> = graph
        .node_indices()
        .map(|i| {
            let mut value = serde_json::to_value(&graph[i]).expect("nodes serialise");
            value["id"] = serde_json::json!(i.index());
            value
        })
        .collect();
    let edges: Vec<serde_json::Value> = graph
        .edge_references()
        .map(|e| serde_json::json!({ "from": e.source().index(), "to": e.target().index(), "flow": e.weight().flow, "shape": e.weight().shape }))
        .collect();
    let parameters: serde_json::Map<String, serde_json::Value> = compiled
        .graph
        .param_counts()
        .into_iter()
        .map(|(owner, count)| (compiled.graph.owner_name(owner).to_string(), serde_json::to_value(count).unwrap()))
        .collect();
    let document = serde_json::json!({
        "model": compiled.model,
        "graph": { "nodes": nodes, "edges": edges, "subnets": compiled.graph.subnets, "params": compiled.graph.params },
        "parameters": { "by_owner": parameters, "total": compiled.graph.total_params() },
        "plan": compiled.plan,
    });
    let mut text = serde_json::to_string_pretty(&document).expect("the document serialises");
    text.push('\n');
    text
}

fn row_space(graph: &Graph, rows: RowSpace) -> String {
    match rows {
        RowSpace::Dense => "dense".into(),
        RowSpace::InputItems => "input items".into(),
        RowSpace::ScoredItems => "scored items".into(),
        RowSpace::InputAndScoredItems => "input and scored items".into(),
        RowSpace::Vocabulary(input) => match graph.node(input) {
            Node::Input { name, .. } => format!("vocabulary of {name}"),
            _ => format!("vocabulary of %{input}"),
        },
        RowSpace::Undecided => "undecided".into(),
    }
}

/// The bound IR: the text rendering with every size a number, then the parameter table an executor creates,
/// entry by entry, in the order it initialises them: exactly what trains.
pub fn bound(bound: &Bound) -> String {
    let graph = bound.graph();
    let mut out = text(bound.compiled());
    writeln!(out).unwrap();
    writeln!(out, "parameter table (initialised in this order from seed {})", bound.plan().seed).unwrap();
    for (id, param) in graph.params() {
        let init = match &param.init {
            Init::Zeros => "zeros".to_string(),
            Init::Uniform { fan_in, fan_out, blocks } => {
                let limit = (6.0 / (number(fan_in) + number(fan_out)) as f64).sqrt();
                let blocks = if *blocks == 1 { String::new() } else { format!(", {blocks} gate blocks") };
                format!("uniform ±{limit:.6} (fan in {fan_in}, out {fan_out}{blocks})")
            }
        };
        let tie = param.tied_to.map(|node| format!("; also the input embedding of %{node}")).unwrap_or_default();
        writeln!(out, "  #{:<2} {} {}", id.index(), param.name, shape(&param.shape)).unwrap();
        writeln!(
            out,
            "        {init}; rows: {}; lr {}; owner {}{tie}",
            row_space(graph, param.rows),
            format_number(param.learning_rate),
            graph.owner_name(param.owner),
        )
        .unwrap();
    }
    out
}
