//! Behaviour held through redesigns: a short training run of two reference specs, with both training
//! steps, leaves byte for byte the weights and optimizer state that the implementation of record left.
//!
//! The hashes were recorded with `prnn` built from main at 1bfd1c9, before the IR drove execution:
//! `prnn train SPEC --config examples/yoochoose-categories.toml --step STEP --threads 1 epochs=1
//! max_batches=400`, with the environment below. They are BLAKE3 over every tensor of the checkpoint but
//! the item index, in name order, each as its name, a NUL byte and its little-endian float32 values.
//! A change that alters them changes what trains, and must say why in its commit.

mod common;

use std::path::Path;

/// (spec, step, BLAKE3 of the checkpoint's tensors).
const RECORDED: [(&str, &str, &str); 4] = [
    ("gru4rec_xe", "fused", "508a0842404a6dc36e070076926f8198f36c49ce095405a1978467f5ac9b4ae5"),
    ("gru4rec_xe", "autograd", "1edad88527ad966f52de9ee03d8a6c974d26d1a439657071dbf501a8972780a9"),
    ("parallel_res", "fused", "8eeea64136c89e03242a912a33ebc7b205fb1d9020d1dbc3a6d041c04fe0dac4"),
    ("parallel_res", "autograd", "8596c2d80d8f8eec67686da03810c63fd33123028df5271a6a3ea3e9287d32df"),
];

fn tensor_hash(checkpoint: &Path) -> String {
    let bytes = std::fs::read(checkpoint).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = blake3::Hasher::new();
    // The checksum tensor (added after the recording) covers the epoch record too: not a weight.
    for (name, view) in tensors.iter().filter(|(name, _)| !name.starts_with("items.") && name != "checksum.blake3") {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(view.data());
    }
    hasher.finalize().to_hex().to_string()
}

#[test]
fn a_short_run_of_each_reference_spec_leaves_the_recorded_weights_with_both_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for (spec, step, recorded) in RECORDED {
        let run = dir.path().join(format!("{spec}-{step}"));
        let output = common::prnn()
            .current_dir(root)
            .args([
                "train",
                &format!("specs/{spec}.prnn"),
                "--config",
                "examples/yoochoose-categories.toml",
                "--step",
                step,
                "--threads",
                "1",
            ])
            .arg("--out")
            .arg(&run)
            .args(["epochs=1", "max_batches=400"])
            // One code path for matrix products and element-wise kernels on every x86 machine with AVX2,
            // whether or not it has AVX-512: the bits of a float32 sum depend on the vector width.
            .env("MKL_CBWR", "AVX2,STRICT")
            .env("ATEN_CPU_CAPABILITY", "avx2")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{spec} {step}: {}", common::stderr(&output));
        assert_eq!(
            tensor_hash(&run.join("checkpoint.safetensors")),
            recorded,
            "{spec} with the {step} step trains other weights than recorded"
        );
    }
}
