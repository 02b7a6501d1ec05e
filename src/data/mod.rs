//! Data: session files and item features read, cleaned and split into a training-ready dataset, with a cache.
//!
//! - [`sessions`]: session files (any separator, columns and time format) into a compact columnar store.
//! - [`parquet`](mod@parquet): session files and item tables in Parquet, read row group by row group.
//! - [`prepare`](mod@prepare): the paper's filters and time split, item renumbering and features, into a [`Dataset`].
//! - [`features`]: dense vectors, TF-IDF text and categories as one row per item.
//! - [`cache`]: the prepared dataset on disk, keyed by the content hash of everything that went in.
//! - [`catalogue`]: what a trained model needs of the data to answer sessions, kept in its run folder.
//! - [`batches`]: session-parallel mini-batches as GRU4Rec builds them, for training and evaluation.
//! - [`validation`]: the last training sessions held out for tuning.
//! - [`synth`]: synthetic sessions with a planted feature signal, for scale benchmarks and tests.

pub mod batches;
pub mod cache;
pub mod catalogue;
pub mod error;
pub mod features;
pub mod intern;
pub mod parquet;
pub mod prepare;
pub mod sessions;
pub mod synth;
pub mod table;
mod stored;
mod time;
pub mod validation;

use std::path::PathBuf;

pub use error::{DataCode, DataError};
pub use prepare::{prepare, Dataset};

use crate::config::RunConfig;

/// How a dataset was obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Loaded from the cache at this path.
    Cache(PathBuf),
    /// Prepared from the files and written to the cache at this path.
    Prepared { cache: Option<PathBuf>, note: Option<String> },
}

/// The config's dataset: from the cache when its key matches, else prepared (and cached when `write_cache`).
pub fn load(config: &RunConfig, write_cache: bool) -> Result<(Dataset, Source), DataError> {
    let key = cache::key(config)?;
    let cache_dir = config.run.out.join("cache");
    let note = match cache::load(&cache_dir, &key) {
        Ok(Some(dataset)) => return Ok((dataset, Source::Cache(cache::path(&cache_dir, &key)))),
        Ok(None) => None,
        Err(unusable) => Some(format!("{unusable}; prepared again")),
    };
    let dataset = prepare(config)?;
    let cache = if write_cache { Some(cache::store(&dataset, &cache_dir, &key)?) } else { None };
    Ok((dataset, Source::Prepared { cache, note }))
}
