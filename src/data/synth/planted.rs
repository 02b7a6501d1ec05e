//! The item catalogue: each item's cluster and popularity, the clusters' successors, alias tables to draw
//! items by popularity, and the metrics of an oracle that knows all of it.

use super::{expect_valid, stream, SynthConfig};
use crate::rng::Xoshiro256;

/// The planted cluster of every item, indexed by item ID.
///
/// # Panics
/// If the config is invalid (see [`SynthConfig::validate`]).
pub fn cluster_of(config: &SynthConfig) -> Vec<u32> {
    expect_valid(config);
    Planted::new(config).cluster_by_id()
}

/// The planted successor of every cluster, indexed by cluster: the cluster the next event is pushed to.
///
/// # Panics
/// If the config is invalid (see [`SynthConfig::validate`]).
pub fn successor_of(config: &SynthConfig) -> Vec<u32> {
    expect_valid(config);
    Planted::new(config).successor
}

/// Expected next-item metrics of the best possible predictor, which knows the planted clusters, successors
/// and popularities and ranks items by their true probability given the current item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OracleMetrics {
    /// Probability that the next item is among the top `cutoff`.
    pub recall: f64,
    /// Expected reciprocal rank of the next item, 0 beyond `cutoff`.
    pub mrr: f64,
}

/// The ceiling for Recall@`cutoff` and MRR@`cutoff` on predictions of a session's second and later events.
///
/// Averaged over current clusters uniformly, which is the stationary distribution of the cluster chain;
/// sessions' first items are drawn by popularity, which differs from uniform only by the up to one item that
/// cluster sizes differ by, so the figures are exact up to that.
///
/// # Panics
/// If the config is invalid (see [`SynthConfig::validate`]).
pub fn oracle_metrics(config: &SynthConfig, cutoff: usize) -> OracleMetrics {
    expect_valid(config);
    let planted = Planted::new(config);
    let clusters = config.clusters as usize;
    let uniform = (1.0 - config.signal) / clusters as f64;
    let sizes: Vec<usize> = (0..config.clusters).map(|c| planted.size(c) as usize).collect();
    // Only the successor's size matters, and successors take every cluster once: the first `larger` clusters
    // hold one item more than the rest.
    let larger = (config.items % config.clusters) as usize;
    let mut cases = vec![(clusters - 1, clusters - larger)];
    if larger > 0 {
        cases.push((0, larger));
    }
    let mut oracle = OracleMetrics { recall: 0.0, mrr: 0.0 };
    let mut probabilities = Vec::new();
    for (successor, count) in cases {
        probabilities.clear();
        for (cluster, &size) in sizes.iter().enumerate() {
            let mass = uniform + if cluster == successor { config.signal } else { 0.0 };
            let total = planted.rank_cdf[size - 1];
            probabilities.extend((0..size.min(cutoff)).map(|rank| mass * zipf_weight(rank) / total));
        }
        probabilities.sort_unstable_by(|a, b| b.total_cmp(a));
        let share = count as f64 / clusters as f64;
        let top = &probabilities[..cutoff.min(probabilities.len())];
        oracle.recall += share * top.iter().sum::<f64>();
        oracle.mrr += share * top.iter().enumerate().map(|(i, p)| p / (i + 1) as f64).sum::<f64>();
    }
    oracle
}

pub(super) fn zipf_weight(rank: usize) -> f64 {
    1.0 / (rank + 1) as f64
}

/// The item catalogue. Item index `k` has cluster `k % clusters` and popularity rank `k / clusters` within
/// it; `id_of[k]` is its (shuffled) ID.
pub(super) struct Planted {
    items: u32,
    pub(super) clusters: u32,
    pub(super) id_of: Vec<u32>,
    pub(super) successor: Vec<u32>,
    /// Cumulative Zipf weights over ranks; one table serves every cluster, as sizes differ only at the end.
    pub(super) rank_cdf: Vec<f64>,
    /// Rank samplers for clusters of the smaller and (if sizes differ) the larger size.
    rank_tables: Vec<AliasTable>,
    /// Cumulative cluster masses (sum of member weights), for sessions' first items.
    pub(super) cluster_cdf: Vec<f64>,
}

impl Planted {
    pub(super) fn new(config: &SynthConfig) -> Self {
        let mut rng = Xoshiro256::new(config.seed, stream::LAYOUT);
        let mut id_of: Vec<u32> = (0..config.items).collect();
        rng.shuffle(&mut id_of);
        // Sattolo's algorithm: a uniformly random single cycle.
        let mut successor: Vec<u32> = (0..config.clusters).collect();
        for i in (1..successor.len()).rev() {
            let j = rng.below(i as u32) as usize;
            successor.swap(i, j);
        }
        let largest = config.items.div_ceil(config.clusters) as usize;
        let mut rank_cdf = Vec::with_capacity(largest);
        let mut total = 0.0;
        for rank in 0..largest {
            total += zipf_weight(rank);
            rank_cdf.push(total);
        }
        let smallest = (config.items / config.clusters) as usize;
        let weights: Vec<f64> = (0..largest).map(zipf_weight).collect();
        let rank_tables = (smallest..=largest).map(|size| AliasTable::new(&weights[..size])).collect();
        let mut planted =
            Planted { items: config.items, clusters: config.clusters, id_of, successor, rank_cdf, rank_tables, cluster_cdf: Vec::new() };
        let mut total = 0.0;
        planted.cluster_cdf = (0..config.clusters)
            .map(|c| {
                total += planted.rank_cdf[planted.size(c) as usize - 1];
                total
            })
            .collect();
        planted
    }

    pub(super) fn size(&self, cluster: u32) -> u32 {
        self.items / self.clusters + u32::from(cluster < self.items % self.clusters)
    }

    pub(super) fn cluster_by_id(&self) -> Vec<u32> {
        let mut cluster = vec![0; self.items as usize];
        for (k, &id) in self.id_of.iter().enumerate() {
            cluster[id as usize] = k as u32 % self.clusters;
        }
        cluster
    }

    /// A popularity-weighted item of `cluster`.
    pub(super) fn draw_item(&self, cluster: u32, rng: &mut Xoshiro256) -> u32 {
        let table = &self.rank_tables[(self.size(cluster) - self.items / self.clusters) as usize];
        let rank = table.draw(rng) as usize;
        self.id_of[rank * self.clusters as usize + cluster as usize]
    }
}

/// Walker's alias method (Vose's construction): O(1) draws, where a binary search over the cumulative
/// weights cost 40% of generation time.
struct AliasTable {
    /// Probability of keeping the drawn slot rather than taking its alias.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut keep = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            keep[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left holds probability one up to rounding.
        AliasTable { keep, alias }
    }

    fn draw(&self, rng: &mut Xoshiro256) -> u32 {
        let slot = rng.below(self.keep.len() as u32);
        if rng.unit() < self.keep[slot as usize] {
            slot
        } else {
            self.alias[slot as usize]
        }
    }
}
