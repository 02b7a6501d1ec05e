//! The fused CPU step against the autograd step: the same spec, seed and mini-batches must leave the same
//! parameters and optimizer state, up to float32 rounding, for every input kind, GRU form, merge, loss,
//! activation and schedule.

mod common;

use prnn::lower::Network;
use prnn::lower::StepKind;
use prnn::train::{EpochOptions, Trainer};
use tch::{Device, Kind};

fn data() -> common::Synthetic {
    common::synthetic(prnn::data::synth::SynthConfig { sessions: 200, items: 150, clusters: 6, dim: 6, ..Default::default() })
}

fn train(spec: &str, data: &common::Synthetic, kind: StepKind) -> (Network, Vec<f64>) {
    let config = common::run_config(&data.config);
    let dataset = common::dataset(&config);
    let compiled = common::compile(spec, &config);
    let epochs = compiled.plan.epochs;
    let network = common::network(compiled, &dataset, Device::Cpu);
    let mut trainer = Trainer::new(network, &dataset, kind).unwrap();
    let options = EpochOptions { max_batches: Some(12), ..EpochOptions::default() };
    let losses = (1..=epochs).map(|epoch| trainer.epoch(epoch, options, |_| {}).unwrap().loss).collect();
    (trainer.into_network(), losses)
}

/// Trains `spec` both ways and compares every tensor of the checkpoint.
fn same_training(spec: &str) {
    let _serial = common::serial();
    common::device();
    let data = data();
    let (fused, fused_losses) = train(spec, &data, StepKind::Fused);
    let (reference, reference_losses) = train(spec, &data, StepKind::Autograd);
    for (f, r) in fused_losses.iter().zip(&reference_losses) {
        assert!((f - r).abs() <= 1e-4 * r.abs().max(1.0), "loss: fused {f}, autograd {r}\n{spec}");
    }
    let mut moved = 0;
    for ((name, f), (_, r)) in fused.named_tensors().into_iter().zip(reference.named_tensors()) {
        let difference = (f - r).abs().max().double_value(&[]);
        let scale = r.abs().max().double_value(&[]).max(1e-3);
        assert!(difference <= 2e-4 * scale, "`{name}` differs by {difference:e} (scale {scale:e})\n{spec}");
        moved += usize::from(r.abs().sum(Kind::Double).double_value(&[]) > 0.0);
    }
    assert!(moved > 0, "nothing trained\n{spec}");
}

fn model(inputs: &str, body: &str, train: &str) -> String {
    format!("model m {{\n{inputs}\n{body}\n}}\ntrain {{\n optimizer = adagrad(lr = 0.1)\n batch = 16\n{train}\n}}\n")
}

#[test]
fn one_hot_id_with_cross_entropy() {
    same_training(&model(
        " input id : item_id",
        " subnet a = gru(id, hidden = 12)\n output = scores(activation = softmax)\n loss = cross_entropy",
        " schedule = simultaneous(epochs = 2)",
    ));
}

#[test]
fn cross_entropy_with_logq_and_sampled_negatives() {
    same_training(&model(
        " input id : item_id",
        " subnet a = gru(id, hidden = 12)\n output = scores(activation = linear)\n loss = cross_entropy(logq = 1)",
        " negatives = in_batch(extra = 30, alpha = 0.5)\n schedule = simultaneous(epochs = 1)",
    ));
}

#[test]
fn constrained_embedding_with_bpr_max_elu_and_momentum() {
    let spec = "model m {\n input id : item_id(embedding = constrained)\n subnet a = gru(id, hidden = 10)\n \
                output = scores(activation = elu(alpha = 1))\n loss = bpr_max(bpreg = 0.9)\n}\n\
                train {\n optimizer = adagrad(lr = 0.05, momentum = 0.15)\n batch = 16\n \
                negatives = in_batch(extra = 40, alpha = 0.3)\n schedule = simultaneous(epochs = 2)\n}\n";
    same_training(spec);
}

#[test]
fn separate_embedding_with_top1_max() {
    same_training(&model(
        " input id : item_id(embedding = separate(dim = 7))",
        " subnet a = gru(id, hidden = 9)\n output = scores(activation = tanh)\n loss = top1_max",
        " negatives = in_batch(extra = 10, alpha = 0.5)\n schedule = simultaneous(epochs = 1)",
    ));
}

#[test]
fn parallel_id_and_sparse_feature_with_top1() {
    same_training(&model(
        " input id : item_id\n input category : sparse",
        " subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 6)\n merge = parallel(a, b, weights = [1, 0.5])\n \
         output = scores(activation = tanh)\n loss = top1",
        " schedule = simultaneous(epochs = 1)",
    ));
}

#[test]
fn dense_feature_with_bpr() {
    same_training(&model(
        " input vector : dense",
        " subnet b = gru(vector, hidden = 8)\n output = scores(activation = tanh)\n loss = bpr",
        " schedule = simultaneous(epochs = 1)",
    ));
}

#[test]
fn concatenated_inputs_into_one_subnet() {
    same_training(&model(
        " input id : item_id\n input category : sparse\n input vector : dense",
        " subnet a = gru(id, category, vector, hidden = 8)\n output = scores(activation = tanh)\n loss = top1",
        " schedule = simultaneous(epochs = 1)",
    ));
}

#[test]
fn shared_w_alternating() {
    same_training(&model(
        " input id : item_id\n input category : sparse",
        " subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 8)\n merge = shared_w(a, b, weights = [1, 2])\n \
         output = scores(activation = tanh)\n loss = top1",
        " schedule = alternating(epochs = 3, order = [a, b])",
    ));
}

#[test]
fn shared_w_with_a_constrained_input_residual() {
    let spec = "model m {\n input id : item_id(embedding = constrained)\n input category : sparse\n \
                subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 8)\n merge = shared_w(a, b)\n \
                output = scores(activation = tanh)\n loss = bpr\n}\n\
                train {\n optimizer = adagrad(lr = 0.1, momentum = 0.1)\n batch = 16\n \
                schedule = residual { a: 1 epoch, b: 1 epoch }\n}\n";
    same_training(spec);
}

#[test]
fn interaction_residual_and_interleaving() {
    for schedule in ["residual { a: 1 epoch, b: 1 epoch }", "interleaving(epochs = 1, order = [a, b])", "simultaneous(epochs = 1)"] {
        same_training(&model(
            " input id : item_id\n input vector : dense",
            " subnet a = gru(id, hidden = 8)\n subnet b = gru(vector, hidden = 8)\n merge = interaction(primary = a, b)\n \
             output = scores(activation = tanh)\n loss = top1",
            &format!(" schedule = {schedule}"),
        ));
    }
}

#[test]
fn parallel_interleaving_reuses_the_other_subnets_scores() {
    same_training(&model(
        " input id : item_id\n input category : sparse",
        " subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 8)\n merge = parallel(a, b)\n \
         output = scores(activation = tanh)\n loss = top1",
        " schedule = interleaving(epochs = 1, order = [b, a])",
    ));
}

#[test]
fn a_batch_of_one_row_updates_that_row() {
    // One input row per step: every row-indexed matrix has a single touched row.
    let spec = "model m {\n input id : item_id\n input category : sparse\n subnet a = gru(id, category, hidden = 6)\n \
                output = scores(activation = tanh)\n loss = bpr_max\n}\n\
                train {\n optimizer = adagrad(lr = 0.1, momentum = 0.2)\n batch = 1\n \
                negatives = in_batch(extra = 8, alpha = 0.5)\n schedule = simultaneous(epochs = 1)\n}\n";
    same_training(spec);
}
