//! Baselines: popularity, GRU4Rec's item-kNN and session-kNN, scored under the same evaluation as a trained model.
//!
//! Each baseline is fitted on the training sessions and scores every item for a session prefix. The evaluation
//! walks each test session and predicts every event after the first from the events before it, which is what
//! the session-parallel evaluation of a network does; ranks use the same counting (ties, candidates, NaN) as
//! [`crate::eval::metrics::target_ranks_host`].

use std::time::Instant;

use crate::config::{Eval, ItemKnnSettings, KnnCounting, SessionKnnSettings};
use crate::data::sessions::Sessions;
use crate::data::Dataset;
use crate::eval::metrics::{most_popular, target_ranks_host, RankMetrics};
use crate::eval::{Evaluation, EventRank};
use crate::runtime::parallel;

/// A fitted baseline.
pub enum Baseline {
    /// Every item scored by its number of training events, whatever the session.
    Popularity(Vec<f32>),
    ItemKnn(ItemKnn),
    SessionKnn(SessionKnn),
}

impl Baseline {
    /// Fits the baseline `name` (`popularity`, `item_knn` or `sknn`) on the dataset's training sessions.
    pub fn fit(name: &str, dataset: &Dataset, settings: &crate::config::Baselines) -> Option<Baseline> {
        Some(match name {
            "popularity" => Baseline::Popularity(dataset.item_support().into_iter().map(|n| n as f32).collect()),
            "item_knn" => Baseline::ItemKnn(ItemKnn::fit(&dataset.train, dataset.items.len(), &settings.item_knn)),
            "sknn" => Baseline::SessionKnn(SessionKnn::fit(&dataset.train, dataset.items.len(), &settings.sknn)),
            _ => return None,
        })
    }

    /// Scores every item for the session `prefix` (item indices, oldest first) into `scores`, which it
    /// overwrites. `scratch` must come from [`Baseline::scratch`] and may be reused across calls.
    pub fn score(&self, prefix: &[u32], scores: &mut [f32], scratch: &mut Scratch) {
        match self {
            Baseline::Popularity(support) => scores.copy_from_slice(support),
            Baseline::ItemKnn(knn) => knn.score(prefix, scores),
            Baseline::SessionKnn(knn) => knn.score(prefix, scores, scratch),
        }
    }

    /// Working memory for [`Baseline::score`], one per thread.
    pub fn scratch(&self) -> Scratch {
        match self {
            Baseline::SessionKnn(knn) => Scratch { item_stamp: vec![0; knn.n_items], session_stamp: vec![0; knn.sessions()], stamp: 0 },
            _ => Scratch::default(),
        }
    }
}

/// Marker arrays with generation stamps: a fresh "set" per prediction without clearing memory.
#[derive(Default)]
pub struct Scratch {
    item_stamp: Vec<u32>,
    session_stamp: Vec<u32>,
    stamp: u32,
}

impl Scratch {
    fn next_stamp(&mut self) -> u32 {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.item_stamp.fill(0);
            self.session_stamp.fill(0);
            self.stamp = 1;
        }
        self.stamp
    }
}

/// Each training session's distinct items, in first-click order (compressed rows).
struct SessionItems {
    offsets: Vec<usize>,
    items: Vec<u32>,
}

impl SessionItems {
    fn new(sessions: &Sessions, n_items: usize) -> SessionItems {
        let mut seen = vec![u32::MAX; n_items];
        let mut offsets = Vec::with_capacity(sessions.len() + 1);
        offsets.push(0);
        let mut items = Vec::with_capacity(sessions.event_count());
        for s in 0..sessions.len() {
            for event in sessions.session(s) {
                if seen[event.item as usize] != s as u32 {
                    seen[event.item as usize] = s as u32;
                    items.push(event.item);
                }
            }
            offsets.push(items.len());
        }
        SessionItems { offsets, items }
    }

    fn of(&self, s: usize) -> &[u32] {
        &self.items[self.offsets[s]..self.offsets[s + 1]]
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// For each item, the sessions holding it, ascending (= oldest first, as sessions are ordered by start).
    fn sessions_by_item(&self, n_items: usize) -> (Vec<usize>, Vec<u32>) {
        let mut offsets = vec![0usize; n_items + 1];
        for &item in &self.items {
            offsets[item as usize + 1] += 1;
        }
        for i in 0..n_items {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut sessions = vec![0u32; self.items.len()];
        for s in 0..self.len() {
            for &item in self.of(s) {
                sessions[next[item as usize]] = s as u32;
                next[item as usize] += 1;
            }
        }
        (offsets, sessions)
    }
}

/// GRU4Rec's item-kNN: `sim(i, j) = cooc(i, j) / ((supp_i + λ)^α (supp_j + λ)^(1-α))`, the `neighbours` most
/// similar items kept for each item, and a prefix scored by the similarities to its last item.
pub struct ItemKnn {
    /// Neighbours of item `i`: `neighbours[offsets[i]..offsets[i + 1]]`, most similar first.
    offsets: Vec<usize>,
    neighbours: Vec<(u32, f32)>,
}

/// How much one session counts for an item of it: `(session, item) -> weight`.
type SessionWeight<'a> = dyn Fn(usize, u32) -> f64 + 'a;

impl ItemKnn {
    pub fn fit(train: &Sessions, n_items: usize, settings: &ItemKnnSettings) -> ItemKnn {
        let distinct = SessionItems::new(train, n_items);
        // Under `events` counting each event of an item counts its session's distinct items once more, which
        // is what the official `baselines.py` computes: its `iarray[items] += 1` adds 1 per distinct index, as
        // NumPy's `+=` through an index array does. Counting event pairs (`np.add.at`) is a different baseline,
        // the one behind the reference notes' 0.4774 / 0.2163 (docs/baselines.md).
        let (support, weight_of_session): (Vec<f64>, Box<SessionWeight>) = match settings.counting {
            KnnCounting::Sessions => {
                let mut support = vec![0.0f64; n_items];
                distinct.items.iter().for_each(|&i| support[i as usize] += 1.0);
                (support, Box::new(|_, _| 1.0))
            }
            KnnCounting::Events => {
                let support: Vec<f64> = item_counts(train, n_items).into_iter().map(|n| n as f64).collect();
                (support, Box::new(move |s, item| train.session(s).iter().filter(|e| e.item == item).count() as f64))
            }
        };
        let (by_item_offsets, by_item) = distinct.sessions_by_item(n_items);
        let keep = settings.neighbours as usize;
        let mut counts = vec![0.0f64; n_items];
        let mut touched: Vec<u32> = Vec::new();
        let mut offsets = Vec::with_capacity(n_items + 1);
        offsets.push(0);
        let mut neighbours = Vec::new();
        let mut candidates: Vec<(u32, f64)> = Vec::new();
        for i in 0..n_items {
            for &s in &by_item[by_item_offsets[i]..by_item_offsets[i + 1]] {
                let weight = weight_of_session(s as usize, i as u32);
                for &j in distinct.of(s as usize) {
                    if j as usize != i {
                        if counts[j as usize] == 0.0 {
                            touched.push(j);
                        }
                        counts[j as usize] += weight;
                    }
                }
            }
            let norm_i = (support[i] + settings.lambda).powf(settings.alpha);
            candidates.clear();
            for &j in &touched {
                let norm = norm_i * (support[j as usize] + settings.lambda).powf(1.0 - settings.alpha);
                let norm = if norm == 0.0 { 1.0 } else { norm };
                candidates.push((j, counts[j as usize] / norm));
                counts[j as usize] = 0.0;
            }
            touched.clear();
            // Most similar first; equal similarities go to the lower index, so the kept set never depends on
            // hash or sort order.
            let by_similarity = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if candidates.len() > keep {
                candidates.select_nth_unstable_by(keep - 1, by_similarity);
                candidates.truncate(keep);
            }
            candidates.sort_unstable_by(by_similarity);
            neighbours.extend(candidates.iter().map(|&(j, sim)| (j, sim as f32)));
            offsets.push(neighbours.len());
        }
        ItemKnn { offsets, neighbours }
    }

    /// The neighbours of `item`, most similar first.
    pub fn neighbours_of(&self, item: u32) -> &[(u32, f32)] {
        &self.neighbours[self.offsets[item as usize]..self.offsets[item as usize + 1]]
    }

    fn score(&self, prefix: &[u32], scores: &mut [f32]) {
        scores.fill(0.0);
        if let Some(&last) = prefix.last() {
            for &(j, sim) in self.neighbours_of(last) {
                scores[j as usize] = sim;
            }
        }
    }
}

fn item_counts(sessions: &Sessions, n_items: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n_items];
    sessions.events.iter().for_each(|e| counts[e.item as usize] += 1);
    counts
}

/// Session-kNN (Jannach and Ludewig's SKNN, as session-rec implements it): the `k` training sessions most
/// similar to the prefix (cosine over binary item sets) among the `sample` most recent ones sharing an item
/// with it; an item scores the summed similarity of the neighbours that hold it.
pub struct SessionKnn {
    distinct: SessionItems,
    by_item_offsets: Vec<usize>,
    by_item: Vec<u32>,
    n_items: usize,
    k: usize,
    sample: usize,
}

impl SessionKnn {
    pub fn fit(train: &Sessions, n_items: usize, settings: &SessionKnnSettings) -> SessionKnn {
        let distinct = SessionItems::new(train, n_items);
        let (by_item_offsets, by_item) = distinct.sessions_by_item(n_items);
        SessionKnn { distinct, by_item_offsets, by_item, n_items, k: settings.k as usize, sample: settings.sample as usize }
    }

    fn sessions(&self) -> usize {
        self.distinct.len()
    }

    fn score(&self, prefix: &[u32], scores: &mut [f32], scratch: &mut Scratch) {
        scores.fill(0.0);
        let stamp = scratch.next_stamp();
        let mut current = 0usize;
        for &item in prefix {
            if scratch.item_stamp[item as usize] != stamp {
                scratch.item_stamp[item as usize] = stamp;
                current += 1;
            }
        }
        // The most recent `sample` sessions of the union lie among the last `sample` of each item's list.
        let mut candidates: Vec<u32> = Vec::new();
        for &item in prefix {
            let holders = &self.by_item[self.by_item_offsets[item as usize]..self.by_item_offsets[item as usize + 1]];
            for &s in &holders[holders.len().saturating_sub(self.sample)..] {
                if scratch.session_stamp[s as usize] != stamp {
                    scratch.session_stamp[s as usize] = stamp;
                    candidates.push(s);
                }
            }
        }
        if candidates.len() > self.sample {
            candidates.select_nth_unstable_by(self.sample - 1, |a, b| b.cmp(a));
            candidates.truncate(self.sample);
        }
        let mut similar: Vec<(u32, f32)> = candidates
            .iter()
            .map(|&s| {
                let items = self.distinct.of(s as usize);
                let overlap = items.iter().filter(|&&i| scratch.item_stamp[i as usize] == stamp).count();
                (s, (overlap as f64 / ((current * items.len()) as f64).sqrt()) as f32)
            })
            .collect();
        // Most similar first; among equals the more recent session.
        let by_similarity = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0));
        if similar.len() > self.k {
            similar.select_nth_unstable_by(self.k - 1, by_similarity);
            similar.truncate(self.k);
        }
        for (s, sim) in similar {
            for &i in self.distinct.of(s as usize) {
                scores[i as usize] += sim;
            }
        }
    }
}

/// Predictions scored per block: the rows of scores held at once, `[rows, n_items]` float32.
const ROWS_PER_BLOCK: usize = 256;

/// Evaluates a fitted baseline on the dataset's test sessions; ranks come in session order.
pub fn evaluate(baseline: &Baseline, dataset: &Dataset, settings: &Eval) -> Evaluation {
    let started = Instant::now();
    let n_items = dataset.items.len();
    let test = &dataset.test;
    let candidates: Option<Vec<bool>> = (settings.most_popular > 0 && (settings.most_popular as usize) < n_items)
        .then(|| most_popular(&dataset.item_support(), settings.most_popular as usize));
    let mut predictions: Vec<EventRank> = Vec::with_capacity(test.event_count());
    for s in 0..test.len() {
        for (position, event) in test.session(s).iter().enumerate().skip(1) {
            predictions.push(EventRank { session: s as u32, position: position as u32, item: event.item, rank: 0.0 });
        }
    }
    let mut scores = vec![0.0f32; ROWS_PER_BLOCK * n_items];
    let mut metrics = RankMetrics::new(&settings.cutoffs);
    let threads = tch::get_num_threads().max(1) as usize;
    let scratches: Vec<std::sync::Mutex<Scratch>> = (0..threads).map(|_| std::sync::Mutex::new(baseline.scratch())).collect();
    let mut targets: Vec<u32> = Vec::new();
    for block in predictions.chunks_mut(ROWS_PER_BLOCK) {
        let rows = block.len();
        let parts = threads.min(rows);
        let block_ref = &*block;
        let scratches_ref = &scratches;
        parallel::for_each_row_block(&mut scores[..rows * n_items], n_items, parts, &|part, rows_of_part, block| {
            let mut scratch = scratches_ref[part].lock().expect("one part per scratch");
            for (r, row) in rows_of_part.zip(block.chunks_exact_mut(n_items)) {
                let prediction = &block_ref[r];
                let session = test.session(prediction.session as usize);
                let prefix: Vec<u32> = session[..prediction.position as usize].iter().map(|e| e.item).collect();
                baseline.score(&prefix, row, &mut scratch);
            }
        });
        targets.clear();
        targets.extend(block.iter().map(|p| p.item));
        let ranks = target_ranks_host(&scores[..rows * n_items], n_items, &targets, candidates.as_deref(), settings.ties);
        metrics.add(&tch::Tensor::from_slice(&ranks));
        for (prediction, rank) in block.iter_mut().zip(ranks) {
            prediction.rank = rank;
        }
    }
    let metrics = metrics.finish();
    let seconds = started.elapsed().as_secs_f64();
    Evaluation {
        metrics,
        events: predictions.len() as u64,
        sessions: test.len() as u64,
        candidates: candidates.as_ref().map_or(n_items as u64, |_| settings.most_popular),
        seconds,
        events_per_second: predictions.len() as f64 / seconds.max(1e-9),
        ranks: predictions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(list: &[&[u32]]) -> Sessions {
        Sessions::from_items(list)
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn item_knn_similarity_counts_sessions_by_default() {
        // Item 0 and 1 share sessions 0 and 1; item 0 repeats in session 1; 2 shares session 2 with 0.
        let train = sessions(&[&[0, 1], &[0, 1, 0], &[0, 2], &[3]]);
        let settings = ItemKnnSettings { lambda: 1.0, alpha: 0.5, neighbours: 10, counting: KnnCounting::Sessions };
        let knn = ItemKnn::fit(&train, 4, &settings);
        // supp(0) = 3 sessions, supp(1) = 2, supp(2) = 1.
        let expect_01 = 2.0 / ((3.0f64 + 1.0).sqrt() * (2.0f64 + 1.0).sqrt());
        let expect_02 = 1.0 / ((3.0f64 + 1.0).sqrt() * (1.0f64 + 1.0).sqrt());
        let neighbours = knn.neighbours_of(0);
        assert_eq!(neighbours.iter().map(|n| n.0).collect::<Vec<_>>(), [1, 2]);
        assert!(close(neighbours[0].1, expect_01) && close(neighbours[1].1, expect_02), "{neighbours:?}");
        assert!(knn.neighbours_of(3).is_empty(), "an item seen alone has no neighbours");
    }

    #[test]
    fn item_knn_event_counting_follows_the_official_code() {
        let train = sessions(&[&[0, 1], &[0, 1, 0], &[0, 2], &[3]]);
        let settings = ItemKnnSettings { lambda: 1.0, alpha: 0.5, neighbours: 10, counting: KnnCounting::Events };
        let knn = ItemKnn::fit(&train, 4, &settings);
        // supp(0) = 4 events, supp(1) = 2; item 0's events in sessions 0, 1, 1 each see item 1 once: cooc = 3.
        let expect_01 = 3.0 / ((4.0f64 + 1.0).sqrt() * (2.0f64 + 1.0).sqrt());
        assert!(close(knn.neighbours_of(0)[0].1, expect_01), "{:?}", knn.neighbours_of(0));
        // From item 1's side: its 2 events each see item 0 once.
        let expect_10 = 2.0 / ((2.0f64 + 1.0).sqrt() * (4.0f64 + 1.0).sqrt());
        assert!(close(knn.neighbours_of(1)[0].1, expect_10), "{:?}", knn.neighbours_of(1));
    }

    #[test]
    fn item_knn_event_counting_adds_one_per_distinct_item_not_per_event_pair() {
        // Both items repeat in session 0: pair counting would give cooc(0, 1) = 2 * 2 = 4.
        let train = sessions(&[&[0, 1, 0, 1], &[1, 2]]);
        let settings = ItemKnnSettings { lambda: 0.0, alpha: 0.5, neighbours: 10, counting: KnnCounting::Events };
        let knn = ItemKnn::fit(&train, 3, &settings);
        // supp(0) = 2, supp(1) = 3, supp(2) = 1 events; each of the two events of 0 sees item 1 once.
        let expect_01 = 2.0 / (2.0f64 * 3.0).sqrt();
        assert_eq!(knn.neighbours_of(0).len(), 1);
        assert!(close(knn.neighbours_of(0)[0].1, expect_01), "{:?}", knn.neighbours_of(0));
        // Item 1: its two events in session 0 see 0 once each, its event in session 1 sees 2 once.
        let expect_10 = 2.0 / (3.0f64 * 2.0).sqrt();
        let expect_12 = 1.0 / (3.0f64 * 1.0).sqrt();
        let neighbours = knn.neighbours_of(1);
        assert_eq!(neighbours.iter().map(|n| n.0).collect::<Vec<_>>(), [0, 2]);
        assert!(close(neighbours[0].1, expect_10) && close(neighbours[1].1, expect_12), "{neighbours:?}");
    }

    #[test]
    fn item_knn_keeps_the_most_similar_and_breaks_ties_by_index() {
        let train = sessions(&[&[0, 3], &[0, 2], &[0, 1], &[0, 1]]);
        let settings = ItemKnnSettings { lambda: 0.0, alpha: 0.5, neighbours: 2, counting: KnnCounting::Sessions };
        let knn = ItemKnn::fit(&train, 4, &settings);
        // sim(0,1) = 2/sqrt(4*2); sim(0,2) = sim(0,3) = 1/sqrt(4*1) = 0.5, so 2 is kept before 3.
        assert_eq!(knn.neighbours_of(0).iter().map(|n| n.0).collect::<Vec<_>>(), [1, 2]);
        let mut scores = vec![9.0f32; 4];
        knn.score(&[3, 0], &mut scores);
        assert!(scores[0] == 0.0 && scores[3] == 0.0 && scores[1] > scores[2] && scores[2] > 0.0, "{scores:?}");
    }

    #[test]
    fn session_knn_scores_items_of_similar_recent_sessions() {
        let train = sessions(&[&[0, 1], &[0, 2], &[0, 3], &[4, 5]]);
        let knn = SessionKnn::fit(&train, 6, &SessionKnnSettings { k: 10, sample: 2 });
        let baseline = Baseline::SessionKnn(knn);
        let mut scratch = baseline.scratch();
        let mut scores = vec![0.0f32; 6];
        baseline.score(&[0], &mut scores, &mut scratch);
        // Only the 2 most recent sessions holding item 0 (1 and 2) are candidates, each with cosine 1/sqrt(2).
        let sim = 1.0 / 2.0f64.sqrt();
        assert!(close(scores[0], 2.0 * sim) && close(scores[2], sim) && close(scores[3], sim), "{scores:?}");
        assert_eq!((scores[1], scores[4], scores[5]), (0.0, 0.0, 0.0));
        // A repeated item counts once in the session's set; k = 1 keeps the single most similar session.
        let knn = SessionKnn::fit(&train, 6, &SessionKnnSettings { k: 1, sample: 10 });
        let baseline = Baseline::SessionKnn(knn);
        baseline.score(&[4, 5, 4], &mut scores, &mut scratch);
        assert!(close(scores[4], 1.0) && close(scores[5], 1.0) && scores[0] == 0.0, "{scores:?}");
    }
}
