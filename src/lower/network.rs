//! The compiled model as libtorch tensors: parameters, optimizer state, and the forward pass of each subnet,
//! each merge and the output scores.
//!
//! Item- and vocabulary-indexed matrices are never used whole during training. A [`Frame`] gathers the rows
//! one step touches into small tables (leaves of the autograd graph when their owner trains), so the
//! backward pass and the optimizer touch only those rows. Evaluation uses a frame of whole tables, through
//! the same code.

use tch::{Device, Kind, Tensor};

use super::gru::{gru_step, GruForm};
use super::loss;
use super::optim::{Adagrad, AdagradState};
use crate::check::{Activation, Embedding, InputKind, Loss, Merge, Model};
use crate::data::batches::Step;
use crate::data::features::{Feature, SparseFeature};
use crate::data::Dataset;
use crate::ir::graph::Owner;

/// Which rows of a matrix one step reads, and so which rows it updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSpace {
    /// Used whole: GRU recurrent weights, biases, dense-input projections.
    Dense,
    /// Rows of the batch's input items: one-hot `W_in`, separate embeddings.
    InputItems,
    /// Rows of the scored items (targets and negatives): `W_out`, `b_out`.
    ScoredItems,
    /// Both: an output matrix that is also the constrained input embedding.
    InputAndScoredItems,
    /// Vocabulary rows of the batch's input items' sparse features: `W_in` of a sparse input.
    Vocabulary(usize),
}

#[derive(Debug)]
pub struct Parameter {
    /// `subnet.W_in.input`, `subnet.W_hh`, ..., or `shared.W_out`: the checkpoint's tensor names.
    pub name: String,
    pub owner: Owner,
    pub value: Tensor,
    pub state: AdagradState,
    pub rows: RowSpace,
    pub learning_rate: f64,
}

/// How one input reaches its GRU.
#[derive(Debug)]
pub(crate) enum InputPath {
    /// A row lookup in `W_in` (= one-hot times `W_in`).
    OneHot {
        w_in: usize,
    },
    /// A row of an embedding table, dropout, then a product with `W_in`.
    Embedded {
        table: usize,
        tied: bool,
        dropout: f64,
        w_in: usize,
    },
    Dense {
        feature: usize,
        w_in: usize,
    },
    /// A weighted sum of `W_in` rows (embedding_bag).
    Sparse {
        feature: usize,
        w_in: usize,
    },
}

#[derive(Debug)]
pub(crate) struct SubnetLayer {
    pub(crate) name: String,
    pub(crate) hidden: i64,
    pub(crate) form: GruForm,
    pub(crate) dropout: f64,
    pub(crate) inputs: Vec<InputPath>,
    pub(crate) w_hh: usize,
    pub(crate) bias: usize,
    pub(crate) b_hn: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputLayer {
    pub(crate) w: usize,
    pub(crate) b: usize,
    pub(crate) tied: bool,
}

#[derive(Debug)]
pub(crate) enum MergeLayer {
    /// One output layer per subnet; weighted sum of the score parts (single: one part, weight 1).
    Parallel {
        outputs: Vec<OutputLayer>,
        weights: Vec<f64>,
    },
    SharedW {
        output: OutputLayer,
        weights: Vec<f64>,
    },
    /// Part 0 is the primary's; part k > 0 is `(h_k ⊙ h_0) W_k[Y]ᵀ + b_k[Y]`.
    Interaction {
        outputs: Vec<OutputLayer>,
    },
}

/// A feature's rows where the forward pass needs them.
#[derive(Debug)]
pub enum FeatureRows {
    /// `[n_items, dim]` on the device.
    Dense(Tensor),
    /// Kept on the host: each step builds the embedding_bag index of its own items.
    Sparse(SparseFeature),
}

/// The lowered model.
#[derive(Debug)]
pub struct Network {
    pub device: Device,
    pub params: Vec<Parameter>,
    pub features: Vec<FeatureRows>,
    pub n_items: usize,
    pub activation: Activation,
    pub loss: Loss,
    pub batch_size: i64,
    /// `ln(support_i / events)` per item, for cross-entropy's logQ correction.
    pub(crate) log_popularity: Option<Tensor>,
    pub(crate) subnets: Vec<SubnetLayer>,
    pub(crate) merge: MergeLayer,
}

/// Uniform in `±sqrt(6 / (fan_in + fan_out))`, drawn on the CPU so that every device starts from the same
/// weights for one seed.
fn uniform(rows: i64, cols: i64, fan_in: i64, fan_out: i64, device: Device) -> Tensor {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Tensor::empty([rows, cols], (Kind::Float, Device::Cpu)).uniform_(-bound, bound).to_device(device)
}

struct Builder {
    device: Device,
    momentum: bool,
    params: Vec<Parameter>,
}

impl Builder {
    fn add(&mut self, name: String, owner: &Owner, value: Tensor, rows: RowSpace, learning_rate: f64) -> usize {
        let state = AdagradState::zeros_like(&value, self.momentum);
        self.params.push(Parameter { name, owner: owner.clone(), value, state, rows, learning_rate });
        self.params.len() - 1
    }

    fn zeros(&self, size: &[i64]) -> Tensor {
        Tensor::zeros(size, (Kind::Float, self.device))
    }

    /// `[rows, 3H]` initialised one gate block at a time.
    fn gates(&self, rows: i64, hidden: i64, fan_in: i64) -> Tensor {
        let blocks: Vec<Tensor> = (0..3).map(|_| uniform(rows, hidden, fan_in, hidden, self.device)).collect();
        Tensor::cat(&blocks, 1)
    }

    fn output(&mut self, owner: &Owner, prefix: &str, hidden: i64, n_items: i64, tied: bool, lr: f64) -> OutputLayer {
        let rows = if tied { RowSpace::InputAndScoredItems } else { RowSpace::ScoredItems };
        let w = self.add(format!("{prefix}.W_out"), owner, uniform(n_items, hidden, n_items, hidden, self.device), rows, lr);
        let b = self.add(format!("{prefix}.b_out"), owner, self.zeros(&[n_items]), RowSpace::ScoredItems, lr);
        OutputLayer { w, b, tied }
    }
}

impl Network {
    /// Builds the parameters, initialised from `model.train.seed`, and moves features to `device`.
    pub fn new(model: &Model, dataset: &Dataset, device: Device) -> Network {
        tch::manual_seed(model.train.seed as i64);
        let n_items = dataset.items.len() as i64;
        let optimizer = model.train.optimizer;
        let mut builder = Builder { device, momentum: optimizer.momentum > 0.0, params: Vec::new() };
        let merge_order = model.merge.subnets();
        let mut features: Vec<FeatureRows> = Vec::new();
        let mut feature_of: Vec<(String, usize)> = Vec::new();
        let mut subnets = Vec::new();
        // Output layers are created right after their subnet so that a constrained input can point at its
        // output matrix; shared-W's comes after all subnets.
        let mut outputs: Vec<OutputLayer> = Vec::new();
        for name in &merge_order {
            let subnet = model.subnet(name).expect("checked");
            let owner = Owner::Subnet(subnet.name.clone());
            let hidden = subnet.hidden as i64;
            let lr = subnet.learning_rate.unwrap_or(optimizer.learning_rate);
            let tied = subnet
                .inputs
                .iter()
                .any(|i| matches!(model.input(i).map(|i| &i.kind), Some(InputKind::ItemId { embedding: Embedding::Constrained, .. })));
            let has_own_output = !matches!(model.merge, Merge::SharedW { .. });
            let output = has_own_output.then(|| builder.output(&owner, name, hidden, n_items, tied, lr));
            // The whole input width, as if the parts were one matrix: GRU4Rec's fan-in for the input block.
            let width_of = |input: &str| -> i64 {
                match &model.input(input).expect("checked").kind {
                    InputKind::ItemId { embedding: Embedding::OneHot, .. } => n_items,
                    InputKind::ItemId { embedding: Embedding::Separate { dim }, .. } => *dim as i64,
                    InputKind::ItemId { embedding: Embedding::Constrained, .. } => hidden,
                    _ => dataset.features.get(input).map_or(0, |f| f.width() as i64),
                }
            };
            let fan_in: i64 = subnet.inputs.iter().map(|i| width_of(i)).sum();
            let mut paths = Vec::new();
            for input_name in &subnet.inputs {
                let input = model.input(input_name).expect("checked");
                let width = width_of(input_name);
                let w_in_name = format!("{name}.W_in.{input_name}");
                let path = match &input.kind {
                    InputKind::ItemId { embedding: Embedding::OneHot, .. } => {
                        let w = builder.gates(n_items, hidden, fan_in);
                        InputPath::OneHot { w_in: builder.add(w_in_name, &owner, w, RowSpace::InputItems, lr) }
                    }
                    InputKind::ItemId { embedding, dropout } => {
                        let (table, tied) = match embedding {
                            Embedding::Separate { dim } => {
                                let e = uniform(n_items, *dim as i64, n_items, *dim as i64, device);
                                (builder.add(format!("{name}.E.{input_name}"), &owner, e, RowSpace::InputItems, lr), false)
                            }
                            // Under shared-W the shared output matrix, made after every subnet, is patched in below.
                            _ => (output.map_or(usize::MAX, |o| o.w), true),
                        };
                        let w = builder.gates(width, hidden, fan_in);
                        let w_in = builder.add(w_in_name, &owner, w, RowSpace::Dense, lr);
                        InputPath::Embedded { table, tied, dropout: *dropout, w_in }
                    }
                    _ => {
                        let feature_index = match feature_of.iter().find(|(n, _)| n == input_name) {
                            Some((_, index)) => *index,
                            None => {
                                let feature = dataset.features.get(input_name).expect("checked: the config binds every feature input");
                                features.push(match feature {
                                    Feature::Dense(dense) => FeatureRows::Dense(
                                        Tensor::from_slice(&dense.values).reshape([n_items, dense.dim as i64]).to_device(device),
                                    ),
                                    Feature::Sparse(sparse) => FeatureRows::Sparse(sparse.clone()),
                                });
                                feature_of.push((input_name.clone(), features.len() - 1));
                                features.len() - 1
                            }
                        };
                        let w = builder.gates(width, hidden, fan_in);
                        match features[feature_index] {
                            FeatureRows::Dense(_) => {
                                InputPath::Dense { feature: feature_index, w_in: builder.add(w_in_name, &owner, w, RowSpace::Dense, lr) }
                            }
                            FeatureRows::Sparse(_) => InputPath::Sparse {
                                feature: feature_index,
                                w_in: builder.add(w_in_name, &owner, w, RowSpace::Vocabulary(feature_index), lr),
                            },
                        }
                    }
                };
                paths.push(path);
            }
            let form = GruForm::for_subnet(model, name);
            let recurrent = Tensor::cat(&(0..3).map(|_| uniform(hidden, hidden, hidden, hidden, device)).collect::<Vec<_>>(), 1);
            let w_hh = builder.add(format!("{name}.W_hh"), &owner, recurrent, RowSpace::Dense, lr);
            let bias = builder.add(format!("{name}.b"), &owner, builder.zeros(&[3 * hidden]), RowSpace::Dense, lr);
            let b_hn = (form == GruForm::ResetAfterProduct)
                .then(|| builder.add(format!("{name}.b_hn"), &owner, builder.zeros(&[hidden]), RowSpace::Dense, lr));
            outputs.extend(output);
            subnets.push(SubnetLayer { name: name.to_string(), hidden, form, dropout: subnet.dropout, inputs: paths, w_hh, bias, b_hn });
        }
        let merge = match &model.merge {
            Merge::Single { .. } => MergeLayer::Parallel { outputs, weights: vec![1.0] },
            Merge::Parallel { weights, .. } => MergeLayer::Parallel { outputs, weights: weights.clone() },
            Merge::Interaction { .. } => MergeLayer::Interaction { outputs },
            Merge::SharedW { weights, .. } => {
                let hidden = subnets[0].hidden;
                let tied = subnets.iter().any(|s| s.inputs.iter().any(|p| matches!(p, InputPath::Embedded { tied: true, .. })));
                let output = builder.output(&Owner::Shared, "shared", hidden, n_items, tied, optimizer.learning_rate);
                // A constrained input under shared-W reads the shared output matrix.
                for subnet in &mut subnets {
                    for path in &mut subnet.inputs {
                        if let InputPath::Embedded { table, tied: true, .. } = path {
                            *table = output.w;
                        }
                    }
                }
                MergeLayer::SharedW { output, weights: weights.clone() }
            }
        };
        let log_popularity = match model.loss {
            Loss::CrossEntropy { logq } if logq > 0.0 => {
                let support = dataset.item_support();
                let total: u64 = support.iter().sum();
                let log_p: Vec<f32> = support.iter().map(|&s| ((s.max(1) as f64) / total as f64).ln() as f32).collect();
                Some(Tensor::from_slice(&log_p).to_device(device))
            }
            _ => None,
        };
        Network {
            device,
            params: builder.params,
            features,
            n_items: n_items as usize,
            activation: model.activation,
            loss: model.loss,
            batch_size: model.train.batch as i64,
            log_popularity,
            subnets,
            merge,
        }
    }

    pub fn subnet_names(&self) -> Vec<&str> {
        self.subnets.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn subnet_index(&self, name: &str) -> usize {
        self.subnets.iter().position(|s| s.name == name).expect("the plan names subnets of the model")
    }

    pub fn hidden_size(&self, subnet: usize) -> i64 {
        self.subnets[subnet].hidden
    }

    pub fn form(&self, subnet: usize) -> GruForm {
        self.subnets[subnet].form
    }

    /// Every parameter and optimizer-state tensor, by checkpoint name.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut named = Vec::new();
        for param in &self.params {
            named.push((param.name.clone(), &param.value));
            named.push((format!("{}#accumulator", param.name), &param.state.accumulator));
            if let Some(momentum) = &param.state.momentum {
                named.push((format!("{}#momentum", param.name), momentum));
            }
        }
        named
    }

    /// Mutable access to the same tensors, for loading a checkpoint.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut named = Vec::new();
        for param in &mut self.params {
            named.push((param.name.clone(), &mut param.value));
            named.push((format!("{}#accumulator", param.name), &mut param.state.accumulator));
            if let Some(momentum) = &mut param.state.momentum {
                named.push((format!("{}#momentum", param.name), momentum));
            }
        }
        named
    }

    pub fn parameter_count(&self) -> i64 {
        self.params.iter().map(|p| p.value.numel() as i64).sum()
    }

    /// The projection of the inputs plus bias, `[B, 3H]`.
    fn input_projection(&self, subnet: &SubnetLayer, frame: &Frame, train: bool) -> Tensor {
        // Summed out of place: `+=` on a tensor is libtorch's in-place add, which would write into the bias
        // table (an autograd leaf while its subnet trains).
        subnet.inputs.iter().fold(frame.table(subnet.bias).unsqueeze(0), |sum, path| {
            let part = match path {
                InputPath::OneHot { w_in } => frame.table(*w_in).index_select(0, &frame.input_rows),
                InputPath::Embedded { table, tied, dropout, w_in } => {
                    let index = if *tied { &frame.input_rows_in_both } else { &frame.input_rows };
                    let embedded = frame.table(*table).index_select(0, index).dropout(*dropout, train && *dropout > 0.0);
                    embedded.mm(frame.table(*w_in))
                }
                InputPath::Dense { feature, w_in } => {
                    let FeatureRows::Dense(rows) = &self.features[*feature] else { unreachable!("a dense path reads a dense feature") };
                    rows.index_select(0, &frame.input_items).mm(frame.table(*w_in))
                }
                InputPath::Sparse { feature, w_in } => {
                    let bag = frame.bags[*feature].as_ref().expect("the frame indexes every sparse feature");
                    Tensor::embedding_bag(frame.table(*w_in), &bag.indices, &bag.offsets, false, 0, false, Some(&bag.weights), false).0
                }
            };
            sum + part
        })
    }

    /// One GRU step of subnet `k`: the new hidden state, after hidden dropout when training (the value that
    /// is carried to the next step, as in GRU4Rec).
    pub fn subnet_step(&self, k: usize, frame: &Frame, hidden: &Tensor, train: bool) -> Tensor {
        let subnet = &self.subnets[k];
        let x = self.input_projection(subnet, frame, train);
        let b_hn = subnet.b_hn.map(|b| frame.table(b));
        let next = gru_step(subnet.form, &x, hidden, frame.table(subnet.w_hh), b_hn);
        if train && subnet.dropout > 0.0 {
            next.dropout(subnet.dropout, true)
        } else {
            next
        }
    }

    fn output_scores(&self, output: OutputLayer, frame: &Frame, hidden: &Tensor) -> Tensor {
        let w = frame.table(output.w);
        let b = frame.table(output.b);
        let index = if output.tied { frame.scored_rows_in_both.as_ref() } else { frame.scored_rows.as_ref() };
        match (index, frame.scored_rows.as_ref()) {
            (Some(w_index), Some(b_index)) => hidden.mm(&w.index_select(0, w_index).tr()) + b.index_select(0, b_index),
            // One product that starts from the bias: no second pass over the `[B, n_items]` scores.
            _ => b.addmm(hidden, &w.tr()),
        }
    }

    /// The score part a subnet contributes, unweighted. `hidden[k]` is subnet k's state (None when absent);
    /// under interaction, part k > 0 also reads the primary's state.
    pub fn score_part(&self, k: usize, frame: &Frame, hidden: &[Option<Tensor>]) -> Tensor {
        let own = hidden[k].as_ref().expect("a scored subnet has run");
        match &self.merge {
            MergeLayer::Parallel { outputs, .. } => self.output_scores(outputs[k], frame, own),
            MergeLayer::Interaction { outputs } if k == 0 => self.output_scores(outputs[0], frame, own),
            MergeLayer::Interaction { outputs } => {
                let primary = hidden[0].as_ref().expect("checked: the primary comes first in every schedule");
                self.output_scores(outputs[k], frame, &(own * primary))
            }
            MergeLayer::SharedW { .. } => unreachable!("shared-W scores the summed hidden state"),
        }
    }

    pub fn shares_output(&self) -> bool {
        matches!(self.merge, MergeLayer::SharedW { .. })
    }

    /// Merged scores of the subnets in `present` (merge order): `parts[k]` holds subnet k's score part for
    /// parallel and interaction; shared-W sums the hidden states instead.
    pub fn merged_scores(&self, present: &[usize], frame: &Frame, hidden: &[Option<Tensor>], parts: &[Option<Tensor>]) -> Tensor {
        match &self.merge {
            MergeLayer::SharedW { output, weights } => {
                let sum = present
                    .iter()
                    .map(|&k| hidden[k].as_ref().expect("present subnets have run") * weights[k])
                    .reduce(|a, b| a + b)
                    .expect("a step has at least one subnet");
                self.output_scores(*output, frame, &sum)
            }
            MergeLayer::Parallel { weights, .. } => present
                .iter()
                .map(|&k| parts[k].as_ref().expect("present subnets are scored") * weights[k])
                .reduce(|a, b| a + b)
                .expect("a step has at least one subnet"),
            MergeLayer::Interaction { .. } => present
                .iter()
                .map(|&k| parts[k].as_ref().expect("present subnets are scored").shallow_clone())
                .reduce(|a, b| a + b)
                .expect("a step has at least one subnet"),
        }
    }

    /// One inference step of every subnet over a frame of whole tables: the new hidden states and the merged
    /// scores of every item `[B, n_items]`, before the output activation.
    pub fn inference_step(&self, frame: &Frame, hidden: &[Option<Tensor>]) -> (Vec<Option<Tensor>>, Tensor) {
        let next = self.inference_states(frame, hidden);
        let rows = next.iter().flatten().next().map_or(0, |h| h.size()[0]);
        let mut scores = Tensor::empty([rows, self.n_items as i64], (Kind::Float, self.device));
        self.full_scores_into(&next, &mut scores);
        (next, scores)
    }

    /// The new hidden state of every subnet, without dropout.
    pub fn inference_states(&self, frame: &Frame, hidden: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
        (0..self.subnets.len())
            .map(|k| Some(self.subnet_step(k, frame, hidden[k].as_ref().expect("every subnet has a state"), false)))
            .collect()
    }

    /// The merged scores of every item for the states `hidden`, written into `out` `[B, n_items]` in place:
    /// evaluation keeps one such buffer for all its steps instead of allocating scores against the whole
    /// catalogue at every step. Each part is `(w_k h_k) W_kᵀ + w_k b_k`, the weight moved inside the product.
    pub fn full_scores_into(&self, hidden: &[Option<Tensor>], out: &mut Tensor) {
        let _guard = tch::no_grad_guard();
        let state = |k: usize| hidden[k].as_ref().expect("every subnet has a state");
        let mut first = true;
        let mut add_part = |input: Tensor, output: OutputLayer, weight: f64| {
            let (w, b) = (&self.params[output.w].value, &self.params[output.b].value);
            let (input, bias) = if weight == 1.0 { (input, b.shallow_clone()) } else { (input * weight, b * weight) };
            if std::mem::take(&mut first) {
                out.copy_(&bias.unsqueeze(0).expand_as(out));
            } else {
                let _ = out.g_add_(&bias.unsqueeze(0));
            }
            let _ = out.addmm_(&input, &w.tr());
        };
        match &self.merge {
            MergeLayer::Parallel { outputs, weights } => {
                for (k, output) in outputs.iter().enumerate() {
                    add_part(state(k).shallow_clone(), *output, weights[k]);
                }
            }
            MergeLayer::Interaction { outputs } => {
                for (k, output) in outputs.iter().enumerate() {
                    let input = if k == 0 { state(0).shallow_clone() } else { state(k) * state(0) };
                    add_part(input, *output, 1.0);
                }
            }
            MergeLayer::SharedW { output, weights } => {
                let sum = (0..self.subnets.len()).map(|k| state(k) * weights[k]).reduce(|a, b| a + b).expect("a model has a subnet");
                add_part(sum, *output, 1.0);
            }
        }
    }

    /// The training loss of merged scores, summed over rows and divided by the nominal batch size.
    pub fn training_loss(&self, scores: &Tensor, frame: &Frame) -> Tensor {
        let activated = loss::activate(self.activation, scores);
        let log_p = self.log_popularity.as_ref().map(|log_p| log_p.index_select(0, &frame.scored_items));
        loss::loss(self.loss, &activated, log_p.as_ref()) / self.batch_size as f64
    }
}

/// How hidden states move from one step of session-parallel batches to the next: the batch's surviving rows
/// are kept and the rows that start a session are zeroed. The index tensors are uploaded once per step and
/// shared by every subnet's state.
pub struct StateCarry {
    rows: i64,
    kept: Option<Tensor>,
    reset: Option<Tensor>,
}

impl StateCarry {
    pub fn new(step: &Step<'_>, device: Device) -> StateCarry {
        let upload = |rows: &[usize]| Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to_device(device);
        StateCarry {
            rows: step.inputs.len() as i64,
            kept: step.kept_rows.map(upload),
            reset: (!step.reset_rows.is_empty()).then(|| upload(step.reset_rows)),
        }
    }

    /// A subnet's state for this step; zeros of `hidden` units when it has none yet.
    pub fn apply(&self, state: Option<Tensor>, hidden: i64, device: Device) -> Tensor {
        let state = match (state, &self.kept) {
            (Some(state), Some(kept)) => state.index_select(0, kept),
            (Some(state), None) => state,
            (None, _) => return Tensor::zeros([self.rows, hidden], (Kind::Float, device)),
        };
        match &self.reset {
            Some(reset) => state.index_fill(0, reset, 0.0),
            None => state,
        }
    }
}

/// The embedding_bag index of the batch's sparse feature rows.
#[derive(Debug)]
pub struct Bag {
    pub indices: Tensor,
    pub offsets: Tensor,
    pub weights: Tensor,
}

/// What one forward pass reads: a table per parameter (gathered rows during training, whole matrices in
/// evaluation) and the indices into those tables.
#[derive(Debug)]
pub struct Frame {
    pub tables: Vec<Option<Tensor>>,
    /// Global item index of each row's input, `[B]`: dense feature rows.
    pub input_items: Tensor,
    /// Index of each input into `InputItems` tables.
    pub input_rows: Tensor,
    /// Index of each input into `InputAndScoredItems` tables.
    pub input_rows_in_both: Tensor,
    /// Index of each scored column into `ScoredItems` tables; None: all items, in item order.
    pub scored_rows: Option<Tensor>,
    pub scored_rows_in_both: Option<Tensor>,
    /// Global item index of each scored column (training only).
    pub scored_items: Tensor,
    /// Per feature, when sparse.
    pub bags: Vec<Option<Bag>>,
}

impl Frame {
    fn table(&self, param: usize) -> &Tensor {
        self.tables[param].as_ref().expect("the frame binds every parameter its step reads")
    }
}

/// Distinct rows of one index space with each use's position among them; buffers are reused across steps.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    /// `slot[row] = stamp << 32 | position` marks rows seen in the current step.
    slot: Vec<u64>,
    stamp: u64,
    pub(crate) rows: Vec<i64>,
}

impl Dedup {
    pub(crate) fn start(&mut self, space: usize) {
        if self.slot.len() < space {
            self.slot.resize(space, 0);
        }
        self.stamp += 1;
        self.rows.clear();
    }

    pub(crate) fn position(&mut self, row: u32) -> i64 {
        let entry = &mut self.slot[row as usize];
        if *entry >> 32 == self.stamp {
            return (*entry & 0xffff_ffff) as i64;
        }
        let position = self.rows.len() as u64;
        *entry = (self.stamp << 32) | position;
        self.rows.push(i64::from(row));
        position as i64
    }
}

/// Builds frames: indices on the host, then one upload per index tensor.
#[derive(Debug, Default)]
pub struct FrameIndexer {
    items: Dedup,
    vocabulary: Vec<Dedup>,
}

/// The host-side result of indexing one mini-batch, shared by the steps of that mini-batch.
#[derive(Debug)]
pub struct BatchIndex {
    input_items: Tensor,
    input_rows: Tensor,
    input_rows_unique: Tensor,
    scored_items: Tensor,
    scored_rows: Tensor,
    scored_rows_unique: Tensor,
    both_input: Tensor,
    both_scored: Tensor,
    both_unique: Tensor,
    bags: Vec<Option<(Bag, Tensor)>>,
}

fn upload(values: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(values).to_device(device)
}

impl FrameIndexer {
    /// Indexes a mini-batch: `inputs` `[B]`, `scored` = the targets `[B]` followed by the extra negatives.
    pub fn index(&mut self, network: &Network, inputs: &[u32], scored: &[u32]) -> BatchIndex {
        let device = network.device;
        let n_items = network.n_items;
        let d = &mut self.items;
        d.start(n_items);
        let input_rows: Vec<i64> = inputs.iter().map(|&i| d.position(i)).collect();
        let input_rows_unique = upload(&d.rows, device);
        d.start(n_items);
        let scored_rows: Vec<i64> = scored.iter().map(|&i| d.position(i)).collect();
        let scored_rows_unique = upload(&d.rows, device);
        d.start(n_items);
        let both_input: Vec<i64> = inputs.iter().map(|&i| d.position(i)).collect();
        let both_scored: Vec<i64> = scored.iter().map(|&i| d.position(i)).collect();
        let both_unique = upload(&d.rows, device);
        let input_items: Vec<i64> = inputs.iter().map(|&i| i64::from(i)).collect();
        let scored_items: Vec<i64> = scored.iter().map(|&i| i64::from(i)).collect();
        let bags = index_sparse(&network.features, &mut self.vocabulary, |sparse, d| {
            let (indices, offsets, weights) = bag_rows(sparse, inputs, |column| d.position(column));
            let unique = upload(&d.rows, device);
            (
                Bag { indices: upload(&indices, device), offsets: upload(&offsets, device), weights: weights_tensor(&weights, device) },
                unique,
            )
        });
        BatchIndex {
            input_items: upload(&input_items, device),
            input_rows: upload(&input_rows, device),
            input_rows_unique,
            scored_items: upload(&scored_items, device),
            scored_rows: upload(&scored_rows, device),
            scored_rows_unique,
            both_input: upload(&both_input, device),
            both_scored: upload(&both_scored, device),
            both_unique,
            bags,
        }
    }
}

fn weights_tensor(weights: &[f32], device: Device) -> Tensor {
    Tensor::from_slice(weights).to_device(device)
}

/// `index(feature, its row positions)` for every sparse feature (None for dense ones); the positions are
/// started afresh for the step and their buffers reused across steps.
pub(crate) fn index_sparse<T>(
    features: &[FeatureRows],
    vocabulary: &mut Vec<Dedup>,
    mut index: impl FnMut(&SparseFeature, &mut Dedup) -> T,
) -> Vec<Option<T>> {
    vocabulary.resize_with(features.len(), Dedup::default);
    features
        .iter()
        .zip(vocabulary.iter_mut())
        .map(|(feature, d)| match feature {
            FeatureRows::Dense(_) => None,
            FeatureRows::Sparse(sparse) => {
                d.start(sparse.width);
                Some(index(sparse, d))
            }
        })
        .collect()
}

/// The embedding_bag triple of the items' sparse rows; `column_index` maps a vocabulary column to its
/// index in the table the bag reads.
pub(crate) fn bag_rows(sparse: &SparseFeature, items: &[u32], mut column_index: impl FnMut(u32) -> i64) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    let mut offsets = Vec::with_capacity(items.len());
    for &item in items {
        offsets.push(indices.len() as i64);
        let range = sparse.indptr[item as usize] as usize..sparse.indptr[item as usize + 1] as usize;
        for (&column, &value) in sparse.indices[range.clone()].iter().zip(&sparse.values[range]) {
            indices.push(column_index(column));
            weights.push(value);
        }
    }
    (indices, offsets, weights)
}

impl BatchIndex {
    /// The distinct rows of a row space this mini-batch touches; None for parameters used whole.
    fn rows(&self, space: RowSpace) -> Option<&Tensor> {
        match space {
            RowSpace::Dense => None,
            RowSpace::InputItems => Some(&self.input_rows_unique),
            RowSpace::ScoredItems => Some(&self.scored_rows_unique),
            RowSpace::InputAndScoredItems => Some(&self.both_unique),
            RowSpace::Vocabulary(f) => Some(&self.bags[f].as_ref().expect("every sparse feature is indexed").1),
        }
    }

    /// A frame for one training step: parameters owned by a group in `training` become autograd leaves
    /// (whole, or their touched rows); the others are read without gradient.
    pub fn frame(&self, network: &Network, training: &[Owner]) -> (Frame, Vec<(usize, Tensor)>) {
        let mut leaves = Vec::new();
        let tables = network
            .params
            .iter()
            .enumerate()
            .map(|(id, param)| {
                let table = match self.rows(param.rows) {
                    Some(rows) => param.value.index_select(0, rows),
                    None => param.value.detach(),
                };
                if training.contains(&param.owner) {
                    let leaf = table.set_requires_grad(true);
                    leaves.push((id, leaf.shallow_clone()));
                    Some(leaf)
                } else {
                    Some(table)
                }
            })
            .collect();
        let frame = Frame {
            tables,
            input_items: self.input_items.shallow_clone(),
            input_rows: self.input_rows.shallow_clone(),
            input_rows_in_both: self.both_input.shallow_clone(),
            scored_rows: Some(self.scored_rows.shallow_clone()),
            scored_rows_in_both: Some(self.both_scored.shallow_clone()),
            scored_items: self.scored_items.shallow_clone(),
            bags: self
                .bags
                .iter()
                .map(|b| {
                    b.as_ref().map(|(bag, _)| Bag {
                        indices: bag.indices.shallow_clone(),
                        offsets: bag.offsets.shallow_clone(),
                        weights: bag.weights.shallow_clone(),
                    })
                })
                .collect(),
        };
        (frame, leaves)
    }

    /// Applies the optimizer to the leaves of a frame after `backward`.
    pub fn update(&self, network: &mut Network, leaves: &[(usize, Tensor)], adagrad: &Adagrad) {
        for (id, leaf) in leaves {
            let gradient = leaf.grad();
            if !gradient.defined() {
                continue; // not reached by this step's loss (e.g. an unused bias row space)
            }
            let param = &mut network.params[*id];
            let optimizer = Adagrad { learning_rate: param.learning_rate, ..*adagrad };
            match self.rows(param.rows) {
                Some(rows) => optimizer.sparse_step(&mut param.value, &mut param.state, rows, &gradient),
                None => optimizer.dense_step(&mut param.value, &mut param.state, &gradient),
            }
        }
    }
}

impl Network {
    /// A frame over whole tables, for evaluation: scores against every item.
    pub fn full_frame(&self, inputs: &[u32]) -> Frame {
        let items: Vec<i64> = inputs.iter().map(|&i| i64::from(i)).collect();
        let items = upload(&items, self.device);
        let bags = self
            .features
            .iter()
            .map(|feature| match feature {
                FeatureRows::Dense(_) => None,
                FeatureRows::Sparse(sparse) => {
                    let (indices, offsets, weights) = bag_rows(sparse, inputs, i64::from);
                    Some(Bag {
                        indices: upload(&indices, self.device),
                        offsets: upload(&offsets, self.device),
                        weights: weights_tensor(&weights, self.device),
                    })
                }
            })
            .collect();
        Frame {
            tables: self.params.iter().map(|p| Some(p.value.shallow_clone())).collect(),
            input_items: items.shallow_clone(),
            input_rows: items.shallow_clone(),
            input_rows_in_both: items.shallow_clone(),
            scored_rows: None,
            scored_rows_in_both: None,
            scored_items: items,
            bags,
        }
    }
}
