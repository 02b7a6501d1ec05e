//! The prepared-data cache: a safetensors file named by the content hash of every input file and setting.
//!
//! The key covers the bytes of each file read (not its path or time stamp), the format and preprocessing
//! settings, each input's options and prnn's cache layout version, so any change to what went in gives a
//! new file and a stale cache is never read. Files are written under a temporary name in the cache folder
//! and renamed into place, which is atomic: a run killed mid-write leaves a stray temporary file, never a
//! truncated cache under the real name.

use std::io::Read;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use safetensors::Dtype;

use super::error::{DataCode, DataError};
use super::prepare::{Dataset, Report};
use super::sessions::{Event, SessionKeys, Sessions};
pub use super::stored::Damage;
use super::stored::{write_atomically, Reader, Writer};
use crate::config::{InputBinding, RunConfig};

/// Bumped whenever the layout below or the meaning of a prepared dataset (filters, features, report)
/// changes; the key also holds prnn's version, so a release never reads another release's cache.
const LAYOUT_VERSION: &str = "prnn-dataset-3";

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

/// The tensors of one side's sessions.
fn add_sessions(writer: &mut Writer, side: &str, sessions: &Sessions) {
    let items: Vec<u32> = sessions.events.iter().map(|e| e.item).collect();
    let offsets: Vec<f32> = sessions.events.iter().map(|e| e.offset).collect();
    writer.add(format!("{side}.item"), Dtype::U32, vec![items.len()], &items);
    writer.add(format!("{side}.offset"), Dtype::F32, vec![offsets.len()], &offsets);
    writer.add(format!("{side}.offsets"), Dtype::U32, vec![sessions.offsets.len()], &sessions.offsets);
    writer.add(format!("{side}.start"), Dtype::F64, vec![sessions.start.len()], &sessions.start);
    writer.add(format!("{side}.key"), Dtype::U64, vec![sessions.key.len()], &sessions.key);
    if let SessionKeys::Named(names) = &sessions.keys {
        writer.add_strings(&format!("{side}.names"), names);
    }
}

/// Writes the dataset atomically under its key.
pub fn store(dataset: &Dataset, cache_dir: &Path, key: &str) -> Result<PathBuf, DataError> {
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        DataError::new(DataCode::File, cache_dir, format!("cannot create the cache folder: {e}"))
            .help("set `[run] out` to a writable folder")
    })?;
    let mut writer = Writer::default();
    writer.add_strings("items", &dataset.items);
    add_sessions(&mut writer, "train", &dataset.train);
    add_sessions(&mut writer, "test", &dataset.test);
    let kinds = writer.add_features(dataset.features.iter());
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
    let bytes = writer.seal(fields).map_err(|e| DataError::new(DataCode::File, cache_dir, format!("cannot encode the cache: {e}")))?;
    let target = path(cache_dir, key);
    write_atomically(cache_dir, &target, ".dataset-", &bytes).map_err(|e| {
        DataError::new(DataCode::File, &target, format!("cannot write the cache: {e}"))
            .help("check free disk space and that `[run] out` is writable")
    })?;
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
    let reader = Reader::open(bytes, LAYOUT_VERSION)?;
    if reader.field("key")? != key {
        return Err(Damage::OtherKey);
    }
    let report: Report = serde_json::from_str(&reader.field("report")?)?;
    let kinds: IndexMap<String, String> = serde_json::from_str(&reader.field("features")?)?;
    let key_kinds: Vec<String> = serde_json::from_str(&reader.field("session_keys")?)?;
    let items = reader.strings("items")?;
    let sessions = |side: &'static str, key_kind: &str| -> Result<Sessions, Damage> {
        let item: Vec<u32> = reader.values(&format!("{side}.item"), Dtype::U32)?;
        let offset: Vec<f32> = reader.values(&format!("{side}.offset"), Dtype::F32)?;
        if item.len() != offset.len() {
            return Err(Damage::EventLengths { side });
        }
        if let Some(&beyond) = item.iter().find(|&&i| i as usize >= items.len()) {
            return Err(Damage::ItemIndex { side, item: beyond, items: items.len() });
        }
        let sessions = Sessions {
            events: item.into_iter().zip(offset).map(|(item, offset)| Event { item, offset }).collect(),
            offsets: reader.values(&format!("{side}.offsets"), Dtype::U32)?,
            start: reader.values(&format!("{side}.start"), Dtype::F64)?,
            key: reader.values(&format!("{side}.key"), Dtype::U64)?,
            keys: if key_kind == "named" { SessionKeys::Named(reader.strings(&format!("{side}.names"))?) } else { SessionKeys::Numeric },
        };
        let ascending = sessions.offsets.first() == Some(&0) && sessions.offsets.windows(2).all(|pair| pair[0] <= pair[1]);
        if !ascending
            || sessions.offsets.len() != sessions.start.len() + 1
            || sessions.key.len() != sessions.start.len()
            || sessions.offsets.last().map(|&o| o as usize) != Some(sessions.events.len())
        {
            return Err(Damage::SessionOffsets { side });
        }
        Ok(sessions)
    };
    let train = sessions("train", key_kinds.first().map(String::as_str).unwrap_or("numeric"))?;
    let test = sessions("test", key_kinds.get(1).map(String::as_str).unwrap_or("numeric"))?;
    let features = reader.features(kinds, items.len())?;
    Ok(Dataset { items, train, test, features, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::features::{DenseFeature, Feature, SparseFeature};
    use crate::data::intern::Interner;
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
