//! Snapshot tests: the compiled graph and plan of every paper spec, and the rendered errors of every bad spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prnn::diagnostic::{render_plain, Code, Diagnostic, Source};
use prnn::ir::render;

/// A path relative to the crate root, so diagnostics and snapshot names do not depend on the checkout.
fn display_name(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

#[test]
fn every_paper_spec_compiles_to_its_reviewed_graph_and_plan() {
    insta::glob!("../specs", "*.prnn", |path| {
        let source = Source::new(display_name(path), std::fs::read_to_string(path).unwrap());
        let compiled = prnn::compile_source(&source).unwrap_or_else(|error| panic!("{}", render_plain(&source, &error.diagnostics)));
        insta::assert_snapshot!(render::text(&compiled));
    });
}

#[test]
fn every_modern_spec_compiles_to_its_reviewed_graph_and_plan() {
    insta::glob!("../specs/modern", "*.prnn", |path| {
        let source = Source::new(display_name(path), std::fs::read_to_string(path).unwrap());
        let compiled = prnn::compile_source(&source).unwrap_or_else(|error| panic!("{}", render_plain(&source, &error.diagnostics)));
        insta::assert_snapshot!(render::text(&compiled));
    });
}

#[test]
fn every_bad_spec_gets_its_reviewed_messages() {
    insta::glob!("bad/*.prnn", |path| {
        let source = Source::new(display_name(path), std::fs::read_to_string(path).unwrap());
        let error = match prnn::compile_source(&source) {
            Ok(_) => panic!("{} compiled, but it is in the bad-spec corpus", source.name),
            Err(error) => error,
        };
        insta::assert_snapshot!(render_plain(&source, &error.diagnostics));
    });
}

#[test]
fn every_spec_check_has_a_bad_spec_that_triggers_it() {
    let mut seen = BTreeSet::new();
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    for entry in std::fs::read_dir(bad).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(error) = prnn::compile(&path.display().to_string(), &text) {
            seen.extend(error.diagnostics.iter().map(|d| d.code.as_str()));
        }
    }
    // The config codes have their examples in tests/bad-config. A spec over 1 MiB (E0103) is too large to keep
    // in the repository: src/syntax/limits.rs tests it with generated text. No spec within the size limits makes the
    // grammar run out of steps (E0106): src/syntax/parser.rs tests it with a lowered budget.
    let elsewhere = [Code::ConfigSyntax, Code::ConfigBinding, Code::FileTooLarge, Code::ParserGaveUp];
    let missing: Vec<&str> =
        Code::ALL.iter().filter(|c| !elsewhere.contains(c)).map(|c| c.as_str()).filter(|c| !seen.contains(c)).collect();
    assert!(missing.is_empty(), "no bad spec in tests/bad triggers {missing:?}");
}

#[test]
fn dot_and_json_renderings_cover_every_node() {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let files =
        |dir: PathBuf| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "prnn"));
    for path in files(specs.clone()).chain(files(specs.join("modern"))) {
        let compiled = prnn::compile("spec", &std::fs::read_to_string(&path).unwrap()).unwrap();
        let nodes = compiled.graph.graph.node_count();
        let edges = compiled.graph.graph.edge_count();

        let dot = render::dot(&compiled);
        assert!(dot.starts_with("digraph "), "{}", path.display());
        assert_eq!(dot.matches(" [label=").count(), nodes + edges, "{}", path.display());

        let json: serde_json::Value = serde_json::from_str(&render::json(&compiled)).unwrap();
        assert_eq!(json["graph"]["nodes"].as_array().unwrap().len(), nodes);
        assert_eq!(json["graph"]["edges"].as_array().unwrap().len(), edges);
        assert_eq!(json["model"]["name"], compiled.model.name.as_str());
        assert_eq!(json["plan"]["epochs"], compiled.plan.epochs);
    }
}

#[test]
fn declaration_order_does_not_change_the_graph() {
    let forward =
        "model m {\n input id : item_id\n input image : dense\n subnet a = gru(id)\n subnet b = gru(image)\n merge = parallel(a, b)\n}\n";
    let shuffled =
        "model m {\n input image : dense\n subnet b = gru(image)\n merge = parallel(a, b)\n input id : item_id\n subnet a = gru(id)\n}\n";
    let first = render::text(&prnn::compile("a", forward).unwrap());
    let second = render::text(&prnn::compile("b", shuffled).unwrap());
    assert_eq!(first, second);
}

/// Runs the whole front end (parse, check, graph and plan) on a thread with the default 2 MiB stack, and
/// returns the diagnostics of each stage's entry point: a stack overflow would abort the test binary.
fn front_end_on_a_small_stack(text: String) -> Vec<Vec<Diagnostic>> {
    std::thread::spawn(move || {
        let source = Source::new("hostile.prnn", text);
        let parsed = prnn::syntax::parse(&source.text).expect_err("the hostile spec parses");
        let checked = prnn::check_source(&source).expect_err("the hostile spec checks").diagnostics;
        let compiled = prnn::compile_source(&source).expect_err("the hostile spec compiles").diagnostics;
        vec![parsed, checked, compiled]
    })
    .join()
    .expect("the front end does not panic")
}

/// The 1-based line and column of a byte offset, as diagnostics print them.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    (line, column)
}

fn assert_nesting_error_at(text: String, line: usize, column: usize) {
    for diagnostics in front_end_on_a_small_stack(text.clone()) {
        // A hostile line may also pass the line-length limit; nothing else is reported.
        assert!(diagnostics.iter().all(|d| matches!(d.code, Code::NestingTooDeep | Code::LineTooLong)), "{diagnostics:#?}");
        let nesting = diagnostics.iter().find(|d| d.code == Code::NestingTooDeep).expect("a nesting error");
        let (span, _) = nesting.primary.clone().expect("the nesting error is located");
        assert_eq!(line_and_column(&text, span.start), (line, column));
    }
}

#[test]
fn thirty_nested_entry_blocks_are_a_located_nesting_error() {
    // The block's brace is level 1, so the 16th `residual {` opens level 17.
    let text = format!("model m {{\n{}\n}}\n", "residual { ".repeat(30));
    assert_nesting_error_at(text, 2, 15 * 11 + 10);
}

#[test]
fn a_hundred_thousand_nested_calls_are_a_located_nesting_error() {
    let depth = 100_000;
    let text = format!("model m {{\n  input id : item_id\n  subnet id_net = {}id{}\n}}\n", "gru(".repeat(depth), ")".repeat(depth));
    // `  subnet id_net = ` is 18 characters; the 16th `gru(` opens level 17.
    assert_nesting_error_at(text, 3, 18 + 15 * 4 + 4);
}

#[test]
fn nesting_at_the_limit_reaches_the_grammar_on_a_small_stack() {
    // 15 entry blocks inside the block's braces: level 16, the deepest allowed. Never closed, so the grammar's
    // recovery (which once took time exponential in this depth) reports the block as unclosed.
    let text = format!("model m {{\n{}\n}}\n", "residual { ".repeat(15));
    for diagnostics in front_end_on_a_small_stack(text) {
        assert!(diagnostics.iter().all(|d| d.code == Code::Syntax), "{diagnostics:#?}");
    }
    let closed = format!("model m {{\n  input id : item_id\n  subnet id_net = {}id{}\n}}\n", "gru(".repeat(15), ")".repeat(15));
    let diagnostics = std::thread::spawn(move || prnn::compile("deep.prnn", &closed).unwrap_err().diagnostics).join().unwrap();
    assert!(diagnostics.iter().all(|d| d.code != Code::NestingTooDeep), "{diagnostics:#?}");
}
