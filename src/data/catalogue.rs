//! A run folder's catalogue: what answering a session needs of the prepared data (the item index, the rows of
//! every feature the model reads, each item's training support), so that recommending needs neither the data
//! files nor the config's paths to them.
//!
//! `prnn train` writes it once, beside the run's first checkpoint; the file is sealed like the cache
//! (`stored`), and a damaged one is an error naming it, never a silently different catalogue.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use safetensors::Dtype;

use super::error::{DataCode, DataError};
use super::features::Feature;
use super::intern::Interner;
use super::prepare::Dataset;
use super::stored::{write_atomically, Damage, Reader, Writer};

pub const FILE_NAME: &str = "catalogue.safetensors";
/// Bumped whenever the layout below changes.
const LAYOUT_VERSION: &str = "prnn-catalogue-1";

/// The items a model was trained on, with the feature rows it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    /// Item IDs by dense index, as the checkpoint's item index has them.
    pub items: Interner,
    /// The rows of every feature input the model reads, by input name.
    pub features: IndexMap<String, Feature>,
    /// Each item's number of training events (cross-entropy's popularity correction reads it).
    pub support: Vec<u64>,
}

impl Catalogue {
    /// The sizes the catalogue gives a compiled spec: the items, and every stored feature's width.
    pub fn sizes(&self) -> crate::ir::Bindings {
        crate::ir::Bindings {
            items: Some(self.items.len() as u64),
            widths: self.features.iter().map(|(name, feature)| (name.clone(), feature.width() as u64)).collect(),
            ..Default::default()
        }
    }
}

/// Writes the catalogue of `dataset` for a model reading the feature inputs `inputs` as `dir/catalogue.safetensors`.
pub fn write(dir: &Path, dataset: &Dataset, inputs: &[&str]) -> Result<PathBuf, DataError> {
    let target = dir.join(FILE_NAME);
    let mut writer = Writer::default();
    writer.add_strings("items", &dataset.items);
    writer.add("items.support", Dtype::U64, vec![dataset.items.len()], &dataset.item_support());
    let kinds = writer.add_features(dataset.features.iter().filter(|(name, _)| inputs.contains(&name.as_str())));
    let fields = IndexMap::from([
        ("layout".to_string(), LAYOUT_VERSION.to_string()),
        ("features".to_string(), serde_json::to_string(&kinds).expect("kinds serialise")),
    ]);
    let bytes = writer.seal(fields).map_err(|e| DataError::new(DataCode::File, &target, format!("cannot encode the catalogue: {e}")))?;
    write_atomically(dir, &target, ".catalogue-", &bytes).map_err(|e| {
        DataError::new(DataCode::File, &target, format!("cannot write the run's catalogue: {e}"))
            .help("check free disk space and that the run folder is writable")
    })?;
    Ok(target)
}

/// The catalogue of the run folder `dir`; `Ok(None)` for a folder written before prnn kept one.
pub fn read(dir: &Path) -> Result<Option<Catalogue>, DataError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(&path, "run catalogue", &e)),
    };
    decode(&bytes).map(Some).map_err(|damage| {
        DataError::new(DataCode::File, &path, format!("the run's catalogue is damaged ({damage})")).help(
            "delete the file: prnn then reads the items and features from the data files the run config names \
             (they must still be there), or train again",
        )
    })
}

fn decode(bytes: &[u8]) -> Result<Catalogue, Damage> {
    let reader = Reader::open(bytes, LAYOUT_VERSION)?;
    let kinds: IndexMap<String, String> = serde_json::from_str(&reader.field("features")?)?;
    let items = reader.strings("items")?;
    let support: Vec<u64> = reader.values("items.support", Dtype::U64)?;
    if support.len() != items.len() {
        return Err(Damage::StringTable("items.support".into()));
    }
    let features = reader.features(kinds, items.len())?;
    Ok(Catalogue { items, features, support })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::features::{DenseFeature, SparseFeature};
    use crate::data::prepare::Report;
    use crate::data::sessions::{Event, SessionKeys, Sessions};

    fn dataset() -> Dataset {
        let mut items = Interner::new();
        for id in ["a", "b", "c"] {
            items.intern(id.as_bytes());
        }
        let train = Sessions {
            events: vec![Event { item: 0, offset: 0.0 }, Event { item: 2, offset: 1.0 }, Event { item: 2, offset: 0.0 }],
            offsets: vec![0, 2, 3],
            start: vec![0.0, 5.0],
            key: vec![1, 2],
            keys: SessionKeys::Numeric,
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
                    vocabulary: vec!["x".into(), "y".into()],
                }),
            ),
            ("unused".to_string(), Feature::Dense(DenseFeature { dim: 1, values: vec![1.0, 2.0, 3.0] })),
        ]);
        let report = Report {
            read: IndexMap::new(),
            skipped: IndexMap::new(),
            steps: vec![],
            train: Default::default(),
            test: Default::default(),
            features: vec![],
        };
        Dataset { items, train, test: Sessions::empty(), features, report }
    }

    #[test]
    fn keeps_the_items_their_support_and_only_the_features_the_model_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset();
        write(dir.path(), &data, &["image", "text"]).unwrap();
        let catalogue = read(dir.path()).unwrap().unwrap();
        assert_eq!(catalogue.items, data.items);
        assert_eq!(catalogue.support, vec![1, 0, 2]);
        assert_eq!(catalogue.features.keys().collect::<Vec<_>>(), ["image", "text"]);
        assert_eq!(catalogue.features["image"], data.features["image"]);
        assert_eq!(catalogue.features["text"], data.features["text"]);
        // Only the catalogue: no temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_without_one_has_none_and_a_changed_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let path = write(dir.path(), &dataset(), &["text"]).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("catalogue.safetensors") && error.contains("do not match its checksum"), "{error}");
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
