//! Synthetic sessions with a planted feature signal.
//!
//! Two uses: scale benchmarks (up to 10^8 events, generated as a stream so that nothing holds them all), and
//! tests that item features carry information that item IDs learn only slowly.
//!
//! # The model
//!
//! - Items `0..items` (numeric IDs, GRU4Rec style). Each has a latent cluster in `0..clusters`; the clusters
//!   are balanced (sizes differ by at most one) and the IDs are shuffled, so neither ID order nor ID parity
//!   says anything about the cluster.
//! - Within a cluster, items have Zipf popularity (weight `1 / (rank + 1)`, the rank being a random order
//!   independent of the IDs): a few items are popular, most are seen rarely. With many items, an ID
//!   embedding has to learn each item's cluster from a handful of occurrences.
//! - The clusters form one random cycle, `successor(c)` (Sattolo's algorithm: no cluster is its own
//!   successor, unless there is only one). The next event's cluster is `successor(c)` with probability
//!   `signal`, otherwise a uniformly random cluster (which may also be the successor: the planted transition
//!   happens with probability `signal + (1 - signal) / clusters`). The item is then drawn within that
//!   cluster by popularity. A session's first item is popularity-weighted over all items.
//! - The process is first-order Markov in clusters: given the current item's cluster, history tells nothing
//!   more, so [`oracle_metrics`] is the ceiling for any next-item predictor.
//! - Features reveal the cluster: `items.tsv` has a `category` column `cluster_<c>` (exact) and a `noise`
//!   column of the same cardinality that is independent of everything; `vectors.npy` holds a per-cluster
//!   centroid (standard normal per coordinate) plus noise with standard deviation [`VECTOR_NOISE`] per
//!   coordinate. The rows of both files come in a third random order, listed in `vectors.ids`, so a reader
//!   that assumed row `i` = item `i` would be caught.
//! - Session lengths are 2 plus a geometric number, mean `mean_length`. Sessions `0..sessions` start at
//!   evenly spaced, nondecreasing Unix times from 1 400 000 000 over `days` days; events are 60 s apart.
//!   Sessions starting in the last day form `test.tsv`, the others `train.tsv`; because start times never
//!   decrease, the training file is exactly a prefix of [`SessionStream`]'s output and the test file the rest.
//!   Unlike GRU4Rec's preprocessing, nothing is filtered: test sessions may contain items absent from training.
//!
//! Everything comes from xoshiro256** generators seeded through SplitMix64, one independent stream per
//! purpose, so output is reproducible bit for bit, and the item catalogue (clusters, popularity, successors)
//! does not depend on `sessions` or `days`: a small and a large dataset with one seed share their items.
//!
//! # Layout
//!
//! This file holds the settings and writes the dataset; `planted.rs` builds the item catalogue (clusters,
//! popularity, successors) and the oracle's ceiling, `sessions.rs` draws sessions and writes them as TSV text,
//! and `files.rs` writes the item files, the vectors and the README.

mod files;
mod planted;
mod sessions;

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use files::{already_exists, create_output, readme_text, write_item_files};
use planted::Planted;
pub use planted::{cluster_of, oracle_metrics, successor_of, OracleMetrics};
pub use sessions::SessionStream;
use sessions::{push_session, Sessions, EVENTS_HEADER};

/// Unix time of the first session's start.
pub const BASE_TIME: u64 = 1_400_000_000;
const DAY: u64 = 86_400;
/// Seconds between consecutive events of a session.
pub const EVENT_GAP: u64 = 60;
/// Standard deviation of the per-coordinate noise around a cluster centroid (centroids are standard normal,
/// so two centroids lie about `sqrt(2 * dim)` apart and an item about `VECTOR_NOISE * sqrt(dim)` from its own).
pub const VECTOR_NOISE: f64 = 0.5;

/// The files [`write_dataset`] writes, in the order it checks them.
pub const FILES: [&str; 6] = ["train.tsv", "test.tsv", "items.tsv", "vectors.npy", "vectors.ids", "README.md"];

/// What to generate. Every field enters the output; `seed` alone picks among datasets of the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub sessions: u64,
    pub items: u32,
    pub clusters: u32,
    /// Length of each item's dense vector.
    pub dim: u32,
    /// Probability that the next event's cluster is forced to the current cluster's successor.
    pub signal: f64,
    /// Mean session length in events (at least 2: every session has two or more events).
    pub mean_length: f64,
    /// Days the session start times span; the last one is the test set.
    pub days: u32,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { sessions: 10_000, items: 2_000, clusters: 20, dim: 16, signal: 0.8, mean_length: 5.0, days: 30, seed: 7 }
    }
}

impl SynthConfig {
    /// Rejects settings the model cannot honour, as an `InvalidInput` error saying which and why.
    pub fn validate(&self) -> io::Result<()> {
        let problem = if self.items == 0 {
            Some("items must be at least 1".to_string())
        } else if self.clusters == 0 || self.clusters > self.items {
            Some(format!("clusters must be between 1 and items ({}), not {}", self.items, self.clusters))
        } else if self.dim == 0 {
            Some("dim must be at least 1".to_string())
        } else if !(0.0..=1.0).contains(&self.signal) {
            Some(format!("signal must be between 0 and 1, not {}", self.signal))
        } else if !(self.mean_length >= 2.0 && self.mean_length.is_finite()) {
            Some(format!("mean_length must be a finite number of at least 2, not {}", self.mean_length))
        } else if self.days < 2 {
            // One day would put every session in the test set.
            Some(format!("days must be at least 2, not {}", self.days))
        } else {
            None
        };
        match problem {
            Some(message) => Err(io::Error::new(io::ErrorKind::InvalidInput, message)),
            None => Ok(()),
        }
    }
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub train_events: u64,
    pub train_sessions: u64,
    pub test_events: u64,
    pub test_sessions: u64,
    pub items: u32,
}

/// Writes `train.tsv`, `test.tsv` (GRU4Rec format), `items.tsv`, `vectors.npy`, `vectors.ids` and
/// `README.md` (the settings and the model) into `dir`, creating it if missing.
///
/// Without `force`, nothing is written if any of these files already exists: the error is of kind
/// `AlreadyExists` and names the file. With `force`, existing files are overwritten. An invalid config is an
/// `InvalidInput` error, also before anything is written.
pub fn write_dataset(config: &SynthConfig, dir: &Path, force: bool) -> io::Result<SynthSummary> {
    config.validate()?;
    if !force {
        for name in FILES {
            let path = dir.join(name);
            if path.exists() {
                return Err(already_exists(&path));
            }
        }
    }
    fs::create_dir_all(dir)?;
    let open = |name: &str| create_output(&dir.join(name), force);

    let planted = Planted::new(config);
    write_item_files(config, &planted, &mut open("items.tsv")?, &mut open("vectors.npy")?, &mut open("vectors.ids")?)?;

    let mut train = open("train.tsv")?;
    let mut test = open("test.tsv")?;
    train.write_all(EVENTS_HEADER)?;
    test.write_all(EVENTS_HEADER)?;
    let test_start = BASE_TIME + config.days as u64 * DAY - DAY;
    let mut summary = SynthSummary { train_events: 0, train_sessions: 0, test_events: 0, test_sessions: 0, items: config.items };
    let mut sessions = Sessions::new(config, planted);
    let mut items = Vec::new();
    let mut line = Vec::with_capacity(4096);
    while let Some((session, start)) = sessions.next_session(&mut items) {
        line.clear();
        push_session(&mut line, session, start, &items);
        if start >= test_start {
            test.write_all(&line)?;
            summary.test_sessions += 1;
            summary.test_events += items.len() as u64;
        } else {
            train.write_all(&line)?;
            summary.train_sessions += 1;
            summary.train_events += items.len() as u64;
        }
    }
    train.flush()?;
    test.flush()?;

    let mut readme = open("README.md")?;
    readme.write_all(readme_text(config, &summary).as_bytes())?;
    readme.flush()?;
    Ok(summary)
}

fn expect_valid(config: &SynthConfig) {
    if let Err(error) = config.validate() {
        panic!("invalid SynthConfig: {error}");
    }
}

/// Independent generator streams, so that e.g. a different `dim` leaves the clusters and sessions unchanged.
mod stream {
    pub const LAYOUT: u64 = 1;
    pub const ROWS: u64 = 2;
    pub const VECTORS: u64 = 3;
    pub const NOISE: u64 = 4;
    pub const SESSIONS: u64 = 5;
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::planted::zipf_weight;
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig { sessions: 3_000, items: 600, clusters: 12, dim: 8, seed: 11, ..SynthConfig::default() }
    }

    /// (session, item, time) rows of an events file, checking its header and column count.
    fn parse_events(text: &str) -> Vec<(u64, u32, u64)> {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("SessionId\tItemId\tTime"));
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 3, "line {line:?}");
                (fields[0].parse().unwrap(), fields[1].parse().unwrap(), fields[2].parse().unwrap())
            })
            .collect()
    }

    fn stream_text(config: &SynthConfig) -> String {
        let mut text = String::new();
        SessionStream::new(config).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    /// Consecutive (previous, next) item pairs within sessions.
    fn pairs(events: &[(u64, u32, u64)]) -> Vec<(u32, u32)> {
        events.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| (w[0].1, w[1].1)).collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let config = small();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        write_dataset(&config, a.path(), false).unwrap();
        write_dataset(&config, b.path(), false).unwrap();
        write_dataset(&SynthConfig { seed: 12, ..config.clone() }, c.path(), false).unwrap();
        for name in FILES {
            let first = fs::read(a.path().join(name)).unwrap();
            assert_eq!(first, fs::read(b.path().join(name)).unwrap(), "{name}");
            if name != "README.md" {
                assert_ne!(first, fs::read(c.path().join(name)).unwrap(), "{name}");
            }
        }
        assert_eq!(stream_text(&config), stream_text(&config));
    }

    #[test]
    fn catalogue_does_not_depend_on_session_count_or_dim() {
        let config = small();
        let other = SynthConfig { sessions: 17, days: 3, dim: 2, ..config.clone() };
        assert_eq!(cluster_of(&config), cluster_of(&other));
        assert_eq!(successor_of(&config), successor_of(&other));
    }

    #[test]
    fn planted_transition_and_rare_items() {
        let config = SynthConfig { sessions: 8_000, items: 2_000, clusters: 20, ..SynthConfig::default() };
        let cluster = cluster_of(&config);
        let successor = successor_of(&config);
        let events = parse_events(&stream_text(&config));
        let pairs = pairs(&events);
        // About 8 000 * 4 pairs: the standard error of the fraction is about 0.002.
        assert!(pairs.len() > 25_000, "{}", pairs.len());
        let planted = |&&(a, b): &&(u32, u32)| successor[cluster[a as usize] as usize] == cluster[b as usize];
        let hits = pairs.iter().filter(planted).count();
        let fraction = hits as f64 / pairs.len() as f64;
        let expected = config.signal + (1.0 - config.signal) / config.clusters as f64;
        assert!((fraction - expected).abs() < 0.02, "{fraction} vs {expected}");

        // Most items are rare: the median support is well below the mean, and some items never appear.
        let mut support = vec![0u64; config.items as usize];
        for &(_, item, _) in &events {
            support[item as usize] += 1;
        }
        let mean = events.len() as f64 / config.items as f64;
        support.sort_unstable();
        let median = support[support.len() / 2] as f64;
        assert!(median < 0.5 * mean, "median {median}, mean {mean}");
        assert!(support[support.len() - 1] as f64 > 20.0 * mean, "max {}", support[support.len() - 1]);

        // Session lengths: at least 2, mean close to the setting.
        let sessions = events.last().unwrap().0 + 1;
        assert_eq!(sessions, config.sessions);
        let mean_length = events.len() as f64 / sessions as f64;
        assert!((mean_length - config.mean_length).abs() < 0.15, "{mean_length}");
        let mut lengths = vec![0u32; sessions as usize];
        for &(session, _, _) in &events {
            lengths[session as usize] += 1;
        }
        assert!(lengths.iter().all(|&l| l >= 2));
    }

    #[test]
    fn oracle_matches_the_generated_data() {
        let config = SynthConfig { sessions: 8_000, items: 500, clusters: 10, ..SynthConfig::default() };
        let cluster = cluster_of(&config);
        let successor = successor_of(&config);
        let cutoff = 20;
        // The oracle's top `cutoff` for each current cluster, from the true probabilities.
        let mut support = vec![0u64; config.items as usize];
        let planted = Planted::new(&config);
        let uniform = (1.0 - config.signal) / config.clusters as f64;
        let top: Vec<Vec<u32>> = (0..config.clusters)
            .map(|c| {
                let mut scored: Vec<(f64, u32)> = (0..planted.id_of.len())
                    .map(|k| {
                        let d = k as u32 % config.clusters;
                        let mass = uniform + if d == successor[c as usize] { config.signal } else { 0.0 };
                        let total = planted.rank_cdf[planted.size(d) as usize - 1];
                        (mass * zipf_weight(k / config.clusters as usize) / total, planted.id_of[k])
                    })
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.iter().take(cutoff).map(|&(_, id)| id).collect()
            })
            .collect();
        let events = parse_events(&stream_text(&config));
        for &(_, item, _) in &events {
            support[item as usize] += 1;
        }
        let pairs = pairs(&events);
        let mut hits = 0.0;
        let mut reciprocal = 0.0;
        for &(a, b) in &pairs {
            if let Some(position) = top[cluster[a as usize] as usize].iter().position(|&id| id == b) {
                hits += 1.0;
                reciprocal += 1.0 / (position + 1) as f64;
            }
        }
        let n = pairs.len() as f64;
        let oracle = oracle_metrics(&config, cutoff);
        assert!((hits / n - oracle.recall).abs() < 0.02, "{} vs {:?}", hits / n, oracle);
        assert!((reciprocal / n - oracle.mrr).abs() < 0.02, "{} vs {:?}", reciprocal / n, oracle);
        // The signal is worth predicting: far above what popularity alone gets.
        let mut by_support: Vec<u64> = support.clone();
        by_support.sort_unstable_by(|a, b| b.cmp(a));
        let popular = by_support.iter().take(cutoff).sum::<u64>() as f64 / events.len() as f64;
        assert!(oracle.recall > popular + 0.2, "{oracle:?} vs popularity {popular}");
    }

    #[test]
    fn files_are_laid_out_as_documented() {
        let config = SynthConfig { dim: 16, ..small() };
        let dir = tempfile::tempdir().unwrap();
        let summary = write_dataset(&config, dir.path(), false).unwrap();
        let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
        let cluster = cluster_of(&config);

        let train = parse_events(&read("train.tsv"));
        let test = parse_events(&read("test.tsv"));
        assert_eq!(train.len() as u64, summary.train_events);
        assert_eq!(test.len() as u64, summary.test_events);
        assert_eq!(summary.train_sessions + summary.test_sessions, config.sessions);
        assert_eq!(summary.items, config.items);
        let test_start = BASE_TIME + (config.days as u64 - 1) * DAY;
        let starts = |events: &[(u64, u32, u64)]| -> Vec<(u64, u64)> {
            let mut starts: Vec<(u64, u64)> = Vec::new();
            for w in events.windows(2) {
                if w[0].0 == w[1].0 {
                    assert_eq!(w[1].2, w[0].2 + EVENT_GAP);
                } else {
                    assert_eq!(w[1].0, w[0].0 + 1);
                }
            }
            for &(session, _, time) in events {
                if starts.last().is_none_or(|&(s, _)| s != session) {
                    starts.push((session, time));
                }
            }
            starts
        };
        let (train_starts, test_starts) = (starts(&train), starts(&test));
        assert_eq!(train_starts[0], (0, BASE_TIME));
        assert_eq!(test_starts[0].0, train_starts.last().unwrap().0 + 1);
        assert!(train_starts.iter().all(|&(_, t)| t < test_start));
        assert!(test_starts.iter().all(|&(_, t)| t >= test_start && t < BASE_TIME + config.days as u64 * DAY));
        let all: Vec<u64> = train_starts.iter().chain(&test_starts).map(|&(_, t)| t).collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]));
        // One day of `days`: about 1/30 of the sessions.
        let expected = config.sessions as f64 / config.days as f64;
        assert!((summary.test_sessions as f64 - expected).abs() <= 1.0, "{summary:?}");

        let items = read("items.tsv");
        let mut lines = items.lines();
        assert_eq!(lines.next(), Some("ItemId\tcategory\tnoise"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), config.items as usize);
        for row in &rows {
            assert_eq!(row.len(), 3);
            let id: usize = row[0].parse().unwrap();
            assert_eq!(row[1], format!("cluster_{}", cluster[id]));
            let noise: u32 = row[2].strip_prefix('n').unwrap().parse().unwrap();
            assert!(noise < config.clusters);
        }

        let ids: Vec<u32> = read("vectors.ids").lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(ids.len(), config.items as usize);
        assert_eq!(ids, rows.iter().map(|r| r[0].parse().unwrap()).collect::<Vec<u32>>());
        assert_ne!(ids, (0..config.items).collect::<Vec<_>>(), "rows should not be in ID order");
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..config.items).collect::<Vec<_>>());

        let bytes = fs::read(dir.path().join("vectors.npy")).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let dict = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (600, 16), }"), "{dict:?}");
        assert!(dict.ends_with(" \n") && dict.trim_end_matches('\n').trim_end().ends_with('}'));
        assert_eq!(bytes.len(), 10 + header_len + 600 * 16 * 4);
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[600, 16]);
        let values: Vec<f32> = npy.into_vec().unwrap();

        // The vectors reveal the cluster: nearly every item is nearest its own cluster's mean.
        let dim = config.dim as usize;
        let clusters = config.clusters as usize;
        let mut means = vec![0.0f64; clusters * dim];
        let mut counts = vec![0usize; clusters];
        for (row, &id) in ids.iter().enumerate() {
            let c = cluster[id as usize] as usize;
            counts[c] += 1;
            for j in 0..dim {
                means[c * dim + j] += values[row * dim + j] as f64;
            }
        }
        for c in 0..clusters {
            for j in 0..dim {
                means[c * dim + j] /= counts[c] as f64;
            }
        }
        let nearest_is_own = ids
            .iter()
            .enumerate()
            .filter(|&(row, &id)| {
                let distance = |c: usize| -> f64 { (0..dim).map(|j| (values[row * dim + j] as f64 - means[c * dim + j]).powi(2)).sum() };
                let nearest = (0..clusters).min_by(|&a, &b| distance(a).total_cmp(&distance(b))).unwrap();
                nearest == cluster[id as usize] as usize
            })
            .count();
        assert!(nearest_is_own as f64 > 0.97 * ids.len() as f64, "{nearest_is_own}");

        let readme = read("README.md");
        assert!(readme.contains("| sessions | 3000 |") && readme.contains("Recall@20"), "{readme}");
    }

    #[test]
    fn stream_is_train_then_test() {
        let config = small();
        let dir = tempfile::tempdir().unwrap();
        write_dataset(&config, dir.path(), false).unwrap();
        let train = fs::read_to_string(dir.path().join("train.tsv")).unwrap();
        let test = fs::read_to_string(dir.path().join("test.tsv")).unwrap();
        let body = test.strip_prefix("SessionId\tItemId\tTime\n").unwrap();
        assert_eq!(stream_text(&config), train + body);

        // Tiny reads see the same bytes as large ones.
        let mut stream = SessionStream::new(&config).unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 7];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(bytes, stream_text(&config).into_bytes());
    }

    #[test]
    fn refuses_to_overwrite_unless_forced() {
        let config = SynthConfig { sessions: 50, items: 40, clusters: 4, dim: 2, days: 5, ..SynthConfig::default() };
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("nested/out");
        let summary = write_dataset(&config, &dir, false).unwrap();
        let error = write_dataset(&config, &dir, false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains("train.tsv"), "{error}");
        assert_eq!(write_dataset(&config, &dir, true).unwrap(), summary);

        // One existing file blocks everything, before anything is written.
        let other = root.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("README.md"), "mine").unwrap();
        let error = write_dataset(&config, &other, false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains("README.md"), "{error}");
        assert_eq!(fs::read_dir(&other).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(other.join("README.md")).unwrap(), "mine");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let base = small();
        for config in [
            SynthConfig { items: 0, ..base.clone() },
            SynthConfig { clusters: 0, ..base.clone() },
            SynthConfig { clusters: base.items + 1, ..base.clone() },
            SynthConfig { dim: 0, ..base.clone() },
            SynthConfig { signal: 1.5, ..base.clone() },
            SynthConfig { signal: f64::NAN, ..base.clone() },
            SynthConfig { mean_length: 1.5, ..base.clone() },
            SynthConfig { mean_length: f64::INFINITY, ..base.clone() },
            SynthConfig { days: 1, ..base.clone() },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let error = write_dataset(&config, dir.path(), false).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{config:?}");
            assert!(SessionStream::new(&config).is_err());
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn edge_settings_work() {
        // One cluster, no signal, fixed length two, and items that do not divide evenly into clusters.
        for config in [
            SynthConfig { sessions: 20, items: 1, clusters: 1, dim: 1, mean_length: 2.0, days: 2, ..small() },
            SynthConfig { sessions: 200, items: 103, clusters: 10, signal: 0.0, mean_length: 2.0, ..small() },
            SynthConfig { sessions: 200, items: 103, clusters: 103, signal: 1.0, ..SynthConfig::default() },
            SynthConfig { sessions: 0, ..small() },
        ] {
            let events = parse_events(&stream_text(&config));
            assert!(events.iter().all(|e| e.1 < config.items));
            if config.mean_length == 2.0 {
                assert_eq!(events.len() as u64, 2 * config.sessions);
            }
            let oracle = oracle_metrics(&config, 20);
            assert!(oracle.recall > 0.0 && oracle.recall <= 1.0 + 1e-12 && oracle.mrr <= oracle.recall, "{oracle:?}");
        }
        // With signal 1 the successor is always taken.
        let config = SynthConfig { sessions: 200, items: 103, clusters: 7, signal: 1.0, ..SynthConfig::default() };
        let (cluster, successor) = (cluster_of(&config), successor_of(&config));
        let events = parse_events(&stream_text(&config));
        assert!(pairs(&events).iter().all(|&(a, b)| successor[cluster[a as usize] as usize] == cluster[b as usize]));
        assert!(successor.iter().enumerate().all(|(c, &s)| s as usize != c));
    }
}
