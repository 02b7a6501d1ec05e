//! Prepared data in sealed safetensors files (the cache, a run folder's catalogue): tensors, string tables
//! and feature rows under one BLAKE3 checksum, renamed into place when written, checked when read.
//!
//! The checksum covers every tensor's name, type, shape and bytes (`checkpoint_file::checksum`), so a changed
//! byte is found; the reader also checks what the checksum cannot vouch for in a file written by someone
//! else: string tables that stay in bounds, and feature rows that index inside their vocabulary. A damaged
//! file is a [`Damage`], never a panic later, when the rows are used.

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::features::{DenseFeature, Feature, SparseFeature};
use super::intern::Interner;

/// The field holding the hex BLAKE3 of every tensor, in name order.
const CHECKSUM_FIELD: &str = "checksum";
/// The one metadata entry of a file: a JSON object of its fields.
const METADATA_KEY: &str = "prnn";

/// What is wrong inside a file that was read.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error(transparent)]
    Format(#[from] SafeTensorError),
    #[error("no metadata")]
    NoMetadata,
    #[error("no `{0}` in its metadata")]
    MissingField(String),
    #[error("written by another prnn version")]
    OtherLayout,
    #[error("its key does not match its name")]
    OtherKey,
    #[error("its bytes do not match its checksum")]
    Checksum,
    #[error(transparent)]
    Metadata(#[from] serde_json::Error),
    #[error("{name}: {source}")]
    Tensor { name: String, source: SafeTensorError },
    #[error("{name} has dtype {dtype:?}")]
    Dtype { name: String, dtype: Dtype },
    #[error("string table `{0}` is out of bounds or lists a string twice")]
    StringTable(String),
    #[error("{side} events disagree in length")]
    EventLengths { side: &'static str },
    #[error("{side} session offsets are inconsistent")]
    SessionOffsets { side: &'static str },
    #[error("{side} events name item {item}, beyond the {items} items")]
    ItemIndex { side: &'static str, item: u32, items: usize },
    #[error("feature `{name}`: {why}")]
    FeatureRows { name: String, why: String },
}

/// Tensors and their bytes, collected before writing.
#[derive(Default)]
pub(super) struct Writer {
    entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Writer {
    pub fn add<T: bytemuck::Pod>(&mut self, name: impl Into<String>, dtype: Dtype, shape: Vec<usize>, values: &[T]) {
        self.entries.push((name.into(), dtype, shape, bytemuck::cast_slice(values).to_vec()));
    }

    /// The strings of `interner` in index order, as `name.bytes` (one arena) and `name.ends`.
    pub fn add_strings(&mut self, name: &str, interner: &Interner) {
        let mut arena = Vec::new();
        let mut ends = Vec::with_capacity(interner.len());
        for index in 0..interner.len() as u32 {
            arena.extend_from_slice(interner.bytes(index));
            ends.push(arena.len() as u64);
        }
        self.add(format!("{name}.bytes"), Dtype::U8, vec![arena.len()], &arena);
        self.add(format!("{name}.ends"), Dtype::U64, vec![ends.len()], &ends);
    }

    /// Every feature as `feature.NAME.*` tensors; returns each one's kind, for the metadata.
    pub fn add_features<'f>(&mut self, features: impl Iterator<Item = (&'f String, &'f Feature)>) -> IndexMap<String, &'static str> {
        let mut kinds = IndexMap::new();
        for (name, feature) in features {
            match feature {
                Feature::Dense(dense) => {
                    kinds.insert(name.clone(), "dense");
                    let shape = vec![dense.values.len() / dense.dim.max(1), dense.dim];
                    self.add(format!("feature.{name}.values"), Dtype::F32, shape, &dense.values);
                }
                Feature::Sparse(sparse) => {
                    kinds.insert(name.clone(), "sparse");
                    self.add(format!("feature.{name}.indptr"), Dtype::U64, vec![sparse.indptr.len()], &sparse.indptr);
                    self.add(format!("feature.{name}.indices"), Dtype::U32, vec![sparse.indices.len()], &sparse.indices);
                    self.add(format!("feature.{name}.values"), Dtype::F32, vec![sparse.values.len()], &sparse.values);
                    let mut vocabulary = Interner::new();
                    for term in &sparse.vocabulary {
                        vocabulary.intern(term.as_bytes());
                    }
                    self.add_strings(&format!("feature.{name}.vocabulary"), &vocabulary);
                }
            }
        }
        kinds
    }

    /// The file's bytes: the tensors, and `fields` with the checksum added as the one metadata entry.
    pub fn seal(self, mut fields: IndexMap<String, String>) -> Result<Vec<u8>, SafeTensorError> {
        let mut sealed: Vec<(&str, Dtype, &[usize], &[u8])> =
            self.entries.iter().map(|(name, dtype, shape, bytes)| (name.as_str(), *dtype, shape.as_slice(), bytes.as_slice())).collect();
        sealed.sort_by(|a, b| a.0.cmp(b.0));
        let sum = crate::checkpoint_file::checksum(sealed.into_iter(), "");
        fields.insert(CHECKSUM_FIELD.to_string(), blake3::Hash::from_bytes(sum).to_hex().to_string());
        // One metadata entry holding every field in a fixed order: safetensors writes its metadata map in the map's
        // iteration order, which a HashMap of several entries changes from process to process, and the same
        // data must give the same file (docs/reliability.md).
        let metadata = HashMap::from([(METADATA_KEY.to_string(), serde_json::to_string(&fields).expect("strings serialise"))]);
        let views: Vec<(String, TensorView<'_>)> = self
            .entries
            .iter()
            .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).expect("shapes match their bytes")))
            .collect();
        safetensors::serialize(views, Some(metadata))
    }
}

/// Writes `bytes` as `target` through a temporary file in `dir` and a rename, so that a process killed at any
/// moment leaves either no file or the whole one (and a stray `.PREFIX*.partial` file at worst).
pub(super) fn write_atomically(dir: &Path, target: &Path, prefix: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = tempfile::Builder::new().prefix(prefix).suffix(".partial").tempfile_in(dir)?;
    std::io::Write::write_all(&mut temporary, bytes)?;
    // Temporary files are private (0600); prepared data is as readable as any other output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temporary.as_file().sync_all()?;
    temporary.persist(target).map_err(|e| e.error)?;
    Ok(())
}

/// A file's tensors and metadata fields, its checksum verified.
pub(super) struct Reader<'b> {
    tensors: SafeTensors<'b>,
    fields: IndexMap<String, String>,
}

/// Values of any alignment (tensor data may sit anywhere inside the file buffer) as a vector.
fn values<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    bytemuck::pod_collect_to_vec(bytes)
}

impl<'b> Reader<'b> {
    /// Parses `bytes` and checks them against their checksum; `layout` must be the file's `layout` field.
    pub fn open(bytes: &'b [u8], layout: &str) -> Result<Reader<'b>, Damage> {
        let tensors = SafeTensors::deserialize(bytes)?;
        let (_, metadata) = SafeTensors::read_metadata(bytes)?;
        let metadata = metadata.metadata().clone().ok_or(Damage::NoMetadata)?;
        let fields: IndexMap<String, String> =
            serde_json::from_str(metadata.get(METADATA_KEY).ok_or_else(|| Damage::MissingField(METADATA_KEY.to_string()))?)?;
        let reader = Reader { tensors, fields };
        if reader.field("layout")? != layout {
            return Err(Damage::OtherLayout);
        }
        let mut names: Vec<&str> = reader.tensors.names().into_iter().collect();
        names.sort();
        let mut sealed = Vec::with_capacity(names.len());
        for name in names {
            let view = reader.tensors.tensor(name).map_err(|source| Damage::Tensor { name: name.to_string(), source })?;
            sealed.push((name, view));
        }
        let sum = crate::checkpoint_file::checksum(sealed.iter().map(|(name, view)| (*name, view.dtype(), view.shape(), view.data())), "");
        if blake3::Hash::from_bytes(sum).to_hex().as_str() != reader.field(CHECKSUM_FIELD)? {
            return Err(Damage::Checksum);
        }
        Ok(reader)
    }

    pub fn field(&self, name: &str) -> Result<String, Damage> {
        self.fields.get(name).cloned().ok_or_else(|| Damage::MissingField(name.to_string()))
    }

    fn view(&self, name: &str) -> Result<TensorView<'b>, Damage> {
        self.tensors.tensor(name).map_err(|source| Damage::Tensor { name: name.to_string(), source })
    }

    /// The bytes of tensor `name`, which must be of `dtype`.
    fn bytes(&self, name: &str, dtype: Dtype) -> Result<&'b [u8], Damage> {
        let view = self.view(name)?;
        if view.dtype() != dtype {
            return Err(Damage::Dtype { name: name.to_string(), dtype: view.dtype() });
        }
        Ok(view.data())
    }

    /// The values of tensor `name`, which must be of `dtype`.
    pub fn values<T: bytemuck::Pod>(&self, name: &str, dtype: Dtype) -> Result<Vec<T>, Damage> {
        Ok(values(self.bytes(name, dtype)?))
    }

    /// The string table `name` (`Writer::add_strings`), every string once.
    pub fn strings(&self, name: &str) -> Result<Interner, Damage> {
        let arena = self.bytes(&format!("{name}.bytes"), Dtype::U8)?;
        let ends: Vec<u64> = self.values(&format!("{name}.ends"), Dtype::U64)?;
        let mut interner = Interner::new();
        let mut start = 0usize;
        for &end in &ends {
            let end = usize::try_from(end).map_err(|_| Damage::StringTable(name.to_string()))?;
            interner.intern(arena.get(start..end).ok_or_else(|| Damage::StringTable(name.to_string()))?);
            start = end;
        }
        // A string listed twice would shift every later index.
        if interner.len() != ends.len() {
            return Err(Damage::StringTable(name.to_string()));
        }
        Ok(interner)
    }

    /// The features named in `kinds` (`Writer::add_features`), each with one row per item of `n_items`.
    pub fn features(&self, kinds: IndexMap<String, String>, n_items: usize) -> Result<IndexMap<String, Feature>, Damage> {
        let mut features = IndexMap::new();
        for (name, kind) in kinds {
            let feature = match kind.as_str() {
                "dense" => {
                    let view = self.view(&format!("feature.{name}.values"))?;
                    let dim = match view.shape() {
                        [rows, dim] if *rows == n_items => *dim,
                        shape => return Err(rows_damage(&name, format!("its shape is {shape:?}, the data has {n_items} items"))),
                    };
                    Feature::Dense(DenseFeature { dim, values: self.values(&format!("feature.{name}.values"), Dtype::F32)? })
                }
                "sparse" => {
                    let vocabulary: Vec<String> = self.strings(&format!("feature.{name}.vocabulary"))?.iter().map(String::from).collect();
                    let sparse = SparseFeature {
                        width: vocabulary.len(),
                        indptr: self.values(&format!("feature.{name}.indptr"), Dtype::U64)?,
                        indices: self.values(&format!("feature.{name}.indices"), Dtype::U32)?,
                        values: self.values(&format!("feature.{name}.values"), Dtype::F32)?,
                        vocabulary,
                    };
                    check_sparse_rows(&sparse, n_items).map_err(|why| rows_damage(&name, why))?;
                    Feature::Sparse(sparse)
                }
                other => return Err(rows_damage(&name, format!("unknown kind `{other}`"))),
            };
            features.insert(name, feature);
        }
        Ok(features)
    }
}

fn rows_damage(name: &str, why: String) -> Damage {
    Damage::FeatureRows { name: name.to_string(), why }
}

/// Whether compressed sparse rows hold `n_items` rows of ascending columns inside the vocabulary.
fn check_sparse_rows(sparse: &SparseFeature, n_items: usize) -> Result<(), String> {
    if sparse.indptr.len() != n_items + 1 {
        return Err(format!("{} row offsets for {n_items} items", sparse.indptr.len()));
    }
    if sparse.indices.len() != sparse.values.len() {
        return Err(format!("{} columns but {} values", sparse.indices.len(), sparse.values.len()));
    }
    if sparse.indptr[0] != 0 || sparse.indptr.windows(2).any(|pair| pair[0] > pair[1]) || sparse.indptr[n_items] != sparse.indices.len() as u64 {
        return Err("its row offsets are not ascending from 0 to the number of values".into());
    }
    if let Some(&column) = sparse.indices.iter().find(|&&column| column as usize >= sparse.width) {
        return Err(format!("column {column} is beyond its vocabulary of {}", sparse.width));
    }
    if sparse.values.iter().any(|value| !value.is_finite()) {
        return Err("a value is not finite".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(indptr: Vec<u64>, indices: Vec<u32>) -> SparseFeature {
        let values = vec![1.0; indices.len()];
        SparseFeature { width: 3, indptr, indices, values, vocabulary: vec!["a".into(), "b".into(), "c".into()] }
    }

    #[test]
    fn sparse_rows_must_stay_inside_their_offsets_and_vocabulary() {
        assert_eq!(check_sparse_rows(&sparse(vec![0, 1, 3], vec![2, 0, 1]), 2), Ok(()));
        assert!(check_sparse_rows(&sparse(vec![0, 1, 3], vec![2, 0, 1]), 3).unwrap_err().contains("row offsets for 3 items"));
        assert!(check_sparse_rows(&sparse(vec![0, 2, 1], vec![2, 0, 1]), 2).unwrap_err().contains("not ascending"));
        assert!(check_sparse_rows(&sparse(vec![0, 1, 2], vec![2, 0, 1]), 2).unwrap_err().contains("not ascending"));
        assert!(check_sparse_rows(&sparse(vec![0, 1, 3], vec![2, 0, 7]), 2).unwrap_err().contains("column 7 is beyond"));
    }

    #[test]
    fn a_string_table_listing_a_string_twice_is_damage() {
        let mut writer = Writer::default();
        let arena = b"abab".to_vec();
        writer.add("ids.bytes", Dtype::U8, vec![4], &arena);
        writer.add("ids.ends", Dtype::U64, vec![2], &[2u64, 4]);
        let bytes = writer.seal(IndexMap::from([("layout".to_string(), "test".to_string())])).unwrap();
        let reader = Reader::open(&bytes, "test").unwrap();
        assert!(matches!(reader.strings("ids"), Err(Damage::StringTable(_))));
        assert!(matches!(Reader::open(&bytes, "other"), Err(Damage::OtherLayout)));
    }
}
