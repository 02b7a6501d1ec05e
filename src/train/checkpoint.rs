//! Checkpoints: parameters, optimizer state and the item index in one checksummed safetensors file, written
//! atomically; and in-epoch checkpoints, which add what the epoch in progress carries.
//!
//! The file format is `checkpoint_file`'s. A file is written to a temporary name in the run folder, synced,
//! then renamed over the previous one, so a process killed at any moment leaves either the old or the new
//! checkpoint, never a torn one.
//!
//! - `checkpoint.safetensors`: the network after its last complete epoch (what `prnn eval` scores).
//! - `partial.safetensors`: the network in the middle of the next epoch, with its hidden states and an
//!   [`InEpoch`] record, written every few minutes or mini-batches; removed once that epoch's checkpoint
//!   is in place. A resumed run continues from it, mid-epoch, exactly as the uninterrupted run went on.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

pub use crate::checkpoint_file::Unusable;
use crate::checkpoint_file::{self as format, Decoded, Entry};
use crate::data::intern::Interner;
use crate::lower::Network;
use crate::train::InEpoch;

pub const FILE_NAME: &str = "checkpoint.safetensors";
/// The best epoch of the current early-stopping group (a copy of that epoch's checkpoint).
pub const BEST_FILE_NAME: &str = "best.safetensors";
/// The in-epoch checkpoint.
pub const PARTIAL_FILE_NAME: &str = "partial.safetensors";
/// Tensor names of the hidden states an in-epoch checkpoint carries: `PREFIX` + the subnet's index.
const HIDDEN_PREFIX: &str = "epoch_state.hidden.";

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointInfo {
    /// Epochs completed.
    pub epoch: u64,
    pub prnn_version: String,
    pub model: String,
    /// In an in-epoch checkpoint: how far epoch `epoch + 1` has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_epoch: Option<InEpoch>,
    /// The epoch's `metrics.jsonl` line, written after the checkpoint: a resume restores it when a kill came
    /// in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_line: Option<serde_json::Value>,
}

fn floats(tensor: &Tensor) -> Vec<f32> {
    Vec::try_from(tensor.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).expect("float tensors convert")
}

fn network_entries(network: &Network) -> Vec<Entry> {
    network
        .named_tensors()
        .into_iter()
        .map(|(name, tensor)| Entry { name, shape: tensor.size().iter().map(|&d| d as usize).collect(), values: floats(tensor) })
        .collect()
}

fn encode(entries: &[Entry], items: &Interner, info: &CheckpointInfo) -> std::io::Result<Vec<u8>> {
    let info = serde_json::to_string(info).expect("info serialises");
    format::encode(entries, items.iter(), &info).map_err(std::io::Error::other)
}

/// Writes `network` and the item index as `dir/checkpoint.safetensors`.
pub fn save(dir: &Path, network: &Network, items: &Interner, info: &CheckpointInfo) -> std::io::Result<PathBuf> {
    let bytes = encode(&network_entries(network), items, info)?;
    replace_atomically(dir, FILE_NAME, |file| std::io::Write::write_all(file, &bytes))
}

/// Writes the network in the middle of epoch `state.epoch` with the hidden states it carries, as
/// `dir/partial.safetensors`; `info.epoch` is the last complete epoch.
pub fn save_partial(
    dir: &Path,
    network: &Network,
    items: &Interner,
    info: &CheckpointInfo,
    hidden: &[Option<Vec<f32>>],
) -> std::io::Result<PathBuf> {
    let mut entries = network_entries(network);
    for (k, state) in hidden.iter().enumerate() {
        if let Some(values) = state {
            entries.push(Entry { name: format!("{HIDDEN_PREFIX}{k}"), shape: vec![values.len()], values: values.clone() });
        }
    }
    let bytes = encode(&entries, items, info)?;
    replace_atomically(dir, PARTIAL_FILE_NAME, |file| std::io::Write::write_all(file, &bytes))
}

/// Removes the in-epoch checkpoint (its epoch is complete, or it is stale).
pub fn remove_partial(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(PARTIAL_FILE_NAME)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Copies the run's checkpoint to `best.safetensors`: the weights early stopping goes back to.
pub fn keep_as_best(dir: &Path) -> std::io::Result<PathBuf> {
    replace_atomically(dir, BEST_FILE_NAME, |file| std::io::copy(&mut std::fs::File::open(dir.join(FILE_NAME))?, file).map(|_| ()))
}

/// Writes `dir/name` beside and renames it over, so a kill leaves either the old file or the new one.
fn replace_atomically(dir: &Path, name: &str, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> std::io::Result<PathBuf> {
    let target = dir.join(name);
    let mut temporary = tempfile::Builder::new().prefix(&format!(".{name}-")).suffix(".partial").tempfile_in(dir)?;
    write(temporary.as_file_mut())?;
    // Temporary files are private (0600); a checkpoint is as readable as the rest of the run folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temporary.as_file().sync_all()?;
    temporary.persist(&target).map_err(|e| e.error)?;
    // The rename is durable only once the folder's entry is on disk.
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(target)
}

fn decode<'b>(bytes: &'b [u8], path: &Path) -> Result<(CheckpointInfo, Decoded<'b>), Unusable> {
    let decoded = format::decode(bytes, path)?;
    let info = serde_json::from_str(&decoded.info).map_err(|e| Unusable::Damaged { path: path.to_path_buf(), why: e.to_string() })?;
    Ok((info, decoded))
}

/// Reads the checkpoint's info and item IDs without touching a network.
pub fn read_info(path: &Path) -> Result<(CheckpointInfo, Vec<String>), Unusable> {
    let bytes = format::read(path)?;
    let (info, decoded) = decode(&bytes, path)?;
    Ok((info, decoded.items))
}

/// Loads a checkpoint into `network`, checking that it was written for the same items and parameters.
pub fn load(path: &Path, network: &mut Network, items: &Interner) -> Result<CheckpointInfo, Unusable> {
    let bytes = format::read(path)?;
    let (info, decoded) = decode(&bytes, path)?;
    load_network(&decoded, path, network, items)?;
    Ok(info)
}

/// Each subnet's hidden state in an in-epoch checkpoint, flattened; None before the subnet's first step.
pub type HiddenStates = Vec<Option<Vec<f32>>>;

/// Loads an in-epoch checkpoint into `network`; returns its info (whose `in_epoch` is set) with the hidden
/// states, one per subnet.
pub fn load_partial(path: &Path, network: &mut Network, items: &Interner) -> Result<(CheckpointInfo, HiddenStates), Unusable> {
    let bytes = format::read(path)?;
    let (info, decoded) = decode(&bytes, path)?;
    if info.in_epoch.is_none() {
        return Err(Unusable::Damaged { path: path.to_path_buf(), why: "it records no epoch in progress".into() });
    }
    load_network(&decoded, path, network, items)?;
    let hidden = (0..network.subnet_count())
        .map(|k| {
            let name = format!("{HIDDEN_PREFIX}{k}");
            match decoded.tensors.tensor(&name) {
                Ok(_) => decoded.floats(&name, path).map(|(_, values)| Some(values)),
                Err(_) => Ok(None),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((info, hidden))
}

fn load_network(decoded: &Decoded<'_>, path: &Path, network: &mut Network, items: &Interner) -> Result<(), Unusable> {
    let saved_items = &decoded.items;
    if saved_items.len() != items.len() || saved_items.iter().zip(items.iter()).any(|(a, b)| a != b) {
        return Err(Unusable::OtherItems { path: path.to_path_buf(), saved: saved_items.len(), now: items.len() });
    }
    let device = network.device;
    for (name, tensor) in network.named_tensors_mut() {
        let (shape, values) = decoded.floats(&name, path)?;
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        if shape != tensor.size() {
            return Err(Unusable::Shape { path: path.to_path_buf(), name, saved: shape, needed: tensor.size() });
        }
        let loaded = Tensor::from_slice(&values).reshape(&shape).to_device(device);
        let _guard = tch::no_grad_guard();
        tensor.copy_(&loaded);
    }
    Ok(())
}
