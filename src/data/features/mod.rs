//! Item features: dense vectors, TF-IDF text and categories, as one row per item of the prepared dataset.
//!
//! Rows follow the dataset's item indices. Items without features get a zero row and features of items
//! that never occur in the sessions are ignored; both are counted in the report, never silently.

pub mod categorical;
pub mod dense;
pub mod text;

use crate::config::{InputBinding, SparseEncoding};

use super::error::DataError;
use super::intern::Interner;

/// `n_items × dim` float32 values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseFeature {
    pub dim: usize,
    pub values: Vec<f32>,
}

/// Compressed sparse rows: row `i` holds `indices[indptr[i]..indptr[i + 1]]` (ascending) and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseFeature {
    pub width: usize,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    /// The name of every column: a term (TF-IDF) or `column=value` (categorical).
    pub vocabulary: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    Dense(DenseFeature),
    Sparse(SparseFeature),
}

impl Feature {
    /// The input width a GRU sees: the vector size, or the sparse vocabulary size.
    pub fn width(&self) -> usize {
        match self {
            Feature::Dense(dense) => dense.dim,
            Feature::Sparse(sparse) => sparse.width,
        }
    }
}

/// What building a feature found, printed by `prnn data prepare` and `prnn data stats`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureReport {
    /// The spec input it feeds.
    pub input: String,
    /// `dense`, `tfidf` or `categorical`.
    pub encoding: String,
    /// Vector size or vocabulary size.
    pub width: usize,
    /// Dataset items that got a row from the file.
    pub items_with_features: usize,
    /// Dataset items with no row in the file: they get a zero row.
    pub items_without_features: usize,
    /// Rows in the file whose item is not in the dataset: ignored.
    pub ignored_rows: usize,
    /// Mean non-zero entries per dataset item that has features.
    pub mean_nonzeros: f64,
    /// Anything else worth a line: terms dropped by `min_df`, vectors normalised, ...
    pub notes: Vec<String>,
}

/// A sparse feature and its report, for the encodings that read an item table.
fn sparse_output(
    input: &str,
    encoding: &str,
    items: &Interner,
    counts: &text::RowCounts,
    feature: SparseFeature,
    notes: Vec<String>,
) -> (Feature, FeatureReport) {
    let report = FeatureReport {
        input: input.to_string(),
        encoding: encoding.into(),
        width: feature.width,
        items_with_features: counts.matched,
        items_without_features: items.len() - counts.matched,
        ignored_rows: counts.ignored,
        mean_nonzeros: text::mean(feature.indices.len(), counts.matched),
        notes,
    };
    (Feature::Sparse(feature), report)
}

/// Builds the feature for spec input `input` from its source, one row per item of `items`
/// (the prepared dataset's item IDs, by index).
pub fn build(input: &str, binding: &InputBinding, items: &Interner) -> Result<(Feature, FeatureReport), DataError> {
    match binding {
        InputBinding::ItemId {} => unreachable!("item_id inputs have no feature file"),
        InputBinding::Dense { vectors, ids, normalize, header } => dense::load(input, vectors, ids.as_deref(), *normalize, *header, items),
        InputBinding::Sparse { items: path, id_column, columns, encoding, separator, stopwords, min_df, ngrams } => {
            let table = text::ItemTable { path, id_column, columns, separator };
            match encoding {
                SparseEncoding::Tfidf => text::tfidf(input, &table, stopwords, *min_df as usize, *ngrams as usize, items),
                SparseEncoding::Categorical => categorical::encode(input, &table, items),
            }
        }
    }
}

impl Feature {
    /// The rows of `rows`, in that order: the feature of a dataset whose items were renumbered.
    pub fn select_rows(&self, rows: &[usize]) -> Feature {
        match self {
            Feature::Dense(dense) => {
                let mut values = Vec::with_capacity(rows.len() * dense.dim);
                for &row in rows {
                    values.extend_from_slice(&dense.values[row * dense.dim..(row + 1) * dense.dim]);
                }
                Feature::Dense(DenseFeature { dim: dense.dim, values })
            }
            Feature::Sparse(sparse) => {
                let mut indptr = Vec::with_capacity(rows.len() + 1);
                indptr.push(0u64);
                let (mut indices, mut values) = (Vec::new(), Vec::new());
                for &row in rows {
                    let (from, to) = (sparse.indptr[row] as usize, sparse.indptr[row + 1] as usize);
                    indices.extend_from_slice(&sparse.indices[from..to]);
                    values.extend_from_slice(&sparse.values[from..to]);
                    indptr.push(indices.len() as u64);
                }
                Feature::Sparse(SparseFeature { width: sparse.width, indptr, indices, values, vocabulary: sparse.vocabulary.clone() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_rows_keep_their_values_in_the_new_order() {
        let sparse = Feature::Sparse(SparseFeature {
            width: 4,
            indptr: vec![0, 2, 2, 3],
            indices: vec![0, 3, 1],
            values: vec![0.5, 0.25, 1.0],
            vocabulary: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        });
        let Feature::Sparse(picked) = sparse.select_rows(&[2, 0]) else { panic!("sparse stays sparse") };
        assert_eq!((picked.indptr, picked.indices, picked.values), (vec![0, 1, 3], vec![1, 0, 3], vec![1.0, 0.5, 0.25]));
        assert_eq!(picked.width, 4);
        let dense = Feature::Dense(DenseFeature { dim: 2, values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] });
        assert_eq!(dense.select_rows(&[2, 1]), Feature::Dense(DenseFeature { dim: 2, values: vec![5.0, 6.0, 3.0, 4.0] }));
    }
}
