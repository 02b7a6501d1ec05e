//! The merge: how subnets combine into scores (parallel, shared_w, interaction), their weights and hidden sizes.

use super::args::{backticked, read_name, read_real, wrong_type, Args, Range};
use super::subnets::all_known;
use super::{Checker, Input, InputKind, Merge, Subnet};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::{Block, Ident, Value, ValueKind};

const MERGES: &[&str] = &["parallel", "shared_w", "interaction"];

impl Checker<'_> {
    pub(super) fn merge(
        &mut self,
        setting: Option<(&Ident, &Value)>,
        subnets: &[Subnet],
        inputs: &[Input],
        block: &Block,
    ) -> Option<Merge> {
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
}
