//! Training: the scheduler freezes exactly what the plan freezes, runs repeat bit for bit, merges match the
//! paper's forms, and features help where the data plants a feature signal.

mod common;

use prnn::eval::evaluate;
use prnn::ir::SubnetId;
use prnn::lower::autograd::subnet_step;
use prnn::lower::{Autograd, Executor, Network};
use prnn::train::EpochOptions;
use tch::Tensor;

fn spec(merge: &str, schedule: &str, extra: &str) -> String {
    format!(
        "model m {{\n input id : item_id\n input category : sparse\n subnet a = gru(id, hidden = 16)\n \
         subnet b = gru(category, hidden = 16)\n merge = {merge}\n{extra}}}\ntrain {{\n optimizer = adagrad(lr = 0.1)\n \
         batch = 20\n schedule = {schedule}\n}}\n"
    )
}

fn small() -> common::Synthetic {
    common::synthetic(prnn::data::synth::SynthConfig { sessions: 300, items: 120, clusters: 6, dim: 4, ..Default::default() })
}

/// Every parameter and optimizer-state tensor, copied, by name.
fn snapshot(network: &Network) -> Vec<(String, Tensor)> {
    network.named_tensors().into_iter().map(|(name, t)| (name, t.copy())).collect()
}

fn owner_of(name: &str) -> &str {
    name.split('.').next().unwrap()
}

fn bitwise_equal(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && bool::try_from(a.eq_tensor(b).all()).unwrap()
}

/// Runs every epoch of `schedule` and checks after each that exactly the groups the plan trains changed.
fn check_freezing(merge: &str, schedule: &str) {
    let data = small();
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let compiled = common::compile(&spec(merge, schedule, ""), &config);
    let epochs = compiled.plan.epochs;
    let network = common::network(compiled, &dataset, common::device());
    let mut trainer = common::trainer(network, &dataset);
    for epoch in 1..=epochs {
        let before = snapshot(trainer.network());
        let summary = trainer.epoch(epoch, EpochOptions::default(), |_| {}).unwrap();
        let after = snapshot(trainer.network());
        for ((name, old), (_, new)) in before.iter().zip(&after) {
            let group = owner_of(name);
            let trained = summary.trains.iter().any(|t| t == group);
            if trained {
                assert!(!bitwise_equal(old, new), "{schedule}, epoch {epoch}: `{name}` trains but did not change");
            } else {
                assert!(bitwise_equal(old, new), "{schedule}, epoch {epoch}: `{name}` is frozen but changed");
            }
        }
    }
}

#[test]
fn alternating_changes_only_the_subnet_of_each_epoch() {
    let _serial = common::serial();
    check_freezing("parallel(a, b)", "alternating(epochs = 3, order = [b, a])");
}

#[test]
fn residual_freezes_the_trained_ensemble_and_leaves_later_subnets_untouched() {
    let _serial = common::serial();
    check_freezing("parallel(a, b)", "residual { a: 2 epochs, b: 1 epoch }");
}

#[test]
fn shared_output_moves_only_with_the_first_subnet_of_the_order() {
    let _serial = common::serial();
    check_freezing("shared_w(a, b)", "alternating(epochs = 2, order = [a, b])");
    check_freezing("interaction(primary = a, b)", "residual { a: 1 epoch, b: 1 epoch }");
}

#[test]
fn interleaving_trains_every_subnet_on_every_mini_batch() {
    let _serial = common::serial();
    check_freezing("parallel(a, b)", "interleaving(epochs = 1, order = [a, b])");
}

fn train_all(spec_text: &str, data: &common::Synthetic, device: tch::Device) -> Network {
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let compiled = common::compile(spec_text, &config);
    let epochs = compiled.plan.epochs;
    let network = common::network(compiled, &dataset, device);
    let mut trainer = common::trainer(network, &dataset);
    for epoch in 1..=epochs {
        trainer.epoch(epoch, EpochOptions::default(), |_| {}).unwrap();
    }
    trainer.into_network()
}

#[test]
fn a_cpu_run_repeats_bit_for_bit() {
    let _serial = common::serial();
    let data = small();
    // Dropout and sampled negatives draw random numbers: both must come from the seeded streams.
    let text = spec("parallel(a, b)", "simultaneous(epochs = 2)", "")
        .replace("subnet a = gru(id, hidden = 16)", "subnet a = gru(id, hidden = 16, dropout = 0.3)");
    let text = text.replace("batch = 20", "batch = 20\n negatives = in_batch(extra = 10, alpha = 0.5)");
    // On the CPU, whatever device the other tests use: CUDA's atomic adds need not repeat bit for bit.
    common::device();
    let first = snapshot(&train_all(&text, &data, tch::Device::Cpu));
    let second = snapshot(&train_all(&text, &data, tch::Device::Cpu));
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert!(bitwise_equal(a, b), "`{name}` differs between two runs with one seed");
    }
    let other_seed = snapshot(&train_all(&text.replace("batch = 20", "batch = 20\n seed = 7"), &data, tch::Device::Cpu));
    assert!(first.iter().zip(&other_seed).any(|((_, a), (_, b))| !bitwise_equal(a, b)), "the seed is used");
}

/// The inputs of the test set's first mini-batch.
fn first_inputs(dataset: &prnn::data::Dataset) -> Vec<u32> {
    (0..5).map(|s| dataset.test.session(s)[0].item).collect()
}

/// The states after the test set's first mini-batch, from zero states, and the scores of every item.
fn first_scores(executor: &dyn Executor, dataset: &prnn::data::Dataset) -> (Vec<Tensor>, Tensor) {
    let _guard = tch::no_grad_guard();
    let network = executor.network();
    let zeros: Vec<Tensor> =
        network.ir().graph().subnet_ids().map(|k| Tensor::zeros([5, network.hidden_size(k)], (tch::Kind::Float, network.device))).collect();
    let states = executor.next_states(&first_inputs(dataset), &zeros);
    let mut scores = Tensor::empty([5, network.n_items as i64], (tch::Kind::Float, network.device));
    executor.scores_into(&states, &mut scores);
    (states, scores)
}

#[test]
fn parallel_scores_equal_concatenated_hidden_states_times_a_block_output_matrix() {
    let _serial = common::serial();
    let data = small();
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let compiled = common::compile(&spec("parallel(a, b)", "simultaneous(epochs = 1)", ""), &config);
    let executor = Autograd::new(common::network(compiled, &dataset, common::device()));
    let (states, scores) = first_scores(&executor, &dataset);
    // The paper's footnote 3: [h_a, h_b] · [W_a; W_b]ᵀ + (b_a + b_b).
    let _guard = tch::no_grad_guard();
    let network = executor.network();
    let h = Tensor::cat(&states, 1);
    let param = |name: &str| &network.param_named(name).unwrap().value;
    let w = Tensor::cat(&[param("a.W_out"), param("b.W_out")], 1);
    let expected = h.mm(&w.tr()) + param("a.b_out") + param("b.b_out");
    assert!(scores.allclose(&expected, 1e-5, 1e-6, false));
}

#[test]
fn a_zero_weight_subnet_leaves_the_model_without_it() {
    let _serial = common::serial();
    let data = small();
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let with_zero = common::compile(&spec("parallel(a, b, weights = [1, 0])", "simultaneous(epochs = 1)", ""), &config);
    let alone = common::compile(
        "model m {\n input id : item_id\n subnet a = gru(id, hidden = 16)\n}\ntrain {\n optimizer = adagrad(lr = 0.1)\n batch = 20\n schedule = simultaneous(epochs = 1)\n}\n",
        &config,
    );
    // Same seed, and subnet a's parameters are created first in both: same initial weights for a.
    let mut trainer = common::trainer(common::network(with_zero, &dataset, common::device()), &dataset);
    trainer.epoch(1, EpochOptions::default(), |_| {}).unwrap();
    let zero_net = Autograd::new(trainer.into_network());
    let mut trainer = common::trainer(common::network(alone, &dataset, common::device()), &dataset);
    trainer.epoch(1, EpochOptions::default(), |_| {}).unwrap();
    let alone_net = Autograd::new(trainer.into_network());
    let a = first_scores(&zero_net, &dataset).1;
    let b = first_scores(&alone_net, &dataset).1;
    // b's output part is multiplied by 0 but still computed: allow float rounding in the sum.
    assert!(a.allclose(&b, 1e-5, 1e-6, false), "max difference {}", (a - b).abs().max().double_value(&[]));
}

#[test]
fn features_beat_item_ids_on_data_with_a_planted_feature_signal() {
    let _serial = common::serial();
    // Many rarely seen items in few clusters: an ID model must learn every item's cluster from a handful of
    // clicks, while the category feature names it.
    let data = common::synthetic(prnn::data::synth::SynthConfig {
        sessions: 2_000,
        items: 5_000,
        clusters: 20,
        dim: 4,
        signal: 0.9,
        ..Default::default()
    });
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let settings = "train {\n optimizer = adagrad(lr = 0.1)\n batch = 32\n schedule = simultaneous(epochs = 2)\n}\n";
    let id_only = format!("model m {{\n input id : item_id\n subnet a = gru(id, hidden = 32)\n}}\n{settings}");
    let parallel = format!(
        "model m {{\n input id : item_id\n input category : sparse\n subnet a = gru(id, hidden = 32)\n \
         subnet b = gru(category, hidden = 32)\n merge = parallel(a, b)\n}}\n{settings}"
    );
    let mrr = |text: &str| -> f64 {
        let network = train_all(text, &data, common::device());
        let evaluation = evaluate(&Autograd::new(network), &dataset, &config.eval);
        evaluation.metrics.iter().find(|m| m.cutoff == 20).unwrap().mrr
    };
    let (id_mrr, parallel_mrr) = (mrr(&id_only), mrr(&parallel));
    eprintln!("MRR@20: ID only {id_mrr:.4}, parallel {parallel_mrr:.4}");
    // Measured: 0.131 and 0.194 (the planted model's ceiling is 0.237); the margin asked for is 30%.
    assert!(parallel_mrr > id_mrr * 1.3, "ID only {id_mrr:.4}, parallel {parallel_mrr:.4}");
}

#[test]
fn hidden_dropout_drops_the_given_fraction_and_the_dropped_state_is_carried() {
    let _serial = common::serial();
    let data = small();
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let text = "model m {\n input id : item_id\n subnet a = gru(id, hidden = 64, dropout = 0.8)\n}\n";
    let compiled = common::compile(text, &config);
    let network = common::network(compiled, &dataset, common::device());
    let _guard = tch::no_grad_guard();
    let inputs: Vec<u32> = (0..512).map(|i| i % dataset.items.len() as u32).collect();
    let zero = Tensor::zeros([512, 64], (tch::Kind::Float, network.device));
    let first = SubnetId::new(0);
    let dropped = subnet_step(&network, &inputs, first, &zero, true);
    let kept = subnet_step(&network, &inputs, first, &zero, false);
    let zeros = dropped.eq(0.0).to_kind(tch::Kind::Float).mean(tch::Kind::Float).double_value(&[]);
    // 0.8 is the probability of dropping a unit (GRU4Rec's dropout_p_hidden), not of keeping it.
    assert!((zeros - 0.8).abs() < 0.02, "{zeros} of the units are zero");
    // Kept units are scaled by 1 / (1 - p), so the expectation matches inference.
    let survivors = dropped.ne(0.0);
    let ratio = (dropped.masked_select(&survivors) / kept.masked_select(&survivors)).mean(tch::Kind::Float).double_value(&[]);
    assert!((ratio - 5.0).abs() < 1e-3, "{ratio}");
    // Without training, no unit is dropped.
    assert_eq!(kept.eq(0.0).sum(tch::Kind::Int64).int64_value(&[]), 0);
}

#[test]
fn every_embedding_mode_and_merge_lowers_to_the_graphs_parameter_count_and_trains() {
    let _serial = common::serial();
    let data = small();
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let training = "train {\n batch = 20\n negatives = in_batch(extra = 5)\n schedule = simultaneous(epochs = 1)\n}\n";
    let cases = [
        ("one-hot", "input id : item_id\n subnet a = gru(id, hidden = 8)"),
        ("separate", "input id : item_id(embedding = separate(dim = 6), dropout = 0.2)\n subnet a = gru(id, hidden = 8)"),
        ("constrained", "input id : item_id(embedding = constrained)\n subnet a = gru(id, hidden = 8)\n output = scores(activation = elu(alpha = 1))\n loss = bpr_max(bpreg = 0.5)"),
        ("concatenated", "input id : item_id\n input category : sparse\n input vector : dense\n subnet a = gru(id, category, vector, hidden = 8)\n loss = top1_max"),
        ("shared_w with a constrained input", "input id : item_id(embedding = constrained)\n input vector : dense\n subnet a = gru(id, hidden = 8)\n subnet b = gru(vector, hidden = 8)\n merge = shared_w(a, b)\n loss = bpr"),
        ("interaction", "input id : item_id\n input category : sparse\n subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 8)\n merge = interaction(primary = a, b)\n output = scores(activation = linear)\n loss = cross_entropy(logq = 1)"),
    ];
    for (name, body) in cases {
        let compiled = common::compile(&format!("model m {{\n {body}\n}}\n{training}"), &config);
        let mut bound = compiled.clone();
        bound.bind(&prnn::ir::Bindings {
            items: Some(dataset.items.len() as u64),
            widths: dataset.features.iter().map(|(n, f)| (n.clone(), f.width() as u64)).collect(),
            batch: Some(20),
            sampled: Some(25),
        });
        let network = common::network(compiled, &dataset, common::device());
        assert_eq!(Some(network.parameter_count() as u64), bound.graph.total_params().as_constant(), "{name}");
        let mut trainer = common::trainer(network, &dataset);
        let summary = trainer.epoch(1, EpochOptions::default(), |_| {}).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(summary.loss.is_finite() && summary.events > 0, "{name}: {summary:?}");
        let evaluation = evaluate(trainer.executor(), &dataset, &config.eval);
        assert!(evaluation.metrics.iter().all(|m| m.recall > 0.0), "{name}: {:?}", evaluation.metrics);
    }
}
