//! Run-config tests: the examples bind their specs, configs include others, and every bad config gets its reviewed
//! message.

use std::path::Path;

use prnn::check::InputKind;
use prnn::diagnostic::{render_plain, Source};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn spec(name: &str) -> prnn::check::Model {
    let text = std::fs::read_to_string(root().join("specs").join(name)).unwrap();
    prnn::check_source(&Source::new(name, text)).unwrap()
}

#[test]
fn examples_bind_the_feature_input_to_the_kind_their_data_has() {
    let cases = [
        ("yoochoose-categories.toml", InputKind::Sparse),
        ("amazon-text.toml", InputKind::Sparse),
        ("amazon-image-vectors.toml", InputKind::Dense),
    ];
    let model = spec("parallel_res.prnn");
    assert_eq!(model.input("content").unwrap().kind, InputKind::Feature);
    for (file, expected) in cases {
        let path = root().join("examples").join(file);
        let config = prnn::config::parse(&std::fs::read_to_string(&path).unwrap(), path.parent().unwrap()).unwrap();
        let bound = prnn::config::bind(&config, &model, "parallel_res.prnn").unwrap();
        assert_eq!(bound.input("content").unwrap().kind, expected, "{file}");
        // `../data/...` from examples/ is the repository's data/ folder.
        assert!(config.data.train.unwrap().get_ref().starts_with(root().join("data")), "paths resolve from the config's folder");
    }
    let path = root().join("examples/amazon-id-image-text.toml");
    let config = prnn::config::parse(&std::fs::read_to_string(&path).unwrap(), path.parent().unwrap()).unwrap();
    prnn::config::bind(&config, &spec("parallel_id_image_text.prnn"), "spec").unwrap();
}

#[test]
fn every_bad_config_gets_its_reviewed_messages() {
    let three_inputs = spec("parallel_id_image_text.prnn");
    insta::glob!("bad-config/*.toml", |path| {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let source = Source::new(name.clone(), std::fs::read_to_string(path).unwrap());
        let diagnostics = match prnn::config::parse(&source.text, Path::new(".")) {
            Err(diagnostics) => diagnostics,
            Ok(config) => prnn::config::bind(&config, &three_inputs, "specs/parallel_id_image_text.prnn")
                .expect_err("every file in tests/bad-config must fail to parse or to bind"),
        };
        insta::assert_snapshot!(render_plain(&source, &diagnostics));
    });
}

#[test]
fn a_config_that_includes_an_example_reads_its_data_from_the_examples_folder() {
    let dir = tempfile::tempdir().unwrap();
    let example = root().join("examples/amazon-image-vectors.toml");
    let text = format!("include = [{:?}]\n\n[eval]\ncutoffs = [10]\n", example.display().to_string());
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, &text).unwrap();
    let config = prnn::config::parse_file(&Source::new(path.display().to_string(), text.clone()), dir.path()).unwrap();
    let alone = prnn::config::parse(&std::fs::read_to_string(&example).unwrap(), example.parent().unwrap()).unwrap();
    assert_eq!(config.data, alone.data, "the example's paths resolve from examples/, not from the including file's folder");
    assert_eq!(config.inputs, alone.inputs);
    assert_eq!(config.eval.cutoffs, [10]);
    let bound = prnn::config::bind(&config, &spec("parallel_res.prnn"), "parallel_res.prnn").unwrap();
    assert_eq!(bound.input("content").unwrap().kind, InputKind::Dense);

    // What a run folder records reads back to the same settings without the included file.
    let recorded = config.recorded_text(&text);
    let again = prnn::config::parse(&recorded, Path::new("/nowhere")).unwrap_or_else(|e| panic!("{e:?}\n{recorded}"));
    assert_eq!(again, config);
}

#[test]
fn every_bad_include_gets_its_reviewed_messages() {
    insta::glob!("bad-include/*.toml", |path| {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let source = Source::new(name, std::fs::read_to_string(path).unwrap());
        let diagnostics =
            prnn::config::parse_file(&source, path.parent().unwrap()).expect_err("every file in tests/bad-include must fail to read");
        insta::assert_snapshot!(render_plain(&source, &diagnostics));
    });
}
