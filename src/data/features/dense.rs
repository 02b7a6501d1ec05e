//! Dense item vectors from `.npy` + id list or TSV.
//!
//! - `.npy` (or `.npy.gz`): a 2-D C-order array `[rows, dim]` of float32 or float64 (stored as float32),
//!   with `ids`: one item ID per line, line `r + 1` naming row `r`.
//! - anything else (`.tsv`, `.txt`, gzipped or not): one row per line, the item ID then `dim` values,
//!   tab-separated, after an optional header line.
//!
//! Every value must be finite; a NaN that reached training would silently turn every score into NaN.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::text::{duplicate_error, mean, no_match_error, SeenIds};
use super::{DenseFeature, Feature, FeatureReport};
use crate::data::error::{DataCode, DataError, Place};
use crate::data::intern::Interner;
use crate::data::table::{self, TableFormat};

/// Loads the vector of every item of `items` from `vectors` (see the module comment for the formats).
pub fn load(
    input: &str,
    vectors: &Path,
    ids: Option<&Path>,
    normalize: bool,
    header: bool,
    items: &Interner,
) -> Result<(Feature, FeatureReport), DataError> {
    let rows = if is_npy(vectors) {
        let Some(ids) = ids else {
            return Err(DataError::new(DataCode::FeatureShape, vectors, "a `.npy` file of vectors needs a list of their item IDs")
                .note("a `.npy` array holds numbers only, so which row belongs to which item comes from a separate file")
                .help("add `ids = \"vectors.ids\"`: a text file with one item ID per line, row by row"));
        };
        if header {
            return Err(DataError::new(DataCode::Preprocess, vectors, "`header = true` applies to TSV vectors, not to `.npy`")
                .help("remove `header = true`"));
        }
        read_npy(vectors, ids, normalize, items)?
    } else {
        if let Some(ids) = ids {
            return Err(DataError::new(DataCode::Preprocess, vectors, "`ids` applies to `.npy` vectors, not to TSV")
                .note(format!("`ids = \"{}\"` is set, but a TSV of vectors names each row's item in its first column", ids.display()))
                .help("remove `ids`, or, if the vectors are a numpy array, give the file a `.npy` name"));
        }
        read_tsv(vectors, header, normalize, items)?
    };

    let mut notes = Vec::new();
    if let Some(note) = rows.converted {
        notes.push(note);
    }
    if normalize {
        notes.push("vectors L2-normalised".to_string());
        if rows.zero_vectors > 0 {
            notes.push(format!("{} zero vectors left at zero: they have no direction to normalise", rows.zero_vectors));
        }
    }
    let report = FeatureReport {
        input: input.to_string(),
        encoding: "dense".into(),
        width: rows.dim,
        items_with_features: rows.matched,
        items_without_features: items.len() - rows.matched,
        ignored_rows: rows.ignored,
        mean_nonzeros: mean(rows.nonzeros, rows.matched),
        notes,
    };
    Ok((Feature::Dense(DenseFeature { dim: rows.dim, values: rows.values }), report))
}

fn is_npy(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".npy") || name.ends_with(".npy.gz")
}

/// The vectors of the dataset's items, filled in row by row as a file is read.
struct Rows {
    normalize: bool,
    dim: usize,
    /// `items.len() × dim`, zero where an item has no row.
    values: Vec<f32>,
    matched: usize,
    ignored: usize,
    zero_vectors: usize,
    nonzeros: usize,
    /// A note on a dtype conversion, if one was made.
    converted: Option<String>,
}

impl Rows {
    fn new(items: &Interner, normalize: bool, dim: usize) -> Self {
        Rows { normalize, dim, values: vec![0.0; items.len() * dim], matched: 0, ignored: 0, zero_vectors: 0, nonzeros: 0, converted: None }
    }

    /// Stores the vector of `item`, already checked to be finite and to fit float32.
    fn add(&mut self, item: Option<u32>, vector: &[f64]) {
        let Some(item) = item else {
            self.ignored += 1;
            return;
        };
        self.matched += 1;
        let scale = if self.normalize {
            let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                self.zero_vectors += 1;
                1.0
            } else {
                1.0 / norm
            }
        } else {
            1.0
        };
        let start = item as usize * self.dim;
        for (slot, &value) in self.values[start..start + self.dim].iter_mut().zip(vector) {
            *slot = (value * scale) as f32;
            self.nonzeros += usize::from(*slot != 0.0);
        }
    }
}

/// Where a value sits, for error messages.
enum At<'a> {
    /// Row `row` of an array whose IDs are in `ids`.
    Npy { row: u64, ids: &'a Path },
    /// A line of a TSV; the snippet is made only for an error, since it copies the whole line.
    Tsv { line: u64, snippet: &'a dyn Fn() -> String },
}

/// Fails unless every value is finite and fits float32.
fn check_values(path: &Path, id: &[u8], vector: &[f64], at: At) -> Result<(), DataError> {
    let Some((column, &value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite() || v.abs() > f32::MAX as f64) else {
        return Ok(());
    };
    let id = String::from_utf8_lossy(id);
    let what = if value.is_nan() {
        "a NaN".to_string()
    } else if value.is_infinite() {
        format!("an infinite value ({value})")
    } else {
        format!("a value too large for float32 ({value:e})")
    };
    let error = DataError::new(DataCode::FeatureValue, path, format!("the vector of item `{id}` has {what} at column {column}"));
    let error = match at {
        At::Npy { row, ids } => {
            error.note(format!("row {row} of the array (counting from 0); its ID is on line {} of {}", row + 1, ids.display()))
        }
        At::Tsv { line, snippet } => error
            .line(line)
            .snippet(snippet())
            .note(format!("column {column} of the vector (counting from 0) is field {} of the line", column + 2)),
    };
    Err(error.help(format!("fix the vector of `{id}`, or drop that item's row (and its ID) so that it gets a zero vector")))
}

/// The IDs of an `.npy` file's rows, interned in order so that a row's number is its ID's index.
fn read_ids(path: &Path) -> Result<Interner, DataError> {
    let mut reader = BufReader::new(table::open(path, "the vector IDs")?);
    let mut ids = Interner::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut blank_line: Option<u64> = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(|e| table::read_error(path, "vector ID list", &e))? == 0 {
            break;
        }
        number += 1;
        let mut id = line.strip_suffix(b"\n").unwrap_or(&line);
        id = id.strip_suffix(b"\r").unwrap_or(id);
        if number == 1 {
            id = id.strip_prefix("\u{feff}".as_bytes()).unwrap_or(id);
        }
        if id.iter().all(u8::is_ascii_whitespace) {
            blank_line.get_or_insert(number);
            continue;
        }
        // Blank lines may end the file; anywhere else they would shift every later ID by a row.
        if let Some(blank) = blank_line {
            return Err(DataError::new(DataCode::Row, path, format!("line {blank} is blank, but IDs follow it"))
                .line(blank)
                .help("every line names the item of one row of the vectors, in order: remove the blank line, or write the missing ID"));
        }
        let before = ids.len();
        let index = ids.intern(id);
        if ids.len() == before {
            let snippet = String::from_utf8_lossy(id).into_owned();
            return Err(duplicate_error(path, id, index as u64 + 1, Place::Line(number), &snippet));
        }
    }
    Ok(ids)
}

/// numpy's own cap on the header it reads (`max_header_size`); only huge structured dtypes need more.
const MAX_NPY_HEADER: usize = 10_000;
/// Brackets a float array's header nests: its dict and its shape's tuple.
const MAX_NPY_NESTING: usize = 8;

/// Reads an `.npy` header, leaving `reader` at the data. The header is taken in whole and looked at
/// before npyz parses it: its parser backtracks exponentially in the depth of nested brackets (101 `[`
/// ran for minutes), and it allocates whatever length the header's length field claims.
fn read_npy_header(reader: &mut impl Read, path: &Path) -> Result<npyz::NpyHeader, DataError> {
    let unreadable = |why: &dyn std::fmt::Display| {
        DataError::new(DataCode::File, path, format!("not a readable `.npy` file: {why}"))
            .help("write it with `numpy.save(path, vectors.astype(\"float32\"))`")
    };
    let mut prefix = Vec::new();
    let mut take = |prefix: &mut Vec<u8>, n: usize| Read::take(&mut *reader, n as u64).read_to_end(prefix).map_err(|e| unreadable(&e));
    // Magic and version, then the header's length: two bytes in format 1.0, four in 2.0 and 3.0.
    take(&mut prefix, 8)?;
    let length_bytes = if prefix.get(6) == Some(&1) { 2 } else { 4 };
    take(&mut prefix, length_bytes)?;
    if prefix.len() == 8 + length_bytes && prefix.starts_with(b"\x93NUMPY") {
        let length = prefix[8..].iter().rev().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if length > MAX_NPY_HEADER {
            return Err(unreadable(&format!("its header claims {length} bytes; numpy reads at most {MAX_NPY_HEADER}")));
        }
        take(&mut prefix, length)?;
        let mut depth = 0usize;
        for &byte in &prefix[8 + length_bytes..] {
            match byte {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_NPY_NESTING {
                return Err(unreadable(&format!("its header nests brackets more than {MAX_NPY_NESTING} deep")));
            }
        }
    }
    // npyz reads its header from the bytes taken; anything wrong with them is its message.
    npyz::NpyHeader::from_reader(prefix.as_slice()).map_err(|e| unreadable(&e))
}

fn read_npy(path: &Path, ids_path: &Path, normalize: bool, items: &Interner) -> Result<Rows, DataError> {
    let ids = read_ids(ids_path)?;
    let mut reader = table::open(path, "the vectors")?;
    let header = read_npy_header(&mut reader, path)?;
    let shape = header.shape().to_vec();
    // As numpy prints shapes, so that the message matches what the user sees in Python.
    let shape_text = match &shape[..] {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let [rows, dim] = shape[..] else {
        return Err(DataError::new(DataCode::FeatureShape, path, format!("the array has shape {shape_text}; vectors need 2 dimensions"))
            .help("save an array of shape (items, dim): one row per item"));
    };
    let dtype = header.dtype();
    let (width, little) = match &dtype {
        npyz::DType::Plain(ty) if ty.type_char() == npyz::TypeChar::Float && matches!(ty.size_field(), 4 | 8) => {
            (ty.size_field() as usize, ty.endianness() != npyz::Endianness::Big)
        }
        other => {
            let shown = match other {
                npyz::DType::Plain(ty) => ty.to_string(),
                record => record.descr(),
            };
            return Err(DataError::new(
                DataCode::FeatureShape,
                path,
                format!("the array's dtype is `{shown}`; vectors must be float32 (`<f4`) or float64 (`<f8`)"),
            )
            .help("convert it with `vectors.astype(\"float32\")` before saving"));
        }
    };
    if header.order() == npyz::Order::Fortran {
        return Err(DataError::new(DataCode::FeatureShape, path, "the array is stored in Fortran (column-major) order")
            .note("each item's vector must be one contiguous row")
            .help("save `numpy.ascontiguousarray(vectors)` instead"));
    }
    if rows != ids.len() as u64 {
        return Err(DataError::new(
            DataCode::FeatureShape,
            path,
            format!("the array has {rows} rows, but {} lists {} IDs", ids_path.display(), ids.len()),
        )
        .help("the ID file needs exactly one line per row of the array, in the same order"));
    }
    if rows == 0 {
        return Err(DataError::new(DataCode::Empty, path, format!("the array has shape {shape_text}: no vectors")));
    }
    if dim == 0 {
        return Err(DataError::new(DataCode::FeatureShape, path, format!("the array has shape {shape_text}: vectors of length 0")));
    }

    let dim = dim as usize;
    let mut found = Rows::new(items, normalize, dim);
    if width == 8 {
        found.converted = Some("float64 vectors converted to float32".into());
    }
    let mut bytes = vec![0u8; dim * width];
    let mut vector = vec![0f64; dim];
    for row in 0..rows {
        reader.read_exact(&mut bytes).map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                DataError::new(DataCode::File, path, format!("the file ends inside row {row} of the {rows} its header declares"))
                    .help("the file is truncated: write it again")
            } else {
                DataError::io(path, "the vectors", &error)
            }
        })?;
        for (value, chunk) in vector.iter_mut().zip(bytes.chunks_exact(width)) {
            *value = match (width, little) {
                (4, true) => f32::from_le_bytes(chunk.try_into().unwrap()) as f64,
                (4, false) => f32::from_be_bytes(chunk.try_into().unwrap()) as f64,
                (_, true) => f64::from_le_bytes(chunk.try_into().unwrap()),
                (_, false) => f64::from_be_bytes(chunk.try_into().unwrap()),
            };
        }
        let id = ids.bytes(row as u32);
        check_values(path, id, &vector, At::Npy { row, ids: ids_path })?;
        found.add(items.find(id), &vector);
    }
    let mut extra = [0u8; 1];
    let more = reader.read(&mut extra).map_err(|error| DataError::io(path, "the vectors", &error))?;
    if more > 0 {
        return Err(DataError::new(DataCode::File, path, format!("the file holds more data than the {shape_text} its header declares"))
            .help("the file is damaged or its header is wrong: write it again"));
    }
    if found.matched == 0 && !items.is_empty() {
        return Err(no_match_error(ids_path, rows as usize, ids.bytes(0), items));
    }
    Ok(found)
}

fn read_tsv(path: &Path, header: bool, normalize: bool, items: &Interner) -> Result<Rows, DataError> {
    let format = TableFormat { separator: b'\t', header, quoting: false };
    let mut reader = table::reader(table::open(path, "the vectors")?, &format);
    let mut record = csv::ByteRecord::new();
    let read = |reader: &mut csv::Reader<_>, record: &mut csv::ByteRecord| {
        reader.read_byte_record(record).map_err(|error| table::csv_error(path, error))
    };
    if header && !read(&mut reader, &mut record)? {
        return Err(DataError::new(DataCode::Empty, path, "the vector file is empty"));
    }

    let mut found: Option<Rows> = None;
    let mut first_line = 0;
    let mut first_id = Vec::new();
    let mut seen = SeenIds::new(items);
    let mut vector: Vec<f64> = Vec::new();
    while read(&mut reader, &mut record)? {
        let line = record.position().map_or(0, |p| p.line());
        let snippet = || table::record_text(&record, b'\t');
        let got = record.len() - 1;
        let rows = match &mut found {
            Some(rows) => rows,
            None => {
                if got == 0 {
                    return Err(DataError::new(DataCode::FeatureShape, path, "the first row has an item ID but no values")
                        .line(line)
                        .snippet(snippet())
                        .help("write the ID, then the values, separated by tabs (spaces do not separate fields)"));
                }
                first_line = line;
                first_id = record[0].to_vec();
                found.insert(Rows::new(items, normalize, got))
            }
        };
        if got != rows.dim {
            return Err(DataError::new(
                DataCode::FeatureValue,
                path,
                format!("row has {got} values, but the first row (line {first_line}) has {}", rows.dim),
            )
            .line(line)
            .snippet(snippet())
            .help("every vector needs the same length; check for missing or extra tabs"));
        }
        let id = &record[0];
        if id.is_empty() {
            return Err(DataError::new(DataCode::Row, path, "empty item ID in the first field").line(line).snippet(snippet()));
        }
        let item = items.find(id);
        if let Some(first) = seen.first_line(item, id, line) {
            return Err(duplicate_error(path, id, first, Place::Line(line), &snippet()));
        }
        vector.clear();
        for (column, field) in record.iter().skip(1).enumerate() {
            let text = String::from_utf8_lossy(field);
            let value = text.trim().parse::<f64>().map_err(|_| {
                let shown = if text.trim().is_empty() { "is empty".to_string() } else { format!("`{text}` is not a number") };
                DataError::new(DataCode::Row, path, format!("field {} (column {column} of the vector) {shown}", column + 2))
                    .line(line)
                    .snippet(snippet())
                    .help("values are decimal numbers such as `0.25` or `-1.5e-3`; a trailing tab adds an empty field")
            })?;
            vector.push(value);
        }
        check_values(path, id, &vector, At::Tsv { line, snippet: &snippet })?;
        rows.add(item, &vector);
    }
    let Some(rows) = found else {
        return Err(DataError::new(
            DataCode::Empty,
            path,
            if header { "the vector file has a header but no rows" } else { "the vector file is empty" },
        ));
    };
    if rows.matched == 0 && !items.is_empty() {
        return Err(no_match_error(path, rows.ignored, &first_id, items));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn interner(ids: &[&str]) -> Interner {
        Interner::from_keys(ids.iter().copied())
    }

    /// An `.npy` file as numpy writes it: magic, version 1.0, a header padded to 64 bytes, the data.
    fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let shape = match shape {
            [one] => format!("({one},)"),
            _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
        };
        let order = if fortran { "True" } else { "False" };
        let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            Files { dir: tempfile::tempdir().unwrap() }
        }

        fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    fn dense(result: Result<(Feature, FeatureReport), DataError>) -> (DenseFeature, FeatureReport) {
        match result.unwrap() {
            (Feature::Dense(dense), report) => (dense, report),
            _ => panic!("vectors give dense rows"),
        }
    }

    fn load_npy(array: Vec<u8>, ids: &str, normalize: bool, items: &Interner) -> Result<(Feature, FeatureReport), DataError> {
        let files = Files::new();
        let vectors = files.write("vectors.npy", array);
        let ids = files.write("vectors.ids", ids);
        load("image", &vectors, Some(&ids), normalize, false, items)
    }

    fn load_tsv(text: &str, header: bool, normalize: bool, items: &Interner) -> Result<(Feature, FeatureReport), DataError> {
        let files = Files::new();
        let vectors = files.write("vectors.tsv", text);
        load("image", &vectors, None, normalize, header, items)
    }

    #[test]
    fn npy_rows_follow_the_dataset_item_order() {
        let items = interner(&["b", "a", "c"]);
        let array = npy("<f4", false, &[3, 2], &f32s(&[1.0, 2.0, 3.0, 0.0, 5.0, 6.0]));
        let (feature, report) = dense(load_npy(array, "a\nb\nz\n\n", false, &items));
        assert_eq!(feature.dim, 2);
        assert_eq!(feature.values, [3.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
        assert_eq!(report.encoding, "dense");
        assert_eq!(report.width, 2);
        assert_eq!((report.items_with_features, report.items_without_features, report.ignored_rows), (2, 1, 1));
        assert!((report.mean_nonzeros - 1.5).abs() < 1e-12);
    }

    #[test]
    fn npy_float64_and_big_endian_are_read() {
        let items = interner(&["a", "b"]);
        let (feature, report) = dense(load_npy(npy("<f8", false, &[2, 2], &f64s(&[0.5, -1.5, 2.0, 4.0])), "a\r\nb", false, &items));
        assert_eq!(feature.values, [0.5, -1.5, 2.0, 4.0]);
        assert!(report.notes.iter().any(|n| n.contains("float64")), "{:?}", report.notes);
        let big: Vec<u8> = [0.5f32, -1.5, 2.0, 4.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let (feature, _) = dense(load_npy(npy(">f4", false, &[2, 2], &big), "a\nb\n", false, &items));
        assert_eq!(feature.values, [0.5, -1.5, 2.0, 4.0]);
    }

    #[test]
    fn normalisation_leaves_zero_vectors_at_zero() {
        let items = interner(&["a", "b"]);
        let (feature, report) = dense(load_npy(npy("<f8", false, &[2, 2], &f64s(&[3.0, 4.0, 0.0, 0.0])), "a\nb\n", true, &items));
        assert_eq!(feature.values, [0.6, 0.8, 0.0, 0.0]);
        assert!(report.notes.iter().any(|n| n.starts_with("1 zero vectors")), "{:?}", report.notes);
        assert!((report.mean_nonzeros - 1.0).abs() < 1e-12);
    }

    #[test]
    fn npy_shape_and_dtype_errors() {
        let items = interner(&["a", "b"]);
        let cases = [
            (npy("<f4", false, &[4], &f32s(&[1.0; 4])), "shape (4,)"),
            (npy("<f4", false, &[1, 2, 2], &f32s(&[1.0; 4])), "shape (1, 2, 2)"),
            (npy("<i4", false, &[2, 2], &[0; 16]), "dtype is `<i4`"),
            (npy("<f4", true, &[2, 2], &f32s(&[1.0; 4])), "Fortran"),
            (npy("<f4", false, &[3, 2], &f32s(&[1.0; 6])), "3 rows, but"),
            (npy("<f4", false, &[2, 0], &[]), "vectors of length 0"),
        ];
        for (array, expected) in cases {
            let err = load_npy(array, "a\nb\n", false, &items).unwrap_err();
            assert_eq!(err.code, DataCode::FeatureShape, "{err}");
            assert!(err.message.contains(expected), "{expected}: {err}");
            assert!(err.to_string().contains("vectors.npy"), "{err}");
        }
        let err = load_npy(npy("<f4", false, &[3, 2], &f32s(&[1.0; 6])), "a\nb\n", false, &items).unwrap_err();
        assert!(err.message.contains("3 rows") && err.message.contains("lists 2 IDs") && err.message.contains("vectors.ids"), "{err}");
    }

    #[test]
    fn damaged_npy_files_are_file_errors() {
        let items = interner(&["a", "b"]);
        let whole = npy("<f4", false, &[2, 2], &f32s(&[1.0; 4]));
        let cases = [
            (b"not an array at all".to_vec(), "not a readable `.npy`"),
            (whole[..whole.len() - 3].to_vec(), "ends inside row 1"),
            ([whole.clone(), vec![0]].concat(), "more data"),
        ];
        for (array, expected) in cases {
            let err = load_npy(array, "a\nb\n", false, &items).unwrap_err();
            assert_eq!(err.code, DataCode::File, "{err}");
            assert!(err.message.contains(expected) && err.to_string().contains("vectors.npy"), "{expected}: {err}");
        }
        let files = Files::new();
        let ids = files.write("vectors.ids", "a\nb\n");
        let err = load("image", &files.dir.path().join("missing.npy"), Some(&ids), false, false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::File);
        assert!(err.to_string().contains("missing.npy"), "{err}");
        let vectors = files.write("vectors.npy", &whole);
        let err = load("image", &vectors, Some(&files.dir.path().join("gone.ids")), false, false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::File);
        assert!(err.to_string().contains("gone.ids"), "{err}");
    }

    #[test]
    fn headers_no_float_array_has_are_refused_before_parsing() {
        let items = interner(&["a", "b"]);
        // Deeper nesting takes npyz's header parser exponentially longer; a huge length, gigabytes of memory.
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}(2, 2){}, }}\n", "[".repeat(12), "]".repeat(12));
        let mut nested = b"\x93NUMPY\x01\x00".to_vec();
        nested.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        nested.extend_from_slice(dict.as_bytes());
        let mut huge = b"\x93NUMPY\x02\x00".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        for (array, expected) in [(nested, "nests brackets more than 8 deep"), (huge, "claims 4294967295 bytes")] {
            let err = load_npy(array, "a\nb\n", false, &items).unwrap_err();
            assert_eq!(err.code, DataCode::File, "{err}");
            assert!(err.message.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn id_list_errors() {
        let items = interner(&["a", "b", "c"]);
        let array = || npy("<f4", false, &[3, 1], &f32s(&[1.0, 2.0, 3.0]));
        let err = load_npy(array(), "a\nb\na\n", false, &items).unwrap_err();
        assert_eq!((err.code, err.line), (DataCode::FeatureShape, Some(3)));
        assert!(err.message.contains("`a` is listed twice: on line 1 and line 3") && err.to_string().contains("vectors.ids:3"), "{err}");
        let err = load_npy(array(), "a\n\nb\nc\n", false, &items).unwrap_err();
        assert_eq!((err.code, err.line), (DataCode::Row, Some(2)));
        assert!(err.to_string().contains("vectors.ids:2"), "{err}");
        let err = load_npy(array(), "x\ny\nz\n", false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("none of the 3 rows") && err.to_string().contains("vectors.ids"), "{err}");

        let files = Files::new();
        let vectors = files.write("vectors.npy", array());
        let err = load("image", &vectors, None, false, false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::FeatureShape);
        assert!(err.notes.iter().any(|n| n.contains("add `ids = ")) && err.to_string().contains("vectors.npy"), "{err}");
        let ids = files.write("vectors.ids", "a\nb\nc\n");
        let err = load("image", &vectors, Some(&ids), false, true, &items).unwrap_err();
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("header") && err.to_string().contains("vectors.npy"), "{err}");
    }

    #[test]
    fn non_finite_values_name_the_item() {
        let items = interner(&["a", "b"]);
        for (value, what) in [(f32::NAN, "a NaN"), (f32::NEG_INFINITY, "an infinite value (-inf)")] {
            let err = load_npy(npy("<f4", false, &[2, 3], &f32s(&[1.0, 2.0, 3.0, 4.0, value, 6.0])), "a\nb\n", false, &items).unwrap_err();
            assert_eq!(err.code, DataCode::FeatureValue);
            assert!(err.message.contains(&format!("item `b` has {what} at column 1")), "{err}");
            assert!(
                err.notes.iter().any(|n| n.contains("row 1 of the array") && n.contains("line 2 of") && n.contains("vectors.ids")),
                "{err}"
            );
            assert!(err.notes.iter().any(|n| n.contains("drop that item's row")), "{err}");
            assert!(err.to_string().contains("vectors.npy"), "{err}");
        }
        let err = load_npy(npy("<f8", false, &[2, 1], &f64s(&[1.0, 1e300])), "a\nb\n", false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::FeatureValue);
        assert!(err.message.contains("too large for float32"), "{err}");
        let err = load_tsv("a\t1\t2\nb\t3\tnan\n", false, false, &items).unwrap_err();
        assert_eq!((err.code, err.line), (DataCode::FeatureValue, Some(2)));
        assert!(err.message.contains("item `b` has a NaN at column 1") && err.to_string().contains("vectors.tsv:2"), "{err}");
    }

    #[test]
    fn tsv_vectors_with_and_without_header() {
        let items = interner(&["a", "b", "c"]);
        let (feature, report) = dense(load_tsv("id\tx\ty\nb\t3\t4\nz\t1\t1\na\t 0.5\t-1e-1\n", true, false, &items));
        assert_eq!(feature.dim, 2);
        assert_eq!(feature.values, [0.5, -0.1, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!((report.items_with_features, report.items_without_features, report.ignored_rows), (2, 1, 1));
        let (feature, _) = dense(load_tsv("b\t3\t4\na\t0\t0\n", false, true, &items));
        assert_eq!(feature.values, [0.0, 0.0, 0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn tsv_errors_name_the_line() {
        let items = interner(&["a", "b", "c"]);
        let cases = [
            ("a\t1\t2\nb\t1\n", false, DataCode::FeatureValue, Some(2), "row has 1 values, but the first row (line 1) has 2"),
            ("a\t1\t2\nb\t1\tx\n", false, DataCode::Row, Some(2), "field 3 (column 1 of the vector) `x` is not a number"),
            ("a\t1\t2\nb\t1\t2\t\n", false, DataCode::FeatureValue, Some(2), "row has 3 values"),
            ("a\t1\nb\t2\na\t3\n", false, DataCode::FeatureShape, Some(3), "`a` is listed twice: on line 1 and line 3"),
            ("a 1 2\n", false, DataCode::FeatureShape, Some(1), "no values"),
            ("a\t1\n\t2\n", false, DataCode::Row, Some(2), "empty item ID"),
            ("", false, DataCode::Empty, None, "empty"),
            ("id\tx\n", true, DataCode::Empty, None, "header but no rows"),
            ("x\t1\n", false, DataCode::Preprocess, None, "none of the 1 rows"),
        ];
        for (text, header, code, line, expected) in cases {
            let err = load_tsv(text, header, false, &items).unwrap_err();
            assert_eq!((err.code, err.line), (code, line), "{text:?}: {err}");
            assert!(err.message.contains(expected), "{expected}: {err}");
            let location = match line {
                Some(line) => format!("vectors.tsv:{line}"),
                None => "vectors.tsv".to_string(),
            };
            assert!(err.to_string().contains(&location), "{err}");
        }
        let files = Files::new();
        let vectors = files.write("vectors.tsv", "a\t1\n");
        let ids = files.write("vectors.ids", "a\n");
        let err = load("image", &vectors, Some(&ids), false, false, &items).unwrap_err();
        assert_eq!(err.code, DataCode::Preprocess);
        assert!(err.message.contains("`ids` applies to `.npy`") && err.to_string().contains("vectors.tsv"), "{err}");
    }
}
