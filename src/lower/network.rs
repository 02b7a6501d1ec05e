//! The bound IR instantiated: one tensor (with its Adagrad state) per entry of the IR's parameter table,
//! created in the table's order, and each input's item features where the executors read them.
//!
//! Everything else an executor needs (which node reads which parameter, row spaces, learning rates, ties,
//! the plan) it reads from the IR the network keeps; the network holds no second description of the model.

use std::sync::Arc;

use indexmap::IndexMap;
use tch::{Device, Kind, Tensor};

use super::optim::AdagradState;
use crate::data::catalogue::Catalogue;
use crate::data::features::{Feature, SparseFeature};
use crate::data::Dataset;
use crate::ir::{number, Bound, Init, InputRepr, Loss, Node, NodeId, ParamId, SubnetId};

/// One entry of the parameter table as tensors.
#[derive(Debug)]
pub struct Parameter {
    pub value: Tensor,
    pub state: AdagradState,
}

/// A feature's rows where the forward pass needs them.
#[derive(Debug)]
pub enum FeatureRows {
    /// `[n_items, dim]` on the device.
    Dense(Tensor),
    /// Kept on the host: each step builds the embedding_bag index of its own items.
    Sparse(SparseFeature),
}

/// The lowered model: parameters and features on a device, and the bound IR that says how they combine.
#[derive(Debug)]
pub struct Network {
    pub device: Device,
    ir: Arc<Bound>,
    /// Indexed by [`ParamId`]: the IR's parameter table, in its order.
    pub params: Vec<Parameter>,
    /// Indexed by [`NodeId`]: the rows of every dense or sparse input node.
    features: Vec<Option<FeatureRows>>,
    pub n_items: usize,
    /// `ln(support_i / events)` per item, for cross-entropy's logQ correction.
    pub(crate) log_popularity: Option<Tensor>,
}

/// Uniform in `±sqrt(6 / (fan_in + fan_out))`, drawn on the CPU so that every device starts from the same
/// weights for one seed.
fn uniform(rows: i64, cols: i64, fan_in: u64, fan_out: u64, device: Device) -> Tensor {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Tensor::empty([rows, cols], (Kind::Float, Device::Cpu)).uniform_(-bound, bound).to_device(device)
}

impl Network {
    /// Creates every parameter of the IR's table, in order, from the plan's seed, and moves the features
    /// the input nodes read to `device`.
    pub fn new(ir: Bound, dataset: &Dataset, device: Device) -> Network {
        Network::with_rows(ir, &dataset.features, || dataset.item_support(), device)
    }

    /// As [`Network::new`], from a run folder's catalogue instead of the data: for inference.
    pub fn for_catalogue(ir: Bound, catalogue: &Catalogue, device: Device) -> Network {
        Network::with_rows(ir, &catalogue.features, || catalogue.support.clone(), device)
    }

    fn with_rows(ir: Bound, features: &IndexMap<String, Feature>, support: impl FnOnce() -> Vec<u64>, device: Device) -> Network {
        let ir = Arc::new(ir);
        tch::manual_seed(ir.plan().seed as i64);
        let momentum = ir.plan().optimizer.momentum > 0.0;
        let graph = ir.graph();
        let params = graph
            .params()
            .map(|(id, param)| {
                let shape = ir.shape(id);
                let value = match &param.init {
                    Init::Zeros => Tensor::zeros(shape.as_slice(), (Kind::Float, device)),
                    Init::Uniform { fan_in, fan_out, blocks } => {
                        let (fan_in, fan_out) = (number(fan_in), number(fan_out));
                        let [rows, cols] = shape[..] else { panic!("`{}`: uniform initialisation is for matrices", param.name) };
                        let width = cols / *blocks as i64;
                        if *blocks == 1 {
                            uniform(rows, cols, fan_in, fan_out, device)
                        } else {
                            let parts: Vec<Tensor> = (0..*blocks).map(|_| uniform(rows, width, fan_in, fan_out, device)).collect();
                            Tensor::cat(&parts, 1)
                        }
                    }
                };
                let state = AdagradState::zeros_like(&value, momentum);
                Parameter { value, state }
            })
            .collect();
        let n_items = ir.items();
        let features = graph
            .graph
            .node_weights()
            .map(|node| match node {
                Node::Input { name, repr: InputRepr::Dense | InputRepr::Sparse, .. } => {
                    let feature = features.get(name).unwrap_or_else(|| panic!("the dataset has no feature `{name}`"));
                    Some(match feature {
                        Feature::Dense(dense) => FeatureRows::Dense(
                            Tensor::from_slice(&dense.values).reshape([n_items as i64, dense.dim as i64]).to_device(device),
                        ),
                        Feature::Sparse(sparse) => FeatureRows::Sparse(sparse.clone()),
                    })
                }
                _ => None,
            })
            .collect();
        let log_popularity = match ir.loss() {
            Loss::CrossEntropy { logq } if logq > 0.0 => {
                let support = support();
                let total: u64 = support.iter().sum();
                let log_p: Vec<f32> = support.iter().map(|&s| ((s.max(1) as f64) / total as f64).ln() as f32).collect();
                Some(Tensor::from_slice(&log_p).to_device(device))
            }
            _ => None,
        };
        Network { device, ir, params, features, n_items, log_popularity }
    }

    /// The bound IR this network instantiates.
    pub fn ir(&self) -> &Bound {
        &self.ir
    }

    /// A shared handle on the IR, for executors that walk it while they change the parameters.
    pub(crate) fn ir_handle(&self) -> Arc<Bound> {
        Arc::clone(&self.ir)
    }

    pub fn param(&self, id: ParamId) -> &Parameter {
        &self.params[id.index()]
    }

    /// The parameter named `name` in checkpoints (`id_net.W_out`).
    pub fn param_named(&self, name: &str) -> Option<&Parameter> {
        self.ir.graph().params().find(|(_, p)| p.name == name).map(|(id, _)| self.param(id))
    }

    /// The rows an input node reads; None for item-ID inputs.
    pub fn feature(&self, input: NodeId) -> Option<&FeatureRows> {
        self.features[input.index()].as_ref()
    }

    /// Every input node's feature rows, with the node.
    pub(crate) fn features(&self) -> impl Iterator<Item = (NodeId, &FeatureRows)> {
        self.features.iter().enumerate().filter_map(|(i, f)| f.as_ref().map(|f| (NodeId::new(i), f)))
    }

    pub fn subnet_count(&self) -> usize {
        self.ir.graph().subnets.len()
    }

    pub fn subnet_names(&self) -> Vec<&str> {
        self.ir.graph().subnets.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn hidden_size(&self, subnet: SubnetId) -> i64 {
        self.ir.graph().subnet(subnet).hidden as i64
    }

    /// Every parameter and optimizer-state tensor, by checkpoint name.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut named = Vec::new();
        for ((_, ir), param) in self.ir.graph().params().zip(&self.params) {
            named.push((ir.name.clone(), &param.value));
            named.push((format!("{}#accumulator", ir.name), &param.state.accumulator));
            if let Some(momentum) = &param.state.momentum {
                named.push((format!("{}#momentum", ir.name), momentum));
            }
        }
        named
    }

    /// Mutable access to the same tensors, for loading a checkpoint.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut named = Vec::new();
        for ((_, ir), param) in self.ir.graph().params().zip(&mut self.params) {
            named.push((ir.name.clone(), &mut param.value));
            named.push((format!("{}#accumulator", ir.name), &mut param.state.accumulator));
            if let Some(momentum) = &mut param.state.momentum {
                named.push((format!("{}#momentum", ir.name), momentum));
            }
        }
        named
    }

    pub fn parameter_count(&self) -> i64 {
        self.params.iter().map(|p| p.value.numel() as i64).sum()
    }
}
