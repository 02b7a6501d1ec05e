//! Snapshot tests: the compiled graph and plan of every paper spec, and the rendered errors of every bad spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prnn::diagnostic::{render_plain, Code, Source};
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
    let config_codes = [Code::ConfigSyntax, Code::ConfigBinding];
    let missing: Vec<&str> =
        Code::ALL.iter().filter(|c| !config_codes.contains(c)).map(|c| c.as_str()).filter(|c| !seen.contains(c)).collect();
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
