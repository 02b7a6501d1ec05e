//! Errors in data files: the file, the line (and column) when there is one, and how to fix it.
//!
//! Data files can be gigabytes, so unlike spec diagnostics these carry the offending line's text
//! instead of the whole source, and render it the same way: code, message, `--> file:line`, snippet, help.

use std::fmt;
use std::path::{Path, PathBuf};

/// Stable codes for data problems, listed in docs/diagnostics.md next to the spec and config codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataCode {
    /// The file is missing or unreadable.
    File,
    /// A row has too few fields, an empty key, or a value that does not parse.
    Row,
    /// A column named in the config is not in the header.
    Column,
    /// The file holds no data rows.
    Empty,
    /// A feature value is NaN or infinite, or a vector has the wrong length.
    FeatureValue,
    /// A feature file is internally inconsistent: wrong dtype or shape, id list of the wrong length,
    /// an item listed twice.
    FeatureShape,
    /// Nothing is left after preprocessing, or a setting cannot apply to the data.
    Preprocess,
}

impl DataCode {
    pub const ALL: [DataCode; 7] = [
        DataCode::File,
        DataCode::Row,
        DataCode::Column,
        DataCode::Empty,
        DataCode::FeatureValue,
        DataCode::FeatureShape,
        DataCode::Preprocess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataCode::File => "E0900",
            DataCode::Row => "E0901",
            DataCode::Column => "E0902",
            DataCode::Empty => "E0903",
            DataCode::FeatureValue => "E0904",
            DataCode::FeatureShape => "E0905",
            DataCode::Preprocess => "E0906",
        }
    }
}

/// A row of a Parquet file, counted from 0 as pyarrow and DuckDB count them: its row group, its place in
/// that group, and its place in the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRow {
    pub group: usize,
    pub in_group: u64,
    pub row: u64,
}

impl fmt::Display for FileRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {} (row group {}, its row {}; counting from 0)", self.row, self.group, self.in_group)
    }
}

/// Where a row sits: a line of a text file, or a row of a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Line(u64),
    Row(FileRow),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(line) => write!(f, "line {line}"),
            Place::Row(row) => row.fmt(f),
        }
    }
}

/// One problem in one data file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    pub code: DataCode,
    pub message: String,
    pub path: PathBuf,
    /// 1-based line in the file, when the problem sits on one line of a text file.
    pub line: Option<u64>,
    /// The row, when the problem sits on one row of a Parquet file (boxed: most errors have none).
    pub row: Option<Box<FileRow>>,
    /// The offending line's text, shown under the location (cut to a readable length).
    /// (A boxed `str`, like `row`'s box, keeps the error small enough to return by value.)
    pub snippet: Option<Box<str>>,
    /// "note: ..." and "help: ..." lines.
    pub notes: Vec<String>,
}

/// The most characters of a `quoted` value a message shows; a field of a damaged file can be megabytes long.
const MAX_QUOTED: usize = 80;

/// `text` with every backtick-quoted value longer than [`MAX_QUOTED`] characters cut to its start, followed by
/// how many bytes were left out.
fn shorten_quoted(text: &str) -> String {
    let mut shortened = String::with_capacity(text.len().min(1024));
    let mut left_out = None;
    for (index, part) in text.split('`').enumerate() {
        if index > 0 {
            shortened.push('`');
        }
        if let Some(bytes) = left_out.take() {
            shortened.push_str(&format!(" ({bytes} more bytes)"));
        }
        let quoted = index % 2 == 1;
        if quoted && part.chars().count() > MAX_QUOTED {
            let start: String = part.chars().take(MAX_QUOTED).collect();
            shortened.push_str(&start);
            shortened.push('…');
            left_out = Some(part.len() - start.len());
        } else {
            shortened.push_str(part);
        }
    }
    if let Some(bytes) = left_out {
        shortened.push_str(&format!(" ({bytes} more bytes)"));
    }
    shortened
}

impl DataError {
    pub fn new(code: DataCode, path: &Path, message: impl Into<String>) -> Self {
        let message = shorten_quoted(&message.into());
        DataError { code, message, path: path.to_path_buf(), line: None, row: None, snippet: None, notes: Vec::new() }
    }

    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub fn row(mut self, row: FileRow) -> Self {
        self.row = Some(Box::new(row));
        self
    }

    /// The line or the row, whichever `place` is.
    pub fn at(self, place: Place) -> Self {
        match place {
            Place::Line(line) => self.line(line),
            Place::Row(row) => self.row(row),
        }
    }

    pub fn snippet(mut self, text: impl AsRef<str>) -> Self {
        const MAX: usize = 120;
        let text = text.as_ref().trim_end_matches(['\r', '\n']);
        let cut: String = text.chars().take(MAX).collect();
        self.snippet = Some(if cut.len() < text.len() { format!("{cut}…") } else { cut }.into());
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.notes.push(format!("help: {}", shorten_quoted(&text.into())));
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(format!("note: {}", shorten_quoted(&text.into())));
        self
    }

    /// A missing or unreadable file, with the fix for the common causes.
    pub fn io(path: &Path, what: &str, error: &std::io::Error) -> Self {
        let base = DataError::new(DataCode::File, path, format!("cannot read {what}: {error}"));
        match error.kind() {
            std::io::ErrorKind::NotFound => base.help("check the path; relative paths in a run config start from the config's folder"),
            std::io::ErrorKind::PermissionDenied => base.help("make the file readable for this user"),
            _ => base,
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error[{}]: {}", self.code.as_str(), self.message)?;
        match (self.line, &self.row) {
            (Some(line), _) => writeln!(f, "  --> {}:{line}", self.path.display())?,
            (None, Some(row)) => writeln!(f, "  --> {}, {row}", self.path.display())?,
            (None, None) => writeln!(f, "  --> {}", self.path.display())?,
        }
        if let Some(snippet) = &self.snippet {
            let number = self.line.map(|l| l.to_string()).unwrap_or_default();
            let pad = " ".repeat(number.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{number} | {}", snippet.replace('\t', "␉"))?;
            writeln!(f, "{pad} |")?;
        }
        for note in &self.notes {
            writeln!(f, "  = {note}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_short_ones_kept() {
        let long = "x".repeat(1_000_000);
        let message = shorten_quoted(&format!("field 2 `{long}` is not a number; see `[data]`"));
        assert_eq!(message, format!("field 2 `{}…` (999920 more bytes) is not a number; see `[data]`", "x".repeat(80)));
        assert_eq!(shorten_quoted("no quotes at all"), "no quotes at all");
        assert_eq!(shorten_quoted(&format!("unclosed `{long}")), format!("unclosed `{}… (999920 more bytes)", "x".repeat(80)));
        let error = DataError::new(DataCode::Row, Path::new("t.tsv"), format!("`{long}`")).help(format!("`{long}`"));
        assert!(error.to_string().len() < 1_000, "{}", error.to_string().len());
    }

    #[test]
    fn renders_location_snippet_and_help() {
        let error = DataError::new(DataCode::Row, Path::new("data/train.tsv"), "row has 2 fields, expected 3")
            .line(17)
            .snippet("1\t2\n")
            .help("check the separator");
        assert_eq!(
            error.to_string(),
            "error[E0901]: row has 2 fields, expected 3\n  --> data/train.tsv:17\n   |\n17 | 1␉2\n   |\n  = help: check the separator\n"
        );
    }

    #[test]
    fn parquet_rows_render_their_row_group() {
        let row = FileRow { group: 1, in_group: 5, row: 17 };
        let error = DataError::new(DataCode::Row, Path::new("clicks.parquet"), "the item id is null")
            .at(Place::Row(row))
            .snippet("SessionId = 3, ItemId = null, Time = 12");
        assert_eq!(
            error.to_string(),
            "error[E0901]: the item id is null\n  --> clicks.parquet, row 17 (row group 1, its row 5; counting from 0)\n |\n | SessionId = 3, ItemId = null, Time = 12\n |\n"
        );
    }

    #[test]
    fn codes_are_unique() {
        let codes: std::collections::HashSet<_> = DataCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), DataCode::ALL.len());
    }
}
