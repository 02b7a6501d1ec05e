//! Categorical item columns as one-hot / multi-hot sparse rows.
//!
//! Every listed column adds its values to an item's row: a cell is split at whitespace into several values
//! (multi-hot), and each value switches on the vocabulary entry `column=value` with weight 1. The
//! vocabulary holds the values dataset items have, ordered by the column's place in `columns`, then by
//! value. A category name with spaces therefore becomes several values; write it with `_` to keep it one.

use super::text::{read_rows, ItemTable};
use super::{Feature, FeatureReport, SparseFeature};
use crate::data::error::{DataCode, DataError};
use crate::data::intern::Interner;

/// Builds the multi-hot rows of `items` from the columns of `table`.
pub fn encode(input: &str, table: &ItemTable, items: &Interner) -> Result<(Feature, FeatureReport), DataError> {
    let mut values: Vec<Interner> = table.columns.iter().map(|_| Interner::new()).collect();
    let mut row_of_item = vec![u32::MAX; items.len()];
    let mut row_start: Vec<u64> = vec![0];
    // (column, value id within the column), sorted and unique within a row.
    let mut entries: Vec<(u32, u32)> = Vec::new();
    let mut empty_rows = 0usize;

    let counts = read_rows(table, items, |item, cells| {
        let begin = entries.len();
        for (column, cell) in cells.iter().enumerate() {
            for value in cell.split_whitespace() {
                entries.push((column as u32, values[column].intern(value.as_bytes())));
            }
        }
        let row = &mut entries[begin..];
        row.sort_unstable();
        let unique = dedup_sorted(row);
        entries.truncate(begin + unique);
        if unique == 0 {
            empty_rows += 1;
        }
        row_of_item[item as usize] = (row_start.len() - 1) as u32;
        row_start.push(entries.len() as u64);
        Ok(())
    })?;

    // Vocabulary position of every (column, value id): columns in order, values sorted within each.
    let mut position: Vec<Vec<u32>> = Vec::with_capacity(values.len());
    let mut vocabulary: Vec<String> = Vec::new();
    let mut per_column = Vec::with_capacity(values.len());
    for (column, interner) in table.columns.iter().zip(&values) {
        let mut order: Vec<u32> = (0..interner.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| interner.bytes(a).cmp(interner.bytes(b)));
        let mut of_value = vec![0u32; interner.len()];
        for &value in &order {
            of_value[value as usize] = vocabulary.len() as u32;
            vocabulary.push(format!("{column}={}", interner.get_str(value)));
        }
        position.push(of_value);
        per_column.push(format!("`{column}` {} values", interner.len()));
    }
    if vocabulary.is_empty() {
        return Err(DataError::new(
            DataCode::Preprocess,
            table.path,
            format!("no category for input `{input}`: every cell of the {} dataset items' rows is empty", counts.matched),
        )
        .help("check `columns`: they name the columns holding the categories"));
    }

    let mut indptr = Vec::with_capacity(items.len() + 1);
    indptr.push(0u64);
    let mut indices: Vec<u32> = Vec::with_capacity(entries.len());
    for &row in &row_of_item {
        if row != u32::MAX {
            let row = row as usize;
            let begin = indices.len();
            let span = &entries[row_start[row] as usize..row_start[row + 1] as usize];
            indices.extend(span.iter().map(|&(column, value)| position[column as usize][value as usize]));
            indices[begin..].sort_unstable();
        }
        indptr.push(indices.len() as u64);
    }
    let values = vec![1.0f32; indices.len()];

    let mut notes = vec![format!("vocabulary: {}", per_column.join(", "))];
    if empty_rows > 0 {
        notes.push(format!("{empty_rows} items have a row whose cells are all empty: zero rows"));
    }
    let feature = SparseFeature { width: vocabulary.len(), indptr, indices, values, vocabulary };
    Ok(super::sparse_output(input, "categorical", items, &counts, feature, notes))
}

/// Moves the distinct entries of a sorted slice to its front; returns how many there are.
fn dedup_sorted<T: PartialEq + Copy>(row: &mut [T]) -> usize {
    let mut unique = 0;
    for i in 0..row.len() {
        if unique == 0 || row[i] != row[unique - 1] {
            row[unique] = row[i];
            unique += 1;
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn run(text: &str, columns: &[&str], ids: &[&str]) -> (Result<(SparseFeature, FeatureReport), DataError>, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("categories.tsv");
        std::fs::write(&path, text).unwrap();
        let mut items = Interner::new();
        for id in ids {
            items.intern(id.as_bytes());
        }
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let table = ItemTable { path: &path, id_column: "ItemId", columns: &columns, separator: "\t" };
        let result = encode("category", &table, &items).map(|(feature, report)| match feature {
            Feature::Sparse(sparse) => (sparse, report),
            Feature::Dense(_) => panic!("categories give sparse rows"),
        });
        (result, path)
    }

    #[test]
    fn multi_hot_rows_in_column_then_value_order() {
        let text = "ItemId\tcategory\tbrand\tprice\n\
            a\tsport  shoes sport\tAcme\t10\n\
            b\tshoes\tZeta\t5\n\
            c\t\t\t1\n\
            x\thats\tAcme\t3\n";
        let (result, _) = run(text, &["category", "brand"], &["a", "b", "c", "d"]);
        let (feature, report) = result.unwrap();
        assert_eq!(feature.vocabulary, ["category=shoes", "category=sport", "brand=Acme", "brand=Zeta"]);
        assert_eq!(feature.width, 4);
        assert_eq!(feature.indptr, [0, 3, 5, 5, 5]);
        assert_eq!(feature.indices, [0, 1, 2, 0, 3]);
        assert_eq!(feature.values, [1.0; 5]);
        assert_eq!(report.encoding, "categorical");
        assert_eq!((report.items_with_features, report.items_without_features, report.ignored_rows), (3, 1, 1));
        assert!((report.mean_nonzeros - 5.0 / 3.0).abs() < 1e-12);
        assert!(report.notes.iter().any(|n| n.starts_with("1 items have a row whose cells are all empty")), "{:?}", report.notes);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let (result, _) = run("ItemId\tcategory\na\tx\nb\ty\na\tz\n", &["category"], &["a", "b"]);
        let err = result.unwrap_err();
        assert_eq!((err.code, err.line), (DataCode::FeatureShape, Some(4)));
        assert!(err.message.contains("on line 2 and line 4") && err.to_string().contains("categories.tsv:4"), "{err}");

        let (result, _) = run("ItemId\tcategory\na\tx\n", &["categroy"], &["a"]);
        let err = result.unwrap_err();
        assert_eq!(err.code, DataCode::Column);
        assert!(err.notes.iter().any(|n| n.contains("did you mean `category`")) && err.to_string().contains("categories.tsv:1"), "{err}");

        let (result, _) = run("ItemId\tcategory\na\t\nb\t \n", &["category"], &["a", "b"]);
        let err = result.unwrap_err();
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("every cell") && err.to_string().contains("categories.tsv"), "{err}");

        let (result, _) = run("ItemId\tcategory\nq\tx\n", &["category"], &["a"]);
        let err = result.unwrap_err();
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("none of the 1 rows") && err.to_string().contains("categories.tsv"), "{err}");
    }
}
