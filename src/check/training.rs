//! The `train` block: optimizer, batch, seed and negatives, and the schedule with its checks on subnet order.

use super::args::{backticked, read_epochs, read_integer, read_name, wrong_type, Range};
use super::subnets::all_known;
use super::{Checker, EarlyStop, Input, Negatives, Optimizer, ResidualPhase, Schedule, Settings, StopMetric, Subnet, Train};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Ident, Value, ValueKind};

const SCHEDULES: &[&str] = &["simultaneous", "alternating", "residual", "interleaving"];

impl Checker<'_> {
    pub(super) fn train(&mut self, settings: &Settings, subnets: &[Subnet], inputs: &[Input]) -> Train {
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
        let stop = value("stop").and_then(|v| self.stop(v));
        Train { optimizer, batch, seed, negatives, schedule, stop }
    }

    /// `stop = early(metric = mrr, cutoff = 20, patience = 3, min_delta = 0)` or `stop = none`.
    fn stop(&mut self, value: &Value) -> Option<EarlyStop> {
        let (name, args) = self.function(value, "stop", &["early", "none"], |name| match name {
            "early" => (&["metric", "cutoff", "patience", "min_delta"][..], 0),
            _ => (&[][..], 0),
        })?;
        if name == "none" {
            return None;
        }
        let default = EarlyStop::DEFAULT;
        let metric = match args.get("metric") {
            None => default.metric,
            Some(v) => match read_name(v, "metric", self.sink) {
                None => default.metric,
                Some(written) => StopMetric::from_name(written).unwrap_or_else(|| {
                    let d = Diagnostic::error(Code::UnknownName, format!("unknown stopping metric `{written}`"))
                        .at(v.span, format!("expected one of {}", backticked(StopMetric::NAMES)))
                        .suggest(written, StopMetric::NAMES.iter().copied());
                    self.push(d);
                    default.metric
                }),
            },
        };
        Some(EarlyStop {
            metric,
            cutoff: args.integer("cutoff", default.cutoff, Range::Positive, self.sink),
            patience: args.integer("patience", default.patience, Range::Positive, self.sink),
            min_delta: args.real("min_delta", default.min_delta, Range::NonNegative, self.sink),
        })
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
    pub(super) fn interaction_order(&mut self, primary: &str, schedule: &Schedule, span: Span) {
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
