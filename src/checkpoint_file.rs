//! The checkpoint file format: named float tensors, the item index and a JSON record in one safetensors file,
//! sealed with a BLAKE3 checksum (itself a 32-byte tensor, so the metadata keeps a single entry and the same
//! checkpoint is always the same bytes), and read back with every damage reported instead of trusted.
//!
//! `train::checkpoint` turns a network into [`Entry`]s and back; this module only knows bytes, so it sits with
//! the utilities every stage may use, and the fuzzer (fuzz/) reads checkpoints without libtorch. The checksum
//! covers every tensor's name, type, shape and bytes and the JSON record, so a truncated file fails to parse
//! and a changed byte fails the checksum; either way the caller gets [`Unusable`] naming the file, never a
//! panic.
//! Files written before checksums existed have none and are read unverified.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// The metadata key of the JSON record.
const INFO_KEY: &str = "info";
/// The tensor holding the checksum: BLAKE3 over every other tensor and the record.
const CHECKSUM_TENSOR: &str = "checksum.blake3";
const ITEM_ENDS: &str = "items.ends";
const ITEM_BYTES: &str = "items.bytes";

/// One tensor to write: float32 values with their shape.
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a readable prnn checkpoint ({why}): it is truncated or damaged", path.display())]
    Damaged { path: PathBuf, why: String },
    #[error("{} does not match its checksum: it was changed or damaged after prnn wrote it", path.display())]
    Altered { path: PathBuf },
    #[error("{} was trained on another item index ({saved} items; the data now has {now})", path.display())]
    OtherItems { path: PathBuf, saved: usize, now: usize },
    #[error("{} has no tensor `{name}`: it was written for another model", path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: `{name}` has shape {saved:?}, the model needs {needed:?}", path.display())]
    Shape { path: PathBuf, name: String, saved: Vec<i64>, needed: Vec<i64> },
}

impl Unusable {
    /// Whether the file itself is unreadable, cut or changed (rather than written for other data or another model).
    pub fn is_damage(&self) -> bool {
        matches!(self, Unusable::Read { .. } | Unusable::Damaged { .. } | Unusable::Altered { .. })
    }

    /// What to do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Unusable::Damaged { .. } | Unusable::Altered { .. } => Some(
                "restore the file from a copy, or delete it and resume: the run then starts again from its first epoch \
                 (`prnn train --resume RUN_DIR`)",
            ),
            _ => None,
        }
    }
}

/// A checkpoint file read and verified: its JSON record, item IDs and tensors.
pub struct Decoded<'b> {
    pub info: String,
    pub items: Vec<String>,
    pub tensors: SafeTensors<'b>,
    /// Whether the file carried a checksum (files of earlier prnn versions did not).
    pub verified: bool,
}

impl Decoded<'_> {
    /// The float32 tensor `name` with its shape.
    pub fn floats(&self, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>), Unusable> {
        let view = self.tensors.tensor(name).map_err(|_| Unusable::Missing { path: path.to_path_buf(), name: name.to_string() })?;
        if view.dtype() != Dtype::F32 {
            return Err(Unusable::Damaged { path: path.to_path_buf(), why: format!("`{name}` is {:?}, not F32", view.dtype()) });
        }
        Ok((view.shape().to_vec(), bytemuck::pod_collect_to_vec(view.data())))
    }
}

/// BLAKE3 over tensors (name, type, shape, bytes, in the order given) and a record; also the prepared-data
/// cache's seal (`data::cache`).
pub fn checksum<'t>(tensors: impl Iterator<Item = (&'t str, Dtype, &'t [usize], &'t [u8])>, info: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for (name, dtype, shape, bytes) in tensors {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(format!("{dtype:?}").as_bytes());
        hasher.update(&(shape.len() as u64).to_le_bytes());
        for &d in shape {
            hasher.update(&(d as u64).to_le_bytes());
        }
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.update(info.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The bytes of a checkpoint: `entries`, the item IDs (in index order) and the JSON record `info`.
pub fn encode<'i>(entries: &[Entry], items: impl Iterator<Item = &'i str>, info: &str) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let mut arena = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    for item in items {
        arena.extend_from_slice(item.as_bytes());
        ends.push(arena.len() as u64);
    }
    let float_bytes: Vec<&[u8]> = entries.iter().map(|e| bytemuck::cast_slice::<f32, u8>(&e.values)).collect();
    let ends_bytes: &[u8] = bytemuck::cast_slice(&ends);
    let (ends_shape, arena_shape) = ([ends.len()], [arena.len()]);
    let mut all: Vec<(&str, Dtype, &[usize], &[u8])> =
        entries.iter().zip(&float_bytes).map(|(e, bytes)| (e.name.as_str(), Dtype::F32, e.shape.as_slice(), *bytes)).collect();
    all.push((ITEM_ENDS, Dtype::U64, &ends_shape, ends_bytes));
    all.push((ITEM_BYTES, Dtype::U8, &arena_shape, &arena));
    // safetensors orders tensors by dtype and name on disk; the checksum follows one fixed order too.
    all.sort_by(|a, b| a.0.cmp(b.0));
    let sum = checksum(all.iter().copied(), info);
    let sum_shape = [sum.len()];
    all.push((CHECKSUM_TENSOR, Dtype::U8, &sum_shape, &sum[..]));
    // One entry: safetensors writes the metadata map in its iteration order, random for several entries.
    let metadata = HashMap::from([(INFO_KEY.to_string(), info.to_string())]);
    let mut views = Vec::with_capacity(all.len());
    for (name, dtype, shape, bytes) in all {
        views.push((name.to_string(), TensorView::new(dtype, shape.to_vec(), bytes)?));
    }
    safetensors::serialize(views, Some(metadata))
}

/// Reads and verifies checkpoint bytes; `path` names the file in errors.
pub fn decode<'b>(bytes: &'b [u8], path: &Path) -> Result<Decoded<'b>, Unusable> {
    let broken = |why: String| Unusable::Damaged { path: path.to_path_buf(), why };
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| broken(e.to_string()))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| broken(e.to_string()))?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    let info = metadata.get(INFO_KEY).ok_or_else(|| broken("no info in its metadata".into()))?.clone();
    let verified = match tensors.tensor(CHECKSUM_TENSOR) {
        Ok(saved) => {
            let saved = saved.data();
            let mut names: Vec<String> = tensors.names().into_iter().filter(|name| *name != CHECKSUM_TENSOR).map(str::to_string).collect();
            names.sort();
            let views: Vec<(String, TensorView<'_>)> = names
                .into_iter()
                .map(|name| tensors.tensor(&name).map(|view| (name, view)))
                .collect::<Result<_, _>>()
                .map_err(|e| broken(e.to_string()))?;
            let now = checksum(views.iter().map(|(name, view)| (name.as_str(), view.dtype(), view.shape(), view.data())), &info);
            if now[..] != saved[..] {
                return Err(Unusable::Altered { path: path.to_path_buf() });
            }
            true
        }
        Err(_) => false,
    };
    let ends_view = tensors.tensor(ITEM_ENDS).map_err(|e| broken(e.to_string()))?;
    if ends_view.dtype() != Dtype::U64 {
        return Err(broken("the item table is not U64".into()));
    }
    let ends: Vec<u64> = bytemuck::pod_collect_to_vec(ends_view.data());
    let arena = tensors.tensor(ITEM_BYTES).map_err(|e| broken(e.to_string()))?.data();
    let mut items = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for end in ends {
        let piece =
            usize::try_from(end).ok().and_then(|end| arena.get(start..end)).ok_or_else(|| broken("item table out of bounds".into()))?;
        items.push(String::from_utf8_lossy(piece).into_owned());
        start = end as usize;
    }
    Ok(Decoded { info, items, tensors, verified })
}

/// Reads a checkpoint file whole.
pub fn read(path: &Path) -> Result<Vec<u8>, Unusable> {
    std::fs::read(path).map_err(|source| Unusable::Read { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let entries = vec![
            Entry { name: "w".into(), shape: vec![2, 2], values: vec![1.0, 2.0, 3.0, 4.0] },
            Entry { name: "b".into(), shape: vec![2], values: vec![0.5, -0.5] },
        ];
        encode(&entries, ["a", "bb", "ccc"].into_iter(), r#"{"epoch":3}"#).unwrap()
    }

    #[test]
    fn what_is_written_reads_back_verified() {
        let bytes = sample();
        let decoded = decode(&bytes, Path::new("c")).unwrap();
        assert!(decoded.verified);
        assert_eq!(decoded.info, r#"{"epoch":3}"#);
        assert_eq!(decoded.items, ["a", "bb", "ccc"]);
        assert_eq!(decoded.floats("w", Path::new("c")).unwrap(), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        assert!(matches!(decoded.floats("absent", Path::new("c")), Err(Unusable::Missing { .. })));
    }

    #[test]
    fn every_changed_byte_of_the_data_fails_the_checksum_and_every_cut_fails_to_parse() {
        let bytes = sample();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for at in header..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 0x40;
            assert!(matches!(decode(&altered, Path::new("c")), Err(Unusable::Altered { .. })), "byte {at} changed unnoticed");
        }
        for length in 0..bytes.len() {
            assert!(matches!(decode(&bytes[..length], Path::new("c")), Err(Unusable::Damaged { .. })), "cut at {length} unnoticed");
        }
    }

    #[test]
    fn a_changed_record_fails_the_checksum() {
        let mut bytes = sample();
        let record = br#"{\"epoch\":3}"#;
        let at = bytes.windows(record.len()).position(|w| w == record).expect("the record is in the header");
        bytes[at + record.len() - 2] = b'4';
        assert!(matches!(decode(&bytes, Path::new("c")), Err(Unusable::Altered { .. })));
    }
}
