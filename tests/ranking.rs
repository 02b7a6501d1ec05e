//! Evaluation's two-pass ranking on real data: networks trained on the shipped Amazon sample rank every
//! test event as the all-exact path does, with either first pass, against every item and against a
//! most-popular subset. (The kernels' own tests in `src/eval/ranking.rs` cover ties, near-ties, non-finite
//! values and huge catalogues.)

mod common;

use prnn::eval::{evaluate_ranked, CpuRanking, FirstPass};
use prnn::lower::Network;
use prnn::train::EpochOptions;

fn trained(spec: &str, config: &prnn::config::RunConfig, dataset: &prnn::data::Dataset) -> Network {
    let compiled = common::compile(spec, config);
    let network = common::network(compiled, dataset, tch::Device::Cpu);
    let mut trainer = common::trainer(network, dataset);
    trainer.epoch(1, EpochOptions { max_batches: Some(60), ..EpochOptions::default() }, |_| {}).unwrap();
    trainer.into_network()
}

#[test]
fn two_passes_rank_every_test_event_of_real_data_as_the_exact_path_does() {
    let _serial = common::serial();
    let config = common::run_config(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/amazon-image-vectors.toml"));
    let dataset = common::dataset(&config);
    let training = "train {\n batch = 32\n optimizer = adagrad(lr = 0.1)\n negatives = in_batch(extra = 32)\n schedule = simultaneous(epochs = 1)\n}\n";
    let models = [
        ("ID only, cross-entropy", "input id : item_id\n subnet a = gru(id, hidden = 24)\n loss = cross_entropy"),
        (
            "constrained embedding, BPR-max",
            "input id : item_id(embedding = constrained)\n subnet a = gru(id, hidden = 24)\n output = scores(activation = elu(alpha = 1))\n loss = bpr_max(bpreg = 0.5)",
        ),
        (
            "parallel with weights",
            "input id : item_id\n input content : dense\n subnet a = gru(id, hidden = 16)\n subnet b = gru(content, hidden = 16)\n merge = parallel(a, b, weights = [1, 0.4])\n loss = top1_max",
        ),
    ];
    for (name, body) in models {
        let network = trained(&format!("model m {{\n {body}\n}}\n{training}"), &config, &dataset);
        let executor = prnn::lower::Autograd::new(network);
        for most_popular in [0, 300] {
            let settings = prnn::config::Eval { most_popular, ..config.eval.clone() };
            let exact = evaluate_ranked(&executor, &dataset, &settings, CpuRanking::Exact);
            assert_eq!(exact.events, 1938 - 292, "{name}: every test event after a session's first is ranked");
            for first_pass in [FirstPass::BFloat16, FirstPass::Float32] {
                let two_pass = evaluate_ranked(&executor, &dataset, &settings, CpuRanking::TwoPass(first_pass));
                assert_eq!(two_pass.ranks.len(), exact.ranks.len());
                for (got, want) in two_pass.ranks.iter().zip(&exact.ranks) {
                    assert_eq!(got, want, "{name}, {first_pass:?}, most popular {most_popular}");
                }
                assert_eq!(two_pass.metrics, exact.metrics, "{name}, {first_pass:?}");
            }
        }
    }
}
