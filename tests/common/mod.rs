//! Helpers shared by the tests that run libtorch: the device under test, and small synthetic datasets.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};

use prnn::data::{synth, Dataset};
use tch::Device;

/// The device tests run on: `PRNN_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`, `auto`), else the CPU. Loads
/// libtorch_cuda first, as `prnn` itself does, so that a GPU machine's CUDA is visible to test binaries.
pub fn device() -> Device {
    prnn::runtime::cuda::preload();
    // Tests run on parallel threads already; one libtorch thread each keeps them from oversubscribing the cores.
    tch::set_num_threads(1);
    let name = std::env::var("PRNN_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    prnn::lower::device(&name).unwrap_or_else(|why| panic!("PRNN_TEST_DEVICE: {why}"))
}

/// libtorch's random generator is global to the process, and the test harness runs tests on parallel
/// threads: a test that seeds and draws (every test that builds or trains a network) holds this lock, so
/// that another test's draws cannot interleave with its own.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A synthetic dataset whose `category` feature reveals each item's cluster, and whose `vector` feature is
/// a noisy cluster centroid (src/data/synth/).
pub struct Synthetic {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub settings: synth::SynthConfig,
}

pub fn synthetic(settings: synth::SynthConfig) -> Synthetic {
    let dir = tempfile::tempdir().unwrap();
    synth::write_dataset(&settings, dir.path(), false).unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n\n\
         [inputs.category]\nkind = \"sparse\"\nitems = \"items.tsv\"\ncolumns = [\"category\"]\nencoding = \"categorical\"\n\n\
         [inputs.vector]\nkind = \"dense\"\nvectors = \"vectors.npy\"\nids = \"vectors.ids\"\n\n\
         [eval]\ncutoffs = [5, 20]\n\n[run]\nout = \"runs\"\n",
    )
    .unwrap();
    Synthetic { dir, config, settings }
}

pub fn run_config(path: &Path) -> prnn::config::RunConfig {
    prnn::config::parse(&std::fs::read_to_string(path).unwrap(), path.parent().unwrap()).unwrap()
}

pub fn dataset(config: &prnn::config::RunConfig) -> Dataset {
    prnn::data::load(config, false).unwrap().0
}

/// Compiles spec text and binds it to the config's inputs.
pub fn compile(spec: &str, config: &prnn::config::RunConfig) -> prnn::ir::Compiled {
    let model = prnn::check_source(&prnn::diagnostic::Source::new("test.prnn", spec)).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
    let model = prnn::config::bind(config, &model, "test.prnn").unwrap_or_else(|e| panic!("{e:?}"));
    prnn::ir::Compiled::new(model)
}

/// The executable under test, with plain (uncoloured) diagnostics: `prnn-torch`, which runs every command as
/// `prnn` does (src/main.rs) and which cargo always builds fresh for this package's tests; `prnn` itself, the
/// front binary of the `front/` package, has its own tests in front/tests.
pub fn prnn() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("prnn-torch").unwrap();
    command.arg("--color").arg("never");
    command
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A compiled spec bound to the dataset's sizes and instantiated on `device`.
pub fn network(compiled: prnn::ir::Compiled, dataset: &Dataset, device: tch::Device) -> prnn::lower::Network {
    let bound = prnn::ir::Bound::new(compiled, &dataset.sizes()).unwrap_or_else(|e| panic!("{e}"));
    prnn::lower::Network::new(bound, dataset, device)
}

/// A trainer with the step the network's device runs fastest (fused on the CPU).
pub fn trainer(network: prnn::lower::Network, dataset: &Dataset) -> prnn::train::Trainer<'_> {
    let step = prnn::train::default_step(&network);
    prnn::train::Trainer::new(network, dataset, step).unwrap()
}

/// A small parallel model over item IDs and the synthetic data's categories, trained `epochs` epochs in
/// alternation, with dropout and sampled negatives: what the command-line tests train.
pub fn small_spec(epochs: u64) -> String {
    format!(
        "model small {{
  input id       : item_id
  input category : sparse
  subnet id_net       = gru(id, hidden = 16, dropout = 0.2)
  subnet category_net = gru(category, hidden = 16)
  merge = parallel(id_net, category_net)
}}
train {{
  optimizer = adagrad(lr = 0.1, momentum = 0.1)
  batch     = 16
  negatives = in_batch(extra = 8, alpha = 0.5)
  schedule  = alternating(epochs = {epochs}, order = [id_net, category_net])
}}
"
    )
}

/// Every tensor of a checkpoint, by name, as raw bytes; not the checksum, which also covers the epoch count.
pub fn checkpoint_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut named: Vec<(String, Vec<u8>)> =
        file.tensors().into_iter().filter(|(name, _)| name != "checksum.blake3").map(|(name, view)| (name, view.data().to_vec())).collect();
    named.sort();
    named
}
