//! What every fuzz target runs and the invariants it asserts, shared by the libFuzzer targets
//! (fuzz/fuzz_targets) and by their stable replay in `cargo test` (tests/fuzz_regressions.rs).
//!
//! A target takes arbitrary bytes, so no input is "wrong": each function either gets a result that must be
//! internally consistent (and survive a round trip where the API has one) or an error that must be
//! located (a diagnostic whose spans lie inside the text and render, or a data error naming the file).
//! Any panic, and any assertion below that fails, is a finding. Readers that only take paths get their
//! input through files in one temporary folder per thread, so the paths they report can be checked too.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use prnn::check::{InputKind, Model};
use prnn::checkpoint_file::{self, Entry, Unusable};
use prnn::config::{self, BadRows, InputBinding, SessionFormat, SparseEncoding, TimeColumn, TimeUnit};
use prnn::data::features::{self, dense, Feature, FeatureReport};
use prnn::data::intern::Interner;
use prnn::data::sessions::{self, ReadSessions, SessionKeys, Sessions};
use prnn::data::DataError;
use prnn::diagnostic::{render_plain, Code, Diagnostic, Source};
use prnn::ir::render;
use prnn::ir::{Bindings, Bound, Compiled, Unbound};

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target by name: the name is the folder of its seeds (fuzz/seeds/NAME) and regression files
/// (fuzz/regressions/NAME), and the name of its binary in fuzz/fuzz_targets.
pub const TARGETS: [(&str, Target); 6] =
    [("spec", spec), ("config", config), ("sessions", sessions), ("item_table", item_table), ("npy", npy), ("checkpoint", checkpoint)];

// ---------------------------------------------------------------------------------------------------------
// 1. The spec front end: parse, check, graph IR and plan, renderings, binding.

/// Spec text (invalid UTF-8 replaced, as an editor would show it) through `check_source` and
/// `compile_source`: a spec either compiles, deterministically, to IR whose renderings are well formed and
/// which binds once every size is given, or fails with diagnostics that point inside the text.
pub fn spec(data: &[u8]) {
    let source = Source::new("fuzz.prnn", String::from_utf8_lossy(data));
    let model = match prnn::check_source(&source) {
        Ok(model) => model,
        Err(error) => return check_diagnostics(&source, &error.diagnostics),
    };
    let compiled = Compiled::new(model);
    let text = render::text(&compiled);
    assert!(text.starts_with(&format!("model {}", compiled.model.name)), "the text rendering opens with the model:\n{text}");
    let json: serde_json::Value = serde_json::from_str(&render::json(&compiled)).expect("the JSON rendering is JSON");
    assert!(json.is_object(), "the JSON rendering is an object");
    let dot = render::dot(&compiled);
    assert!(dot.trim_end().ends_with('}'), "the DOT rendering is closed:\n{dot}");
    let again = prnn::compile_source(&source).expect("a spec that checks also compiles");
    assert_eq!(render::text(&again), text, "compiling the same spec twice gives the same IR");

    // Binding every input's width and the catalogue leaves no symbol unbound; only `feature` inputs,
    // whose kind a run config decides, may refuse.
    let widths = compiled.model.inputs.iter().map(|input| (input.name.clone(), 3)).collect();
    let has_feature = compiled.model.inputs.iter().any(|input| matches!(input.kind, InputKind::Feature));
    match Bound::new(compiled, &Bindings { items: Some(11), widths, ..Bindings::default() }) {
        Ok(bound) => {
            assert!(!has_feature, "a `feature` input was bound without a run config");
            assert!(bound.parameter_count() > 0, "a bound model has parameters");
            let table = render::bound(&bound);
            assert!(!table.is_empty());
        }
        Err(Unbound::Feature(name)) => assert!(has_feature, "`{name}` refused as a feature input, but none is declared"),
        Err(other) => panic!("every size was given, yet binding says: {other}"),
    }
}

/// Diagnostics of a failed spec or config: at least one, each with a message, spans that lie on character
/// boundaries inside the text, a syntax error always located, and every one in the rendered text.
fn check_diagnostics(source: &Source, diagnostics: &[Diagnostic]) {
    assert!(!diagnostics.is_empty(), "{} failed without a diagnostic", source.name);
    for diagnostic in diagnostics {
        // A diagnostic about a file that a run config includes points into that file.
        let text = &diagnostic.file.as_deref().unwrap_or(source).text;
        assert!(!diagnostic.message.trim().is_empty(), "a diagnostic without a message: {diagnostic:?}");
        if matches!(diagnostic.code, Code::Syntax) {
            assert!(diagnostic.primary.is_some(), "a syntax error without a place: {diagnostic:?}");
        }
        for (span, _) in diagnostic.primary.iter().chain(&diagnostic.secondary) {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "span {span:?} outside a text of {} bytes: {diagnostic:?}",
                text.len()
            );
            assert!(
                text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
                "span {span:?} splits a character: {diagnostic:?}"
            );
        }
        for note in &diagnostic.notes {
            assert!(note.starts_with("help: ") || note.starts_with("note: "), "a note of neither kind: {note:?}");
        }
    }
    let rendered = render_plain(source, diagnostics);
    for diagnostic in diagnostics {
        let head = format!("error[{}]: {}", diagnostic.code.as_str(), diagnostic.message.lines().next().unwrap_or_default());
        assert!(rendered.contains(&head), "`{head}` missing from the rendering:\n{rendered}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. The run config: parse, validate, bind.

/// A spec with one input of every kind, to bind fuzzed configs to.
const BINDING_SPEC: &str = "model bind_target {
  input id      : item_id
  input image   : dense
  input text    : sparse
  input content : feature
  subnet id_net      = gru(id, hidden = 10)
  subnet image_net   = gru(image, hidden = 10)
  subnet text_net    = gru(text, hidden = 10)
  subnet content_net = gru(content, hidden = 10)
  merge  = parallel(id_net, image_net, text_net, content_net)
  output = scores(activation = tanh)
  loss   = top1
}
";

fn binding_model() -> Model {
    prnn::check_source(&Source::new("bind_target.prnn", BINDING_SPEC)).expect("the binding spec checks")
}

/// Config text through `config::parse`: a config either parses to one whose paths are all resolved from
/// its folder, which TOML-serialises and parses back to itself, and which binds to a spec or says why
/// with located diagnostics; or it fails with located diagnostics.
pub fn config(data: &[u8]) {
    let source = Source::new("fuzz.toml", String::from_utf8_lossy(data));
    let base = Path::new("/fuzz/configs");
    let parsed = match config::parse(&source.text, base) {
        Ok(parsed) => parsed,
        Err(diagnostics) => return check_diagnostics(&source, &diagnostics),
    };
    let mut paths: Vec<&Path> = Vec::new();
    paths.extend([&parsed.data.train, &parsed.data.test, &parsed.data.sessions].into_iter().flatten().map(|p| p.get_ref().as_path()));
    for (_, binding) in &parsed.inputs {
        match binding.get_ref() {
            InputBinding::ItemId {} => {}
            InputBinding::Dense { vectors, ids, .. } => {
                paths.extend([Some(vectors), ids.as_ref()].into_iter().flatten().map(PathBuf::as_path))
            }
            InputBinding::Sparse { items, .. } => paths.push(items),
        }
    }
    paths.push(&parsed.run.out);
    paths.extend(parsed.experiment.specs.iter().map(PathBuf::as_path));
    for path in paths {
        assert!(path.is_absolute(), "{} is still relative to the working folder", path.display());
    }

    let written = toml::to_string(&parsed).unwrap_or_else(|error| panic!("a parsed config does not serialise: {error}"));
    match config::parse(&written, base) {
        Ok(again) => assert_eq!(again, parsed, "the config changed through TOML:\n{written}"),
        Err(diagnostics) => {
            panic!(
                "the config's own TOML is refused:\n{written}\n{}",
                render_plain(&Source::new("again.toml", written.as_str()), &diagnostics)
            )
        }
    }

    let model = binding_model();
    match config::bind(&parsed, &model, "bind_target.prnn") {
        Ok(bound) => {
            assert!(bound.inputs.iter().all(|input| !matches!(input.kind, InputKind::Feature)), "a `feature` input left unresolved")
        }
        Err(diagnostics) => check_diagnostics(&source, &diagnostics),
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Session files: TSV/CSV/any separator, header or not, quoting, time units, plain or gzipped.

/// Two option bytes, then the file. Option 1: separator (bits 0-1), header (2), quoting unset/off/on (3-4),
/// skip bad rows (5), session and item columns swapped (6). Option 2: time unit (bits 0-2), a second
/// time column in ms (3), how the bytes arrive (4-5): from memory only; also from a file; also gzipped
/// into a `.gz` file (same result required); also raw into a `.gz` file (a corrupt archive); and (6) also
/// raw into a `.parquet` file (text is refused; a Parquet seed reaches the footer and page decoders).
pub fn sessions(data: &[u8]) {
    let [options, timing, file @ ..] = data else { return };
    let (options, timing) = (*options, *timing);
    let separator = ["\t", ",", ";", "|"][usize::from(options & 3)];
    let header = options & 4 != 0;
    let quoting = [None, Some(false), Some(true), None][usize::from((options >> 3) & 3)];
    let bad_rows = if options & 32 != 0 { BadRows::Skip } else { BadRows::Error };
    let names = if header { ["SessionId", "ItemId", "Time", "Ms"] } else { ["1", "2", "3", "4"] };
    let (session, item) = if options & 64 != 0 { (names[1], names[0]) } else { (names[0], names[1]) };
    let units = [TimeUnit::S, TimeUnit::Ms, TimeUnit::Us, TimeUnit::Date, TimeUnit::Datetime];
    let mut time = vec![TimeColumn::WithUnit { column: names[2].into(), unit: units[usize::from(timing & 7) % units.len()] }];
    if timing & 8 != 0 {
        time.push(TimeColumn::WithUnit { column: names[3].into(), unit: TimeUnit::Ms });
    }
    let format = SessionFormat { separator: separator.into(), session: session.into(), item: item.into(), time, header, quoting, bad_rows };

    let memory = Path::new("fuzz-sessions.txt");
    let mut items = Interner::new();
    let rows = sessions::count_lines(file).expect("counting lines in memory");
    let read = sessions::read(file, memory, &format, &mut items, rows);
    let lines = rows.max(1) as u64;
    match &read {
        Ok(read) => check_sessions(read, &items),
        Err(error) => check_data_error(error, &[memory], Some(lines)),
    }

    if timing & 64 != 0 {
        let path = scratch_file("sessions.parquet", file);
        let mut parquet_items = Interner::new();
        match sessions::read_file(&path, &format, &mut parquet_items) {
            Ok(read) => check_sessions(&read, &parquet_items),
            Err(error) => check_data_error(&error, &[&path], None),
        }
    }

    let transport = (timing >> 4) & 3;
    if transport == 0 {
        return;
    }
    let (name, bytes) = match transport {
        1 => ("sessions.txt", file.to_vec()),
        2 => ("sessions.txt.gz", gzip(file)),
        _ => ("sessions.txt.gz", file.to_vec()),
    };
    let path = scratch_file(name, &bytes);
    let mut file_items = Interner::new();
    let from_file = sessions::read_file(&path, &format, &mut file_items);
    if transport == 3 {
        // Not an archive, or a broken one: whatever it decodes to is read as usual.
        match &from_file {
            Ok(read) => check_sessions(read, &file_items),
            Err(error) => check_data_error(error, &[&path], None),
        }
        return;
    }
    match (&read, &from_file) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.sessions, b.sessions, "{name} read differently from the same bytes in memory");
            assert_eq!((&a.skipped, a.rows), (&b.skipped, b.rows));
            assert_eq!(keys(&items), keys(&file_items));
        }
        (Err(a), Err(b)) => assert_same_error(a, b),
        (a, b) => panic!("in memory: {a:?}\nfrom {name}: {b:?}"),
    }
}

/// What `read` promises: contiguous non-empty sessions in order of start time, each sorted by time from
/// its start, every item interned, every key readable, and one event per row read.
fn check_sessions(read: &ReadSessions, items: &Interner) {
    let sessions = &read.sessions;
    check_session_layout(sessions);
    assert_eq!(sessions.events.len() as u64, read.rows, "one event per row read");
    assert!(sessions.events.iter().all(|e| (e.item as usize) < items.len()), "an event's item is not interned");
    assert!(!sessions.is_empty(), "a successful read has sessions");
    for s in 0..sessions.len() {
        let events = sessions.session(s);
        assert!(sessions.start[s].is_finite(), "session {s} starts at {}", sessions.start[s]);
        assert!(events.iter().all(|e| e.offset.is_finite() && e.offset >= 0.0), "session {s} has offsets {events:?}");
        assert!(events.iter().any(|e| e.offset == 0.0), "session {s} does not start at its first event: {events:?}");
        assert!(events.windows(2).all(|w| w[0].offset <= w[1].offset), "session {s} is out of time order: {events:?}");
        assert!(!sessions.key_text(s).is_empty(), "session {s} has an empty key");
    }
    assert!(sessions.start.windows(2).all(|w| w[0] <= w[1]), "sessions out of start order: {:?}", sessions.start);
    for reason in read.skipped.reasons.values() {
        // A Parquet file's rows have no line: they name their row instead.
        assert!(reason.count > 0 && (reason.first_line >= 1 || reason.first_row.is_some()), "a skip reason {reason:?}");
    }
}

/// Offsets, starts and keys agree with each other and with the events.
fn check_session_layout(sessions: &Sessions) {
    assert_eq!(sessions.offsets.len(), sessions.start.len() + 1, "one offset per session plus the end");
    assert_eq!(sessions.key.len(), sessions.start.len(), "one key per session");
    assert_eq!(sessions.offsets[0], 0);
    assert!(sessions.offsets.windows(2).all(|w| w[0] < w[1]), "sessions must be non-empty and in order: {:?}", sessions.offsets);
    assert_eq!(*sessions.offsets.last().unwrap() as usize, sessions.events.len(), "the last offset is the end");
    if let SessionKeys::Named(names) = &sessions.keys {
        assert!(sessions.key.iter().all(|&k| k < names.len() as u64), "a session key outside its names");
    }
}

/// A data error names one of the files it was given, says what is wrong, points at a line that exists,
/// and renders with its code.
fn check_data_error(error: &DataError, paths: &[&Path], lines: Option<u64>) {
    assert!(paths.contains(&error.path.as_path()), "the error names {}, not one of {paths:?}:\n{error}", error.path.display());
    assert!(!error.message.trim().is_empty(), "an error without a message: {error:?}");
    if let Some(line) = error.line {
        assert!(line >= 1, "line 0 in:\n{error}");
        if let Some(lines) = lines {
            assert!(line <= lines, "line {line} of a file of {lines} lines:\n{error}");
        }
    }
    for note in &error.notes {
        assert!(note.starts_with("help: ") || note.starts_with("note: "), "a note of neither kind: {note:?}");
    }
    assert!(error.to_string().starts_with(&format!("error[{}]: ", error.code.as_str())), "{error}");
}

/// The same problem in the same place, whichever file name the bytes came under.
fn assert_same_error(a: &DataError, b: &DataError) {
    assert_eq!((a.code, &a.message, a.line, &a.snippet, &a.notes), (b.code, &b.message, b.line, &b.snippet, &b.notes), "{a}\n{b}");
}

fn keys(interner: &Interner) -> Vec<&[u8]> {
    (0..interner.len() as u32).map(|i| interner.bytes(i)).collect()
}

// ---------------------------------------------------------------------------------------------------------
// 4. Item tables: TF-IDF text and categorical columns.

/// Two option bytes, then the table. Option 1: separator (bits 0-1), categorical instead of TF-IDF (2),
/// `min_df` 0-3 (3-4), `ngrams` 0-3 (5-6), also read gzipped (7; same result required). Option 2: which of
/// the header's other columns are used (bits 0-6, by position modulo 7), English stopwords (7). The id
/// column is the header's first; the dataset's items are the IDs of every other row plus one without a row.
pub fn item_table(data: &[u8]) {
    let [options, picks, file @ ..] = data else { return };
    let (options, picks) = (*options, *picks);
    let separator = ["\t", ",", ";", "|"][usize::from(options & 3)];
    let encoding = if options & 4 != 0 { SparseEncoding::Categorical } else { SparseEncoding::Tfidf };
    let text = String::from_utf8_lossy(file);
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap_or_default().split(separator).map(|c| c.trim().trim_matches('"').to_string()).collect();
    let id_column = header.first().cloned().unwrap_or_default();
    let columns: Vec<String> =
        header.iter().skip(1).enumerate().filter(|(i, _)| picks & (1 << (i % 7)) != 0).map(|(_, c)| c.clone()).collect();
    let mut items = Interner::new();
    for line in lines.step_by(2) {
        items.intern(line.split(separator).next().unwrap_or_default().as_bytes());
    }
    items.intern(b"an item without a row");

    let binding = |path: &Path| InputBinding::Sparse {
        items: path.to_path_buf(),
        id_column: id_column.clone(),
        columns: columns.clone(),
        encoding,
        separator: separator.into(),
        stopwords: if picks & 128 != 0 { vec!["english".into()] } else { vec![] },
        min_df: u64::from((options >> 3) & 3),
        ngrams: u64::from((options >> 5) & 3),
    };
    let path = scratch_file("items.txt", file);
    let built = features::build("fuzz", &binding(&path), &items);
    let lines = sessions::count_lines(file).expect("counting lines in memory").max(1) as u64;
    match &built {
        Ok((feature, report)) => check_sparse(feature, report, &items, encoding),
        Err(error) => check_data_error(error, &[&path], Some(lines)),
    }
    if options & 128 != 0 {
        let gz = scratch_file("items.txt.gz", &gzip(file));
        match (&built, &features::build("fuzz", &binding(&gz), &items)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the gzipped table reads differently"),
            (Err(a), Err(b)) => assert_same_error(a, b),
            (a, b) => panic!("plain: {a:?}\ngzipped: {b:?}"),
        }
    }
}

/// Compressed rows, one per dataset item: ascending indices inside the vocabulary, finite positive
/// values (1 for categories, L2-normalised rows for TF-IDF), and a report that adds up.
fn check_sparse(feature: &Feature, report: &FeatureReport, items: &Interner, encoding: SparseEncoding) {
    let Feature::Sparse(sparse) = feature else { panic!("an item table gives sparse rows") };
    assert_eq!(sparse.width, sparse.vocabulary.len(), "width is the vocabulary's size");
    assert!(sparse.width > 0, "an empty vocabulary is an error, not a feature");
    assert_eq!(sparse.indptr.len(), items.len() + 1, "one row per dataset item");
    assert_eq!(sparse.indptr[0], 0);
    assert!(sparse.indptr.windows(2).all(|w| w[0] <= w[1]), "row pointers go down: {:?}", sparse.indptr);
    assert_eq!(*sparse.indptr.last().unwrap() as usize, sparse.indices.len());
    assert_eq!(sparse.indices.len(), sparse.values.len());
    for row in sparse.indptr.windows(2) {
        let (from, to) = (row[0] as usize, row[1] as usize);
        let indices = &sparse.indices[from..to];
        assert!(indices.windows(2).all(|w| w[0] < w[1]), "a row's indices are not strictly ascending: {indices:?}");
        assert!(indices.iter().all(|&i| (i as usize) < sparse.width), "an index outside the vocabulary");
        let values = &sparse.values[from..to];
        assert!(values.iter().all(|v| v.is_finite() && *v > 0.0), "values {values:?}");
        match encoding {
            SparseEncoding::Categorical => assert!(values.iter().all(|&v| v == 1.0), "a category weighs {values:?}"),
            SparseEncoding::Tfidf if !values.is_empty() => {
                let norm = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-3, "a TF-IDF row of norm {norm}: {values:?}");
            }
            SparseEncoding::Tfidf => {}
        }
    }
    let mut sorted = sparse.vocabulary.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), sparse.vocabulary.len(), "a vocabulary entry twice: {:?}", sparse.vocabulary);
    assert_eq!(report.width, sparse.width);
    assert_eq!(report.items_with_features + report.items_without_features, items.len(), "{report:?}");
    assert!(report.mean_nonzeros.is_finite());
}

// ---------------------------------------------------------------------------------------------------------
// 5. Dense vectors: `.npy` with an id list, or TSV; plain or gzipped.

/// An option byte, the id list's length (u16, little-endian), the id list, then the vectors. Option:
/// normalise (bit 0), `header` (1), the vectors' file name `.npy`/`.npy.gz`/`.tsv`/`.tsv.gz` (2-3; `.gz`
/// ones are compressed first), give the id list to a TSV or withhold it from an `.npy` (4). The dataset's
/// items are every other listed ID (or TSV row ID) plus one without a vector. A loaded feature is written
/// back as a float32 `.npy` under new IDs and must load to the same values.
pub fn npy(data: &[u8]) {
    let [options, low, high, rest @ ..] = data else { return };
    let options = *options;
    let split = usize::from(u16::from_le_bytes([*low, *high])).min(rest.len());
    let (ids, vectors) = rest.split_at(split);
    let normalize = options & 1 != 0;
    let header = options & 2 != 0;
    let (name, compressed) = [("vectors.npy", false), ("vectors.npy.gz", true), ("vectors.tsv", false), ("vectors.tsv.gz", true)]
        [usize::from((options >> 2) & 3)];
    let is_npy = name.contains(".npy");
    let give_ids = is_npy != (options & 16 != 0);

    let mut items = Interner::new();
    let listed = if is_npy { ids } else { vectors };
    for line in String::from_utf8_lossy(listed).lines().skip(usize::from(!is_npy && header)).step_by(2) {
        items.intern(line.split('\t').next().unwrap_or_default().trim().as_bytes());
    }
    items.intern(b"an item without a vector");

    let vectors_path = scratch_file(name, &if compressed { gzip(vectors) } else { vectors.to_vec() });
    let ids_path = scratch_file("vectors.ids", ids);
    let loaded = dense::load("fuzz", &vectors_path, give_ids.then_some(ids_path.as_path()), normalize, header, &items);
    let (feature, report) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return check_data_error(&error, &[&vectors_path, &ids_path], None),
    };
    let Feature::Dense(dense) = &feature else { panic!("vectors give a dense feature") };
    assert!(dense.dim > 0, "vectors of length 0 were accepted");
    assert_eq!(dense.values.len(), items.len() * dense.dim, "one vector per dataset item");
    assert!(dense.values.iter().all(|v| v.is_finite()), "a value that is not finite was accepted");
    if normalize {
        for row in dense.values.chunks(dense.dim) {
            let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
            assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-3, "a normalised vector of norm {norm}");
        }
    }
    assert_eq!(report.width, dense.dim);
    assert_eq!(report.items_with_features + report.items_without_features, items.len(), "{report:?}");

    // Round trip: the loaded rows as a float32 array, listed under fresh IDs.
    let fresh: Vec<String> = (0..items.len()).map(|i| format!("row{i}")).collect();
    let fresh_items = Interner::from_keys(fresh.iter().map(String::as_str));
    let again_ids = scratch_file("again.ids", fresh.join("\n").as_bytes());
    let again_npy = scratch_file("again.npy", &npy_f32(items.len(), dense.dim, &dense.values));
    match dense::load("again", &again_npy, Some(&again_ids), false, false, &fresh_items) {
        Ok((Feature::Dense(again), _)) => {
            assert_eq!(again.dim, dense.dim);
            assert!(again.values.iter().zip(&dense.values).all(|(a, b)| a.to_bits() == b.to_bits()), "values changed through `.npy`");
        }
        Ok(_) => panic!("vectors give a dense feature"),
        Err(error) => panic!("prnn's own vectors written as `.npy` are refused:\n{error}"),
    }
}

/// A `.npy` file (format 1.0) of a C-order little-endian float32 array `[rows, dim]`.
fn npy_f32(rows: usize, dim: usize, values: &[f32]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

// ---------------------------------------------------------------------------------------------------------
// 6. Checkpoint files: safetensors, the JSON record, the item table and the checksum.

/// Checkpoint bytes through `run::checkpoint::decode`: a file is either refused as damaged or altered,
/// naming it, or gives a record, item IDs and tensors that every read of a float tensor agrees with,
/// and that `encode` writes back, sealed, to a file that decodes to the same.
pub fn checkpoint(data: &[u8]) {
    let path = Path::new("runs/fuzz/checkpoint.safetensors");
    let decoded = match checkpoint_file::decode(data, path) {
        Ok(decoded) => decoded,
        Err(error) => {
            assert!(matches!(error, Unusable::Damaged { .. } | Unusable::Altered { .. }), "bytes alone cannot be {error:?}");
            assert!(error.to_string().contains(&path.display().to_string()), "the error does not name the file: {error}");
            assert!(error.help().is_some(), "a damaged file without advice: {error}");
            return;
        }
    };
    let mut entries = Vec::new();
    for name in decoded.tensors.names() {
        if name.starts_with("items.") {
            continue;
        }
        match decoded.floats(name, path) {
            Ok((shape, values)) => {
                assert_eq!(shape.iter().product::<usize>(), values.len(), "`{name}`: shape {shape:?} for {} values", values.len());
                entries.push(Entry { name: name.to_string(), shape, values });
            }
            Err(Unusable::Damaged { .. }) => {}
            Err(other) => panic!("`{name}` is listed, yet reading it says {other}"),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = checkpoint_file::encode(&entries, decoded.items.iter().map(String::as_str), &decoded.info)
        .unwrap_or_else(|error| panic!("a decoded checkpoint does not encode: {error}"));
    let again = checkpoint_file::decode(&bytes, path).unwrap_or_else(|error| panic!("prnn's own checkpoint is refused: {error}"));
    assert!(again.verified, "an encoded checkpoint carries its checksum");
    assert_eq!((&again.info, &again.items), (&decoded.info, &decoded.items), "the record or the items changed through encode");
    for entry in &entries {
        let (shape, values) = again.floats(&entry.name, path).unwrap_or_else(|error| panic!("`{}` lost: {error}", entry.name));
        assert_eq!(shape, entry.shape);
        assert!(values.iter().zip(&entry.values).all(|(a, b)| a.to_bits() == b.to_bits()), "`{}` changed through encode", entry.name);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Scratch files.

thread_local! {
    static SCRATCH: tempfile::TempDir = tempfile::tempdir().expect("a temporary folder for fuzz inputs");
}

/// Writes `bytes` as `name` in this thread's scratch folder and returns its path.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = SCRATCH.with(|dir| dir.path().join(name));
    std::fs::write(&path, bytes).expect("writing a scratch file");
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("compressing in memory");
    encoder.finish().expect("compressing in memory")
}
