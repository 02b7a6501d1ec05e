//! Text files read and written whole, with errors that name the file and what it holds.
//!
//! A run folder keeps several files of the same kind (a spec, a config, records), so "cannot read" alone would
//! not say which one failed; the command line reads specs and configs through the same functions.

use std::path::{Path, PathBuf};

/// A file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {what} `{}`: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot write {}`{}`: {source}", before(what), path.display())]
    Write { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot create {}`{}`: {source}", before(what), path.display())]
    Create { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// `what` followed by a space, or nothing when the path says it all.
fn before(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    }
}

impl FileError {
    pub fn write(what: &'static str, path: &Path, source: std::io::Error) -> FileError {
        FileError::Write { what, path: path.to_path_buf(), source }
    }

    /// What to do about it, for the common causes.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            FileError::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Some("check the path; relative paths start from the current folder"),
                std::io::ErrorKind::InvalidData => Some("the file must be UTF-8 text"),
                _ => None,
            },
            FileError::Write { .. } | FileError::Create { .. } => Some("check that the folder is writable and the disk has space"),
        }
    }
}

/// Reads a UTF-8 text file; `what` names it in the error ("spec", "run config", ...). A byte-order mark at the
/// start (which some Windows editors write) is dropped: it is not text, and a parser would meet it as an
/// invisible first character.
pub fn read_text(path: &Path, what: &'static str) -> Result<String, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { what, path: path.to_path_buf(), source })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Writes (or replaces) a text file.
pub fn write_text(path: &Path, what: &'static str, text: &str) -> Result<(), FileError> {
    std::fs::write(path, text).map_err(|source| FileError::write(what, path, source))
}

/// Creates a folder and its parents; an existing one is fine.
pub fn create_dir(path: &Path, what: &'static str) -> Result<(), FileError> {
    std::fs::create_dir_all(path).map_err(|source| FileError::Create { what, path: path.to_path_buf(), source })
}

/// Removes what killed writes left in the run folder `dir`: every file is written as `.NAME-XXXXXX.partial`
/// beside its place and renamed into it, so such a file is a write that never finished. Only the folder's
/// writer (holding its lock) may call this. Returns the bytes freed.
pub fn remove_partial_writes(dir: &Path) -> Result<u64, FileError> {
    let failed = |source| FileError::Write { what: "the run folder", path: dir.to_path_buf(), source };
    let mut freed = 0;
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".partial") && entry.file_type().map_err(failed)?.is_file() {
            freed += entry.metadata().map_or(0, |m| m.len());
            std::fs::remove_file(entry.path()).map_err(|source| FileError::write("a leftover temporary file", &entry.path(), source))?;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_what_the_file_holds_and_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.prnn");
        let error = read_text(&missing, "spec").unwrap_err();
        assert!(error.to_string().starts_with(&format!("cannot read spec `{}`: ", missing.display())), "{error}");
        assert_eq!(error.help(), Some("check the path; relative paths start from the current folder"));

        std::fs::write(dir.path().join("latin1.toml"), b"name = \"caf\xe9\"").unwrap();
        let error = read_text(&dir.path().join("latin1.toml"), "run config").unwrap_err();
        assert_eq!(error.help(), Some("the file must be UTF-8 text"));

        // A folder where a file should go cannot be written over.
        let error = write_text(dir.path(), "", "text").unwrap_err();
        assert!(error.to_string().starts_with(&format!("cannot write `{}`: ", dir.path().display())), "{error}");
        let error = write_text(dir.path(), "the run record", "text").unwrap_err();
        assert!(error.to_string().starts_with("cannot write the run record `"), "{error}");
    }

    #[test]
    fn text_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a/b");
        create_dir(&folder, "the run folder").unwrap();
        write_text(&folder.join("spec.prnn"), "spec", "model m {}\n").unwrap();
        assert_eq!(read_text(&folder.join("spec.prnn"), "spec").unwrap(), "model m {}\n");
    }
}
