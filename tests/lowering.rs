//! Lowering follows the IR: every executor creates the IR's parameter table entry for entry and updates
//! only the rows, at the learning rate, that each entry names; a tied output matrix is the embedding it is
//! tied to; a network follows an IR changed after compilation, not the spec text; and the bound IR of every
//! spec on a shipped dataset is a reviewed snapshot.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use prnn::config::RunConfig;
use prnn::data::batches::SessionBatches;
use prnn::data::features::Feature;
use prnn::data::Dataset;
use prnn::diagnostic::Source;
use prnn::ir::plan::Mode;
use prnn::ir::{render, Activation, Bound, Compiled, Node, NodeId, Owner, RowSpace, SubnetId};
use prnn::lower::{self, Executor, Network, PhaseSteps, StepKind};
use tch::{Device, Kind, Tensor};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped run config whose data fits a spec: ID, image and text for the three-input spec, the
/// YooChoose categories for every other.
fn config_for(spec: &Path) -> &'static str {
    if spec.file_name().is_some_and(|n| n == "parallel_id_image_text.prnn") {
        "amazon-id-image-text.toml"
    } else {
        "yoochoose-categories.toml"
    }
}

/// A shipped config and its dataset, prepared once per test binary.
fn shipped(config: &str) -> (RunConfig, Dataset) {
    static LOADED: OnceLock<Mutex<HashMap<String, (RunConfig, Dataset)>>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    loaded
        .entry(config.to_string())
        .or_insert_with(|| {
            let config = common::run_config(&root().join("examples").join(config));
            let dataset = prnn::data::load(&config, false).unwrap().0;
            (config, dataset)
        })
        .clone()
}

fn specs() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "prnn"))
        .collect();
    specs.sort();
    specs
}

/// A spec file compiled, bound to its config's inputs, with its display name.
fn compile_file(spec: &Path, config: &RunConfig) -> Compiled {
    let name = spec.strip_prefix(root()).unwrap().display().to_string();
    let model = prnn::check_source(&Source::new(name.clone(), std::fs::read_to_string(spec).unwrap())).unwrap();
    Compiled::new(prnn::config::bind(config, &model, &name).unwrap())
}

fn values(tensor: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(tensor.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

/// The rows of a `[rows, width]` (or `[rows]`) tensor whose values differ between `before` and `after`.
fn changed_rows(before: &[f32], after: &[f32], width: usize) -> BTreeSet<usize> {
    before.chunks(width).zip(after.chunks(width)).enumerate().filter(|(_, (a, b))| a != b).map(|(row, _)| row).collect()
}

/// The rows a step may touch in a row space, given the batch's inputs and scored items.
fn allowed_rows(space: RowSpace, ir: &Bound, dataset: &Dataset, inputs: &[u32], scored: &[u32]) -> Option<BTreeSet<usize>> {
    let items = |list: &[u32]| list.iter().map(|&i| i as usize).collect::<BTreeSet<usize>>();
    match space {
        RowSpace::Dense => None,
        RowSpace::InputItems => Some(items(inputs)),
        RowSpace::ScoredItems => Some(items(scored)),
        RowSpace::InputAndScoredItems => Some(&items(inputs) | &items(scored)),
        RowSpace::Vocabulary(input) => {
            let Node::Input { name, .. } = ir.graph().node(input) else { panic!("a vocabulary belongs to an input node") };
            let Some(Feature::Sparse(sparse)) = dataset.features.get(name) else { panic!("`{name}` is sparse") };
            let columns =
                inputs.iter().flat_map(|&i| &sparse.indices[sparse.indptr[i as usize] as usize..sparse.indptr[i as usize + 1] as usize]);
            Some(columns.map(|&c| c as usize).collect())
        }
        RowSpace::Undecided => panic!("a bound IR has no undecided row space"),
    }
}

/// The first `count` mini-batches of the plan's first phase with `executor`; returns the last batch's inputs
/// and scored items.
fn first_batches(executor: &mut dyn Executor, dataset: &Dataset, count: usize) -> (Vec<u32>, Vec<u32>) {
    let ir = executor.network().ir().clone();
    let plan = ir.plan();
    let extra = ir.negatives().extra as u32;
    let phase = PhaseSteps::new(&plan.phases[0]);
    let mut batches = SessionBatches::new(&dataset.train, plan.batch as usize, 1);
    executor.start_epoch(1);
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..count {
        let step = batches.next_step().unwrap();
        // Extra negatives as a sampler would append them; which items they are does not matter here.
        let scored: Vec<u32> = step.targets.iter().copied().chain((0..extra).map(|i| i * 7 % dataset.items.len() as u32)).collect();
        executor.train_batch(&step, &scored, &phase);
        last = (step.inputs.to_vec(), scored);
    }
    last
}

fn one_batch(executor: &mut dyn Executor, dataset: &Dataset) -> (Vec<u32>, Vec<u32>) {
    first_batches(executor, dataset, 1)
}

#[test]
fn every_executor_creates_the_ir_parameter_table_and_updates_only_what_each_entry_names() {
    let _serial = common::serial();
    common::device();
    for spec in specs() {
        let (config, dataset) = shipped(config_for(&spec));
        let bound = Bound::new(compile_file(&spec, &config), &dataset.sizes()).unwrap();
        let graph = bound.graph();
        for kind in [StepKind::Fused, StepKind::Autograd] {
            let what = format!("{} ({})", spec.display(), kind.name());
            let network = Network::new(bound.clone(), &dataset, Device::Cpu);
            let mut executor = lower::executor(network, kind).unwrap_or_else(|(why, _)| panic!("{what}: {why}"));
            let network = executor.network();
            // Entry for entry: one tensor per parameter, in the table's order, with its name and shape.
            assert_eq!(network.params.len(), graph.params.len(), "{what}");
            let names: Vec<String> = network.named_tensors().into_iter().map(|(n, _)| n).filter(|n| !n.contains('#')).collect();
            assert_eq!(names, graph.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>(), "{what}");
            for (id, param) in graph.params() {
                assert_eq!(network.param(id).value.size(), bound.shape(id), "{what}: `{}`", param.name);
            }
            let before: Vec<Vec<f32>> = network.params.iter().map(|p| values(&p.value)).collect();
            let (inputs, scored) = one_batch(executor.as_mut(), &dataset);
            let steps = &bound.plan().phases[0].steps;
            let network = executor.network();
            for (id, param) in graph.params() {
                let value = &network.param(id).value;
                let after = values(value);
                let width = if value.dim() == 2 { value.size()[1] as usize } else { 1 };
                let changed = changed_rows(&before[id.index()], &after, width);
                if !steps.iter().any(|step| step.trains(param.owner)) {
                    assert!(changed.is_empty(), "{what}: `{}` belongs to a group this step does not train", param.name);
                    continue;
                }
                // The row space: only the rows it names move.
                if let Some(allowed) = allowed_rows(param.rows, &bound, &dataset, &inputs, &scored) {
                    let stray: Vec<&usize> = changed.difference(&allowed).collect();
                    assert!(stray.is_empty(), "{what}: `{}` ({:?}) changed rows {stray:?} outside its row space", param.name, param.rows);
                }
                // The learning rate bounds Adagrad's first step: |lr · g / sqrt(g² + eps)| < lr.
                let largest = before[id.index()].iter().zip(&after).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
                assert!(
                    largest <= param.learning_rate * (1.0 + 1e-5),
                    "{what}: `{}` moved by {largest}, above lr {}",
                    param.name,
                    param.learning_rate
                );
                // A tie: the output matrix is the input embedding, so input rows that were not scored move too.
                if let Some(embedding) = param.tied_to {
                    let Node::Embedding { table, .. } = graph.node(embedding) else { panic!("{what}: a tie names an embedding node") };
                    assert_eq!(graph.param(*table).name, param.name, "{what}: the embedding reads the matrix it is tied to");
                    let only_input: BTreeSet<usize> =
                        inputs.iter().map(|&i| i as usize).filter(|i| !scored.contains(&(*i as u32))).collect();
                    if !only_input.is_empty() {
                        assert!(!changed.is_disjoint(&only_input), "{what}: no input-only row of `{}` moved", param.name);
                    }
                }
            }
        }
    }
}

#[test]
fn each_parameter_moves_at_the_learning_rate_of_its_table_entry() {
    let _serial = common::serial();
    common::device();
    let (config, dataset) = shipped("yoochoose-categories.toml");
    let text = "model m {\n input id : item_id\n input content : feature\n subnet a = gru(id, hidden = 8, lr = 0.01)\n \
                subnet b = gru(content, hidden = 8)\n merge = parallel(a, b)\n}\ntrain {\n optimizer = adagrad(lr = 0.2)\n batch = 16\n}\n";
    let compiled = common::compile(text, &config);
    for (_, param) in compiled.graph.params() {
        let lr = if param.name.starts_with("a.") { 0.01 } else { 0.2 };
        assert_eq!(param.learning_rate, lr, "`{}` takes its subnet's learning rate", param.name);
    }
    // The table's entry for a.W_out is changed after compilation: only that parameter's step changes, twofold.
    let mut doubled = compiled.clone();
    let w_out = doubled.graph.params.iter().position(|p| p.name == "a.W_out").unwrap();
    doubled.graph.params[w_out].learning_rate *= 2.0;
    for kind in [StepKind::Fused, StepKind::Autograd] {
        let steps: Vec<Vec<Vec<f32>>> = [compiled.clone(), doubled.clone()]
            .into_iter()
            .map(|ir| {
                let mut executor = lower::executor(common::network(ir, &dataset, Device::Cpu), kind).unwrap_or_else(|_| panic!("executor"));
                let before: Vec<Vec<f32>> = executor.network().params.iter().map(|p| values(&p.value)).collect();
                one_batch(executor.as_mut(), &dataset);
                let after = executor.network().params.iter().map(|p| values(&p.value));
                before.iter().zip(after).map(|(b, a)| b.iter().zip(&a).map(|(b, a)| a - b).collect()).collect()
            })
            .collect();
        for (id, param) in compiled.graph.params() {
            let (single, double) = (&steps[0][id.index()], &steps[1][id.index()]);
            if id.index() == w_out {
                let moved: Vec<(f32, f32)> = single.iter().zip(double).filter(|(s, _)| **s != 0.0).map(|(s, d)| (*s, *d)).collect();
                assert!(!moved.is_empty(), "{}: a.W_out trains", kind.name());
                // Up to the rounding of the stored values (about 1e-9 at these magnitudes).
                assert!(
                    moved.iter().all(|(s, d)| (d - 2.0 * s).abs() <= 1e-7 + 1e-4 * s.abs()),
                    "{}: a.W_out's step doubles with its lr",
                    kind.name()
                );
            } else {
                assert_eq!(single, double, "{}: `{}` keeps its own lr", kind.name(), param.name);
            }
        }
    }
}

/// Scores of every item after one step from zero states over the items `inputs`.
fn scores(executor: &dyn Executor, inputs: &[u32]) -> Tensor {
    let network = executor.network();
    let zeros: Vec<Tensor> = network
        .ir()
        .graph()
        .subnet_ids()
        .map(|k| Tensor::zeros([inputs.len() as i64, network.hidden_size(k)], (Kind::Float, Device::Cpu)))
        .collect();
    let states = executor.next_states(inputs, &zeros);
    let mut out = Tensor::empty([inputs.len() as i64, network.n_items as i64], (Kind::Float, Device::Cpu));
    executor.scores_into(&states, &mut out);
    out
}

#[test]
fn a_network_follows_an_ir_changed_after_compilation_not_the_spec_text() {
    let _serial = common::serial();
    common::device();
    let (config, dataset) = shipped("yoochoose-categories.toml");
    let text = "model m {\n input id : item_id\n input content : feature\n subnet a = gru(id, hidden = 8)\n \
                subnet b = gru(content, hidden = 8)\n merge = parallel(a, b)\n output = scores(activation = tanh)\n}\n\
                train {\n optimizer = adagrad(lr = 0.1)\n batch = 16\n}\n";
    let spec = common::compile(text, &config);
    let inputs: Vec<u32> = (0..6).map(|s| dataset.test.session(s)[0].item).collect();

    // The merge: the spec weighs both parts 1; the IR is changed to drop b's part.
    let mut changed = spec.clone();
    let sum = changed.graph.merged();
    let Node::ScoreSum { weights } = &mut changed.graph.graph[petgraph_index(sum)] else { panic!("a parallel merge sums its parts") };
    *weights = vec![1.0, 0.0];
    let as_written = lower::Autograd::new(common::network(spec.clone(), &dataset, Device::Cpu));
    let as_changed = lower::Autograd::new(common::network(changed, &dataset, Device::Cpu));
    let network = as_changed.network();
    let zeros = Tensor::zeros([6, 8], (Kind::Float, Device::Cpu));
    let h_a = lower::autograd::subnet_step(network, &inputs, SubnetId::new(0), &zeros, false);
    let a_alone = h_a.mm(&network.param_named("a.W_out").unwrap().value.tr()) + &network.param_named("a.b_out").unwrap().value;
    let (written, followed) = (scores(&as_written, &inputs), scores(&as_changed, &inputs));
    assert!(followed.allclose(&a_alone, 1e-5, 1e-6, false), "the changed IR scores with a's part only");
    assert!(!written.allclose(&followed, 1e-5, 1e-6, false), "the spec's own weights give other scores");

    // The activation: the spec says tanh; the IR is changed to linear, and both executors train with it.
    let mut linear = spec.clone();
    let activation = linear.graph.activation();
    linear.graph.graph[petgraph_index(activation)] = Node::Activation { activation: Activation::Linear };
    let linear_text = text.replace("activation = tanh", "activation = linear");
    for kind in [StepKind::Fused, StepKind::Autograd] {
        let losses: Vec<f64> = [spec.clone(), linear.clone(), common::compile(&linear_text, &config)]
            .into_iter()
            .map(|compiled| {
                let mut executor =
                    lower::executor(common::network(compiled, &dataset, Device::Cpu), kind).unwrap_or_else(|_| panic!("executor"));
                // Scores start near 0, where tanh is the identity to float precision: train until they are not.
                first_batches(executor.as_mut(), &dataset, 30);
                executor.epoch_loss().sum
            })
            .collect();
        assert_ne!(losses[0], losses[1], "{}: the changed activation is the one that trains", kind.name());
        assert_eq!(losses[1], losses[2], "{}: a linear activation in the IR trains as a spec that says linear", kind.name());
    }
}

#[test]
fn the_plan_the_executors_run_is_the_irs() {
    let _serial = common::serial();
    common::device();
    let (config, dataset) = shipped("yoochoose-categories.toml");
    let text = "model m {\n input id : item_id\n input content : feature\n subnet a = gru(id, hidden = 8)\n \
                subnet b = gru(content, hidden = 8)\n merge = parallel(a, b)\n}\ntrain {\n batch = 16\n \
                schedule = residual { a: 1 epoch, b: 1 epoch }\n}\n";
    // The spec trains a first; the IR's first phase is changed to train b (a frozen) instead.
    let mut changed = common::compile(text, &config);
    let (a, b) = (SubnetId::new(0), SubnetId::new(1));
    let step = &mut changed.plan.phases[0].steps[0];
    step.forward = vec![
        prnn::ir::plan::Forward { subnet: a, mode: Mode::Frozen, reused: false },
        prnn::ir::plan::Forward { subnet: b, mode: Mode::Train, reused: false },
    ];
    step.trains = vec![Owner::Subnet(b)];
    step.loss_on = vec![a, b];
    for kind in [StepKind::Fused, StepKind::Autograd] {
        let mut executor =
            lower::executor(common::network(changed.clone(), &dataset, Device::Cpu), kind).unwrap_or_else(|_| panic!("executor"));
        let before: Vec<Vec<f32>> = executor.network().params.iter().map(|p| values(&p.value)).collect();
        one_batch(executor.as_mut(), &dataset);
        for (id, param) in changed.graph.params() {
            let moved = values(&executor.network().param(id).value) != before[id.index()];
            if param.owner != Owner::Subnet(b) {
                assert!(!moved, "{}: `{}` is frozen in the changed plan", kind.name(), param.name);
            } else if param.name == "b.W_out" || param.name == "b.W_in.content" {
                assert!(moved, "{}: `{}` trains in the changed plan", kind.name(), param.name);
            }
        }
    }
}

#[test]
fn every_spec_bound_to_a_shipped_dataset_gives_its_reviewed_parameter_table() {
    for spec in specs() {
        let (config, dataset) = shipped(config_for(&spec));
        let bound = Bound::new(compile_file(&spec, &config), &dataset.sizes()).unwrap();
        let name = spec.file_stem().unwrap().to_string_lossy().to_string();
        insta::with_settings!({ snapshot_suffix => name.clone(), description => format!("{} bound to examples/{}", name, config_for(&spec)) }, {
            insta::assert_snapshot!(render::bound(&bound));
        });
    }
}

#[test]
fn a_bound_ir_names_its_tie_and_leaves_no_symbol() {
    let _serial = common::serial();
    let (config, dataset) = shipped("yoochoose-categories.toml");
    let bound = Bound::new(compile_file(&root().join("specs/gru4rec_bprmax.prnn"), &config), &dataset.sizes()).unwrap();
    let graph = bound.graph();
    let tied: Vec<(&str, NodeId)> = graph.params.iter().filter_map(|p| p.tied_to.map(|n| (p.name.as_str(), n))).collect();
    assert_eq!(tied.len(), 1);
    assert_eq!(tied[0].0, "id_net.W_out");
    assert!(matches!(graph.node(tied[0].1), Node::Embedding { constrained: true, .. }));
    assert_eq!(bound.parameter_count(), Network::new(bound.clone(), &dataset, Device::Cpu).parameter_count() as u64);
}

fn petgraph_index(node: NodeId) -> petgraph::graph::NodeIndex {
    node.into()
}
