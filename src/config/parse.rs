//! Reading a config: TOML text to [`RunConfig`], TOML and schema errors as diagnostics, paths made relative
//! to the config's folder.

use std::path::{Path, PathBuf};

use super::schema::RunConfig;
use super::span;
use super::validate::{validate, validate_baselines_and_experiment};
use crate::diagnostic::{closest, Code, Diagnostic};

/// Reads a config from TOML text. `base` is the folder relative paths start from.
pub fn parse(text: &str, base: &Path) -> Result<RunConfig, Vec<Diagnostic>> {
    let mut config: RunConfig = toml::from_str(text).map_err(|error| vec![toml_diagnostic(&error)])?;
    let mut errors = Vec::new();
    validate(&config, &mut errors);
    validate_baselines_and_experiment(&config, text, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = without_dot_dot(&base.join(&*path));
        }
    };
    for path in [&mut config.data.train, &mut config.data.test, &mut config.data.sessions].into_iter().flatten() {
        resolve(path.get_mut());
    }
    for (_, binding) in config.inputs.iter_mut() {
        binding.get_mut().paths_mut().into_iter().for_each(resolve);
    }
    resolve(&mut config.run.out);
    config.experiment.specs.iter_mut().for_each(resolve);
    Ok(config)
}

/// `examples/../data/x` as `data/x`, so messages show the paths people would type. Lexical: `a/link/../b`
/// becomes `a/b` even where `link` is a symbolic link to elsewhere, a case config paths rarely meet.
fn without_dot_dot(path: &Path) -> PathBuf {
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

/// Turns a TOML or schema error into a diagnostic, adding a suggestion for unknown keys and variants.
fn toml_diagnostic(error: &toml::de::Error) -> Diagnostic {
    let mut message = error.message().trim().to_string();
    if message.contains("untagged enum TimeColumnText") {
        message = "a time column is a column name, or a table `{ column = \"...\", unit = \"...\" }` with just those two keys".into();
    }
    let mut diagnostic = Diagnostic::error(Code::ConfigSyntax, first_line(&message));
    if let Some(range) = error.span() {
        diagnostic = diagnostic.at(span(range), "here");
    }
    // serde words these as "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
    if let Some((written, expected)) = unknown_name(&message) {
        diagnostic = diagnostic.suggest(&written, expected.iter().map(String::as_str));
        if closest(&written, expected.iter().map(String::as_str)).is_none() && !expected.is_empty() {
            diagnostic =
                diagnostic.help(format!("expected one of {}", expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")));
        }
    }
    diagnostic
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
    fn unknown_keys_get_a_suggestion() {
        let errors = parse("[data]\ntrain = \"a\"\ntest = \"b\"\n[eval]\ncutofs = [20]\n", Path::new(".")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].notes.iter().any(|n| n.contains("did you mean `cutoffs`")), "{:?}", errors[0]);
    }
}
