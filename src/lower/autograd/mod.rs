//! The autograd executor: each node of the IR as libtorch operations, gradients by libtorch's autograd,
//! on any device. It is the reference the fused executor is checked against, the CUDA path, and the
//! inference every executor uses (whole-catalogue scores are one product per part, already libtorch's).

pub mod frame;

use std::sync::Arc;

use tch::{Kind, Tensor};

use super::gru::gru_step;
use super::loss;
use super::network::{FeatureRows, Network};
use super::optim::Adagrad;
use super::{EpochLoss, EpochState, Executor, PhaseSteps, StepKind};
use crate::data::batches::Step;
use crate::ir::plan::{self, Mode};
use crate::ir::{Bound, GruInput, InputRepr, Node, NodeId, ParamId, RowSpace, SubnetId};
use frame::{full_frame, BatchIndex, Frame, FrameIndexer, StateCarry};

/// Node values of one forward pass, indexed by [`NodeId`].
struct Pass<'a> {
    ir: &'a Bound,
    network: &'a Network,
    frame: &'a Frame,
    values: Vec<Option<Tensor>>,
}

impl<'a> Pass<'a> {
    fn new(ir: &'a Bound, network: &'a Network, frame: &'a Frame) -> Self {
        Pass { ir, network, frame, values: (0..ir.graph().graph.node_count()).map(|_| None).collect() }
    }

    fn value(&self, node: NodeId) -> &Tensor {
        self.values[node.index()].as_ref().expect("a node runs after the nodes it reads")
    }

    /// The GRU node of a subnet.
    fn gru(&self, subnet: SubnetId) -> NodeId {
        self.ir.graph().subnet(subnet).gru
    }

    /// Runs one node. `state` is a GRU's carried hidden state; `train` turns dropout on; `present` are the
    /// subnets whose contributions the step's loss sees.
    fn run(&mut self, node: NodeId, state: Option<&Tensor>, train: bool, present: &[SubnetId]) {
        let graph = self.ir.graph();
        let frame = self.frame;
        let value = match graph.node(node) {
            Node::Input { repr, .. } => match repr {
                // Read by index (item IDs, bags) where they are used.
                InputRepr::OneHot | InputRepr::Embedded | InputRepr::Sparse => None,
                InputRepr::Dense => {
                    let Some(FeatureRows::Dense(rows)) = self.network.feature(node) else { unreachable!("a dense input has dense rows") };
                    Some(rows.index_select(0, &frame.input_items))
                }
                InputRepr::Feature => unreachable!("a bound IR has no undecided input"),
            },
            Node::Embedding { constrained, dropout, table, .. } => {
                let index = if *constrained { &frame.input_rows_in_both } else { &frame.input_rows };
                Some(frame.table(*table).index_select(0, index).dropout(*dropout, train && *dropout > 0.0))
            }
            Node::Gru { form, dropout, inputs, w_hh, bias, b_hn, .. } => {
                // Summed out of place: `+=` on a tensor is libtorch's in-place add, which would write into the
                // bias table (an autograd leaf while its subnet trains).
                let x = inputs.iter().fold(frame.table(*bias).unsqueeze(0), |sum, input| sum + self.projection(input));
                let state = state.expect("a GRU runs from its carried state");
                let next = gru_step(*form, &x, state, frame.table(*w_hh), b_hn.map(|b| frame.table(b)));
                Some(if train && *dropout > 0.0 { next.dropout(*dropout, true) } else { next })
            }
            Node::Interact { feature, primary } => Some(self.value(self.gru(*feature)) * self.value(self.gru(*primary))),
            Node::HiddenSum { weights } => {
                let sum = present.iter().map(|&k| self.value(self.gru(k)) * weights[k.index()]).reduce(|a, b| a + b);
                Some(sum.expect("a step has at least one subnet"))
            }
            Node::Scores { w, b, .. } => {
                let tied = graph.param(*w).rows == RowSpace::InputAndScoredItems;
                Some(output_scores(frame, *w, *b, tied, self.value(graph.sources(node)[0])))
            }
            Node::ScoreSum { weights } => {
                let parts = graph.sources(node).iter().copied().enumerate().filter(|(k, _)| present.contains(&SubnetId::new(*k)));
                let weighted = parts.map(|(k, part)| {
                    let part = self.value(part);
                    if weights[k] == 1.0 {
                        part.shallow_clone()
                    } else {
                        part * weights[k]
                    }
                });
                Some(weighted.reduce(|a, b| a + b).expect("a step has at least one subnet"))
            }
            Node::Activation { activation } => Some(loss::activate(*activation, self.value(graph.sources(node)[0]))),
            Node::Loss { loss, .. } => {
                let log_p = self.network.log_popularity.as_ref().map(|log_p| log_p.index_select(0, &frame.scored_items));
                let summed = loss::loss(*loss, self.value(graph.sources(node)[0]), log_p.as_ref());
                Some(summed / self.ir.plan().batch as f64)
            }
        };
        self.values[node.index()] = value;
    }

    /// One input's contribution to a GRU's gates, `[B, 3H]`.
    fn projection(&self, input: &GruInput) -> Tensor {
        let frame = self.frame;
        let w_in = frame.table(input.w_in);
        match self.ir.graph().node(input.source) {
            Node::Input { repr: InputRepr::OneHot, .. } => w_in.index_select(0, &frame.input_rows),
            Node::Input { repr: InputRepr::Sparse, .. } => {
                let bag = frame.bag(input.source);
                Tensor::embedding_bag(w_in, &bag.indices, &bag.offsets, false, 0, false, Some(&bag.weights), false).0
            }
            Node::Input { repr: InputRepr::Dense, .. } | Node::Embedding { .. } => self.value(input.source).mm(w_in),
            Node::Input { repr: InputRepr::Embedded | InputRepr::Feature, .. }
            | Node::Gru { .. }
            | Node::Interact { .. }
            | Node::HiddenSum { .. }
            | Node::Scores { .. }
            | Node::ScoreSum { .. }
            | Node::Activation { .. }
            | Node::Loss { .. } => unreachable!("a GRU reads item IDs, features or an embedding"),
        }
    }
}

/// `h · W[Y]ᵀ + b[Y]` over the frame's scored rows, or against every item in an inference frame. A tied
/// output matrix (also an input embedding) is gathered over input and scored rows together.
fn output_scores(frame: &Frame, w: ParamId, b: ParamId, tied: bool, hidden: &Tensor) -> Tensor {
    let (w, b) = (frame.table(w), frame.table(b));
    match (&frame.scored_rows, &frame.scored_rows_in_both) {
        (Some(scored), Some(in_both)) => {
            let w_index = if tied { in_both } else { scored };
            hidden.mm(&w.index_select(0, w_index).tr()) + b.index_select(0, scored)
        }
        // One product that starts from the bias: no second pass over the `[B, n_items]` scores.
        _ => b.addmm(hidden, &w.tr()),
    }
}

/// The autograd executor's state across one epoch.
pub struct Autograd {
    network: Network,
    ir: Arc<Bound>,
    indexer: FrameIndexer,
    /// Each subnet's state `[rows, H]` on the device; None before its first step.
    hidden: Vec<Option<Tensor>>,
    loss_sum: Tensor,
    non_finite: Tensor,
    /// The epoch's seed, and the mini-batches trained in it: libtorch is reseeded from both before each
    /// mini-batch, so dropout at a batch does not depend on where the run was resumed.
    epoch_seed: u64,
    batches: u64,
}

impl Autograd {
    pub fn new(network: Network) -> Autograd {
        let ir = network.ir_handle();
        let device = network.device;
        Autograd {
            hidden: (0..network.subnet_count()).map(|_| None).collect(),
            network,
            ir,
            indexer: FrameIndexer::default(),
            loss_sum: Tensor::zeros([], (Kind::Double, device)),
            non_finite: Tensor::zeros([], (Kind::Bool, device)),
            epoch_seed: 0,
            batches: 0,
        }
    }
}

impl Executor for Autograd {
    fn kind(&self) -> StepKind {
        StepKind::Autograd
    }

    fn network(&self) -> &Network {
        &self.network
    }

    fn into_network(self: Box<Self>) -> Network {
        self.network
    }

    fn start_epoch(&mut self, seed: u64) {
        self.epoch_seed = seed;
        self.batches = 0;
        let device = self.network.device;
        self.hidden.iter_mut().for_each(|h| *h = None);
        self.loss_sum = Tensor::zeros([], (Kind::Double, device));
        self.non_finite = Tensor::zeros([], (Kind::Bool, device));
    }

    fn train_batch(&mut self, batch: &Step<'_>, scored: &[u32], phase: &PhaseSteps<'_>) {
        tch::manual_seed((crate::rng::derive(self.epoch_seed, self.batches) >> 1) as i64);
        self.batches += 1;
        let device = self.network.device;
        let carry = StateCarry::new(batch, device);
        for &k in &phase.running {
            let state = self.hidden[k.index()].take();
            self.hidden[k.index()] = Some(carry.apply(state, self.network.hidden_size(k), device));
        }
        let index = self.indexer.index(&self.network, batch.inputs, scored);
        let last_loss = run_batch(&self.ir, &mut self.network, &index, phase.steps, &mut self.hidden);
        let _ = self.non_finite.logical_or_(&last_loss.isfinite().logical_not());
        let _ = self.loss_sum.g_add_(&last_loss.to_kind(Kind::Double));
    }

    fn epoch_loss(&self) -> EpochLoss {
        EpochLoss { non_finite: self.non_finite.int64_value(&[]) != 0, sum: self.loss_sum.double_value(&[]) }
    }

    fn epoch_state(&self) -> EpochState {
        let hidden = self
            .hidden
            .iter()
            .map(|state| {
                state
                    .as_ref()
                    .map(|h| Vec::<f32>::try_from(h.to_device(tch::Device::Cpu).flatten(0, -1)).expect("hidden states are float32"))
            })
            .collect();
        EpochState { hidden, random: self.batches, loss: self.epoch_loss() }
    }

    fn restore_epoch_state(&mut self, saved: EpochState) {
        assert_eq!(saved.hidden.len(), self.hidden.len(), "a saved epoch state has one hidden state per subnet");
        let device = self.network.device;
        for (k, state) in saved.hidden.into_iter().enumerate() {
            let width = self.network.hidden_size(SubnetId::new(k)) as usize;
            self.hidden[k] = state.map(|values| {
                let rows = (values.len() / width) as i64;
                Tensor::from_slice(&values).reshape([rows, width as i64]).to_device(device)
            });
        }
        self.batches = saved.random;
        self.loss_sum = Tensor::from(saved.loss.sum).to_kind(Kind::Double).to_device(device);
        self.non_finite = Tensor::from(saved.loss.non_finite).to_device(device);
    }

    fn next_states(&self, inputs: &[u32], states: &[Tensor]) -> Vec<Tensor> {
        next_states(&self.ir, &self.network, inputs, states)
    }

    fn scores_into(&self, states: &[Tensor], out: &mut Tensor) {
        scores_into(&self.ir, &self.network, states, out)
    }
}

/// The plan's steps on one mini-batch. `hidden` holds each running subnet's state on entry and its new
/// state on return. Returns the last step's loss (detached, on the device).
fn run_batch(ir: &Bound, network: &mut Network, index: &BatchIndex, steps: &[plan::Step], hidden: &mut [Option<Tensor>]) -> Tensor {
    let graph = ir.graph();
    let count = hidden.len();
    let optimizer = ir.plan().optimizer;
    let adagrad = Adagrad { learning_rate: optimizer.learning_rate, momentum: optimizer.momentum, eps: optimizer.eps };
    // Outputs of subnets that already ran on this mini-batch: reused by later interleaving steps.
    let mut fresh_hidden: Vec<Option<Tensor>> = (0..count).map(|_| None).collect();
    let mut fresh_parts: Vec<Option<Tensor>> = (0..count).map(|_| None).collect();
    let mut last_loss = Tensor::zeros([], (Kind::Float, network.device));
    for step in steps {
        let (frame, leaves) = index.frame(ir, network, &step.trains);
        let mut pass = Pass::new(ir, network, &frame);
        for forward in &step.forward {
            let k = forward.subnet;
            let gru = graph.subnet(k).gru;
            if forward.reused {
                pass.values[gru.index()] = fresh_hidden[k.index()].as_ref().map(Tensor::shallow_clone);
                continue;
            }
            let train = forward.mode == Mode::Train;
            let _guard = (!train).then(tch::no_grad_guard);
            pass.subnet(k, hidden[k.index()].as_ref().expect("running subnets have a state"), train, &step.loss_on);
        }
        for &node in &graph.order.head {
            if let Some(k) = graph.part_of(node) {
                let reused = step.forward_of(k).is_some_and(|f| f.reused);
                if !step.loss_on.contains(&k) || (reused && matches!(graph.node(node), Node::Interact { .. })) {
                    continue;
                }
                if reused {
                    pass.values[node.index()] = fresh_parts[k.index()].as_ref().map(Tensor::shallow_clone);
                    continue;
                }
            }
            pass.run(node, None, true, &step.loss_on);
        }
        let loss = pass.value(graph.loss()).shallow_clone();
        let mut values = pass.values;
        if !leaves.is_empty() {
            loss.backward();
            index.update(ir, network, &leaves, &adagrad);
        }
        for forward in step.forward.iter().filter(|f| !f.reused) {
            let k = forward.subnet.index();
            fresh_hidden[k] = values[graph.subnets[k].gru.index()].take().map(|h| h.detach());
            let part =
                graph.order.head.iter().find(|&&n| matches!(graph.node(n), Node::Scores { subnet: Some(s), .. } if *s == forward.subnet));
            fresh_parts[k] = part.and_then(|&n| values[n.index()].take()).map(|p| p.detach());
        }
        last_loss = loss.detach();
    }
    for (k, h) in fresh_hidden.into_iter().enumerate() {
        if h.is_some() {
            hidden[k] = h;
        }
    }
    last_loss
}

impl Pass<'_> {
    /// Runs subnet `k`'s nodes (inputs once per pass, embeddings, its GRU) from its carried `state`.
    fn subnet(&mut self, k: SubnetId, state: &Tensor, train: bool, present: &[SubnetId]) {
        let graph = self.ir.graph();
        let gru = graph.subnet(k).gru;
        for &node in &graph.order.subnets[k.index()] {
            if node == gru {
                self.run(node, Some(state), train, present);
            } else if self.values[node.index()].is_none() {
                self.run(node, None, train, present);
            }
        }
    }
}

/// One inference step of every subnet over whole tables, without dropout: the new hidden states.
pub(crate) fn next_states(ir: &Bound, network: &Network, inputs: &[u32], states: &[Tensor]) -> Vec<Tensor> {
    let frame = full_frame(network, inputs);
    let graph = ir.graph();
    let mut pass = Pass::new(ir, network, &frame);
    let all: Vec<SubnetId> = graph.subnet_ids().collect();
    for k in graph.subnet_ids() {
        pass.subnet(k, &states[k.index()], false, &all);
    }
    graph.subnets.iter().map(|s| pass.values[s.gru.index()].take().expect("every subnet ran")).collect()
}

/// One step of one subnet over whole tables from `state`, with dropout when `train`: its new hidden state.
pub fn subnet_step(network: &Network, inputs: &[u32], subnet: SubnetId, state: &Tensor, train: bool) -> Tensor {
    let ir = network.ir();
    let frame = full_frame(network, inputs);
    let mut pass = Pass::new(ir, network, &frame);
    pass.subnet(subnet, state, train, &[subnet]);
    pass.values[ir.graph().subnet(subnet).gru.index()].take().expect("the subnet ran")
}

/// The scores nodes the merged scores sum, each with its merge weight (one part of weight 1 for a single
/// scores node).
fn score_parts(ir: &Bound) -> Vec<(NodeId, f64)> {
    let graph = ir.graph();
    let merged = graph.merged();
    match graph.node(merged) {
        Node::ScoreSum { weights } => graph.sources(merged).iter().copied().zip(weights.iter().copied()).collect(),
        Node::Scores { .. } => vec![(merged, 1.0)],
        Node::Input { .. }
        | Node::Embedding { .. }
        | Node::Gru { .. }
        | Node::Interact { .. }
        | Node::HiddenSum { .. }
        | Node::Activation { .. }
        | Node::Loss { .. } => unreachable!("the activation reads merged scores"),
    }
}

/// The hidden state a scores node reads, for the subnets' states `states`.
fn scored_state(ir: &Bound, states: &[Tensor], scores: NodeId) -> Tensor {
    let graph = ir.graph();
    match graph.node(graph.sources(scores)[0]) {
        Node::Gru { subnet, .. } => states[subnet.index()].shallow_clone(),
        Node::Interact { feature, primary } => &states[feature.index()] * &states[primary.index()],
        Node::HiddenSum { weights } => {
            let sum = graph.subnet_ids().map(|k| &states[k.index()] * weights[k.index()]).reduce(|a, b| a + b);
            sum.expect("a model has a subnet")
        }
        Node::Input { .. }
        | Node::Embedding { .. }
        | Node::Scores { .. }
        | Node::ScoreSum { .. }
        | Node::Activation { .. }
        | Node::Loss { .. } => {
            unreachable!("scores read a hidden state")
        }
    }
}

/// The merged scores of every item for the states `states`, written into `out` `[B, n_items]` in place:
/// evaluation keeps one such buffer for all its steps instead of allocating scores against the whole
/// catalogue at every step. Each part is `(w_k h_k) W_kᵀ + w_k b_k`, the weight moved inside the product.
pub(crate) fn scores_into(ir: &Bound, network: &Network, states: &[Tensor], out: &mut Tensor) {
    let _guard = tch::no_grad_guard();
    for (index, (scores, weight)) in score_parts(ir).into_iter().enumerate() {
        let Node::Scores { w, b, .. } = ir.graph().node(scores) else { unreachable!("a score part is a scores node") };
        let (w, b) = (&network.param(*w).value, &network.param(*b).value);
        let input = scored_state(ir, states, scores);
        let (input, bias) = if weight == 1.0 { (input, b.shallow_clone()) } else { (input * weight, b * weight) };
        if index == 0 {
            out.copy_(&bias.unsqueeze(0).expand_as(out));
        } else {
            let _ = out.g_add_(&bias.unsqueeze(0));
        }
        let _ = out.addmm_(&input, &w.tr());
    }
}

/// The merged scores as one product, `scores = x · Wᵀ + c`: what exact ranking on the CPU scores
/// (`crate::eval::ranking`). `W` `[n_items, width]` holds the parts' output matrices side by side and `c`
/// `[n_items]` their biases, each times its merge weight, summed in part order; [`score_inputs`] gives `x`.
/// Float32 on the network's device.
pub struct OutputTable {
    pub weights: Tensor,
    pub bias: Tensor,
}

/// The network's [`OutputTable`], built from its current parameters.
pub fn output_table(network: &Network) -> OutputTable {
    let _guard = tch::no_grad_guard();
    let ir = network.ir();
    let mut weights = Vec::new();
    let mut bias: Option<Tensor> = None;
    for (scores, weight) in score_parts(ir) {
        let Node::Scores { w, b, .. } = ir.graph().node(scores) else { unreachable!("a score part is a scores node") };
        weights.push(network.param(*w).value.shallow_clone());
        let b = &network.param(*b).value;
        let b = if weight == 1.0 { b.shallow_clone() } else { b * weight };
        bias = Some(match bias {
            None => b.copy(),
            Some(sum) => sum + b,
        });
    }
    OutputTable { weights: Tensor::cat(&weights, 1).contiguous(), bias: bias.expect("merged scores have a part").contiguous() }
}

/// The `x` of [`OutputTable`] for the subnets' states `states`: each part's scored state times its merge
/// weight, side by side, `[B, width]`, contiguous.
pub fn score_inputs(network: &Network, states: &[Tensor]) -> Tensor {
    let _guard = tch::no_grad_guard();
    let ir = network.ir();
    let parts: Vec<Tensor> = score_parts(ir)
        .into_iter()
        .map(|(scores, weight)| {
            let input = scored_state(ir, states, scores);
            if weight == 1.0 {
                input
            } else {
                input * weight
            }
        })
        .collect();
    Tensor::cat(&parts, 1).contiguous()
}
