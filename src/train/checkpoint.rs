//! Checkpoints: parameters, optimizer state and the item index in one safetensors file, written atomically.
//!
//! The file is written to a temporary name in the run folder, synced, then renamed over the previous one,
//! so a process killed at any moment leaves either the old or the new checkpoint, never a torn one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use crate::data::intern::Interner;
use crate::lower::Network;

pub const FILE_NAME: &str = "checkpoint.safetensors";
/// The best epoch of the current early-stopping group (a copy of that epoch's checkpoint).
pub const BEST_FILE_NAME: &str = "best.safetensors";

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointInfo {
    /// Epochs completed.
    pub epoch: u64,
    pub prnn_version: String,
    pub model: String,
}

fn float_bytes(tensor: &Tensor) -> Vec<u8> {
    let values: Vec<f32> = Vec::try_from(tensor.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).expect("float tensors convert");
    bytemuck::cast_slice(&values).to_vec()
}

/// Writes `network` and the item index as `dir/checkpoint.safetensors`.
pub fn save(dir: &Path, network: &Network, items: &Interner, info: &CheckpointInfo) -> std::io::Result<PathBuf> {
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, tensor) in network.named_tensors() {
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        entries.push((name, Dtype::F32, shape, float_bytes(tensor)));
    }
    let mut arena = Vec::new();
    let mut ends: Vec<u64> = Vec::with_capacity(items.len());
    for item in items.iter() {
        arena.extend_from_slice(item.as_bytes());
        ends.push(arena.len() as u64);
    }
    entries.push(("items.ends".into(), Dtype::U64, vec![ends.len()], bytemuck::cast_slice(&ends).to_vec()));
    entries.push(("items.bytes".into(), Dtype::U8, vec![arena.len()], arena));
    let metadata = HashMap::from([("info".to_string(), serde_json::to_string(info).expect("info serialises"))]);
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).expect("shapes match their bytes")))
        .collect();
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    replace_atomically(dir, FILE_NAME, |file| std::io::Write::write_all(file, &bytes))
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

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a readable prnn checkpoint ({why})", path.display())]
    Damaged { path: PathBuf, why: String },
    #[error("{} was trained on another item index ({saved} items; the data now has {now})", path.display())]
    OtherItems { path: PathBuf, saved: usize, now: usize },
    #[error("{} has no tensor `{name}`: it was written for another model", path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: `{name}` has shape {saved:?}, the model needs {needed:?}", path.display())]
    Shape { path: PathBuf, name: String, saved: Vec<i64>, needed: Vec<i64> },
}

fn read(path: &Path) -> Result<Vec<u8>, Unusable> {
    std::fs::read(path).map_err(|source| Unusable::Read { path: path.to_path_buf(), source })
}

/// Reads the checkpoint's info and item IDs without touching a network.
pub fn read_info(path: &Path) -> Result<(CheckpointInfo, Vec<String>), Unusable> {
    let bytes = read(path)?;
    let (info, items, _) = decode(&bytes, path)?;
    Ok((info, items))
}

fn decode<'b>(bytes: &'b [u8], path: &Path) -> Result<(CheckpointInfo, Vec<String>, SafeTensors<'b>), Unusable> {
    let broken = |why: String| Unusable::Damaged { path: path.to_path_buf(), why };
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| broken(e.to_string()))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| broken(e.to_string()))?;
    let info = metadata.metadata().as_ref().and_then(|m| m.get("info")).ok_or_else(|| broken("no info in its metadata".into()))?;
    let info: CheckpointInfo = serde_json::from_str(info).map_err(|e| broken(e.to_string()))?;
    let ends: Vec<u64> = bytemuck::pod_collect_to_vec(tensors.tensor("items.ends").map_err(|e| broken(e.to_string()))?.data());
    let arena = tensors.tensor("items.bytes").map_err(|e| broken(e.to_string()))?.data();
    let mut items = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for end in ends {
        let piece = arena.get(start..end as usize).ok_or_else(|| broken("item table out of bounds".into()))?;
        items.push(String::from_utf8_lossy(piece).into_owned());
        start = end as usize;
    }
    Ok((info, items, tensors))
}

/// Loads a checkpoint into `network`, checking that it was written for the same items and parameters.
pub fn load(path: &Path, network: &mut Network, items: &Interner) -> Result<CheckpointInfo, Unusable> {
    let bytes = read(path)?;
    let (info, saved_items, tensors) = decode(&bytes, path)?;
    if saved_items.len() != items.len() || saved_items.iter().zip(items.iter()).any(|(a, b)| a != b) {
        return Err(Unusable::OtherItems { path: path.to_path_buf(), saved: saved_items.len(), now: items.len() });
    }
    let device = network.device;
    for (name, tensor) in network.named_tensors_mut() {
        let view = tensors.tensor(&name).map_err(|_| Unusable::Missing { path: path.to_path_buf(), name: name.clone() })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if shape != tensor.size() || view.dtype() != Dtype::F32 {
            return Err(Unusable::Shape { path: path.to_path_buf(), name, saved: shape, needed: tensor.size() });
        }
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
        let loaded = Tensor::from_slice(&values).reshape(&shape).to_device(device);
        let _guard = tch::no_grad_guard();
        tensor.copy_(&loaded);
    }
    Ok(info)
}
