//! Data-stage tests: the shipped datasets load with the counts their READMEs state, features are built,
//! the cache round-trips, and every bad data file gets its reviewed message.

use std::path::{Path, PathBuf};

use prnn::config::RunConfig;
use prnn::data::features::Feature;
use prnn::data::prepare::Counts;
use prnn::data::DataCode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn config(path: &Path) -> RunConfig {
    prnn::config::parse(&std::fs::read_to_string(path).unwrap(), path.parent().unwrap()).unwrap()
}

/// A copy of a config with its output (the cache) in a temporary folder.
fn config_with_out(path: &Path, out: &Path) -> RunConfig {
    let mut config = config(path);
    config.run.out = out.to_path_buf();
    config
}

/// The "- train: 112088 sessions, 414561 events, 10874 items" lines of a dataset README.
fn readme_counts(readme: &Path, side: &str) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(readme).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("- {side}:")))
        .unwrap_or_else(|| panic!("no `- {side}:` line in {}", readme.display()));
    let mut sessions = None;
    let mut events = None;
    let mut items = None;
    let words: Vec<&str> = line.split(|c: char| c == ',' || c == ':' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
    for pair in words.windows(2) {
        let Ok(number) = pair[0].replace('_', "").parse::<u64>() else { continue };
        match pair[1] {
            "sessions" | "sequences" => sessions = Some(number),
            "events" => events = Some(number),
            "items" => items = Some(number),
            _ => {}
        }
    }
    (sessions.unwrap(), events.unwrap(), items.unwrap())
}

fn assert_counts(counts: &Counts, expected: (u64, u64, u64), what: &str) {
    assert_eq!((counts.sessions, counts.events, counts.items), expected, "{what}: (sessions, events, items)");
}

#[test]
fn shipped_datasets_read_as_their_readmes_state() {
    let cases = [
        ("yoochoose-categories.toml", "yoochoose-cat", true),
        ("amazon-text.toml", "amazon-scientific", true),
        ("amazon-image-vectors.toml", "amazon-scientific-small", true),
    ];
    for (file, dataset, _) in cases {
        let out = tempfile::tempdir().unwrap();
        let config = config_with_out(&root().join("examples").join(file), out.path());
        let prepared = prnn::data::prepare(&config).unwrap();
        let readme = root().join("data").join(dataset).join("README.md");
        assert_counts(&prepared.report.read["train"], readme_counts(&readme, "train"), &format!("{dataset} train"));
        // The test line of the yoochoose README names no item count the same way; sessions and events suffice.
        let test = readme_counts(&readme, "test");
        assert_eq!((prepared.report.read["test"].sessions, prepared.report.read["test"].events), (test.0, test.1), "{dataset} test");
        // A shipped split is used as it is: training data untouched, items = training items.
        assert_eq!(prepared.report.train, prepared.report.read["train"], "{dataset}");
        assert_eq!(prepared.items.len() as u64, prepared.report.train.items);
        // Every prepared test event has a training item and every test session something to predict.
        assert!((0..prepared.test.len()).all(|s| prepared.test.session(s).len() >= 2));
        assert!(prepared.test.events.iter().all(|e| (e.item as usize) < prepared.items.len()));
    }
}

#[test]
fn yoochoose_test_drops_unseen_items_then_short_sessions() {
    let out = tempfile::tempdir().unwrap();
    let config = config_with_out(&root().join("examples/yoochoose-categories.toml"), out.path());
    let prepared = prnn::data::prepare(&config).unwrap();
    let read = prepared.report.read["test"];
    assert!(prepared.report.test.events < read.events && prepared.report.test.sessions < read.sessions);
    let Feature::Sparse(content) = &prepared.features["content"] else { panic!("categories are sparse") };
    // One category and one price level per item: two non-zeros in every row.
    assert_eq!(content.indptr.len(), prepared.items.len() + 1);
    assert!(content.indptr.windows(2).all(|w| w[1] - w[0] == 2));
}

#[test]
fn tfidf_on_amazon_text_reports_vocabulary_and_density() {
    let out = tempfile::tempdir().unwrap();
    let config = config_with_out(&root().join("examples/amazon-text.toml"), out.path());
    let prepared = prnn::data::prepare(&config).unwrap();
    let report = &prepared.report.features[0];
    assert_eq!(report.encoding, "tfidf");
    // reference-notes: roughly 14k unigrams+bigrams and about 35 non-zeros per item on this dataset.
    assert!((10_000..20_000).contains(&report.width), "vocabulary {}", report.width);
    assert!((25.0..45.0).contains(&report.mean_nonzeros), "density {}", report.mean_nonzeros);
    let Feature::Sparse(text) = &prepared.features["content"] else { panic!("TF-IDF is sparse") };
    for row in text.indptr.windows(2).filter(|w| w[1] > w[0]) {
        let norm: f32 = text.values[row[0] as usize..row[1] as usize].iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "rows are L2-normalised");
    }
}

#[test]
fn dense_vectors_and_text_bind_together() {
    let out = tempfile::tempdir().unwrap();
    let config = config_with_out(&root().join("examples/amazon-id-image-text.toml"), out.path());
    let prepared = prnn::data::prepare(&config).unwrap();
    let Feature::Dense(image) = &prepared.features["image"] else { panic!("vectors are dense") };
    assert_eq!(image.dim, 512);
    assert_eq!(image.values.len(), 512 * prepared.items.len());
    let norm: f32 = image.values[..512].iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4, "normalize = true");
    assert!(matches!(prepared.features["text"], Feature::Sparse(_)));
}

#[test]
fn the_cache_is_written_once_and_then_loaded() {
    let out = tempfile::tempdir().unwrap();
    let config = config_with_out(&root().join("examples/amazon-image-vectors.toml"), out.path());
    let (prepared, source) = prnn::data::load(&config, true).unwrap();
    let prnn::data::Source::Prepared { cache: Some(path), .. } = source else { panic!("first load prepares: {source:?}") };
    assert!(path.starts_with(out.path().join("cache")));
    let (cached, source) = prnn::data::load(&config, true).unwrap();
    assert_eq!(source, prnn::data::Source::Cache(path.clone()));
    assert_eq!(cached, prepared);
    // A changed setting is a different key: the old cache is not used.
    let mut changed = config.clone();
    changed.preprocess.remove_repeats = true;
    assert_ne!(prnn::data::cache::key(&changed).unwrap(), prnn::data::cache::key(&config).unwrap());
    // A damaged cache is noticed and replaced.
    std::fs::write(&path, b"not a cache").unwrap();
    let (_, source) = prnn::data::load(&config, true).unwrap();
    assert!(matches!(source, prnn::data::Source::Prepared { note: Some(_), .. }), "{source:?}");
    assert_eq!(prnn::data::load(&config, true).unwrap().1, prnn::data::Source::Cache(path));
}

fn bad_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(root().join("tests/bad-data")).unwrap().map(|e| e.unwrap().path().join("run.toml")).collect();
    cases.sort();
    cases
}

fn relative(text: &str) -> String {
    text.replace(&format!("{}/", root().display()), "")
}

#[test]
fn every_bad_data_file_gets_its_reviewed_message() {
    insta::glob!("bad-data/*/run.toml", |path| {
        let error = prnn::data::prepare(&config(path)).expect_err("every case in tests/bad-data must fail");
        insta::assert_snapshot!(relative(&error.to_string()));
    });
}

#[test]
fn every_data_error_code_has_a_bad_data_case() {
    let mut seen = std::collections::HashSet::new();
    for case in bad_cases() {
        seen.insert(prnn::data::prepare(&config(&case)).unwrap_err().code);
    }
    for code in DataCode::ALL {
        assert!(seen.contains(&code), "no case in tests/bad-data gives {} ({code:?})", code.as_str());
    }
}

#[test]
fn prepared_features_carry_the_planted_signal_of_synthetic_data() {
    use prnn::data::synth;
    let dir = tempfile::tempdir().unwrap();
    let settings = synth::SynthConfig { sessions: 2_000, items: 400, clusters: 8, dim: 6, ..synth::SynthConfig::default() };
    synth::write_dataset(&settings, dir.path(), false).unwrap();
    let run = dir.path().join("run.toml");
    std::fs::write(
        &run,
        "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n\n\
         [inputs.category]\nkind = \"sparse\"\nitems = \"items.tsv\"\ncolumns = [\"category\"]\nencoding = \"categorical\"\n\n\
         [inputs.vector]\nkind = \"dense\"\nvectors = \"vectors.npy\"\nids = \"vectors.ids\"\n",
    )
    .unwrap();
    let prepared = prnn::data::prepare(&config(&run)).unwrap();
    let Feature::Sparse(category) = &prepared.features["category"] else { panic!("categorical is sparse") };
    // Each row has one `category=cluster_<c>` entry; map rows back to planted clusters via the vocabulary.
    let cluster_of_row = |row: usize| -> u32 {
        let column = category.indices[category.indptr[row] as usize] as usize;
        category.vocabulary[column].trim_start_matches("category=cluster_").parse().unwrap()
    };
    let planted = synth::cluster_of(&settings);
    let successor = synth::successor_of(&settings);
    for index in 0..prepared.items.len() {
        let id: usize = prepared.items.get_str(index as u32).parse().unwrap();
        assert_eq!(cluster_of_row(index), planted[id], "feature row {index} belongs to item {id}");
    }
    // Through the prepared features alone, the next item's cluster follows the planted transition
    // about `signal + (1 - signal) / clusters` = 0.825 of the time (vs 1/8 by chance).
    let (mut follows, mut pairs) = (0usize, 0usize);
    for s in 0..prepared.train.len() {
        for pair in prepared.train.session(s).windows(2) {
            pairs += 1;
            follows += usize::from(successor[cluster_of_row(pair[0].item as usize) as usize] == cluster_of_row(pair[1].item as usize));
        }
    }
    let rate = follows as f64 / pairs as f64;
    assert!((0.78..0.87).contains(&rate), "{rate} over {pairs} pairs");
    // The dense vectors sit nearer their own cluster's items than others'.
    let Feature::Dense(vector) = &prepared.features["vector"] else { panic!("vectors are dense") };
    let row = |i: usize| &vector.values[i * vector.dim..(i + 1) * vector.dim];
    let distance = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for i in 0..50 {
        for j in (i + 1)..50 {
            let d = distance(row(i), row(j));
            if cluster_of_row(i) == cluster_of_row(j) {
                same.push(d)
            } else {
                other.push(d)
            }
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&same) * 2.0 < mean(&other), "same {} other {}", mean(&same), mean(&other));
}
