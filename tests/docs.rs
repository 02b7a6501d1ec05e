//! The examples in the docs compile: every ```prnn block must compile, every ```prnn-error block must not.

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
