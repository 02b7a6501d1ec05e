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

/// Opens a file for reading, decompressing it when its name ends in `.gz`. A read that fails (a cut or damaged
/// `.gz`) fails with a [`BrokenAt`] inside its `io::Error`, which says in which line it broke.
pub fn open(path: &Path, what: &str) -> Result<Box<dyn Read + Send>, DataError> {
    let file = File::open(path).map_err(|error| DataError::io(path, what, &error))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    if path.extension().is_some_and(|ext| ext == "gz") {
        Ok(Box::new(LineCounting { inner: flate2::read::MultiGzDecoder::new(reader), lines: 0 }))
    } else {
        Ok(Box::new(LineCounting { inner: reader, lines: 0 }))
    }
}

/// A failed read, with the line (from 1) the bytes read so far had reached.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct BrokenAt {
    pub line: u64,
    pub source: std::io::Error,
}

/// A reader that counts the line breaks it passes on, to say where a failed read broke.
struct LineCounting<R> {
    inner: R,
    lines: u64,
}

impl<R: Read> Read for LineCounting<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buffer) {
            Ok(n) => {
                self.lines += memchr::memchr_iter(b'\n', &buffer[..n]).count() as u64;
                Ok(n)
            }
            Err(source) if source.kind() == std::io::ErrorKind::Interrupted => Err(source),
            Err(source) => Err(std::io::Error::new(source.kind(), BrokenAt { line: self.lines + 1, source })),
        }
    }
}

/// A failed read of `path` (`what` names it): located at the line it broke in when the reader came from [`open`].
pub fn read_error(path: &Path, what: &str, error: &std::io::Error) -> DataError {
    match broken_at(error) {
        Some(line) => DataError::new(DataCode::File, path, format!("the {what} cannot be read past line {line}: {error}"))
            .line(line)
            .help("the file is cut short or damaged (`gzip -t FILE` checks a .gz); write it again"),
        None => DataError::io(path, what, error),
    }
}

/// The line a failed read broke in, when the reader came from [`open`].
pub fn broken_at(error: &std::io::Error) -> Option<u64> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<BrokenAt>()).map(|broken| broken.line)
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
    if let csv::ErrorKind::Io(io) = error.kind() {
        if broken_at(io).is_some() {
            return read_error(path, "file", io);
        }
    }
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
    fn a_cut_gz_file_fails_at_the_line_it_broke_in() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..20_000).map(|i| format!("{i}\tvalue {}\n", i * 7919 % 10_007)).collect();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        let compressed = encoder.finish().unwrap();
        let path = dir.path().join("cut.tsv.gz");
        std::fs::write(&path, &compressed[..compressed.len() / 2]).unwrap();
        let mut read = Vec::new();
        let error = open(&path, "file").unwrap().read_to_end(&mut read).unwrap_err();
        // The line after the last whole one that came through.
        let whole = read.iter().filter(|&&b| b == b'\n').count() as u64;
        assert!(whole > 0 && whole < 20_000);
        assert_eq!(broken_at(&error), Some(whole + 1));
        let message = read_error(&path, "session file", &error).to_string();
        assert!(message.contains(&format!("cannot be read past line {}", whole + 1)) && message.contains(&format!("cut.tsv.gz:{}", whole + 1)), "{message}");
    }

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
