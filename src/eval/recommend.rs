//! `prnn recommend`'s inference: a session prefix run through a trained network, and its items in score order.
//!
//! Scores are the merged scores before the output activation, as in evaluation: the activations are monotone,
//! so the order is the one the metrics rank by.

use tch::{Kind, Tensor};

use crate::data::intern::Interner;
use crate::lower::Executor;

/// A session's item IDs resolved against the training items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// Item indices, oldest first.
    pub known: Vec<u32>,
    /// IDs the training data does not hold, in the order given; they are left out of `known`.
    pub unknown: Vec<String>,
}

/// Resolves item IDs as the session files write them; blank entries are ignored.
pub fn known_items(session: &[String], items: &Interner) -> Prefix {
    let mut prefix = Prefix { known: Vec::new(), unknown: Vec::new() };
    for id in session.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match items.find(id.as_bytes()) {
            Some(index) => prefix.known.push(index),
            None => prefix.unknown.push(id.to_string()),
        }
    }
    prefix
}

/// Runs the prefix through the executor's network one event at a time from a zero state; the merged scores of
/// every item after its last event.
pub fn session_scores(executor: &dyn Executor, prefix: &[u32]) -> Vec<f32> {
    let _guard = tch::no_grad_guard();
    let network = executor.network();
    let device = network.device;
    let mut hidden: Vec<Tensor> =
        network.ir().graph().subnet_ids().map(|k| Tensor::zeros([1, network.hidden_size(k)], (Kind::Float, device))).collect();
    for &item in prefix {
        hidden = executor.next_states(&[item], &hidden);
    }
    let mut scores = Tensor::empty([1, network.n_items as i64], (Kind::Float, device));
    executor.scores_into(&hidden, &mut scores);
    Vec::<f32>::try_from(scores.view([-1]).to_device(tch::Device::Cpu)).expect("scores are float32")
}

/// The indices of the `k` highest scores, highest first. NaN comes last, and equal scores go by item index, so the
/// list is the same on every call.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    top_k_excluding(scores, k, &[])
}

/// Whether item `a` ranks before item `b`: the higher score, NaN last, the lower index on a tie.
fn ranks_before(scores: &[f32], a: usize, b: usize) -> bool {
    let (x, y) = (scores[a], scores[b]);
    let order = y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b));
    order == std::cmp::Ordering::Less
}

/// [`top_k`] without the items of `excluded` (sorted ascending). One pass over the catalogue keeps the `k` best
/// so far in a heap whose root is the worst of them: after the first few items almost every item loses to
/// the root in one comparison, so a request costs a pass over its scores, not a sort of them.
pub fn top_k_excluding(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<usize> {
    debug_assert!(excluded.windows(2).all(|w| w[0] <= w[1]), "excluded items are sorted");
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    // A max-heap on "ranks after": the root is the kept item every other kept item ranks before.
    struct Kept<'a>(&'a [f32], usize);
    impl PartialEq for Kept<'_> {
        fn eq(&self, other: &Self) -> bool {
            self.1 == other.1
        }
    }
    impl Eq for Kept<'_> {}
    impl PartialOrd for Kept<'_> {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Kept<'_> {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            if self.1 == other.1 {
                std::cmp::Ordering::Equal
            } else if ranks_before(self.0, self.1, other.1) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }
    }
    let mut kept = std::collections::BinaryHeap::with_capacity(k + 1);
    // The root's index and score, once k items are kept; a lower score is rejected by one float comparison.
    let mut worst: Option<(usize, f32)> = None;
    for (item, &score) in scores.iter().enumerate() {
        if let Some((worst, worst_score)) = worst {
            if score < worst_score || !ranks_before(scores, item, worst) {
                continue;
            }
        }
        if excluded.binary_search(&(item as u32)).is_ok() {
            continue;
        }
        kept.push(Kept(scores, item));
        if kept.len() > k {
            kept.pop();
        }
        if kept.len() == k {
            let root = kept.peek().expect("k > 0 items are kept").1;
            worst = Some((root, scores[root]));
        }
    }
    kept.into_sorted_vec().into_iter().map(|Kept(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_scores_come_first_ties_by_index_and_nan_last() {
        let scores = [0.5, f32::NAN, 2.0, 0.5, -1.0, 2.0];
        assert_eq!(top_k(&scores, 6), [2, 5, 0, 3, 4, 1]);
        assert_eq!(top_k(&scores, 2), [2, 5]);
        assert_eq!(top_k(&scores, 10).len(), 6, "k beyond the catalogue lists every item");
        assert_eq!(top_k(&[f32::NAN, 1.0, f32::NAN], 3), [1, 0, 2]);
        assert!(top_k(&scores, 0).is_empty());
    }

    /// The order of a full sort, the definition `top_k` must keep.
    fn sorted(scores: &[f32], excluded: &[u32]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).filter(|&i| !excluded.contains(&(i as u32))).collect();
        order.sort_by(|&a, &b| if ranks_before(scores, a, b) { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater });
        order
    }

    #[test]
    fn the_heap_keeps_the_order_of_a_full_sort_with_ties_and_exclusions() {
        let mut rng = crate::rng::Xoshiro256::new(7, 0);
        for round in 0..200 {
            let n = 1 + round % 60;
            // Few distinct values: many ties, and NaN now and then.
            let scores: Vec<f32> = (0..n).map(|_| if rng.below(17) == 0 { f32::NAN } else { (rng.below(5) as f32) * 0.5 - 1.0 }).collect();
            let excluded: Vec<u32> = (0..n as u32).filter(|_| rng.below(4) == 0).collect();
            let full = sorted(&scores, &excluded);
            for k in [1, 2, 5, n, n + 3] {
                let expected: Vec<usize> = full.iter().copied().take(k).collect();
                assert_eq!(top_k_excluding(&scores, k, &excluded), expected, "n {n} k {k} {scores:?} without {excluded:?}");
            }
        }
    }

    #[test]
    fn unknown_items_are_set_aside_in_order() {
        let items = Interner::from_keys(["a", "b", "c"]);
        let session: Vec<String> = ["c", " x ", "", "a", "y"].iter().map(|s| s.to_string()).collect();
        let prefix = known_items(&session, &items);
        assert_eq!(prefix.known, [2, 0]);
        assert_eq!(prefix.unknown, ["x", "y"]);
    }
}
