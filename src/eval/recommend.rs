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
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b))
    });
    order.truncate(k);
    order
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
