//! Delimited text files (TSV, CSV, `;`-separated; plain or gzipped) as row streams with 1-based line numbers.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::error::{DataCode, DataError};

/// How a delimited file is laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFormat {
    pub separator: u8,
    pub header: bool,
    /// Whether `"` starts a quoted field. Off for TSV: product titles contain stray quotes (`10" ruler`).
    pub quoting: bool,
}

impl TableFormat {
    /// GRU4Rec's layout: tab-separated with a header and no quoting.
    pub fn tsv() -> Self {
        TableFormat { separator: b'\t', header: true, quoting: false }
    }
}

/// Opens a file for reading, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path, what: &str) -> Result<Box<dyn Read + Send>, DataError> {
    let file = File::open(path).map_err(|error| DataError::io(path, what, &error))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    if path.extension().is_some_and(|ext| ext == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A csv reader over any byte stream, configured by `format`. The header, if any, is read as an ordinary
/// record so that line numbers and errors stay under our control.
pub fn reader<R: Read>(source: R, format: &TableFormat) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(format.separator)
        .has_headers(false)
        .flexible(true)
        .quoting(format.quoting)
        .buffer_capacity(1 << 20)
        .from_reader(source)
}

/// Turns a csv error (bad quoting, I/O failure mid-file) into a data error at its line.
pub fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map(|p| p.line());
    let message = match error.kind() {
        csv::ErrorKind::Io(io) => format!("reading failed: {io}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
        _ => error.to_string(),
    };
    let base = DataError::new(DataCode::Row, path, message);
    match line {
        Some(line) => base.line(line),
        None => base,
    }
}

/// The header's column names, as written (UTF-8, surrounding whitespace and a byte-order mark removed).
pub fn header_names(record: &csv::ByteRecord) -> Vec<String> {
    record
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let text = String::from_utf8_lossy(field);
            let text = if i == 0 { text.trim_start_matches('\u{feff}') } else { &text };
            text.trim().to_string()
        })
        .collect()
}

/// Finds a named column in a header. Without a header, columns are named by 1-based position ("1", "2", ...).
pub fn find_column(path: &Path, header: Option<&[String]>, name: &str, setting: &str) -> Result<usize, DataError> {
    match header {
        Some(names) => names.iter().position(|n| n == name).ok_or_else(|| {
            let mut error = DataError::new(DataCode::Column, path, format!("no column `{name}` in the header"))
                .line(1)
                .snippet(names.join("\t"))
                .note(format!(
                    "`{setting}` names it; the header has {}",
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ));
            let lone = names.first().filter(|_| names.len() == 1);
            if let Some(separator) = lone.and_then(|n| [',', ';', '\t', '|'].into_iter().find(|&c| n.contains(c))) {
                error = error.help(format!(
                    "the header reads as a single column; the file looks {}-separated: set the separator to {:?}",
                    match separator {
                        ',' => "comma",
                        ';' => "semicolon",
                        '\t' => "tab",
                        _ => "pipe",
                    },
                    separator.to_string()
                ));
            } else if let Some(best) = crate::diagnostic::closest(name, names.iter().map(String::as_str)) {
                error = error.help(format!("did you mean `{best}`?"));
            } else {
                error = error.help("check the separator too: a wrong one makes the whole header a single column");
            }
            error
        }),
        None => match name.parse::<usize>() {
            Ok(position) if position >= 1 => Ok(position - 1),
            _ => Err(DataError::new(DataCode::Column, path, format!("column `{name}` needs a header"))
                .note("the format says `header = false`, so columns are named by 1-based position")
                .help(format!("write the column's position, e.g. `{setting} = \"1\"`, or set `header = true`"))),
        },
    }
}

/// The text of a record, for error snippets.
pub fn record_text(record: &csv::ByteRecord, separator: u8) -> String {
    let sep = (separator as char).to_string();
    record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>().join(&sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_columns_by_name_or_position() {
        let path = Path::new("x.tsv");
        let header = vec!["SessionId".to_string(), "ItemId".to_string()];
        assert_eq!(find_column(path, Some(&header), "ItemId", "item").unwrap(), 1);
        let missing = find_column(path, Some(&header), "ItemID", "item").unwrap_err();
        assert_eq!(missing.code, DataCode::Column);
        assert!(missing.notes.iter().any(|n| n.contains("did you mean `ItemId`")), "{missing}");
        assert_eq!(find_column(path, None, "2", "item").unwrap(), 1);
        assert!(find_column(path, None, "ItemId", "item").is_err());
    }

    #[test]
    fn reads_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tsv.gz");
        let mut encoder = flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, b"a\tb\n1\t2\n").unwrap();
        encoder.finish().unwrap();
        let mut text = String::new();
        open(&path, "test file").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "a\tb\n1\t2\n");
    }
}
