//! The examples in the docs compile: every ```prnn block must compile, every ```prnn-error block must not. The
//! README's spec is the shipped one, and its command lines that run on shipped data run as shown.

use std::path::Path;

/// The fenced blocks tagged exactly `tag`, with the line number of their opening fence.
fn blocks(markdown: &str, tag: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut open: Option<usize> = None;
    let mut body = String::new();
    for (number, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open {
            Some(start) if fence => {
                found.push((start, std::mem::take(&mut body)));
                open = None;
            }
            Some(_) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.trim() == format!("```{tag}") => open = Some(number + 1),
            None => {}
        }
    }
    found
}

fn check_file(relative: &str, must_have_examples: bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let markdown = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
    let good = blocks(&markdown, "prnn");
    assert!(!good.is_empty() || !must_have_examples, "{relative} has no ```prnn example");
    for (line, text) in good {
        if let Err(error) = prnn::compile(&format!("{relative}:{line}"), &text) {
            let source = prnn::diagnostic::Source::new(format!("{relative} (block at line {line})"), text);
            panic!("{}", prnn::diagnostic::render_plain(&source, &error.diagnostics));
        }
    }
    for (line, text) in blocks(&markdown, "prnn-error") {
        assert!(prnn::compile("doc", &text).is_err(), "{relative}:{line}: a ```prnn-error block compiled");
    }
}

#[test]
fn spec_language_reference_examples_compile() {
    check_file("docs/spec-language.md", true);
}

#[test]
fn readme_example_compiles() {
    check_file("README.md", true);
}

#[test]
fn every_other_docs_page_example_compiles() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            check_file(&format!("docs/{name}"), false);
        }
    }
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn the_readme_spec_is_the_shipped_spec_its_commands_use() {
    let spec = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/parallel_res.prnn")).unwrap();
    let readme = readme();
    let shown = blocks(&readme, "prnn");
    assert_eq!(shown.len(), 1, "the README shows one spec");
    assert_eq!(shown[0].1, spec, "the README's spec must be specs/parallel_res.prnn, which its commands run");
    assert!(readme.contains("prnn train specs/parallel_res.prnn --config examples/yoochoose-categories.toml"));
}

/// The README's command lines that run on the shipped data without training or writing into the repository
/// (`check`, `compile` without a pipe, `data stats`, `doctor`), run from the repository root exactly as
/// shown, through a shell (for the glob) with `prnn` on the PATH. The others train, write run folders or
/// caches, need a trained run or Graphviz; `tests/cli*.rs` cover those commands.
#[test]
fn the_readme_command_lines_that_run_on_shipped_data_run_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("prnn-torch"), bin.path().join("prnn")).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let readme = readme();
    let mut ran = Vec::new();
    for (_, block) in blocks(&readme, "sh") {
        for line in block.lines() {
            let command = line.split(" # ").next().unwrap().trim();
            let words: Vec<&str> = command.split_whitespace().collect();
            let runnable = match words.as_slice() {
                ["prnn", "check", ..] | ["prnn", "doctor"] => true,
                ["prnn", "compile", ..] => !command.contains('|'),
                ["prnn", "data", "stats", ..] => true,
                _ => false,
            };
            if !runnable {
                continue;
            }
            let output = std::process::Command::new("sh").arg("-c").arg(command).current_dir(root).env("PATH", &path).output().unwrap();
            assert!(output.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&output.stderr));
            ran.push(command.to_string());
        }
    }
    assert!(ran.len() >= 5, "the README's runnable lines were found: {ran:?}");
}
