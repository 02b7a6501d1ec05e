//! `include = ["base.toml"]`: a run config written as several files, so that one dataset's settings are
//! written once for many experiments.
//!
//! The included files are read first (they may include others), then all the tables are merged into one
//! document: a file's includes in their order, then the file's own keys; tables merge key by key and any other
//! value is replaced whole by the later one. Every file is parsed at its own offset in one span space (the top
//! file at 0, so a config without includes keeps its spans), which lets a span anywhere in the merged
//! document, in an error or in a [`RunConfig`](super::RunConfig)'s `Spanned` value, tell which file wrote it:
//! diagnostics are shown in that file, and relative paths resolve against its folder.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::parse::{toml_diagnostic, without_dot_dot};
use super::span;
use crate::diagnostic::{Code, Diagnostic, Source, Span};

/// The top-level key that lists the files a config includes.
pub(super) const INCLUDE: &str = "include";

/// Tables nested deeper than this are replaced whole instead of merged. No setting of a run config lies this
/// deep, so such a table is an error the schema reports anyway; the bound keeps the merge's recursion shallow
/// however deeply a file nests its tables.
const MERGE_DEPTH: usize = 16;

/// The most files one config may be made of, the top file and repeats counted: a file included twice is read
/// twice, so files that each include the next one twice would otherwise be read 2^depth times.
const MAX_FILES: usize = 32;
/// The most bytes all the files of one config may hold together. Each file is parsed at its offset in the shared
/// span space, after as many spaces, so the memory taken grows with the files times this bound.
const MAX_TOTAL_BYTES: usize = 1 << 20;

/// One file of a config as read: the top file, or one inclusion of another (a file included twice is read twice).
struct File {
    /// The name diagnostics show: the top file's as given, an included file's joined to its includer's.
    name: String,
    /// Where the file's relative paths and includes start.
    folder: PathBuf,
    /// The folder of `name`, which the names of the files this one includes start from.
    shown_folder: PathBuf,
    /// The file's text after `offset` spaces: parsed so, its spans are its offsets in the span space all files share.
    padded: String,
    offset: usize,
    /// Its canonical path, to find an include that leads back to a file including it.
    canonical: Option<PathBuf>,
    includer: Option<usize>,
    includes: Vec<usize>,
}

impl File {
    fn text(&self) -> &str {
        &self.padded[self.offset..]
    }
}

/// The files of one config, the top file first.
pub(super) struct Files {
    files: Vec<File>,
}

impl Files {
    /// Reads the files a config's text includes, and the files those include. `name` is the config file's path as
    /// given, if it has one; `base` is its folder. All problems with includes are reported at once, each in the
    /// file that has it.
    pub(super) fn read(text: &str, name: Option<&str>, base: &Path) -> Result<Files, Vec<Diagnostic>> {
        let shown_folder = match name.map(|name| Path::new(name).parent()) {
            Some(parent) => parent.unwrap_or(Path::new("")).to_path_buf(),
            None => base.to_path_buf(),
        };
        let top = File {
            name: name.unwrap_or("the run config").to_string(),
            folder: base.to_path_buf(),
            shown_folder,
            padded: text.to_string(),
            offset: 0,
            canonical: name.and_then(|name| Path::new(name).file_name()).and_then(|file| base.join(file).canonicalize().ok()),
            includer: None,
            includes: Vec::new(),
        };
        let mut files = Files { files: vec![top] };
        let mut errors = Vec::new();
        files.read_includes(0, &mut errors);
        if errors.is_empty() {
            Ok(files)
        } else {
            let included = files.included();
            Err(errors.into_iter().map(|diagnostic| included.locate(diagnostic)).collect())
        }
    }

    fn read_includes(&mut self, index: usize, errors: &mut Vec<Diagnostic>) {
        let entries = match DeTable::parse(&self.files[index].padded) {
            Ok(document) => include_entries(document.get_ref()),
            Err(error) => {
                errors.push(toml_diagnostic(&error, None));
                return;
            }
        };
        for entry in entries {
            let (entry, at) = match entry {
                Ok(entry) => entry,
                Err(not_a_file) => {
                    errors.push(*not_a_file);
                    continue;
                }
            };
            let includer = &self.files[index];
            let path = without_dot_dot(&includer.folder.join(&entry));
            let name = without_dot_dot(&includer.shown_folder.join(&entry)).display().to_string();
            let canonical = path.canonicalize().ok();
            let chain = self.chain(index);
            if let Some(first) = chain.iter().position(|&file| canonical.is_some() && self.files[file].canonical == canonical) {
                errors.push(self.cycle(&chain[first..], at));
                continue;
            }
            if self.files.len() >= MAX_FILES {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, format!("a run config may be made of at most {MAX_FILES} files, repeats counted"))
                        .at(at, "one include too many")
                        .help("include each shared file once, from the file that needs it; a file included twice is read twice"),
                );
                return;
            }
            let text = match read_config(&path) {
                Ok(text) => text,
                Err(error) => {
                    errors.push(unreadable(&name, at, &error));
                    continue;
                }
            };
            let total = self.files.last().expect("the top file is always there").padded.len() + 1 + text.len();
            if total > MAX_TOTAL_BYTES {
                errors.push(
                    Diagnostic::error(Code::ConfigSyntax, format!("the files of this run config add up to more than {MAX_TOTAL_BYTES} bytes"))
                        .at(at, format!("`{name}` passes the bound"))
                        .help("a run config holds settings, not data: check that `include` names config files"),
                );
                return;
            }
            // A byte-order mark is only allowed at the start of a document, and the padding moves it from there.
            let text = match text.strip_prefix('\u{feff}') {
                Some(rest) => format!("{}{rest}", " ".repeat('\u{feff}'.len_utf8())),
                None => text,
            };
            let offset = self.files.last().expect("the top file is always there").padded.len() + 1;
            let folder = path.parent().map_or_else(|| self.files[index].folder.clone(), Path::to_path_buf);
            self.files.push(File {
                shown_folder: Path::new(&name).parent().unwrap_or(Path::new("")).to_path_buf(),
                name,
                folder,
                padded: " ".repeat(offset) + &text,
                offset,
                canonical,
                includer: Some(index),
                includes: Vec::new(),
            });
            let included = self.files.len() - 1;
            self.files[index].includes.push(included);
            self.read_includes(included, errors);
        }
    }

    /// The files from the top file down to `index`, each including the next.
    fn chain(&self, index: usize) -> Vec<usize> {
        let mut chain = vec![index];
        while let Some(includer) = self.files[*chain.last().expect("never empty")].includer {
            chain.push(includer);
        }
        chain.reverse();
        chain
    }

    /// An include at `at`, in the last file of `cycle`, of the first file of `cycle`, which includes the rest.
    fn cycle(&self, cycle: &[usize], at: Span) -> Diagnostic {
        let first = &self.files[cycle[0]].name;
        let names: Vec<&str> = cycle.iter().map(|&file| self.files[file].name.as_str()).chain([first.as_str()]).collect();
        Diagnostic::error(Code::ConfigSyntax, format!("`{first}` includes itself"))
            .at(at, format!("includes `{first}` again"))
            .note(format!("the include chain: {}", names.join(" → ")))
            .help("remove this include; settings that several files need go in a file that each of them includes")
    }

    pub(super) fn has_includes(&self) -> bool {
        self.files.len() > 1
    }

    /// The names of the included files, each once, in the order they were read.
    pub(super) fn included_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for file in &self.files[1..] {
            if !names.contains(&file.name.as_str()) {
                names.push(&file.name);
            }
        }
        names
    }

    pub(super) fn top_name(&self) -> &str {
        &self.files[0].name
    }

    /// Every file's tables merged into one document, without `include`; its spans are in the shared span space.
    pub(super) fn merged(&self) -> Spanned<DeTable<'_>> {
        self.merged_from(0)
    }

    /// The tables of file `index` and of everything it includes, merged.
    fn merged_from(&self, index: usize) -> Spanned<DeTable<'_>> {
        let file = &self.files[index];
        let mut merged = DeTable::new();
        for &included in &file.includes {
            merged = merge(merged, self.merged_from(included).into_inner(), 0);
        }
        let own = DeTable::parse(&file.padded).expect("`read` parsed every file");
        let root = own.span();
        let mut own = own.into_inner();
        own.remove(INCLUDE);
        Spanned::new(root, merge(merged, own, 0))
    }

    /// The text at `range` of the span space, if it lies in one file.
    pub(super) fn text_at(&self, range: std::ops::Range<usize>) -> Option<&str> {
        self.files.iter().rev().find(|file| file.offset <= range.start)?.padded.get(range)
    }

    /// The folder of the file holding `position` of the span space: where that file's relative paths start.
    pub(super) fn folder_at(&self, position: usize) -> &Path {
        let file = self.files.iter().rev().find(|file| file.offset <= position).expect("the top file starts at 0");
        &file.folder
    }

    /// What diagnostics need to be shown in the file they point into.
    pub(super) fn included(&self) -> Included {
        let files = self.files[1..]
            .iter()
            .map(|file| {
                let chain = self.chain(file.includer.expect("only the top file has no includer"));
                IncludedFile {
                    offset: file.offset,
                    source: Source::new(file.name.clone(), file.text()),
                    included_by: chain.iter().map(|&includer| self.files[includer].name.as_str()).collect::<Vec<_>>().join(" → "),
                }
            })
            .collect();
        Included { files, recorded: String::new() }
    }
}

/// The entries of a file's `include` list with their spans, in order; what is not a list of strings is an error.
fn include_entries(document: &DeTable<'_>) -> Vec<Result<(String, Span), Box<Diagnostic>>> {
    let Some(value) = document.get(INCLUDE) else { return Vec::new() };
    let DeValue::Array(entries) = value.get_ref() else {
        let help = match value.get_ref() {
            DeValue::String(name) => format!("write it as a list: `include = [{name:?}]`"),
            _ => "e.g. `include = [\"base.toml\"]`, relative to this file's folder".to_string(),
        };
        return vec![Err(Box::new(
            Diagnostic::error(Code::ConfigSyntax, "`include` must be a list of config files")
                .at(span(value.span()), format!("a {}", value.get_ref().type_str()))
                .help(help),
        ))];
    };
    entries
        .iter()
        .map(|entry| match entry.get_ref() {
            DeValue::String(name) => Ok((name.to_string(), span(entry.span()))),
            other => Err(Box::new(
                Diagnostic::error(Code::ConfigSyntax, "`include` must list config files by name")
                    .at(span(entry.span()), format!("a {}, not a file name", other.type_str()))
                    .help("e.g. `include = [\"base.toml\"]`, relative to this file's folder"),
            )),
        })
        .collect()
}

/// An included file's text. Only a regular file is read: a device or a pipe (`/dev/zero`, a FIFO) could be read
/// from forever.
fn read_config(path: &Path) -> std::io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("it is not a file"));
    }
    // Refused before it is read: a data file named by mistake can be gigabytes.
    if metadata.len() > MAX_TOTAL_BYTES as u64 {
        return Err(std::io::Error::other(format!("it holds {} bytes, more than a run config may ({MAX_TOTAL_BYTES})", metadata.len())));
    }
    // A byte-order mark is not text: dropped, as `run::file::read_text` drops it from the including file.
    let text = std::fs::read_to_string(path)?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

fn unreadable(name: &str, at: Span, error: &std::io::Error) -> Diagnostic {
    let message = match error.kind() {
        std::io::ErrorKind::NotFound => format!("included config `{name}` does not exist"),
        _ => format!("cannot read included config `{name}`: {error}"),
    };
    Diagnostic::error(Code::ConfigSyntax, message)
        .at(at, "included here")
        .help("the paths in `include` are relative to the folder of the file that lists them")
}

/// `later` over `earlier`: tables merge key by key, any other value of `later` replaces that of `earlier`. Keys
/// stay in the order they were first written; a key written again takes the later file's key and value, so
/// that both of its spans point into the file whose value counts.
fn merge<'a>(earlier: DeTable<'a>, mut later: DeTable<'a>, depth: usize) -> DeTable<'a> {
    let mut merged = DeTable::new();
    for (key, value) in earlier {
        match later.remove_entry(&key) {
            Some((later_key, later_value)) => merged.insert(later_key, combine(value, later_value, depth)),
            None => merged.insert(key, value),
        };
    }
    merged.extend(later);
    merged
}

fn combine<'a>(earlier: Spanned<DeValue<'a>>, later: Spanned<DeValue<'a>>, depth: usize) -> Spanned<DeValue<'a>> {
    let at = later.span();
    match (earlier.into_inner(), later.into_inner()) {
        (DeValue::Table(earlier), DeValue::Table(later)) if depth < MERGE_DEPTH => {
            Spanned::new(at, DeValue::Table(merge(earlier, later, depth + 1)))
        }
        (_, later) => Spanned::new(at, later),
    }
}

/// Where the settings of a config that includes other files were written, and those settings as one file.
/// Empty for a config that includes none.
#[derive(Debug, Clone, Default)]
pub struct Included {
    files: Vec<IncludedFile>,
    /// Every setting in one TOML file, with absolute paths: what a run folder records (see
    /// [`RunConfig::recorded_text`](super::RunConfig::recorded_text)).
    pub(super) recorded: String,
}

/// Configs with the same settings are equal however their settings were split into files, as a `Spanned`
/// value equals another wherever each was written: a run folder's one-file record equals the config it records.
impl PartialEq for Included {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
struct IncludedFile {
    /// Where its spans start in the span space of the config's files.
    offset: usize,
    source: Source,
    /// The files that include it, from the top file down.
    included_by: String,
}

impl Included {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The names of the files the config includes, in the order they were read.
    pub fn names(&self) -> Vec<&str> {
        self.files.iter().map(|file| file.source.name.as_str()).collect()
    }

    /// A diagnostic about the config, with its spans moved into the included file it points at, and that file
    /// named as its own; one that points into the top file (or nowhere) is returned as it is.
    pub fn locate(&self, mut diagnostic: Diagnostic) -> Diagnostic {
        let Some(start) = diagnostic.primary.as_ref().map(|(at, _)| at.start) else { return diagnostic };
        let Some(file) = self.files.iter().rev().find(|file| file.offset <= start) else { return diagnostic };
        let end = file.offset + file.source.text.len();
        let local = |(at, label): (Span, String)| {
            (file.offset <= at.start && at.end <= end).then(|| (Span::new(at.start - file.offset, at.end - file.offset), label))
        };
        diagnostic.primary = diagnostic.primary.and_then(local);
        // A related place in another file has no place in this file's snippet.
        diagnostic.secondary = diagnostic.secondary.into_iter().filter_map(local).collect();
        diagnostic.notes.insert(0, format!("note: included by {}", file.included_by));
        diagnostic.file = Some(Box::new(file.source.clone()));
        diagnostic
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{parse, parse_file, RunConfig, Ties};
    use crate::diagnostic::{render_plain, Diagnostic, Source};

    /// A fresh folder holding `files`, each a path under it and a text.
    fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn source_of(dir: &tempfile::TempDir, name: &str) -> Source {
        let path = dir.path().join(name);
        Source::new(path.display().to_string(), std::fs::read_to_string(&path).unwrap())
    }

    fn read(dir: &tempfile::TempDir, name: &str) -> Result<RunConfig, Vec<Diagnostic>> {
        let path = dir.path().join(name);
        parse_file(&source_of(dir, name), path.parent().unwrap())
    }

    const DATA: &str = "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n";

    #[test]
    fn files_that_include_the_next_one_twice_stop_at_the_file_bound_and_a_huge_file_is_not_read() {
        // Level k includes level k + 1 twice: 2^20 files without the bound.
        let mut files: Vec<(String, String)> = (0..20).map(|k| (format!("l{k}.toml"), format!("include = [\"l{0}.toml\", \"l{0}.toml\"]\n", k + 1))).collect();
        files.push(("l20.toml".into(), DATA.into()));
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(name, text)| (name.as_str(), text.as_str())).collect();
        let dir = folder_with(&borrowed);
        let errors = read(&dir, "l0.toml").unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("at most 32 files")), "{errors:?}");
        assert!(errors.len() < 100, "{} errors", errors.len());

        let dir = folder_with(&[("top.toml", "include = [\"data.tsv\"]\n"), ("data.tsv", &"1\t2\t3\n".repeat(200_000))]);
        let errors = read(&dir, "top.toml").unwrap_err();
        assert!(errors[0].message.contains("more than a run config may"), "{errors:?}");
    }

    #[test]
    fn later_files_win_and_tables_merge_key_by_key() {
        let dir = folder_with(&[
            ("base.toml", &format!("{DATA}[eval]\ncutoffs = [5, 10]\nbatch = 64\n[run]\ndevice = \"cpu\"\nthreads = 2\n[experiment.sweep]\nlr = [0.1]\nbatch = [32]\n")),
            ("more.toml", "[eval]\nbatch = 128\nties = \"standard\"\n[run]\nthreads = 4\n[experiment.sweep]\nlr = [0.2, 0.3]\n"),
            ("top.toml", "include = [\"base.toml\", \"more.toml\"]\n[eval]\ncutoffs = [20]\n[experiment.sweep]\nhidden = [100]\n"),
        ]);
        let config = read(&dir, "top.toml").unwrap();
        assert_eq!(config.eval.cutoffs, [20], "the including file's own keys win over its includes");
        assert_eq!((config.eval.batch, config.eval.ties), (128, Ties::Standard), "a later include wins over an earlier one");
        assert_eq!((config.run.device.get_ref().as_str(), config.run.threads), ("cpu", 4), "a key written once is kept");
        let sweep: Vec<(&str, usize)> = config.experiment.sweep.iter().map(|(key, values)| (key.as_str(), values.len())).collect();
        assert_eq!(sweep, [("lr", 2), ("batch", 1), ("hidden", 1)], "keys keep the place they were first written in");
        assert_eq!(config.included.names().len(), 2);
    }

    #[test]
    fn nested_includes_resolve_paths_against_the_folder_of_the_file_that_wrote_them() {
        let dir = folder_with(&[
            (
                "shared/data.toml",
                "[data]\ntrain = \"train.tsv\"\ntest = \"split/test.tsv\"\n[inputs.image]\nkind = \"dense\"\nvectors = \"v.npy\"\nids = \"v.ids\"\n[run]\nout = \"runs\"\n",
            ),
            ("experiments/base.toml", "include = [\"../shared/data.toml\"]\n[experiment]\nspecs = [\"spec.prnn\"]\n"),
            ("experiments/deep/top.toml", "include = [\"../base.toml\"]\n[inputs.image]\nnormalize = true\n"),
        ]);
        let root = dir.path();
        let config = read(&dir, "experiments/deep/top.toml").unwrap();
        assert_eq!(config.data.train.as_ref().unwrap().get_ref(), &root.join("shared/train.tsv"));
        assert_eq!(config.data.test.as_ref().unwrap().get_ref(), &root.join("shared/split/test.tsv"));
        let crate::config::InputBinding::Dense { vectors, ids, normalize, .. } = config.inputs[0].get_ref() else { panic!("dense") };
        assert_eq!((vectors, ids.as_ref().unwrap(), *normalize), (&root.join("shared/v.npy"), &root.join("shared/v.ids"), true));
        assert_eq!(config.run.out, root.join("shared/runs"));
        assert_eq!(config.experiment.specs, [root.join("experiments/spec.prnn")]);
        let names: Vec<String> = config.included.names().iter().map(|name| name.to_string()).collect();
        let shown = |path: &str| root.join(path).display().to_string();
        assert_eq!(names, [shown("experiments/base.toml"), shown("shared/data.toml")], "shown without `..`");

        // A setting no file writes starts from the top file's folder, as in a config of one file.
        let dir = folder_with(&[("data/base.toml", DATA), ("top.toml", "include = [\"data/base.toml\"]\n")]);
        assert_eq!(read(&dir, "top.toml").unwrap().run.out, dir.path().join("runs"));
    }

    #[test]
    fn the_recorded_text_keeps_every_setting_when_the_included_files_are_gone() {
        let dir = folder_with(&[
            ("shared/data.toml", &format!("{DATA}[inputs.text]\nkind = \"sparse\"\nitems = \"items.tsv\"\ncolumns = [\"title\"]\nencoding = \"tfidf\"\n")),
            ("top.toml", "include = [\"shared/data.toml\"]\n[eval]\ncutoffs = [20]\n[experiment]\nspecs = [\"a.prnn\"]\n"),
        ]);
        let config = read(&dir, "top.toml").unwrap();
        let recorded = config.recorded_text("include = [\"shared/data.toml\"]\n");
        assert!(recorded.starts_with('#') && !recorded.contains("include ="), "{recorded}");
        std::fs::remove_dir_all(dir.path().join("shared")).unwrap();
        let again = parse(&recorded, Path::new("/elsewhere")).unwrap_or_else(|e| panic!("{e:?}\n{recorded}"));
        assert!(again.included.is_empty(), "the recorded text includes nothing");
        assert_eq!(again, config, "the same settings, paths and all");
        assert_eq!(again.data.train.unwrap().into_inner(), dir.path().join("shared/train.tsv"));

        // A config that includes nothing is recorded as it was written, comments and all.
        let plain = format!("# mine\n{DATA}");
        assert_eq!(parse(&plain, Path::new("/data")).unwrap().recorded_text(&plain), plain);
    }

    #[test]
    fn a_file_included_twice_is_no_cycle() {
        let dir = folder_with(&[
            ("common.toml", DATA),
            ("a.toml", "include = [\"common.toml\"]\n[eval]\nbatch = 8\n"),
            ("b.toml", "include = [\"common.toml\"]\n[eval]\nbatch = 16\n"),
            ("top.toml", "include = [\"a.toml\", \"b.toml\", \"a.toml\"]\n"),
        ]);
        assert_eq!(read(&dir, "top.toml").unwrap().eval.batch, 8);
    }

    /// The text a diagnostic's primary span covers in its own file.
    fn pointed_at(diagnostic: &Diagnostic) -> &str {
        let file = diagnostic.file.as_ref().expect("located in an included file");
        let (at, _) = diagnostic.primary.as_ref().expect("a snippet");
        &file.text[at.start..at.end]
    }

    #[test]
    fn errors_are_located_in_the_included_file_that_has_them() {
        let dir = folder_with(&[
            ("base.toml", &format!("{DATA}[eval]\ncutofs = [5]\n")),
            ("top.toml", "# The dataset's settings are in base.toml.\ninclude = [\"base.toml\"]\n"),
        ]);
        let errors = read(&dir, "top.toml").unwrap_err();
        assert_eq!(pointed_at(&errors[0]), "cutofs");
        assert!(errors[0].file.as_ref().unwrap().name.ends_with("base.toml"));
        assert_eq!(errors[0].notes[0], format!("note: included by {}", dir.path().join("top.toml").display()));
        let rendered = render_plain(&source_of(&dir, "top.toml"), &errors);
        assert!(rendered.contains("base.toml:5:1"), "{rendered}");
        assert!(rendered.contains("did you mean `cutoffs`?"), "{rendered}");

        // The cross-field checks point into the file too, and the binding to a spec.
        let dir = folder_with(&[
            ("base.toml", &format!("{DATA}[experiment]\njobs = 0\n[inputs.content]\nkind = \"item_id\"\n")),
            ("top.toml", "include = [\"base.toml\"]\n"),
        ]);
        assert_eq!(pointed_at(&read(&dir, "top.toml").unwrap_err()[0]), "jobs = 0");
        std::fs::write(dir.path().join("base.toml"), format!("{DATA}[inputs.content]\nkind = \"item_id\"\n")).unwrap();
        let config = read(&dir, "top.toml").unwrap();
        let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("specs/parallel_res.prnn");
        let model = crate::compile::check_source(&Source::new("parallel_res.prnn", std::fs::read_to_string(spec).unwrap())).unwrap();
        let errors = crate::config::bind(&config, &model, "parallel_res.prnn").unwrap_err();
        assert_eq!(pointed_at(&errors[0]), "[inputs.content]");
    }

    #[test]
    fn include_problems_are_reported_together() {
        let dir = folder_with(&[
            ("self.toml", "include = [\"self.toml\"]\n"),
            ("string.toml", "include = \"base.toml\"\n"),
            ("folder/data.toml", DATA),
            ("top.toml", "include = [\"missing.toml\", 7, \"self.toml\", \"string.toml\", \"folder\"]\n"),
        ]);
        let errors = read(&dir, "top.toml").unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
        let self_name = dir.path().join("self.toml").display().to_string();
        assert_eq!(
            messages,
            [
                format!("included config `{}` does not exist", dir.path().join("missing.toml").display()),
                "`include` must list config files by name".to_string(),
                format!("`{self_name}` includes itself"),
                "`include` must be a list of config files".to_string(),
                format!("cannot read included config `{}`: it is not a file", dir.path().join("folder").display()),
            ]
        );
        assert_eq!(pointed_at(&errors[2]), "\"self.toml\"");
        assert!(errors[3].notes.contains(&"help: write it as a list: `include = [\"base.toml\"]`".to_string()), "{:?}", errors[3]);
        // Read from text without a file name, a config still finds a cycle, one include later.
        let text = std::fs::read_to_string(dir.path().join("self.toml")).unwrap();
        assert!(parse(&text, dir.path()).unwrap_err()[0].message.ends_with("self.toml` includes itself"));
    }

    #[test]
    fn tables_nested_deeper_than_any_setting_are_replaced_not_merged() {
        let deep = format!("[{}]\nx = 1\n", vec!["t"; 40].join("."));
        let dir = folder_with(&[("base.toml", &format!("{DATA}{deep}")), ("top.toml", &format!("include = [\"base.toml\"]\n{deep}"))]);
        let errors = read(&dir, "top.toml").unwrap_err();
        assert!(errors[0].message.starts_with("unknown field `t`"), "{:?}", errors[0]);
    }
}
