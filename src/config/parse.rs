//! Reading a config: TOML text to [`RunConfig`], with the files it includes merged in, TOML and schema errors
//! as diagnostics, and relative paths resolved against the folder of the file that wrote them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::include::Files;
use super::schema::RunConfig;
use super::span;
use super::validate::{validate, validate_baselines_and_experiment};
use crate::diagnostic::{closest, Code, Diagnostic, Source};

/// Reads a config from TOML text. `base` is the folder relative paths and includes start from.
pub fn parse(text: &str, base: &Path) -> Result<RunConfig, Vec<Diagnostic>> {
    read(text, None, base)
}

/// Reads a config file: `source` names it as given and holds its text, `base` is its folder. The files it
/// includes are named relative to that name, and an include that leads back to it is reported as a cycle.
pub fn parse_file(source: &Source, base: &Path) -> Result<RunConfig, Vec<Diagnostic>> {
    read(&source.text, Some(&source.name), base)
}

fn read(text: &str, name: Option<&str>, base: &Path) -> Result<RunConfig, Vec<Diagnostic>> {
    let files = Files::read(text, name, base)?;
    let mut included = files.included();
    let document = files.merged();
    let mut config = RunConfig::deserialize(toml::de::Deserializer::from(document.clone()))
        .map_err(|error| vec![included.locate(toml_diagnostic(&error, Some((&files, document.get_ref()))))])?;
    let mut errors = Vec::new();
    validate(&config, &mut errors);
    validate_baselines_and_experiment(&config, document.get_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into_iter().map(|diagnostic| included.locate(diagnostic)).collect());
    }
    resolve_paths(&mut config, document.get_ref(), &files);
    if files.has_includes() {
        included.recorded = recorded_text(&config, &files)?;
    }
    config.included = included;
    Ok(config)
}

/// Resolves every relative path against the folder of the file that wrote it, found by its span; a default,
/// written in no file, against the top file's folder.
fn resolve_paths(config: &mut RunConfig, document: &DeTable<'_>, files: &Files) {
    let resolve = |path: &mut PathBuf, folder: &Path| {
        if path.is_relative() {
            *path = without_dot_dot(&folder.join(&*path));
        }
    };
    for path in [&mut config.data.train, &mut config.data.test, &mut config.data.sessions].into_iter().flatten() {
        let folder = files.folder_at(path.span().start);
        resolve(path.get_mut(), folder);
    }
    for (name, binding) in config.inputs.iter_mut() {
        for (key, path) in binding.get_mut().paths_mut() {
            resolve(path, folder_of_setting(files, document, &["inputs", name.get_ref(), key]));
        }
    }
    resolve(&mut config.run.out, folder_of_setting(files, document, &["run", "out"]));
    let specs_folder = folder_of_setting(files, document, &["experiment", "specs"]);
    config.experiment.specs.iter_mut().for_each(|spec| resolve(spec, specs_folder));
}

/// The folder of the file that wrote the setting at `keys` (its tables, then its key), or the top file's when no
/// file wrote it.
fn folder_of_setting<'f>(files: &'f Files, document: &DeTable<'_>, keys: &[&str]) -> &'f Path {
    let (key, tables) = keys.split_last().expect("a setting has a key");
    let mut table = document;
    for part in tables {
        match table.get(*part).map(|value| value.get_ref()) {
            Some(DeValue::Table(inner)) => table = inner,
            _ => return files.folder_at(0),
        }
    }
    files.folder_at(table.get(*key).map_or(0, |value| value.span().start))
}

/// A config that includes others as one TOML file: every setting written out, every path resolved, and a
/// comment naming the files it was merged from.
fn recorded_text(config: &RunConfig, files: &Files) -> Result<String, Vec<Diagnostic>> {
    let settings = toml::to_string(config).map_err(|error| {
        vec![Diagnostic::error(Code::ConfigSyntax, format!("the merged config cannot be written as one TOML file: {error}"))
            .help("a run folder records the settings of a config that includes others in one file, which needs UTF-8 paths")]
    })?;
    Ok(format!(
        "# {} with the files it includes ({}), merged into one by prnn:\n# every setting is written out and every path is resolved.\n\n{settings}",
        files.top_name(),
        files.included_names().join(", "),
    ))
}

/// `examples/../data/x` as `data/x`, so messages show the paths people would type. Lexical: `a/link/../b`
/// becomes `a/b` even where `link` is a symbolic link to elsewhere, a case config paths rarely meet.
pub(super) fn without_dot_dot(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut parts: Vec<Component> = Vec::new();
    for component in path.components() {
        match (component, parts.last()) {
            (Component::CurDir, Some(_)) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                parts.pop();
            }
            _ => parts.push(component),
        }
    }
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

/// Turns a TOML or schema error into a diagnostic, adding a suggestion for unknown keys and variants. A schema
/// error comes with the files and the merged document it was found in.
pub(super) fn toml_diagnostic(error: &toml::de::Error, found_in: Option<(&Files, &DeTable<'_>)>) -> Diagnostic {
    let mut message = error.message().trim().to_string();
    if message.contains("untagged enum TimeColumnText") {
        message = "a time column is a column name, or a table `{ column = \"...\", unit = \"...\" }` with just those two keys".into();
    }
    let mut diagnostic = Diagnostic::error(Code::ConfigSyntax, first_line(&message));
    let unknown = unknown_name(&message);
    if let Some(mut range) = error.span() {
        // An input's table is read whole before its `kind` picks the variant, so serde can only point at
        // the table: find the unknown key in it.
        let unknown_field = message.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`'));
        if let (Some((written, _)), Some((files, document))) = (unknown_field, found_in) {
            if !files.text_at(range.clone()).is_some_and(|at| at.starts_with(written)) {
                range = key_in_table(document, range.clone(), written).unwrap_or(range);
            }
        }
        diagnostic = diagnostic.at(span(range), "here");
    }
    // serde words these as "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
    if let Some((written, expected)) = unknown {
        diagnostic = diagnostic.suggest(&written, expected.iter().map(String::as_str));
        if closest(&written, expected.iter().map(String::as_str)).is_none() && !expected.is_empty() {
            diagnostic =
                diagnostic.help(format!("expected one of {}", expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")));
        }
    }
    diagnostic
}

/// The span of key `name` in the table of `root` that starts at `table` (its `[header]`, or its value inline).
/// Walks the document with a stack, not recursion: a config's nesting has no bound.
fn key_in_table(root: &DeTable<'_>, table: std::ops::Range<usize>, name: &str) -> Option<std::ops::Range<usize>> {
    let mut pending: Vec<&toml::Spanned<DeValue>> = Vec::new();
    let mut tables = vec![root];
    while let Some(current) = tables.pop() {
        for (key, value) in current.iter() {
            if let DeValue::Table(inner) = value.get_ref() {
                let spans = [value.span(), key.span()];
                if spans.iter().any(|s| s.start <= table.start && table.start < s.end.max(s.start + 1)) {
                    if let Some((found, _)) = inner.iter().find(|(k, _)| k.get_ref() == name) {
                        return Some(found.span());
                    }
                }
            }
            pending.push(value);
        }
        while let Some(value) = pending.pop() {
            match value.get_ref() {
                DeValue::Table(inner) => tables.push(inner),
                DeValue::Array(items) => pending.extend(items.iter()),
                _ => {}
            }
        }
    }
    None
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("invalid run config").to_string()
}

fn unknown_name(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))?;
    let (written, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(String::from).collect();
    Some((written.to_string(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_device, Device, Ties};
    #[test]
    fn folds_dot_dot_after_named_folders() {
        assert_eq!(without_dot_dot(Path::new("examples/../data/x.tsv")), PathBuf::from("data/x.tsv"));
        assert_eq!(without_dot_dot(Path::new("experiments/../../shared/d")), PathBuf::from("../shared/d"));
        assert_eq!(without_dot_dot(Path::new("/a/b/../c")), PathBuf::from("/a/c"));
        assert_eq!(without_dot_dot(Path::new("./x")), PathBuf::from("./x"));
    }

    #[test]
    fn defaults_fill_everything_but_data() {
        let config = parse("[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n", Path::new("/data")).unwrap();
        assert_eq!(config.data.train.unwrap().into_inner(), PathBuf::from("/data/train.tsv"));
        assert_eq!(config.eval.cutoffs, vec![5, 10, 20]);
        assert_eq!(config.eval.ties, Ties::Conservative);
        assert_eq!(config.preprocess.min_item_support(), 1);
        assert_eq!(parse_device(config.run.device.get_ref()), Some(Device::Auto));
    }

    #[test]
    fn an_unknown_key_in_an_input_is_pointed_at_itself() {
        let data = "[data]\ntrain = \"a\"\ntest = \"b\"\n";
        for (table, key_line) in [
            ("[inputs.image]\nkind = \"dense\"\nvectors = \"v.npy\"\nnormalise = true\n", "normalise = true"),
            ("[inputs]\nimage = { kind = \"dense\", vectors = \"v.npy\", normalise = true }\n", "normalise = true }"),
            ("[inputs.id]\nkind = \"item_id\"\n[inputs.image]\nkind = \"dense\"\nvectors = \"v\"\nnormalise = true\n", "normalise = true"),
        ] {
            let text = format!("{data}{table}");
            let errors = parse(&text, Path::new(".")).unwrap_err();
            let Some((span, _)) = &errors[0].primary else { panic!("{:?}", errors[0]) };
            assert_eq!(&text[span.start..span.end], "normalise", "{table}: {:?}", errors[0]);
            assert!(text[span.start..].starts_with(key_line));
        }
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let errors = parse("[data]\ntrain = \"a\"\ntest = \"b\"\n[eval]\ncutofs = [20]\n", Path::new(".")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].notes.iter().any(|n| n.contains("did you mean `cutoffs`")), "{:?}", errors[0]);
    }
}
