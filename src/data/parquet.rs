//! Parquet session files and item tables, read one row group at a time through parquet's column readers.
//!
//! A file whose name ends in `.parquet` is read here instead of as delimited text; the config names its
//! columns exactly as for text (by name, or by 1-based position with `header = false`), and the rows go to
//! the same [`SessionSink`] and [`ItemRows`] as text rows do. What the columns may hold:
//!
//! - IDs (session, item, `id_column`) and item-table cells: strings (`BYTE_ARRAY`, taken as their bytes) or
//!   integers (`INT32`/`INT64`, signed or unsigned), written as decimal text so that a Parquet file and a
//!   TSV of the same data give the same keys;
//! - time: integers or floats in the config's `unit` (s, ms, us), strings read as text would be (any
//!   unit), or a `TIMESTAMP` (any precision, and Spark's legacy `INT96`), `DATE` or `TIME` column, which
//!   carries its own unit and is converted to seconds whatever `unit` says.
//!
//! A null ID or time makes the row a bad row, handled as `[data.format] bad_rows` says; a null item-table
//! cell is an empty cell, as pandas writes a missing value to CSV.
//!
//! Memory: only the needed columns are decoded, a page and a batch of [`BATCH`] rows at a time; the
//! event store is sized once from the row count in the footer.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ::parquet::basic::{Compression, ConvertedType, LogicalType, TimeUnit as ParquetUnit, Type as Physical};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type, Int96, Int96Type};
use ::parquet::errors::ParquetError;
use ::parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use ::parquet::schema::types::ColumnDescriptor;

use super::error::{DataCode, DataError, FileRow, Place};
use super::features::text::{ItemRows, ItemTable, RowCounts};
use super::intern::Interner;
use super::sessions::{check_time, ReadSessions, RowProblem, SessionKey, SessionSink};
use super::time::TimeParser;
use crate::config::{SessionFormat, TimeUnit};

/// Rows decoded per column per step: large enough that the per-call cost vanishes, small enough that
/// the decoded batch (a few hundred kilobytes) is nothing next to the event store.
const BATCH: usize = 8192;

/// Whether `path` names a Parquet file: by its extension, as `.gz` decides decompression.
pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("parquet"))
}

/// Reads a Parquet session file into the same store as a text one.
pub(super) fn read_sessions(path: &Path, format: &SessionFormat, items: &mut Interner) -> Result<ReadSessions, DataError> {
    let file = ParquetFile::open(path, "session file")?;
    let session = file.column(&format.session, format.header, "[data.format] session", Role::Id)?;
    let item = file.column(&format.item, format.header, "[data.format] item", Role::Id)?;
    let mut columns = vec![session, item];
    let mut units = Vec::with_capacity(format.time.len());
    for part in &format.time {
        columns.push(file.column(part.column(), format.header, "[data.format] time", Role::Time(part.unit()))?);
        units.push(part.unit());
    }
    file.check_codecs(&columns)?;

    let mut sink = SessionSink::new(path, format.bad_rows, file.expected_rows());
    let mut reader = SessionRows { units, time_parser: TimeParser::default(), key_text: Vec::new(), item_text: Vec::new() };
    file.for_each_batch(&mut columns, |columns, rows, first| {
        for row in 0..rows {
            match reader.row(columns, row) {
                Ok((key, item, time)) => sink.push(key, items.intern(item), time),
                Err(problem) => sink.bad_row(problem, Place::Row(first.at(row)), || snippet(columns, row))?,
            }
        }
        Ok(())
    })?;
    sink.finish("the file has no rows")
}

/// Turns a row of the needed columns (session, item, then the time columns) into an event's parts.
struct SessionRows {
    /// The config's unit of each time column.
    units: Vec<TimeUnit>,
    time_parser: TimeParser,
    /// Integer IDs written out as text, reused from row to row.
    key_text: Vec<u8>,
    item_text: Vec<u8>,
}

impl SessionRows {
    /// Row `row`'s session key, item ID and time in seconds, or why the row cannot be read.
    fn row<'b>(&'b mut self, columns: &'b [Column], row: usize) -> Result<(SessionKey<'b>, &'b [u8], f64), RowProblem> {
        let (session, item, times) = (&columns[0], &columns[1], &columns[2..]);
        let key = session.session_key(row, &mut self.key_text).ok_or_else(|| RowProblem::missing_id(true, "null"))?;
        let item = item.id(row, &mut self.item_text).ok_or_else(|| RowProblem::missing_id(false, "null"))?;
        let empty_key = matches!(key, SessionKey::Text(b""));
        if empty_key || item.is_empty() {
            return Err(RowProblem::missing_id(empty_key, "empty"));
        }
        let mut time = 0.0;
        for (column, &unit) in times.iter().zip(&self.units) {
            time += column.seconds(row, unit, &mut self.time_parser)?;
        }
        Ok((key, item, check_time(time)?))
    }
}

/// Reads a Parquet item table, handing each dataset item's row to `each` as the text reader does.
pub(crate) fn read_item_rows(
    table: &ItemTable,
    items: &Interner,
    mut each: impl FnMut(u32, &[&str]) -> Result<(), DataError>,
) -> Result<RowCounts, DataError> {
    let path = table.path;
    let file = ParquetFile::open(path, "the item table")?;
    let mut columns = vec![file.column(table.id_column, true, "id_column", Role::Id)?];
    for column in table.columns {
        columns.push(file.column(column, true, "columns", Role::Cell)?);
    }
    file.check_codecs(&columns)?;

    let mut rows = ItemRows::new(path, table.id_column, items);
    let mut id_text = Vec::new();
    let mut cell_texts: Vec<Vec<u8>> = vec![Vec::new(); table.columns.len()];
    file.for_each_batch(&mut columns, |columns, count, first| {
        let (id_column, cell_columns) = columns.split_first().expect("the id column comes first");
        for row in 0..count {
            let at = Place::Row(first.at(row));
            let Some(id) = id_column.id(row, &mut id_text) else {
                return Err(DataError::new(DataCode::Row, path, format!("the item ID in column `{}` is null", table.id_column))
                    .at(at)
                    .snippet(snippet(columns, row))
                    .help("every row of an item table needs its item's ID"));
            };
            let Some(item) = rows.id(id, at, || snippet(columns, row))? else { continue };
            let mut cells: Vec<&str> = Vec::with_capacity(cell_columns.len());
            for ((column, text), name) in cell_columns.iter().zip(cell_texts.iter_mut()).zip(table.columns) {
                // A null cell is an empty one, as pandas writes a missing value to CSV.
                let bytes = column.id(row, text).unwrap_or_default();
                let cell = std::str::from_utf8(bytes).map_err(|error| {
                    DataError::new(
                        DataCode::Row,
                        path,
                        format!("column `{name}` is not UTF-8 (bad byte at offset {})", error.valid_up_to()),
                    )
                    .at(at)
                    .snippet(snippet(columns, row))
                    .help("write the column as UTF-8 strings")
                })?;
                cells.push(cell);
            }
            each(item, &cells)?;
        }
        Ok(())
    })?;
    rows.finish(|| {
        DataError::new(DataCode::Empty, path, "the item table has no rows")
            .help("check that this is the right file and that it was written completely")
    })
}

/// What a needed column is for, which decides the types it may have.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// A session or item ID.
    Id,
    /// An item-table column, read as text.
    Cell,
    /// A time column with the config's unit.
    Time(TimeUnit),
}

/// How a column's values become what its role needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Meaning {
    /// Strings (for times: text in the config's unit).
    Text,
    /// Integers; unsigned ones are stored in the signed physical type and read back as unsigned.
    Integer { unsigned: bool },
    /// Numbers whose seconds are the value divided by this (the config's unit, or a TIMESTAMP's or TIME's).
    Divided(f64),
    /// Days since 1970-01-01 (DATE).
    Days,
    /// Spark's legacy INT96 timestamps: nanoseconds of the day and a Julian day.
    Int96,
}

/// An open Parquet file with its top-level column names.
struct ParquetFile<'p> {
    path: &'p Path,
    reader: SerializedFileReader<File>,
    names: Vec<String>,
    /// The file's size, which bounds how many rows its footer may honestly claim.
    bytes: u64,
}

impl<'p> ParquetFile<'p> {
    /// Opens `path`, checking the magic bytes at both ends first so that text with a `.parquet` name and a
    /// file cut short get their own message rather than the decoder's.
    fn open(path: &'p Path, what: &str) -> Result<Self, DataError> {
        let mut file = File::open(path).map_err(|e| DataError::io(path, what, &e))?;
        let io = |e: std::io::Error| DataError::io(path, what, &e);
        let bytes = file.metadata().map_err(io)?.len();
        if bytes == 0 {
            return Err(super::sessions::empty_file(path, "the file is empty"));
        }
        let mut head = [0u8; 4];
        let mut tail = [0u8; 4];
        file.read_exact(&mut head[..bytes.min(4) as usize]).map_err(io)?;
        if &head != b"PAR1" {
            return Err(DataError::new(DataCode::File, path, format!("the {what} is not a Parquet file: it does not start with `PAR1`"))
                .help(
                "a name ending in `.parquet` makes prnn read the file as Parquet; if it holds text (TSV or CSV), name it `.tsv` or `.csv`",
            ));
        }
        // The smallest Parquet file: `PAR1`, a footer length and `PAR1` again, around the footer.
        if bytes < 12 {
            return Err(cut_short(path, what));
        }
        file.seek(SeekFrom::End(-4)).and_then(|_| file.read_exact(&mut tail)).map_err(io)?;
        match &tail {
            b"PAR1" => {}
            b"PARE" => {
                return Err(DataError::new(DataCode::File, path, format!("the {what} is an encrypted Parquet file"))
                    .help("prnn reads unencrypted Parquet only; write the file without encryption"))
            }
            _ => return Err(cut_short(path, what)),
        }
        let reader = decode(|| SerializedFileReader::new(file)).map_err(|error| {
            DataError::new(DataCode::File, path, format!("the Parquet footer of the {what} cannot be read: {error}"))
                .help("the file is damaged or was cut short; write it again")
        })?;
        let names =
            reader.metadata().file_metadata().schema_descr().root_schema().get_fields().iter().map(|f| f.name().to_string()).collect();
        Ok(ParquetFile { path, reader, names, bytes })
    }

    /// The rows the footer announces, to size the event store: bounded by eight rows per byte of file (far
    /// more than real session data packs), so that a damaged footer cannot ask for terabytes.
    fn expected_rows(&self) -> usize {
        let claimed = self.reader.metadata().file_metadata().num_rows().max(0) as u64;
        claimed.min(self.bytes.saturating_mul(8)).min(u32::MAX as u64) as usize
    }

    /// The column `name` names (by name, or by 1-based position without a header), with how to read it
    /// for `role`.
    fn column(&self, name: &str, header: bool, setting: &str, role: Role) -> Result<Column, DataError> {
        let path = self.path;
        let field = if header {
            self.names.iter().position(|n| n == name).ok_or_else(|| self.missing_column(name, setting))?
        } else {
            let position = super::table::find_column(path, None, name, setting)?;
            if position >= self.names.len() {
                return Err(DataError::new(
                    DataCode::Column,
                    path,
                    format!("`{setting}` names column {name}, but the file has {} columns", self.names.len()),
                )
                .note(format!("the file's columns are {}", quoted_list(&self.names))));
            }
            position
        };
        let shown = &self.names[field];
        let schema = self.reader.metadata().file_metadata().schema_descr();
        let flat = schema.root_schema().get_fields()[field].is_primitive();
        let leaf = (0..schema.num_columns()).find(|&leaf| schema.get_column_root_idx(leaf) == field);
        let (Some(leaf), true) = (leaf, flat) else {
            return Err(DataError::new(DataCode::Column, path, format!("column `{shown}` is nested (a struct, list or map)"))
                .help("prnn reads flat columns: write the needed field as a column of its own"));
        };
        let descriptor = schema.column(leaf);
        if descriptor.max_rep_level() > 0 {
            return Err(DataError::new(DataCode::Column, path, format!("column `{shown}` is repeated (a list)"))
                .help("prnn reads one value per row: write the column as a plain one"));
        }
        let meaning = meaning(&descriptor, role).map_err(|why| {
            let (holds, help) = why;
            DataError::new(DataCode::Column, path, format!("column `{shown}` holds {holds}, which {}", role_needs(role)))
                .note(format!("`{setting}` names it; its Parquet type is {}", type_name(&descriptor)))
                .help(help)
        })?;
        Ok(Column::new(shown.clone(), leaf, &descriptor, meaning))
    }

    /// E0902 for a name that is not a column, listing the file's columns and the closest one.
    fn missing_column(&self, name: &str, setting: &str) -> DataError {
        let error = DataError::new(DataCode::Column, self.path, format!("no column `{name}` in the Parquet file"))
            .note(format!("`{setting}` names it; the file has {}", quoted_list(&self.names)));
        match crate::diagnostic::closest(name, self.names.iter().map(String::as_str)) {
            Some(best) => error.help(format!("did you mean `{best}`?")),
            None => error.help("name the column as the file's schema writes it (column names are case-sensitive)"),
        }
    }

    /// Refuses up front a needed column compressed with a codec this build does not decode.
    fn check_codecs(&self, columns: &[Column]) -> Result<(), DataError> {
        for group in self.reader.metadata().row_groups() {
            for column in columns {
                let codec = group.column(column.leaf).compression();
                if matches!(codec, Compression::BROTLI(_) | Compression::LZO) {
                    return Err(DataError::new(
                        DataCode::File,
                        self.path,
                        format!("column `{}` is compressed with {codec}, which prnn does not decode", column.name),
                    )
                    .note("prnn reads uncompressed, Snappy, gzip, LZ4 and zstd Parquet, the codecs Spark, pyarrow and DataFusion write")
                    .help("write the file again with Snappy or zstd, e.g. pyarrow's `compression=\"zstd\"`"));
                }
            }
        }
        Ok(())
    }

    /// Reads `columns` row group by row group in batches of at most [`BATCH`] rows, calling `each` with the
    /// columns, the batch's row count and where its first row is.
    fn for_each_batch(
        &self,
        columns: &mut [Column],
        mut each: impl FnMut(&[Column], usize, FirstRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let path = self.path;
        let mut row = 0u64;
        for group in 0..self.reader.num_row_groups() {
            let damaged = |error: String| {
                DataError::new(DataCode::Row, path, format!("row group {group} cannot be read: {error}"))
                    .help("the file is damaged; write it again")
            };
            let reader = decode(|| self.reader.get_row_group(group)).map_err(|e| damaged(e.to_string()))?;
            let rows = reader.metadata().num_rows().max(0) as u64;
            for column in columns.iter_mut() {
                decode(|| column.start(&*reader)).map_err(|e| damaged(format!("column `{}`: {e}", column.name)))?;
            }
            let mut in_group = 0u64;
            while in_group < rows {
                let want = (rows - in_group).min(BATCH as u64) as usize;
                for column in columns.iter_mut() {
                    let got = decode(|| column.read(want)).map_err(|e| damaged(format!("column `{}`: {e}", column.name)))?;
                    if got != want {
                        return Err(damaged(format!("column `{}` ends after {} of its {rows} rows", column.name, in_group + got as u64)));
                    }
                }
                each(columns, want, FirstRow { group, in_group, row: row + in_group })?;
                in_group += want as u64;
            }
            row += rows;
        }
        Ok(())
    }
}

/// Where a batch's first row is; row `r` of the batch is [`FirstRow::at`]`(r)`.
#[derive(Debug, Clone, Copy)]
struct FirstRow {
    group: usize,
    in_group: u64,
    row: u64,
}

impl FirstRow {
    fn at(self, offset: usize) -> FileRow {
        FileRow { group: self.group, in_group: self.in_group + offset as u64, row: self.row + offset as u64 }
    }
}

fn cut_short(path: &Path, what: &str) -> DataError {
    DataError::new(DataCode::File, path, format!("the {what} ends early: it has no Parquet footer"))
        .help("the file was cut short (an interrupted write or copy?); write or copy it again")
}

/// Runs a call into the Parquet decoder, turning a panic on damaged input into an error: a damaged file
/// must get a message, never bring the process down.
fn decode<T>(call: impl FnOnce() -> Result<T, ParquetError>) -> Result<T, ParquetError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let text = panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied());
        Err(ParquetError::General(format!("the decoder failed: {}", text.unwrap_or("no reason given"))))
    })
}

fn quoted_list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// What a column of this role must hold, after "which".
fn role_needs(role: Role) -> &'static str {
    match role {
        Role::Id => "cannot be an ID: IDs are strings or integers",
        Role::Cell => "prnn does not read as text: item-table columns are strings or integers",
        Role::Time(TimeUnit::Date | TimeUnit::Datetime) => "does not read as a date or datetime",
        Role::Time(_) => "is not a time",
    }
}

/// The column's Parquet type as a schema prints it: physical, then logical or converted type.
fn type_name(descriptor: &ColumnDescriptor) -> String {
    let physical = descriptor.physical_type();
    match (descriptor.logical_type_ref(), descriptor.converted_type()) {
        (Some(logical), _) => format!("{physical} ({logical:?})"),
        (None, ConvertedType::NONE) => physical.to_string(),
        (None, converted) => format!("{physical} ({converted})"),
    }
}

/// How a column's values are read for `role`, or what it holds and how to fix it.
fn meaning(descriptor: &ColumnDescriptor, role: Role) -> Result<Meaning, (String, String)> {
    let physical = descriptor.physical_type();
    let logical = descriptor.logical_type_ref();
    let converted = descriptor.converted_type();
    let cast = "cast the column to a string or integer type when writing the file".to_string();
    // What the column's own type says about time, whatever the role.
    let temporal = match (logical, converted) {
        (Some(LogicalType::Timestamp(t)) | Some(LogicalType::Time(t)), _) => Some(Meaning::Divided(unit_divisor(&t.unit))),
        (Some(LogicalType::Date), _) | (None, ConvertedType::DATE) => Some(Meaning::Days),
        (None, ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIME_MILLIS) => Some(Meaning::Divided(1e3)),
        (None, ConvertedType::TIMESTAMP_MICROS | ConvertedType::TIME_MICROS) => Some(Meaning::Divided(1e6)),
        _ if physical == Physical::INT96 => Some(Meaning::Int96),
        _ => None,
    };
    let decimal = matches!(logical, Some(LogicalType::Decimal(_))) || converted == ConvertedType::DECIMAL;
    let unsigned = match (logical, converted) {
        (Some(LogicalType::Integer(int)), _) => !int.is_signed,
        (None, c) => matches!(c, ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64),
        _ => false,
    };
    match role {
        Role::Id | Role::Cell => match physical {
            // A decimal in BYTE_ARRAY is a binary integer, not text.
            Physical::BYTE_ARRAY if decimal => Err(("decimals".into(), cast)),
            Physical::BYTE_ARRAY => Ok(Meaning::Text),
            Physical::INT32 | Physical::INT64 if temporal.is_some() => Err(("dates or times".into(), cast)),
            Physical::INT32 | Physical::INT64 if decimal && descriptor.type_scale() != 0 => {
                Err((format!("decimals with {} digits after the point", descriptor.type_scale()), cast))
            }
            Physical::INT32 | Physical::INT64 => Ok(Meaning::Integer { unsigned }),
            Physical::INT96 => Err(("timestamps".into(), cast)),
            Physical::FLOAT | Physical::DOUBLE => {
                Err(("floating-point numbers".into(), "cast the column to integers or strings when writing the file (pandas writes float IDs for an integer column with missing values)".into()))
            }
            Physical::BOOLEAN => Err(("booleans".into(), cast)),
            Physical::FIXED_LEN_BYTE_ARRAY => Err(("fixed-length binary values".into(), cast)),
        },
        Role::Time(unit) => {
            if let Some(meaning) = temporal {
                return Ok(meaning);
            }
            if physical == Physical::BYTE_ARRAY && !decimal {
                return Ok(Meaning::Text);
            }
            let numeric = matches!(physical, Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE);
            if !numeric || decimal {
                return Err((
                    if decimal { "decimals".into() } else { format!("{physical} values") },
                    "store times as integers or floats (with the `unit` they count), as strings, or as a Parquet TIMESTAMP or DATE".into(),
                ));
            }
            match unit {
                TimeUnit::S => Ok(Meaning::Divided(1.0)),
                TimeUnit::Ms => Ok(Meaning::Divided(1e3)),
                TimeUnit::Us => Ok(Meaning::Divided(1e6)),
                TimeUnit::Date | TimeUnit::Datetime => Err((
                    "plain numbers".into(),
                    "set the column's `unit` to what the numbers count (s, ms or us), or store it as a Parquet DATE or TIMESTAMP".into(),
                )),
            }
        }
    }
}

fn unit_divisor(unit: &ParquetUnit) -> f64 {
    match unit {
        ParquetUnit::MILLIS => 1e3,
        ParquetUnit::MICROS => 1e6,
        ParquetUnit::NANOS => 1e9,
    }
}

/// The Julian day of 1970-01-01, INT96 timestamps' day zero.
const JULIAN_DAY_OF_EPOCH: i64 = 2_440_588;

/// A typed column reader over the current row group with the values of its last batch.
enum Values {
    Bytes(Option<ColumnReaderImpl<ByteArrayType>>, Vec<ByteArray>),
    Int32(Option<ColumnReaderImpl<Int32Type>>, Vec<i32>),
    Int64(Option<ColumnReaderImpl<Int64Type>>, Vec<i64>),
    Int96(Option<ColumnReaderImpl<Int96Type>>, Vec<Int96>),
    Float(Option<ColumnReaderImpl<FloatType>>, Vec<f32>),
    Double(Option<ColumnReaderImpl<DoubleType>>, Vec<f64>),
}

/// One needed column: where it is, what it means, and its current batch.
struct Column {
    name: String,
    leaf: usize,
    meaning: Meaning,
    /// 0 for a required column; a value is present where its definition level reaches this.
    max_definition: i16,
    values: Values,
    levels: Vec<i16>,
    /// Per row of the batch of a nullable column: the index of its value, or [`NULL`].
    slots: Vec<u32>,
}

const NULL: u32 = u32::MAX;

/// Reads up to `rows` rows into `values` (and `levels`, for a nullable column); the number of rows read.
fn read_typed<T: DataType>(
    reader: &mut Option<ColumnReaderImpl<T>>,
    values: &mut Vec<T::T>,
    levels: &mut Vec<i16>,
    nullable: bool,
    rows: usize,
) -> Result<usize, ParquetError> {
    let reader = reader.as_mut().ok_or_else(|| ParquetError::General("no row group is open".into()))?;
    values.clear();
    levels.clear();
    let (records, _, _) = reader.read_records(rows, nullable.then_some(levels), None, values)?;
    Ok(records)
}

impl Column {
    fn new(name: String, leaf: usize, descriptor: &ColumnDescriptor, meaning: Meaning) -> Self {
        let values = match descriptor.physical_type() {
            Physical::BYTE_ARRAY => Values::Bytes(None, Vec::new()),
            Physical::INT32 => Values::Int32(None, Vec::new()),
            Physical::INT64 => Values::Int64(None, Vec::new()),
            Physical::INT96 => Values::Int96(None, Vec::new()),
            Physical::FLOAT => Values::Float(None, Vec::new()),
            Physical::DOUBLE => Values::Double(None, Vec::new()),
            // `meaning` accepts none of the others.
            other => unreachable!("a column of type {other} was accepted"),
        };
        Column { name, leaf, meaning, max_definition: descriptor.max_def_level(), values, levels: Vec::new(), slots: Vec::new() }
    }

    /// Opens the column's reader in row group `group`.
    fn start(&mut self, group: &dyn RowGroupReader) -> Result<(), ParquetError> {
        let reader = group.get_column_reader(self.leaf)?;
        match (reader, &mut self.values) {
            (ColumnReader::ByteArrayColumnReader(r), Values::Bytes(slot, _)) => *slot = Some(r),
            (ColumnReader::Int32ColumnReader(r), Values::Int32(slot, _)) => *slot = Some(r),
            (ColumnReader::Int64ColumnReader(r), Values::Int64(slot, _)) => *slot = Some(r),
            (ColumnReader::Int96ColumnReader(r), Values::Int96(slot, _)) => *slot = Some(r),
            (ColumnReader::FloatColumnReader(r), Values::Float(slot, _)) => *slot = Some(r),
            (ColumnReader::DoubleColumnReader(r), Values::Double(slot, _)) => *slot = Some(r),
            _ => return Err(ParquetError::General("the column's type differs from the schema's".into())),
        }
        Ok(())
    }

    /// Decodes the next `rows` rows; the number decoded.
    fn read(&mut self, rows: usize) -> Result<usize, ParquetError> {
        let nullable = self.max_definition > 0;
        let levels = &mut self.levels;
        let (read, present) = match &mut self.values {
            Values::Bytes(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
            Values::Int32(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
            Values::Int64(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
            Values::Int96(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
            Values::Float(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
            Values::Double(r, v) => (read_typed(r, v, levels, nullable, rows)?, v.len()),
        };
        if nullable {
            self.slots.clear();
            let mut next = 0u32;
            for &level in &self.levels[..read.min(self.levels.len())] {
                if level == self.max_definition {
                    self.slots.push(next);
                    next += 1;
                } else {
                    self.slots.push(NULL);
                }
            }
            if self.slots.len() != read || next as usize != present {
                return Err(ParquetError::General("its definition levels do not match its values".into()));
            }
        } else if present != read {
            return Err(ParquetError::General("it has fewer values than rows".into()));
        }
        Ok(read)
    }

    /// Where row `row` of the batch keeps its value, or `None` when it is null.
    fn slot(&self, row: usize) -> Option<usize> {
        if self.max_definition == 0 {
            return Some(row);
        }
        let slot = self.slots[row];
        (slot != NULL).then_some(slot as usize)
    }

    /// The value at `slot` as an integer (for an integer column), unsigned values read back as such.
    fn integer(&self, slot: usize) -> Option<i128> {
        let unsigned = matches!(self.meaning, Meaning::Integer { unsigned: true });
        match &self.values {
            Values::Int32(_, v) => Some(if unsigned { i128::from(v[slot] as u32) } else { i128::from(v[slot]) }),
            Values::Int64(_, v) => Some(if unsigned { i128::from(v[slot] as u64) } else { i128::from(v[slot]) }),
            _ => None,
        }
    }

    /// Row `row` as ID bytes: a string's bytes, or an integer's decimal text written into `text`; `None`
    /// for a null.
    fn id<'b>(&'b self, row: usize, text: &'b mut Vec<u8>) -> Option<&'b [u8]> {
        let slot = self.slot(row)?;
        if let Values::Bytes(_, v) = &self.values {
            return Some(v[slot].data());
        }
        let value = self.integer(slot).expect("ID columns are strings or integers");
        text.clear();
        std::io::Write::write_fmt(text, format_args!("{value}")).expect("writing to memory");
        Some(text)
    }

    /// Row `row` as a session key: integers that a text file would hold in canonical form are kept as
    /// numbers without writing them out, exactly as [`SessionKey::parse`] keeps their text.
    fn session_key<'b>(&'b self, row: usize, text: &'b mut Vec<u8>) -> Option<SessionKey<'b>> {
        let slot = self.slot(row)?;
        match self.integer(slot) {
            Some(value) if (0..=9_999_999_999_999_999_999).contains(&value) => Some(SessionKey::Number(value as u64)),
            _ => self.id(row, text).map(SessionKey::parse),
        }
    }

    /// Row `row` in seconds, or why it cannot be.
    fn seconds(&self, row: usize, unit: TimeUnit, time_parser: &mut TimeParser) -> Result<f64, RowProblem> {
        let Some(slot) = self.slot(row) else {
            return Err(RowProblem {
                reason: "unreadable time",
                message: format!("time column `{}` is null", self.name),
                help: "every row needs a time; remove the row or fill it in".into(),
            });
        };
        let number = match &self.values {
            Values::Bytes(_, v) => {
                return time_parser.parse(v[slot].data(), unit).map_err(|error| RowProblem::unreadable_time(&self.name, error, unit));
            }
            Values::Int32(_, v) => f64::from(v[slot]),
            Values::Int64(_, v) => v[slot] as f64,
            Values::Float(_, v) => f64::from(v[slot]),
            Values::Double(_, v) => v[slot],
            Values::Int96(_, v) => {
                let [low, high, day] = [v[slot].data()[0], v[slot].data()[1], v[slot].data()[2]];
                let nanos = ((u64::from(high) << 32) | u64::from(low)) as f64;
                return Ok((i64::from(day as i32) - JULIAN_DAY_OF_EPOCH) as f64 * 86_400.0 + nanos / 1e9);
            }
        };
        if !number.is_finite() {
            return Err(RowProblem::unreadable_time(&self.name, format!("{number}, which is not a finite number"), unit));
        }
        Ok(match self.meaning {
            Meaning::Days => number * 86_400.0,
            Meaning::Divided(divisor) => number / divisor,
            // Integer and text meanings are not given to time columns; the value is as read.
            _ => number,
        })
    }

    /// Row `row` as written, for an error's snippet.
    fn show(&self, row: usize) -> String {
        let Some(slot) = self.slot(row) else { return "null".into() };
        match &self.values {
            Values::Bytes(_, v) => format!("{:?}", String::from_utf8_lossy(v[slot].data())),
            Values::Int32(_, _) | Values::Int64(_, _) => self.integer(slot).map_or_else(String::new, |v| v.to_string()),
            Values::Int96(_, v) => format!("{:?}", v[slot].data()),
            Values::Float(_, v) => v[slot].to_string(),
            Values::Double(_, v) => v[slot].to_string(),
        }
    }
}

/// The needed columns of row `row`, `name = value`, for an error's snippet.
fn snippet(columns: &[Column], row: usize) -> String {
    columns.iter().map(|c| format!("{} = {}", c.name, c.show(row))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{BadRows, TimeColumn};
    use crate::data::features::{self, Feature};
    use ::parquet::file::properties::WriterProperties;
    use ::parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
    use ::parquet::schema::parser::parse_message_type;
    use ::parquet::schema::types::SchemaDescriptor;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// One column's values for [`write`]; `None` is a null.
    pub(crate) enum Data {
        Text(Vec<Option<String>>),
        I32(Vec<Option<i32>>),
        I64(Vec<Option<i64>>),
        F64(Vec<Option<f64>>),
        I96(Vec<Option<Int96>>),
    }

    impl Data {
        pub(crate) fn text<'a>(values: impl IntoIterator<Item = &'a str>) -> Data {
            Data::Text(values.into_iter().map(|v| Some(v.to_string())).collect())
        }

        pub(crate) fn i64s(values: impl IntoIterator<Item = i64>) -> Data {
            Data::I64(values.into_iter().map(Some).collect())
        }

        fn len(&self) -> usize {
            match self {
                Data::Text(v) => v.len(),
                Data::I32(v) => v.len(),
                Data::I64(v) => v.len(),
                Data::F64(v) => v.len(),
                Data::I96(v) => v.len(),
            }
        }

        fn write(&self, column: &mut SerializedColumnWriter<'_>, rows: std::ops::Range<usize>, nullable: bool) {
            fn put<T: DataType>(column: &mut SerializedColumnWriter<'_>, values: &[Option<T::T>], nullable: bool) {
                let present: Vec<T::T> = values.iter().flatten().cloned().collect();
                let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                column.typed::<T>().write_batch(&present, nullable.then_some(&levels[..]), None).unwrap();
            }
            match self {
                Data::Text(v) => {
                    let bytes: Vec<Option<ByteArray>> =
                        v[rows].iter().map(|v| v.as_ref().map(|s| ByteArray::from(s.as_bytes().to_vec()))).collect();
                    put::<ByteArrayType>(column, &bytes, nullable)
                }
                Data::I32(v) => put::<Int32Type>(column, &v[rows], nullable),
                Data::I64(v) => put::<Int64Type>(column, &v[rows], nullable),
                Data::F64(v) => put::<DoubleType>(column, &v[rows], nullable),
                Data::I96(v) => put::<Int96Type>(column, &v[rows], nullable),
            }
        }
    }

    /// Writes `columns` under `schema` (a Parquet message type) to `path`, `group_rows` rows per row group.
    pub(crate) fn write(path: &Path, schema: &str, columns: &[Data], group_rows: usize, compression: Compression) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let descriptor = SchemaDescriptor::new(schema.clone());
        let properties = Arc::new(WriterProperties::builder().set_compression(compression).build());
        let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, properties).unwrap();
        let rows = columns[0].len();
        for start in (0..rows).step_by(group_rows) {
            let mut group = writer.next_row_group().unwrap();
            for (leaf, data) in columns.iter().enumerate() {
                let mut column = group.next_column().unwrap().unwrap();
                data.write(&mut column, start..(start + group_rows).min(rows), descriptor.column(leaf).max_def_level() > 0);
                column.close().unwrap();
            }
            group.close().unwrap();
        }
        writer.close().unwrap();
    }

    struct Files(tempfile::TempDir);

    impl Files {
        fn new() -> Self {
            Files(tempfile::tempdir().unwrap())
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.path().join(name)
        }

        fn text(&self, name: &str, text: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    fn format(time: Vec<TimeColumn>) -> SessionFormat {
        SessionFormat { time, ..SessionFormat::default() }
    }

    fn read(path: &Path, format: &SessionFormat) -> Result<(ReadSessions, Interner), DataError> {
        let mut items = Interner::new();
        let read = super::super::sessions::read_file(path, format, &mut items)?;
        Ok((read, items))
    }

    fn keys(items: &Interner) -> Vec<String> {
        items.iter().map(str::to_string).collect()
    }

    /// Interleaved sessions with integer and text keys over several row groups and batches.
    fn clicks(rows: usize) -> (Vec<String>, Vec<String>, Vec<i64>) {
        let mut state = 7u64;
        let mut next = |bound: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
        let mut sessions = Vec::new();
        let mut items = Vec::new();
        let mut times = Vec::new();
        for row in 0..rows {
            let session = next(rows as u64 / 4 + 1);
            sessions.push(if session % 11 == 0 { format!("s{session}") } else { session.to_string() });
            items.push(format!("{}", next(500) * 7));
            times.push(1_400_000_000_000 + row as i64 * 1500 + next(1000) as i64);
        }
        (sessions, items, times)
    }

    fn tsv(sessions: &[String], items: &[String], times: &[String]) -> String {
        let mut text = String::from("SessionId\tItemId\tTime\n");
        for ((s, i), t) in sessions.iter().zip(items).zip(times) {
            text.push_str(&format!("{s}\t{i}\t{t}\n"));
        }
        text
    }

    #[test]
    fn string_and_integer_ids_read_as_the_same_tsv_does() {
        let files = Files::new();
        // Past one batch and over several row groups, so rows cross both boundaries.
        let (sessions, items, times) = clicks(3 * BATCH + 123);
        let ms = format(vec![TimeColumn::WithUnit { column: "Time".into(), unit: TimeUnit::Ms }]);
        let text = files.text("clicks.tsv", &tsv(&sessions, &items, &times.iter().map(i64::to_string).collect::<Vec<_>>()));
        let (expected, expected_items) = read(&text, &ms).unwrap();

        let strings = files.path("strings.parquet");
        let schema = "message m { required binary SessionId (UTF8); required binary ItemId (UTF8); required int64 Time; }";
        let columns =
            [Data::text(sessions.iter().map(String::as_str)), Data::text(items.iter().map(String::as_str)), Data::i64s(times.clone())];
        write(&strings, schema, &columns, 10_000, Compression::SNAPPY);
        let (read_strings, string_items) = read(&strings, &ms).unwrap();
        assert_eq!(read_strings.sessions, expected.sessions);
        assert_eq!((read_strings.rows, keys(&string_items)), (expected.rows, keys(&expected_items)));

        // Items as integers (INT32, nullable but without nulls) and text session keys with numbers among them.
        let integers = files.path("integers.parquet");
        let schema = "message m { optional int32 ItemId; required binary SessionId (STRING); required int64 Time; }";
        let columns = [
            Data::I32(items.iter().map(|i| Some(i.parse().unwrap())).collect()),
            Data::text(sessions.iter().map(String::as_str)),
            Data::i64s(times.clone()),
        ];
        write(&integers, schema, &columns, 5_000, Compression::ZSTD(Default::default()));
        let (read_integers, integer_items) = read(&integers, &ms).unwrap();
        assert_eq!(read_integers.sessions, expected.sessions);
        assert_eq!(keys(&integer_items), keys(&expected_items));

        // Integer session keys (only the numeric ones): numbers, as a TSV's canonical integers are.
        let numeric: Vec<usize> = (0..sessions.len()).filter(|&r| !sessions[r].starts_with('s')).collect();
        let pick = |values: &[String]| numeric.iter().map(|&r| values[r].clone()).collect::<Vec<_>>();
        let text = files
            .text("numeric.tsv", &tsv(&pick(&sessions), &pick(&items), &numeric.iter().map(|&r| times[r].to_string()).collect::<Vec<_>>()));
        let (expected, expected_items) = read(&text, &ms).unwrap();
        assert_eq!(expected.sessions.keys, crate::data::sessions::SessionKeys::Numeric);
        let path = files.path("numeric.parquet");
        let schema = "message m { required int64 SessionId; required binary ItemId; required int64 Time; }";
        let columns = [
            Data::i64s(numeric.iter().map(|&r| sessions[r].parse::<i64>().unwrap())),
            Data::text(pick(&items).iter().map(String::as_str)),
            Data::i64s(numeric.iter().map(|&r| times[r])),
        ];
        write(&path, schema, &columns, 4_000, Compression::GZIP(Default::default()));
        let (numbers, number_items) = read(&path, &ms).unwrap();
        assert_eq!(numbers.sessions, expected.sessions);
        assert_eq!(keys(&number_items), keys(&expected_items));
    }

    #[test]
    fn negative_and_unsigned_integers_are_written_out_as_text_would_be() {
        let files = Files::new();
        let text =
            files.text("keys.tsv", "SessionId\tItemId\tTime\n-3\t18446744073709551615\t1\n-3\t4294967295\t2\n10000000000000000000\t1\t3\n");
        let (expected, expected_items) = read(&text, &SessionFormat::default()).unwrap();
        let path = files.path("keys.parquet");
        let schema =
            "message m { required int64 SessionId (INTEGER(64, false)); required int64 ItemId (INTEGER(64, false)); required int32 Time; }";
        // -3 as an unsigned 64-bit integer is 18446744073709551613: write the session keys as signed instead.
        let schema = schema.replacen("int64 SessionId (INTEGER(64, false))", "binary SessionId", 1);
        let columns = [
            Data::text(["-3", "-3", "10000000000000000000"]),
            Data::I64(vec![Some(-1), Some(4_294_967_295), Some(1)]),
            Data::I32(vec![Some(1), Some(2), Some(3)]),
        ];
        write(&path, &schema, &columns, 10, Compression::UNCOMPRESSED);
        let (read_back, items) = read(&path, &SessionFormat::default()).unwrap();
        assert_eq!(read_back.sessions, expected.sessions);
        assert_eq!(keys(&items), keys(&expected_items));

        let path = files.path("signed.parquet");
        let schema = "message m { required int64 SessionId; required int32 ItemId (UINT_32); required int32 Time; }";
        let columns = [Data::i64s([-3, -3, 7]), Data::I32(vec![Some(-1), Some(5), Some(6)]), Data::I32(vec![Some(1), Some(2), Some(3)])];
        write(&path, schema, &columns, 10, Compression::UNCOMPRESSED);
        let (read_back, items) = read(&path, &SessionFormat::default()).unwrap();
        assert_eq!(keys(&items), ["4294967295", "5", "6"]);
        assert_eq!((0..read_back.sessions.len()).map(|s| read_back.sessions.key_text(s)).collect::<Vec<_>>(), ["-3", "7"]);
    }

    #[test]
    fn times_in_seconds_milliseconds_timestamps_and_dates() {
        let files = Files::new();
        let day = 1_462_752_000i64; // 2016-05-09
        let schema = "message m {
            required binary SessionId (UTF8); required binary ItemId (UTF8);
            required int64 Seconds; required int64 Millis; optional double Float;
            required int64 StampMs (TIMESTAMP(MILLIS, true)); required int64 StampNs (TIMESTAMP(NANOS, false));
            required int32 Day (DATE); required int32 OfDay (TIME(MILLIS, true)); required int96 Spark;
            required binary Iso (UTF8);
        }";
        let spark = |seconds: i64| {
            let nanos = (seconds.rem_euclid(86_400) * 1_000_000_000) as u64;
            let mut value = Int96::new();
            value.set_data(nanos as u32, (nanos >> 32) as u32, (seconds.div_euclid(86_400) + JULIAN_DAY_OF_EPOCH) as u32);
            value
        };
        let columns = [
            Data::text(["1", "1"]),
            Data::text(["a", "b"]),
            Data::i64s([day, day + 60]),
            Data::i64s([day * 1000, day * 1000 + 60_500]),
            Data::F64(vec![Some(day as f64), Some(day as f64 + 0.25)]),
            Data::i64s([day * 1000, day * 1000 + 1500]),
            Data::i64s([day * 1_000_000_000, day * 1_000_000_000 + 2_000_000_000]),
            Data::I32(vec![Some(16_930), Some(16_931)]),
            Data::I32(vec![Some(526_309), Some(1_031_018)]),
            Data::I96(vec![Some(spark(day)), Some(spark(day + 3))]),
            Data::text(["2016-05-09T00:00:00Z", "2016-05-09T02:00:00+02:00"]),
        ];
        let path = files.path("times.parquet");
        write(&path, schema, &columns, 10, Compression::LZ4_RAW);
        let with_unit = |column: &str, unit| TimeColumn::WithUnit { column: column.into(), unit };
        let cases = [
            (vec![TimeColumn::Seconds("Seconds".into())], day as f64, 60.0),
            (vec![with_unit("Millis", TimeUnit::Ms)], day as f64, 60.5),
            (vec![with_unit("Float", TimeUnit::S)], day as f64, 0.25),
            // Timestamps, dates and times carry their own unit: the config's is not applied to them.
            (vec![with_unit("StampMs", TimeUnit::Us)], day as f64, 1.5),
            (vec![TimeColumn::Seconds("StampNs".into())], day as f64, 2.0),
            (vec![with_unit("Day", TimeUnit::Date), with_unit("OfDay", TimeUnit::Ms)], day as f64 + 526.309, 86_400.0 + 504.709),
            (vec![TimeColumn::Seconds("Spark".into())], day as f64, 3.0),
            (vec![with_unit("Iso", TimeUnit::Datetime)], day as f64, 0.0),
        ];
        for (time, start, offset) in cases {
            let what = format!("{time:?}");
            let (read, _) = read(&path, &format(time)).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(read.sessions.start, [start], "{what}");
            // Offsets are float32: a day in, they resolve about 8 ms.
            assert!((f64::from(read.sessions.session(0)[1].offset) - offset).abs() < 1e-2, "{what}: {:?}", read.sessions.session(0));
        }
    }

    #[test]
    fn a_missing_or_unusable_column_is_named_with_the_files_columns() {
        let files = Files::new();
        let path = files.path("clicks.parquet");
        let schema =
            "message m { required binary SessionId (UTF8); required double ItemId; required int64 Time (TIMESTAMP(MILLIS, true)); }";
        write(&path, schema, &[Data::text(["1"]), Data::F64(vec![Some(2.0)]), Data::i64s([3])], 10, Compression::SNAPPY);

        let missing = read(&path, &SessionFormat { session: "SessionID".into(), ..SessionFormat::default() }).unwrap_err();
        assert_eq!(missing.code, DataCode::Column);
        assert!(missing.message.contains("no column `SessionID`") && missing.to_string().contains("clicks.parquet"), "{missing}");
        assert!(missing.notes.iter().any(|n| n.contains("the file has `SessionId`, `ItemId`, `Time`")), "{missing}");
        assert!(missing.notes.iter().any(|n| n.contains("did you mean `SessionId`?")), "{missing}");

        let float_ids = read(&path, &SessionFormat::default()).unwrap_err();
        assert_eq!(float_ids.code, DataCode::Column);
        assert!(float_ids.message.contains("column `ItemId` holds floating-point numbers"), "{float_ids}");

        let by_position = SessionFormat {
            header: false,
            session: "1".into(),
            item: "1".into(),
            time: vec![TimeColumn::Seconds("4".into())],
            ..SessionFormat::default()
        };
        let beyond = read(&path, &by_position).unwrap_err();
        assert_eq!(beyond.code, DataCode::Column);
        assert!(beyond.message.contains("names column 4, but the file has 3 columns"), "{beyond}");
        let positions = SessionFormat { time: vec![TimeColumn::Seconds("3".into())], ..by_position };
        let (read_by_position, items) = read(&path, &positions).unwrap();
        assert_eq!((read_by_position.rows, keys(&items)), (1, vec!["1".to_string()]));

        let path = files.path("decimals.parquet");
        let schema = "message m { required binary SessionId (UTF8); required binary ItemId (DECIMAL(10, 2)); required int64 Time; }";
        write(&path, schema, &[Data::text(["1"]), Data::text(["\u{1}"]), Data::i64s([3])], 10, Compression::SNAPPY);
        let decimals = read(&path, &SessionFormat::default()).unwrap_err();
        assert_eq!(decimals.code, DataCode::Column);
        assert!(decimals.message.contains("column `ItemId` holds decimals"), "{decimals}");

        let path = files.path("dates.parquet");
        let schema = "message m { required binary SessionId (UTF8); required binary ItemId (UTF8); required int64 Time; }";
        write(&path, schema, &[Data::text(["1"]), Data::text(["a"]), Data::i64s([3])], 10, Compression::SNAPPY);
        let date = read(&path, &format(vec![TimeColumn::WithUnit { column: "Time".into(), unit: TimeUnit::Date }])).unwrap_err();
        assert_eq!(date.code, DataCode::Column);
        assert!(date.message.contains("column `Time` holds plain numbers, which does not read as a date"), "{date}");
    }

    #[test]
    fn bad_rows_name_the_row_group_and_the_row() {
        let files = Files::new();
        let path = files.path("clicks.parquet");
        let schema = "message m { optional binary SessionId (UTF8); optional binary ItemId (UTF8); optional int64 Time; }";
        let columns = [
            Data::Text(vec![Some("1".into()), Some("1".into()), Some("2".into()), Some("2".into()), Some("3".into()), None]),
            Data::Text(vec![Some("a".into()), Some("b".into()), Some("c".into()), None, Some("".into()), Some("f".into())]),
            Data::I64(vec![Some(1), Some(2), None, Some(4), Some(5), Some(6)]),
        ];
        // Row groups of two rows: the null time is row 0 of group 1, the null item row 1 of it.
        write(&path, schema, &columns, 2, Compression::SNAPPY);
        let error = read(&path, &SessionFormat::default()).unwrap_err();
        assert_eq!((error.code, error.line, error.row.as_deref()), (DataCode::Row, None, Some(&FileRow { group: 1, in_group: 0, row: 2 })));
        assert_eq!(error.message, "time column `Time` is null");
        let text = error.to_string();
        assert!(text.contains("clicks.parquet, row 2 (row group 1, its row 0; counting from 0)"), "{text}");
        assert!(text.contains("SessionId = \"2\", ItemId = \"c\", Time = null"), "{text}");
        assert!(text.contains("bad_rows = \"skip\""), "{text}");

        let skip = SessionFormat { bad_rows: BadRows::Skip, ..SessionFormat::default() };
        let (read, items) = read(&path, &skip).unwrap();
        assert_eq!((read.rows, keys(&items)), (2, vec!["a".to_string(), "b".to_string()]));
        let reasons = &read.skipped.reasons;
        assert_eq!(reasons["unreadable time"].first_row, Some(FileRow { group: 1, in_group: 0, row: 2 }));
        assert_eq!(reasons["empty item id"].count, 2);
        assert_eq!(reasons["empty item id"].first_row, Some(FileRow { group: 1, in_group: 1, row: 3 }));
        assert_eq!(reasons["empty session id"].first().to_string(), "row 5 (row group 2, its row 1; counting from 0)");
    }

    #[test]
    fn files_that_are_not_parquet_or_cut_short_are_file_errors() {
        let files = Files::new();
        let text = files.text("clicks.parquet", "SessionId\tItemId\tTime\n1\ta\t1\n");
        let error = read(&text, &SessionFormat::default()).unwrap_err();
        assert_eq!(error.code, DataCode::File);
        assert!(error.message.contains("is not a Parquet file") && error.to_string().contains("clicks.parquet"), "{error}");
        assert!(error.notes.iter().any(|n| n.contains("name it `.tsv`")), "{error}");

        let empty = files.text("empty.parquet", "");
        assert_eq!(read(&empty, &SessionFormat::default()).unwrap_err().code, DataCode::Empty);

        let whole = files.path("whole.parquet");
        let schema = "message m { required binary SessionId (UTF8); required binary ItemId (UTF8); required int64 Time; }";
        write(&whole, schema, &[Data::text(["1", "1"]), Data::text(["a", "b"]), Data::i64s([1, 2])], 1, Compression::SNAPPY);
        let bytes = std::fs::read(&whole).unwrap();
        for length in [4, 11, bytes.len() / 2, bytes.len() - 1] {
            let cut = files.path("cut.parquet");
            std::fs::write(&cut, &bytes[..length]).unwrap();
            let error = read(&cut, &SessionFormat::default()).unwrap_err();
            assert_eq!(error.code, DataCode::File, "{length}: {error}");
            assert!(error.message.contains("ends early") && error.to_string().contains("cut.parquet"), "{length}: {error}");
        }
        // A footer that no longer matches the data: every byte of the data pages flipped.
        let mut damaged = bytes.clone();
        for byte in &mut damaged[4..bytes.len() / 3] {
            *byte ^= 0x5a;
        }
        let path = files.path("damaged.parquet");
        std::fs::write(&path, &damaged).unwrap();
        let error = read(&path, &SessionFormat::default()).unwrap_err();
        assert_eq!(error.code, DataCode::Row, "{error}");
        assert!(error.message.contains("row group 0 cannot be read") && error.to_string().contains("damaged.parquet"), "{error}");
    }

    fn categories(path: &Path, ids: &[&str]) -> Result<(Feature, features::FeatureReport), DataError> {
        let items = Interner::from_keys(ids.iter().copied());
        let columns = vec!["category".to_string(), "price".to_string()];
        let table = ItemTable { path, id_column: "ItemId", columns: &columns, separator: "\t" };
        features::categorical::encode("content", &table, &items)
    }

    #[test]
    fn item_tables_read_as_the_same_tsv_does() {
        let files = Files::new();
        let text = files.text("items.tsv", "ItemId\tcategory\tprice\n1\tshoes sport\t10\n2\t\t5\n3\thats\t\n9\tx\t1\n");
        let expected = categories(&text, &["1", "2", "3", "4"]).unwrap();
        let path = files.path("items.parquet");
        let schema = "message m { required int64 ItemId; optional binary category (UTF8); optional int32 price; }";
        let columns = [
            Data::i64s([1, 2, 3, 9]),
            Data::Text(vec![Some("shoes sport".into()), None, Some("hats".into()), Some("x".into())]),
            Data::I32(vec![Some(10), Some(5), None, Some(1)]),
        ];
        write(&path, schema, &columns, 3, Compression::SNAPPY);
        assert_eq!(categories(&path, &["1", "2", "3", "4"]).unwrap(), expected);

        let missing = categories(&files.text("x.tsv", ""), &[]).unwrap_err();
        assert_eq!(missing.code, DataCode::Empty);
        let path = files.path("twice.parquet");
        let schema = "message m { optional binary ItemId (UTF8); required binary category (UTF8); required binary price (UTF8); }";
        let columns = [
            Data::Text(vec![Some("1".into()), Some("2".into()), Some("1".into()), None]),
            Data::text(["a", "b", "c", "d"]),
            Data::text(["1", "2", "3", "4"]),
        ];
        write(&path, schema, &columns, 2, Compression::SNAPPY);
        let twice = categories(&path, &["1", "2"]).unwrap_err();
        assert_eq!((twice.code, twice.row.as_deref()), (DataCode::FeatureShape, Some(&FileRow { group: 1, in_group: 0, row: 2 })));
        assert!(twice.message.contains("`1` is listed twice: in row 0 and row 2 (counting from 0)"), "{twice}");
        let path = files.path("null-id.parquet");
        let columns = [Data::Text(vec![Some("1".into()), None]), Data::text(["a", "b"]), Data::text(["1", "2"])];
        write(&path, schema, &columns, 2, Compression::SNAPPY);
        let null = categories(&path, &["1"]).unwrap_err();
        assert_eq!((null.code, null.row.as_ref().map(|r| r.row)), (DataCode::Row, Some(1)));
        assert!(null.message.contains("the item ID in column `ItemId` is null"), "{null}");
        let no_column = ItemTable { path: &path, id_column: "id", columns: &["category".to_string()], separator: "\t" };
        let error = features::categorical::encode("content", &no_column, &Interner::from_keys(["1"])).unwrap_err();
        assert_eq!(error.code, DataCode::Column);
        assert!(error.notes.iter().any(|n| n.contains("`ItemId`, `category`, `price`")), "{error}");
    }
}
