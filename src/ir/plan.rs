//! The training plan: the spec's schedule lowered into explicit phases and steps.
//!
//! Each step says which subnets run forward and in which mode, which parameter groups it updates, and
//! which ensemble the loss is computed on. The choices the paper leaves open are made here, and written
//! down in docs/training-plan.md:
//! - alternating: `epochs` counts all epochs; one subnet trains per epoch, cycling through the order;
//! - interleaving: `epochs` counts passes over the data; every mini-batch runs one step per subnet, in
//!   order, and a later step reuses the earlier subnets' hidden states and score parts from their own steps,
//!   computed
//!   before their update (no recomputation);
//! - shared parameters (shared-W's output matrix and bias) train together with the first subnet of the
//!   schedule's order, so a residual ensemble never moves once trained;
//! - a frozen subnet still runs forward, in inference mode (no dropout), and gets no gradient.

use serde::Serialize;

use super::graph::Owner;
use super::handle::SubnetId;
use crate::check::{EarlyStop, Merge, Model, Optimizer, Schedule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dropout on, gradients computed.
    Train,
    /// Inference mode: no dropout, no gradients; its parameters cannot change.
    Frozen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forward {
    pub subnet: SubnetId,
    pub mode: Mode,
    /// Interleaving: this subnet's hidden state and score part come from its own, earlier step of the same
    /// mini-batch, computed before its update.
    pub reused: bool,
}

/// One optimisation step, repeated for every mini-batch of the phase's epochs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub forward: Vec<Forward>,
    /// Parameter groups this step updates.
    pub trains: Vec<Owner>,
    /// The subnets whose (weighted) contributions the loss is computed on, in merge order.
    pub loss_on: Vec<SubnetId>,
}

impl Step {
    /// Whether `subnet` runs forward in this step, and how.
    pub fn forward_of(&self, subnet: SubnetId) -> Option<&Forward> {
        self.forward.iter().find(|f| f.subnet == subnet)
    }

    /// Whether `owner`'s parameters change in this step.
    pub fn trains(&self, owner: Owner) -> bool {
        self.trains.contains(&owner)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// First and last epoch of the phase, 1-based, inclusive.
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// Steps per mini-batch: one, except for interleaving.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub strategy: &'static str,
    pub epochs: u64,
    pub phases: Vec<Phase>,
    pub optimizer: Optimizer,
    /// Rows of a mini-batch: the loss of every step is divided by it.
    pub batch: u64,
    /// Seeds the initial weights and, with the epoch number, every epoch's random streams.
    pub seed: u64,
    /// Early stopping, when the spec asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stopping>,
}

/// Early stopping lowered onto the plan's epochs. The schedule's epochs are numbered as without stopping, so
/// every epoch keeps its seed; a stop skips the rest of its group's epochs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stopping {
    pub rule: EarlyStop,
    /// Runs of epochs that stop together, in order. Patience counts within a group; when a group ends (its
    /// patience runs out or its last epoch is trained) the network goes back to the group's best epoch, and
    /// the next group starts from there.
    pub groups: Vec<StopGroup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StopGroup {
    pub first_epoch: u64,
    pub last_epoch: u64,
}

impl Stopping {
    /// The group that covers `epoch` (1-based), as an index into `groups`.
    pub fn group_of(&self, epoch: u64) -> Option<usize> {
        self.groups.iter().position(|g| g.first_epoch <= epoch && epoch <= g.last_epoch)
    }

    /// Residual training stops each phase on its own: a later subnet trains on the residual of the earlier
    /// ones at their best. The other strategies stop the whole run: their phases are not runs of epochs that
    /// improve one ensemble (alternating's phases are single epochs of a cycle; simultaneous and
    /// interleaving have one phase).
    fn lower(rule: EarlyStop, schedule: &Schedule, phases: &[Phase]) -> Stopping {
        let groups = match schedule {
            Schedule::Residual { .. } => {
                phases.iter().map(|p| StopGroup { first_epoch: p.first_epoch, last_epoch: p.last_epoch }).collect()
            }
            Schedule::Simultaneous { .. } | Schedule::Alternating { .. } | Schedule::Interleaving { .. } => {
                vec![StopGroup { first_epoch: 1, last_epoch: schedule.total_epochs() }]
            }
        };
        Stopping { rule, groups }
    }
}

impl Plan {
    /// The phase that covers `epoch` (1-based), as an index into `phases`.
    pub fn phase_of(&self, epoch: u64) -> Option<usize> {
        self.phases.iter().position(|p| p.first_epoch <= epoch && epoch <= p.last_epoch)
    }
}

impl Plan {
    pub fn lower(model: &Model) -> Plan {
        let merge_order: Vec<String> = model.merge.subnets().into_iter().map(String::from).collect();
        let id = |name: &String| SubnetId::new(merge_order.iter().position(|s| s == name).expect("checked: schedules name merged subnets"));
        let shared = matches!(model.merge, Merge::SharedW { .. });
        let schedule = &model.train.schedule;
        let order: Vec<String> = match schedule {
            Schedule::Simultaneous { .. } => merge_order.clone(),
            Schedule::Alternating { order, .. } | Schedule::Interleaving { order, .. } => order.clone(),
            Schedule::Residual { phases } => phases.iter().map(|p| p.subnet.clone()).collect(),
        };
        // The groups a step updates when `training` subnets train.
        let groups = |training: &[&String]| -> Vec<Owner> {
            let mut owners: Vec<Owner> = training.iter().map(|s| Owner::Subnet(id(s))).collect();
            if shared && training.iter().any(|s| **s == order[0]) {
                owners.push(Owner::Shared);
            }
            owners
        };
        // Forward passes over `present` subnets (merge order), training those in `training`.
        let forward = |present: &[&String], training: &[&String], reused: &[&String]| -> Vec<Forward> {
            merge_order
                .iter()
                .filter(|s| present.contains(s))
                .map(|s| Forward {
                    subnet: id(s),
                    mode: if training.contains(&s) { Mode::Train } else { Mode::Frozen },
                    reused: reused.contains(&s),
                })
                .collect()
        };
        let in_merge_order =
            |present: &[&String]| -> Vec<SubnetId> { merge_order.iter().filter(|s| present.contains(s)).map(id).collect() };
        let all: Vec<&String> = merge_order.iter().collect();
        let phases = match schedule {
            Schedule::Simultaneous { epochs } => vec![Phase {
                first_epoch: 1,
                last_epoch: *epochs,
                steps: vec![Step {
                    forward: forward(&all, &all, &[]),
                    trains: groups(&all),
                    loss_on: merge_order.iter().map(id).collect(),
                }],
            }],
            Schedule::Alternating { epochs, .. } => (1..=*epochs)
                .map(|epoch| {
                    let trained = &order[((epoch - 1) as usize) % order.len()];
                    Phase {
                        first_epoch: epoch,
                        last_epoch: epoch,
                        steps: vec![Step {
                            forward: forward(&all, &[trained], &[]),
                            trains: groups(&[trained]),
                            loss_on: merge_order.iter().map(id).collect(),
                        }],
                    }
                })
                .collect(),
            Schedule::Residual { phases } => {
                let mut first_epoch = 1;
                phases
                    .iter()
                    .enumerate()
                    .map(|(k, phase)| {
                        let present: Vec<&String> = order[..=k].iter().collect();
                        let trained = &order[k];
                        let lowered = Phase {
                            first_epoch,
                            last_epoch: first_epoch + phase.epochs - 1,
                            steps: vec![Step {
                                forward: forward(&present, &[trained], &[]),
                                trains: groups(&[trained]),
                                loss_on: in_merge_order(&present),
                            }],
                        };
                        first_epoch += phase.epochs;
                        lowered
                    })
                    .collect()
            }
            Schedule::Interleaving { epochs, .. } => {
                let steps = (0..order.len())
                    .map(|k| {
                        let present: Vec<&String> = order[..=k].iter().collect();
                        let earlier: Vec<&String> = order[..k].iter().collect();
                        Step {
                            forward: forward(&present, &[&order[k]], &earlier),
                            trains: groups(&[&order[k]]),
                            loss_on: in_merge_order(&present),
                        }
                    })
                    .collect();
                vec![Phase { first_epoch: 1, last_epoch: *epochs, steps }]
            }
        };
        let train = &model.train;
        let stop = train.stop.map(|rule| Stopping::lower(rule, schedule, &phases));
        Plan {
            strategy: schedule.name(),
            epochs: schedule.total_epochs(),
            phases,
            optimizer: train.optimizer,
            batch: train.batch,
            seed: train.seed,
            stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(merge: &str, schedule: &str) -> Named {
        let text = format!(
            "model m {{\n input id : item_id\n input image : dense\n input text : sparse\n subnet a = gru(id)\n subnet b = gru(image)\n subnet c = gru(text)\n merge = {merge}\n}}\ntrain {{\n schedule = {schedule}\n}}\n"
        );
        let compiled = crate::compile("m", &text).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
        Named { plan: compiled.plan, graph: compiled.graph }
    }

    /// A plan with the graph that names its subnets.
    struct Named {
        plan: Plan,
        graph: crate::ir::Graph,
    }

    impl std::ops::Deref for Named {
        type Target = Plan;
        fn deref(&self) -> &Plan {
            &self.plan
        }
    }

    impl Named {
        fn trained(&self, step: &Step) -> Vec<String> {
            step.trains.iter().map(|&owner| self.graph.owner_name(owner).to_string()).collect()
        }

        fn frozen(&self, step: &Step) -> Vec<&str> {
            step.forward.iter().filter(|f| f.mode == Mode::Frozen).map(|f| self.graph.subnet(f.subnet).name.as_str()).collect()
        }

        fn loss_on(&self, step: &Step) -> Vec<&str> {
            step.loss_on.iter().map(|&s| self.graph.subnet(s).name.as_str()).collect()
        }
    }

    #[test]
    fn simultaneous_trains_everything_in_one_phase() {
        let plan = plan("parallel", "simultaneous(epochs = 3)");
        assert_eq!(plan.phases.len(), 1);
        assert_eq!((plan.phases[0].first_epoch, plan.phases[0].last_epoch), (1, 3));
        assert_eq!(plan.trained(&plan.phases[0].steps[0]), ["a", "b", "c"]);
        assert!(plan.frozen(&plan.phases[0].steps[0]).is_empty());
    }

    #[test]
    fn alternating_trains_one_subnet_per_epoch_and_cycles() {
        let plan = plan("parallel", "alternating(epochs = 7, order = [c, a, b])");
        assert_eq!(plan.epochs, 7);
        let per_epoch: Vec<Vec<String>> = plan.phases.iter().map(|p| plan.trained(&p.steps[0])).collect();
        assert_eq!(per_epoch, [["c"], ["a"], ["b"], ["c"], ["a"], ["b"], ["c"]]);
        // The others still run forward, frozen, and the loss sees the whole ensemble.
        assert_eq!(plan.frozen(&plan.phases[0].steps[0]), ["a", "b"]);
        assert_eq!(plan.loss_on(&plan.phases[0].steps[0]), ["a", "b", "c"]);
    }

    #[test]
    fn residual_adds_one_subnet_per_phase_and_freezes_the_earlier_ones() {
        let plan = plan("parallel", "residual { b: 2 epochs, a: 3 epochs, c: 1 epoch }");
        let spans: Vec<(u64, u64)> = plan.phases.iter().map(|p| (p.first_epoch, p.last_epoch)).collect();
        assert_eq!(spans, [(1, 2), (3, 5), (6, 6)]);
        let steps: Vec<&Step> = plan.phases.iter().map(|p| &p.steps[0]).collect();
        assert_eq!(plan.trained(steps[0]), ["b"]);
        assert_eq!(plan.loss_on(steps[0]), ["b"], "subnets not yet trained are left out");
        assert_eq!(plan.trained(steps[1]), ["a"]);
        assert_eq!(plan.frozen(steps[1]), ["b"]);
        assert_eq!(plan.loss_on(steps[1]), ["a", "b"], "the loss is on the ensemble so far, in merge order");
        assert_eq!(plan.frozen(steps[2]), ["a", "b"]);
        assert_eq!(plan.loss_on(steps[2]), ["a", "b", "c"]);
    }

    #[test]
    fn interleaving_runs_one_step_per_subnet_on_every_mini_batch() {
        let plan = plan("parallel", "interleaving(epochs = 4, order = [a, b, c])");
        assert_eq!(plan.phases.len(), 1);
        let steps = &plan.phases[0].steps;
        assert_eq!(steps.len(), 3);
        assert_eq!(plan.trained(&steps[2]), ["c"]);
        assert_eq!(plan.frozen(&steps[2]), ["a", "b"]);
        assert!(steps[2].forward.iter().filter(|f| f.mode == Mode::Frozen).all(|f| f.reused));
        assert_eq!(plan.loss_on(&steps[1]), ["a", "b"]);
    }

    #[test]
    fn shared_output_trains_with_the_first_subnet_of_the_order() {
        let plan = plan("shared_w", "alternating(epochs = 3, order = [b, a, c])");
        let per_epoch: Vec<Vec<String>> = plan.phases.iter().map(|p| plan.trained(&p.steps[0])).collect();
        assert_eq!(per_epoch, [vec!["b", "shared"], vec!["a"], vec!["c"]]);
        let residual = super::tests::plan("shared_w", "residual { a: 1 epoch, b: 1 epoch, c: 1 epoch }");
        assert_eq!(residual.trained(&residual.phases[0].steps[0]), ["a", "shared"]);
        assert_eq!(residual.trained(&residual.phases[1].steps[0]), ["b"], "a trained ensemble never moves");
    }
}
