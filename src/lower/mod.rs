//! Lowering: the compiled graph and a prepared dataset become libtorch tensors and step functions.
//!
//! - [`gru`]: the GRU step in GRU4Rec's and PyTorch's forms.
//! - [`loss`]: output activations and the five losses.
//! - [`optim`]: Adagrad with lazy row-sparse momentum.
//! - [`network`]: parameters, frames of gathered rows, subnets, merges and scores; the autograd step.
//! - [`fused`]: the fused CPU step: hand-derived gradients and sparse Adagrad in Rust loops.

pub mod fused;
pub mod gru;
pub mod loss;
pub mod network;
pub mod optim;

pub use network::{Frame, FrameIndexer, Network};

use tch::Device;

/// Resolves `auto`, `cpu`, `cuda` and `cuda:N`; `Err` says why a device cannot be used.
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let index = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| format!("unknown device `{name}`: expected `auto`, `cpu`, `cuda` or `cuda:N`"))?,
                None => return Err(format!("unknown device `{name}`: expected `auto`, `cpu`, `cuda` or `cuda:N`")),
            };
            if !tch::Cuda::is_available() {
                return Err(format!("device `{name}` asked for, but CUDA is not available (`prnn doctor` says why)"));
            }
            let count = tch::Cuda::device_count() as usize;
            if index >= count {
                return Err(format!(
                    "device `{name}` asked for, but there {} only {count} CUDA device{}",
                    if count == 1 { "is" } else { "are" },
                    if count == 1 { "" } else { "s" }
                ));
            }
            Ok(Device::Cuda(index))
        }
    }
}
