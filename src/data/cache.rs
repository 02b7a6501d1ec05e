//! The prepared-data cache: a safetensors file named by the content hash of every input file and setting.
//!
//! The key covers the bytes of each file read (not its path or time stamp), the format and preprocessing
//! settings, each input's options and prnn's cache layout version, so any change to what went in gives a
//! new file and a stale cache is never read. Files are written under a temporary name in the cache folder
//! and renamed into place, which is atomic: a run killed mid-write leaves a stray temporary file, never a
//! truncated cache under the real name.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::error::{DataCode, DataError};
use super::features::{DenseFeature, Feature, SparseFeature};
use super::intern::Interner;
use super::prepare::{Dataset, Report};
use super::sessions::{Event, SessionKeys, Sessions};
use crate::config::{InputBinding, RunConfig};

/// Bumped whenever the layout below or the meaning of a prepared dataset (filters, features, report)
/// changes; the key also holds prnn's version, so a release never reads another release's cache.
const LAYOUT_VERSION: &str = "prnn-dataset-3";
/// The field holding the hex BLAKE3 of every tensor, in name order (`checkpoint_file::checksum`).
const CHECKSUM_FIELD: &str = "checksum";
/// The one metadata entry of a cache file: a JSON object of its fields.
const METADATA_KEY: &str = "prnn";

/// The cache key: a hex BLAKE3 hash of everything that decides the prepared dataset.
pub fn key(config: &RunConfig) -> Result<String, DataError> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(LAYOUT_VERSION.as_bytes());
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    let settings = serde_json::json!({
        "format": config.data.format,
        "preprocess": config.preprocess,
        "split": if config.data.sessions.is_some() { "one file" } else { "train and test" },
    });
    hasher.update(settings.to_string().as_bytes());
    let session_files = [&config.data.sessions, &config.data.train, &config.data.test];
    for path in session_files.into_iter().flatten() {
        hash_file(&mut hasher, path.get_ref(), "session file")?;
    }
    for (name, binding) in &config.inputs {
        let mut options = serde_json::to_value(binding.get_ref()).expect("bindings serialise");
        if let Some(map) = options.as_object_mut() {
            // Paths are covered by their contents below; leaving them out lets a moved dataset hit the cache.
            for path_key in ["vectors", "ids", "items"] {
                map.remove(path_key);
            }
        }
        hasher.update(name.get_ref().as_bytes());
        hasher.update(options.to_string().as_bytes());
        for (path, what) in binding_files(binding.get_ref()) {
            hash_file(&mut hasher, path, what)?;
        }
    }
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// The files an input reads, with what each is, for messages.
fn binding_files(binding: &InputBinding) -> Vec<(&Path, &'static str)> {
    match binding {
        InputBinding::ItemId {} => vec![],
        InputBinding::Dense { vectors, ids, .. } => {
            std::iter::once((vectors.as_path(), "vectors file")).chain(ids.as_deref().map(|ids| (ids, "ID list"))).collect()
        }
        InputBinding::Sparse { items, .. } => vec![(items.as_path(), "item file")],
    }
}

fn hash_file(hasher: &mut blake3::Hasher, path: &Path, what: &str) -> Result<(), DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, what, &e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| DataError::io(path, what, &e))?;
        if n == 0 {
            break;
        }
        length += n as u64;
        hasher.update(&buffer[..n]);
    }
    // The length separates one file's bytes from the next one's.
    hasher.update(&length.to_le_bytes());
    Ok(())
}

/// Where the cache for `key` lives.
pub fn path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(format!("dataset-{key}.safetensors"))
}

/// Tensors and their bytes, collected before writing.
struct Tensors {
    entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Tensors {
    fn add<T: bytemuck::Pod>(&mut self, name: impl Into<String>, dtype: Dtype, shape: Vec<usize>, values: &[T]) {
        self.entries.push((name.into(), dtype, shape, bytemuck::cast_slice(values).to_vec()));
    }

    fn add_strings(&mut self, name: &str, interner: &Interner) {
        let mut arena = Vec::new();
        let mut ends = Vec::with_capacity(interner.len());
        for index in 0..interner.len() as u32 {
            arena.extend_from_slice(interner.bytes(index));
            ends.push(arena.len() as u64);
        }
        self.add(format!("{name}.bytes"), Dtype::U8, vec![arena.len()], &arena);
        self.add(format!("{name}.ends"), Dtype::U64, vec![ends.len()], &ends);
    }

    fn add_sessions(&mut self, side: &str, sessions: &Sessions) {
        let items: Vec<u32> = sessions.events.iter().map(|e| e.item).collect();
        let offsets: Vec<f32> = sessions.events.iter().map(|e| e.offset).collect();
        self.add(format!("{side}.item"), Dtype::U32, vec![items.len()], &items);
        self.add(format!("{side}.offset"), Dtype::F32, vec![offsets.len()], &offsets);
        self.add(format!("{side}.offsets"), Dtype::U32, vec![sessions.offsets.len()], &sessions.offsets);
        self.add(format!("{side}.start"), Dtype::F64, vec![sessions.start.len()], &sessions.start);
        self.add(format!("{side}.key"), Dtype::U64, vec![sessions.key.len()], &sessions.key);
        if let SessionKeys::Named(names) = &sessions.keys {
            self.add_strings(&format!("{side}.names"), names);
        }
    }
}

/// Writes the dataset atomically under its key.
pub fn store(dataset: &Dataset, cache_dir: &Path, key: &str) -> Result<PathBuf, DataError> {
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        DataError::new(DataCode::File, cache_dir, format!("cannot create the cache folder: {e}"))
            .help("set `[run] out` to a writable folder")
    })?;
    let mut tensors = Tensors { entries: Vec::new() };
    tensors.add_strings("items", &dataset.items);
    tensors.add_sessions("train", &dataset.train);
    tensors.add_sessions("test", &dataset.test);
    let mut kinds = IndexMap::new();
    for (name, feature) in &dataset.features {
        match feature {
            Feature::Dense(dense) => {
                kinds.insert(name.clone(), "dense");
                tensors.add(
                    format!("feature.{name}.values"),
                    Dtype::F32,
                    vec![dense.values.len() / dense.dim.max(1), dense.dim],
                    &dense.values,
                );
            }
            Feature::Sparse(sparse) => {
                kinds.insert(name.clone(), "sparse");
                tensors.add(format!("feature.{name}.indptr"), Dtype::U64, vec![sparse.indptr.len()], &sparse.indptr);
                tensors.add(format!("feature.{name}.indices"), Dtype::U32, vec![sparse.indices.len()], &sparse.indices);
                tensors.add(format!("feature.{name}.values"), Dtype::F32, vec![sparse.values.len()], &sparse.values);
                let mut vocabulary = Interner::new();
                for term in &sparse.vocabulary {
                    vocabulary.intern(term.as_bytes());
                }
                tensors.add_strings(&format!("feature.{name}.vocabulary"), &vocabulary);
            }
        }
    }
    // One metadata entry holding every field in a fixed order: safetensors writes its metadata map in the map's
    // iteration order, which a HashMap of several entries changes from process to process, and the same
    // dataset must give the same cache file (docs/reliability.md).
    let fields = IndexMap::from([
        ("layout".to_string(), LAYOUT_VERSION.to_string()),
        ("key".to_string(), key.to_string()),
        ("report".to_string(), serde_json::to_string(&dataset.report).expect("reports serialise")),
        ("features".to_string(), serde_json::to_string(&kinds).expect("kinds serialise")),
        (
            "session_keys".to_string(),
            serde_json::to_string(&[key_kind(&dataset.train), key_kind(&dataset.test)]).expect("strings serialise"),
        ),
    ]);
    // Sealed: a cache file whose bytes changed after it was written is prepared again, not trusted.
    let mut sealed: Vec<(&str, Dtype, &[usize], &[u8])> =
        tensors.entries.iter().map(|(name, dtype, shape, bytes)| (name.as_str(), *dtype, shape.as_slice(), bytes.as_slice())).collect();
    sealed.sort_by(|a, b| a.0.cmp(b.0));
    let sum = crate::checkpoint_file::checksum(sealed.into_iter(), "");
    let mut fields = fields;
    fields.insert(CHECKSUM_FIELD.to_string(), blake3::Hash::from_bytes(sum).to_hex().to_string());
    let metadata = HashMap::from([(METADATA_KEY.to_string(), serde_json::to_string(&fields).expect("strings serialise"))]);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .entries
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).expect("shapes match their bytes")))
        .collect();
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| DataError::new(DataCode::File, cache_dir, format!("cannot encode the cache: {e}")))?;
    let target = path(cache_dir, key);
    let write_error = |e: std::io::Error| {
        DataError::new(DataCode::File, &target, format!("cannot write the cache: {e}"))
            .help("check free disk space and that `[run] out` is writable")
    };
    let mut temporary = tempfile::Builder::new().prefix(".dataset-").suffix(".partial").tempfile_in(cache_dir).map_err(write_error)?;
    std::io::Write::write_all(&mut temporary, &bytes).map_err(write_error)?;
    // Temporary files are private (0600); the cache is as readable as any other output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(write_error)?;
    }
    temporary.as_file().sync_all().map_err(write_error)?;
    temporary.persist(&target).map_err(|e| write_error(e.error))?;
    Ok(target)
}

fn key_kind(sessions: &Sessions) -> &'static str {
    match sessions.keys {
        SessionKeys::Numeric => "numeric",
        SessionKeys::Named(_) => "named",
    }
}

/// Why a cache file was not used; the caller rebuilds and says so.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is unusable ({why})", path.display())]
    Damaged { path: PathBuf, why: Damage },
}

/// What is wrong inside a cache file that was read.
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
    #[error("string table out of bounds")]
    StringTable,
    #[error("{side} events disagree in length")]
    EventLengths { side: &'static str },
    #[error("{side} session offsets are inconsistent")]
    SessionOffsets { side: &'static str },
    #[error("dense feature is not 2-D")]
    DenseNotMatrix,
}

/// Loads the dataset cached under `key`, if there is one. `Ok(None)`: no cache yet.
pub fn load(cache_dir: &Path, key: &str) -> Result<Option<Dataset>, Unusable> {
    let file = path(cache_dir, key);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Unusable::Read { path: file, source }),
    };
    decode(&bytes, key).map(Some).map_err(|why| Unusable::Damaged { path: file, why })
}

fn decode(bytes: &[u8], key: &str) -> Result<Dataset, Damage> {
    let tensors = SafeTensors::deserialize(bytes)?;
    let (_, metadata) = SafeTensors::read_metadata(bytes)?;
    let metadata = metadata.metadata().clone().ok_or(Damage::NoMetadata)?;
    let fields: IndexMap<String, String> =
        serde_json::from_str(metadata.get(METADATA_KEY).ok_or_else(|| Damage::MissingField(METADATA_KEY.to_string()))?)?;
    let field = |name: &str| fields.get(name).cloned().ok_or_else(|| Damage::MissingField(name.to_string()));
    if field("layout")? != LAYOUT_VERSION {
        return Err(Damage::OtherLayout);
    }
    if field("key")? != key {
        return Err(Damage::OtherKey);
    }
    let mut names: Vec<&str> = tensors.names().into_iter().collect();
    names.sort();
    let mut sealed = Vec::with_capacity(names.len());
    for name in names {
        let view = tensors.tensor(name).map_err(|source| Damage::Tensor { name: name.to_string(), source })?;
        sealed.push((name, view));
    }
    let sum = crate::checkpoint_file::checksum(sealed.iter().map(|(name, view)| (*name, view.dtype(), view.shape(), view.data())), "");
    if blake3::Hash::from_bytes(sum).to_hex().as_str() != field(CHECKSUM_FIELD)? {
        return Err(Damage::Checksum);
    }
    let report: Report = serde_json::from_str(&field("report")?)?;
    let kinds: IndexMap<String, String> = serde_json::from_str(&field("features")?)?;
    let key_kinds: Vec<String> = serde_json::from_str(&field("session_keys")?)?;

    let array = |name: &str, dtype: Dtype| -> Result<&[u8], Damage> {
        let view = tensors.tensor(name).map_err(|source| Damage::Tensor { name: name.to_string(), source })?;
        if view.dtype() != dtype {
            return Err(Damage::Dtype { name: name.to_string(), dtype: view.dtype() });
        }
        Ok(view.data())
    };
    fn values<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
        // The data may sit at any alignment inside the file buffer.
        bytemuck::pod_collect_to_vec(bytes)
    }
    let strings = |name: &str| -> Result<Interner, Damage> {
        let arena = array(&format!("{name}.bytes"), Dtype::U8)?;
        let ends: Vec<u64> = values(array(&format!("{name}.ends"), Dtype::U64)?);
        let mut interner = Interner::new();
        let mut start = 0usize;
        for end in ends {
            let end = end as usize;
            interner.intern(arena.get(start..end).ok_or(Damage::StringTable)?);
            start = end;
        }
        Ok(interner)
    };
    let sessions = |side: &'static str, key_kind: &str| -> Result<Sessions, Damage> {
        let items: Vec<u32> = values(array(&format!("{side}.item"), Dtype::U32)?);
        let offsets: Vec<f32> = values(array(&format!("{side}.offset"), Dtype::F32)?);
        if items.len() != offsets.len() {
            return Err(Damage::EventLengths { side });
        }
        let sessions = Sessions {
            events: items.into_iter().zip(offsets).map(|(item, offset)| Event { item, offset }).collect(),
            offsets: values(array(&format!("{side}.offsets"), Dtype::U32)?),
            start: values(array(&format!("{side}.start"), Dtype::F64)?),
            key: values(array(&format!("{side}.key"), Dtype::U64)?),
            keys: if key_kind == "named" { SessionKeys::Named(strings(&format!("{side}.names"))?) } else { SessionKeys::Numeric },
        };
        if sessions.offsets.len() != sessions.start.len() + 1 || sessions.offsets.last().map(|&o| o as usize) != Some(sessions.events.len())
        {
            return Err(Damage::SessionOffsets { side });
        }
        Ok(sessions)
    };
    let items = strings("items")?;
    let train = sessions("train", key_kinds.first().map(String::as_str).unwrap_or("numeric"))?;
    let test = sessions("test", key_kinds.get(1).map(String::as_str).unwrap_or("numeric"))?;
    let mut features = IndexMap::new();
    for (name, kind) in kinds {
        let feature = if kind == "dense" {
            let view = tensors.tensor(&format!("feature.{name}.values"))?;
            let dim = *view.shape().get(1).ok_or(Damage::DenseNotMatrix)?;
            Feature::Dense(DenseFeature { dim, values: values(view.data()) })
        } else {
            let vocabulary: Vec<String> = strings(&format!("feature.{name}.vocabulary"))?.iter().map(String::from).collect();
            Feature::Sparse(SparseFeature {
                width: vocabulary.len(),
                indptr: values(array(&format!("feature.{name}.indptr"), Dtype::U64)?),
                indices: values(array(&format!("feature.{name}.indices"), Dtype::U32)?),
                values: values(array(&format!("feature.{name}.values"), Dtype::F32)?),
                vocabulary,
            })
        };
        features.insert(name, feature);
    }
    Ok(Dataset { items, train, test, features, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::prepare::Counts;

    fn dataset() -> Dataset {
        let mut items = Interner::new();
        for id in ["a", "b", "c"] {
            items.intern(id.as_bytes());
        }
        let train = Sessions {
            events: vec![Event { item: 0, offset: 0.0 }, Event { item: 1, offset: 1.5 }, Event { item: 2, offset: 0.0 }],
            offsets: vec![0, 2, 3],
            start: vec![10.0, 20.0],
            key: vec![1, 2],
            keys: SessionKeys::Numeric,
        };
        let mut names = Interner::new();
        names.intern(b"s-9");
        let test = Sessions {
            events: vec![Event { item: 2, offset: 0.0 }, Event { item: 0, offset: 60.0 }],
            offsets: vec![0, 2],
            start: vec![30.0],
            key: vec![0],
            keys: SessionKeys::Named(names),
        };
        let features = IndexMap::from([
            ("image".to_string(), Feature::Dense(DenseFeature { dim: 2, values: vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5] })),
            (
                "text".to_string(),
                Feature::Sparse(SparseFeature {
                    width: 2,
                    indptr: vec![0, 1, 1, 3],
                    indices: vec![1, 0, 1],
                    values: vec![1.0, 0.6, 0.8],
                    vocabulary: vec!["x".into(), "y z".into()],
                }),
            ),
        ]);
        let report = Report {
            read: IndexMap::new(),
            skipped: IndexMap::new(),
            steps: vec![],
            train: Counts::of(&train),
            test: Counts::of(&test),
            features: vec![],
        };
        Dataset { items, train, test, features, report }
    }

    #[test]
    fn round_trips_a_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let original = dataset();
        let written = store(&original, dir.path(), "k1").unwrap();
        assert_eq!(written, path(dir.path(), "k1"));
        let loaded = load(dir.path(), "k1").unwrap().unwrap();
        assert_eq!(loaded, original);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_cache_is_none_and_a_damaged_one_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "k1").unwrap().is_none());
        let written = store(&dataset(), dir.path(), "k1").unwrap();
        let bytes = std::fs::read(&written).unwrap();
        std::fs::write(&written, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load(dir.path(), "k1").is_err());
        // A file renamed to another key is not taken for it.
        std::fs::write(path(dir.path(), "k2"), &bytes).unwrap();
        let error = load(dir.path(), "k2").unwrap_err();
        assert!(matches!(error, Unusable::Damaged { why: Damage::OtherKey, .. }), "{error:?}");
        assert!(error.to_string().contains("key does not match"), "{error}");
    }

    #[test]
    fn a_cache_whose_data_changed_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let written = store(&dataset(), dir.path(), "k1").unwrap();
        let mut bytes = std::fs::read(&written).unwrap();
        // The last byte belongs to a tensor's data, not the header: it still parses, but the seal breaks.
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&written, &bytes).unwrap();
        let error = load(dir.path(), "k1").unwrap_err();
        assert!(matches!(error, Unusable::Damaged { why: Damage::Checksum, .. }), "{error:?}");
    }
}
