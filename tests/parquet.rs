//! Parquet inputs prepare to exactly the dataset their TSV prepares to: the shipped datasets are written to
//! Parquet here (with integer and string IDs, several row groups, timestamps and nulls), and
//! `prnn::data::load` must give the identical sessions, item index and features; the cache covers them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;
use prnn::config::RunConfig;
use prnn::data::{Dataset, Source};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A gzipped TSV of the shipped data: its header and its rows.
fn tsv(relative: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(root().join(relative)).unwrap()).read_to_string(&mut text).unwrap();
    let mut lines = text.lines().map(|line| line.split('\t').map(str::to_string).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

/// One column of a Parquet file; `None` is a null.
enum Column {
    Text(Vec<Option<String>>),
    Int32(Vec<Option<i32>>),
    Int64(Vec<Option<i64>>),
}

impl Column {
    /// Column `index` of `rows` as strings, an empty cell as a null (as pandas reads it).
    fn text(rows: &[Vec<String>], index: usize) -> Column {
        Column::Text(rows.iter().map(|row| Some(row[index].clone()).filter(|cell| !cell.is_empty())).collect())
    }

    /// Column `index` of `rows` as integers times `scale`.
    fn int64(rows: &[Vec<String>], index: usize, scale: i64) -> Column {
        Column::Int64(rows.iter().map(|row| Some(row[index].parse::<i64>().unwrap() * scale)).collect())
    }

    /// Column `index` of `rows` as integers, an empty cell as a null.
    fn int32(rows: &[Vec<String>], index: usize) -> Column {
        Column::Int32(rows.iter().map(|row| row[index].parse().ok()).collect())
    }

    fn len(&self) -> usize {
        match self {
            Column::Text(v) => v.len(),
            Column::Int32(v) => v.len(),
            Column::Int64(v) => v.len(),
        }
    }

    fn write(&self, writer: &mut SerializedColumnWriter<'_>, rows: std::ops::Range<usize>, nullable: bool) {
        fn put<T: DataType>(writer: &mut SerializedColumnWriter<'_>, values: &[Option<T::T>], nullable: bool) {
            let present: Vec<T::T> = values.iter().flatten().cloned().collect();
            let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
            writer.typed::<T>().write_batch(&present, nullable.then_some(&levels[..]), None).unwrap();
        }
        match self {
            Column::Text(v) => {
                let bytes: Vec<Option<ByteArray>> =
                    v[rows].iter().map(|s| s.as_ref().map(|s| ByteArray::from(s.as_bytes().to_vec()))).collect();
                put::<ByteArrayType>(writer, &bytes, nullable)
            }
            Column::Int32(v) => put::<Int32Type>(writer, &v[rows], nullable),
            Column::Int64(v) => put::<Int64Type>(writer, &v[rows], nullable),
        }
    }
}

/// Writes `columns` under `schema`, `group_rows` rows per row group.
fn write_parquet(path: &Path, schema: &str, columns: &[Column], group_rows: usize, compression: Compression) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let descriptor = SchemaDescriptor::new(schema.clone());
    let properties = Arc::new(WriterProperties::builder().set_compression(compression).build());
    let mut writer = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, properties).unwrap();
    let rows = columns[0].len();
    for start in (0..rows).step_by(group_rows) {
        let mut group = writer.next_row_group().unwrap();
        for (leaf, column) in columns.iter().enumerate() {
            let mut column_writer = group.next_column().unwrap().unwrap();
            column.write(&mut column_writer, start..(start + group_rows).min(rows), descriptor.column(leaf).max_def_level() > 0);
            column_writer.close().unwrap();
        }
        group.close().unwrap();
    }
    writer.close().unwrap();
}

/// A run config over `train`, `test` and an item table, with its cache in `out`.
fn config(dir: &Path, files: [&Path; 3], columns: &str, encoding: &str) -> RunConfig {
    let [train, test, items] = files.map(|path| path.display().to_string());
    let text = format!(
        "[data]\ntrain = {train:?}\ntest = {test:?}\n\n[inputs.content]\nkind = \"sparse\"\nitems = {items:?}\ncolumns = {columns}\n\
         encoding = \"{encoding}\"\n\n[run]\nout = \"out\"\n"
    );
    prnn::config::parse(&text, dir).unwrap_or_else(|_| panic!("the test's config does not parse:\n{text}"))
}

fn load(config: &RunConfig) -> (Dataset, Source) {
    prnn::data::load(config, true).unwrap_or_else(|error| panic!("{error}"))
}

fn shipped(dataset: &str, file: &str) -> PathBuf {
    root().join("data").join(dataset).join(file)
}

#[test]
fn yoochoose_in_parquet_prepares_as_its_tsv_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_, train) = tsv("data/yoochoose-cat/train.tsv.gz");
    let (_, test) = tsv("data/yoochoose-cat/test.tsv.gz");
    let (_, items) = tsv("data/yoochoose-cat/items.tsv.gz");
    let parquet = |name: &str| dir.path().join(name);

    // Training: integer IDs, the time as a millisecond TIMESTAMP (read as seconds whatever the config's
    // unit), row groups of 100,000 rows. Test: item IDs as strings, the time as plain seconds.
    write_parquet(
        &parquet("train.parquet"),
        "message clicks { required int64 SessionId; required int64 ItemId; required int64 Time (TIMESTAMP(MILLIS, true)); }",
        &[Column::int64(&train, 0, 1), Column::int64(&train, 1, 1), Column::int64(&train, 2, 1000)],
        100_000,
        Compression::SNAPPY,
    );
    write_parquet(
        &parquet("test.parquet"),
        "message clicks { required int32 SessionId; optional binary ItemId (STRING); required int64 Time; }",
        &[Column::int32(&test, 0), Column::text(&test, 1), Column::int64(&test, 2, 1)],
        5_000,
        Compression::ZSTD(Default::default()),
    );
    // Items: the category as text, the price level as a nullable integer, in the TSV's column order reversed.
    write_parquet(
        &parquet("items.parquet"),
        "message items { optional int32 price_level; required binary category (UTF8); required int64 ItemId; }",
        &[Column::int32(&items, 2), Column::text(&items, 1), Column::int64(&items, 0, 1)],
        4_000,
        Compression::GZIP(Default::default()),
    );

    let columns = "[\"category\", \"price_level\"]";
    let from_tsv = config(
        dir.path(),
        [&shipped("yoochoose-cat", "train.tsv.gz"), &shipped("yoochoose-cat", "test.tsv.gz"), &shipped("yoochoose-cat", "items.tsv.gz")],
        columns,
        "categorical",
    );
    let from_parquet =
        config(dir.path(), [&parquet("train.parquet"), &parquet("test.parquet"), &parquet("items.parquet")], columns, "categorical");
    let (expected, _) = load(&from_tsv);
    let (prepared, source) = load(&from_parquet);
    assert_eq!(prepared.items, expected.items);
    assert_eq!((&prepared.train, &prepared.test), (&expected.train, &expected.test));
    assert_eq!(prepared.features, expected.features);
    assert_eq!(prepared, expected);
    let Source::Prepared { cache: Some(cache), .. } = source else { panic!("the first load prepares: {source:?}") };

    // The cache key covers the Parquet files' bytes: the same files load from the cache, a changed one
    // is prepared again.
    assert_eq!(load(&from_parquet).1, Source::Cache(cache.clone()));
    let mut changed = test.clone();
    changed[0][1] = test[1][1].clone();
    write_parquet(
        &parquet("test.parquet"),
        "message clicks { required int32 SessionId; optional binary ItemId (STRING); required int64 Time; }",
        &[Column::int32(&changed, 0), Column::text(&changed, 1), Column::int64(&changed, 2, 1)],
        5_000,
        Compression::ZSTD(Default::default()),
    );
    let (again, source) = load(&from_parquet);
    assert!(matches!(&source, Source::Prepared { cache: Some(path), .. } if *path != cache), "{source:?}");
    assert_ne!(again.test, expected.test);
}

#[test]
fn amazon_text_in_parquet_prepares_as_its_tsv_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_, train) = tsv("data/amazon-scientific/train.tsv.gz");
    let (_, test) = tsv("data/amazon-scientific/test.tsv.gz");
    let (_, items) = tsv("data/amazon-scientific/items.tsv.gz");
    let parquet = |name: &str| dir.path().join(name);
    let clicks = "message clicks { required binary SessionId (STRING); required binary ItemId (STRING); required int64 Time; }";
    for (name, rows) in [("train.parquet", &train), ("test.parquet", &test)] {
        let columns = [Column::text(rows, 0), Column::text(rows, 1), Column::int64(rows, 2, 1)];
        write_parquet(&parquet(name), clicks, &columns, 20_000, Compression::LZ4_RAW);
    }
    write_parquet(
        &parquet("items.parquet"),
        "message items { required binary ItemId (STRING); optional binary text (STRING); }",
        &[Column::text(&items, 0), Column::text(&items, 1)],
        1_000,
        Compression::SNAPPY,
    );
    let from_tsv = config(
        dir.path(),
        [
            &shipped("amazon-scientific", "train.tsv.gz"),
            &shipped("amazon-scientific", "test.tsv.gz"),
            &shipped("amazon-scientific", "items.tsv.gz"),
        ],
        "[\"text\"]",
        "tfidf",
    );
    let from_parquet =
        config(dir.path(), [&parquet("train.parquet"), &parquet("test.parquet"), &parquet("items.parquet")], "[\"text\"]", "tfidf");
    let (expected, _) = load(&from_tsv);
    let (prepared, _) = load(&from_parquet);
    assert_eq!(prepared, expected);
    assert!(expected.features["content"].width() > 1000, "the TF-IDF vocabulary was built");
}
