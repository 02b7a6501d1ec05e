//! Front-end time (parse, check, graph IR and plan) of hostile and large specs: deep nesting, long lines, a file at the size limit.
//!
//! `cargo bench --no-default-features --bench parser` prints one row per input: its size, what the front end
//! says (`ok` or the first error's code and the number of errors) and the fastest of several runs. The figures are in
//! docs/diagnostics.md, next to the limits (src/syntax/limits.rs) they exercise. Before the grammar's
//! recovery was made linear, 18 unclosed `residual {` took 0.6 s and each further level doubled it.

use std::time::{Duration, Instant};

use prnn::diagnostic::Source;
use prnn::syntax::limits::{MAX_FILE_BYTES, MAX_LINE_CHARS, MAX_NESTING, MAX_STATEMENTS};

fn main() {
    let cases: Vec<(String, String)> = vec![
        (format!("{} unclosed `residual {{` (depth {MAX_NESTING}, the limit)", MAX_NESTING - 1), unclosed_entry_blocks(MAX_NESTING - 1)),
        (format!("{} nested calls, closed (depth {MAX_NESTING})", MAX_NESTING - 1), nested_calls(MAX_NESTING - 1)),
        ("20 unclosed `residual {` (the issue's 11 s case)".into(), unclosed_entry_blocks(20)),
        ("100,000 nested calls (a stack overflow before)".into(), nested_calls(100_000)),
        (format!("valid spec of {MAX_STATEMENTS} statements at the size limit"), valid_spec_at_the_size_limit()),
        (format!("lines of {MAX_LINE_CHARS} characters up to the size limit"), long_lines()),
        (format!("{MAX_STATEMENTS} broken lines up to the size limit"), broken_lines()),
        (format!("{} misspelled subnets in a merge", MAX_STATEMENTS - 3), misspelled_merge()),
    ];
    println!("| input | bytes | result | parse + check + IR |");
    println!("|---|---:|---|---:|");
    for (name, text) in cases {
        let source = Source::new("bench.prnn", text);
        let result = match prnn::compile_source(&source) {
            Ok(_) => "ok".to_string(),
            Err(error) => format!("{} ({} errors)", error.diagnostics[0].code.as_str(), error.diagnostics.len()),
        };
        let time = fastest(|| {
            let _ = std::hint::black_box(prnn::compile_source(std::hint::black_box(&source)));
        });
        println!("| {name} | {} | {result} | {:.3} ms |", source.text.len(), time.as_secs_f64() * 1e3);
    }
}

/// The fastest of at least 5 runs and 0.5 s of runs.
fn fastest(mut run: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 5 || started.elapsed() < Duration::from_millis(500) {
        let start = Instant::now();
        run();
        best = best.min(start.elapsed());
        runs += 1;
    }
    best
}

/// `model m {` and `depth` unclosed `residual {` on one line: the grammar's recovery used to try each opener
/// both as a bracket and as a plain character.
fn unclosed_entry_blocks(depth: usize) -> String {
    format!("model m {{\n{}\n}}\n", "residual { ".repeat(depth))
}

fn nested_calls(depth: usize) -> String {
    format!("model m {{\n  input id : item_id\n  subnet id_net = {}id{}\n}}\n", "gru(".repeat(depth), ")".repeat(depth))
}

/// One input, as many subnets as the statement limit leaves room for, and their merge written across lines;
/// each subnet's line padded with a comment so that the file ends just under 1 MiB. It compiles.
fn valid_spec_at_the_size_limit() -> String {
    let subnets = MAX_STATEMENTS - 3;
    let names: Vec<String> = (0..subnets).map(|i| format!("net_{i:04}")).collect();
    let merge = merge_of(&names);
    let fixed = "model m {\n  input id : item_id\n".len() + merge.len() + "}\n".len();
    let per_line = (MAX_FILE_BYTES - fixed) / subnets;
    let mut text = String::from("model m {\n  input id : item_id\n");
    for name in &names {
        let line = format!("  subnet {name} = gru(id, hidden = 100) // ");
        text.push_str(&line);
        text.push_str(&"x".repeat(per_line - line.len() - 1));
        text.push('\n');
    }
    text.push_str(&merge);
    text.push_str("}\n");
    assert!(text.len() <= MAX_FILE_BYTES);
    text
}

/// `merge = parallel(...)` written across lines.
fn merge_of(names: &[String]) -> String {
    let mut merge = String::from("  merge = parallel(\n");
    for chunk in names.chunks(100) {
        merge.push_str(&format!("    {},\n", chunk.join(", ")));
    }
    merge + "  )\n"
}

/// A merge whose every name is misspelled: each unknown name is compared with every subnet's for a suggestion.
fn misspelled_merge() -> String {
    let subnets = MAX_STATEMENTS - 3;
    let mut text = String::from("model m {\n  input id : item_id\n");
    for i in 0..subnets {
        text.push_str(&format!("  subnet net_{i:04} = gru(id)\n"));
    }
    let misspelled: Vec<String> = (0..subnets).map(|i| format!("nte_{i:04}")).collect();
    text + &merge_of(&misspelled) + "}\n"
}

/// Settings whose values are lists filling a line to the limit, until the file reaches the size limit.
fn long_lines() -> String {
    let mut text = String::from("train {\n");
    let mut i = 0;
    loop {
        let mut line = format!("  key_{i} = [1");
        while line.len() + 3 < MAX_LINE_CHARS {
            line.push_str(", 1");
        }
        line.push_str("]\n");
        if text.len() + line.len() + 2 > MAX_FILE_BYTES {
            break;
        }
        text.push_str(&line);
        i += 1;
    }
    text + "}\n"
}

/// Every statement broken (a missing comma, then a long tail): each is recovered from and parsed again alone.
fn broken_lines() -> String {
    let mut text = String::from("model m {\n");
    let per_line = MAX_FILE_BYTES / MAX_STATEMENTS;
    for i in 1..MAX_STATEMENTS {
        let mut line = format!("  subnet net_{i} = gru(id hidden = [1");
        while line.len() + 6 < per_line {
            line.push_str(", 1");
        }
        line.push_str("])\n");
        text.push_str(&line);
    }
    text + "}\n"
}
