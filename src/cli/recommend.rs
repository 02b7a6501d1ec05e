//! `prnn recommend RUN_DIR --session ITEM,ITEM,... [-k K]`: the top-K next items for a session prefix, or for
//! every session of a file (`--sessions FILE`), one JSON line each.

use prnn::eval::recommend::{known_items, session_scores, top_k, Prefix};
use prnn::ir::memory::Purpose;
use prnn::run::BASELINE_FILE;

use super::args::OutputFormat;
use super::error::CliError;
use super::session;

pub use super::args::RecommendArgs as Args;

/// How many unknown items of a session are named one by one before the rest are counted.
const NOTED_UNKNOWN: usize = 5;

/// The session's items the training data holds, noting the others; a session with none is refused.
fn known(session: &[String], items: &prnn::data::intern::Interner) -> Result<Vec<u32>, CliError> {
    let Prefix { known, unknown } = known_items(session, items);
    for id in unknown.iter().take(NOTED_UNKNOWN) {
        eprintln!("note: item `{id}` does not occur in the training data; it is left out of the session");
    }
    if unknown.len() > NOTED_UNKNOWN {
        eprintln!("note: and {} more items that do not occur in the training data, also left out", unknown.len() - NOTED_UNKNOWN);
    }
    if known.is_empty() {
        return Err(CliError::NoKnownItem);
    }
    Ok(known)
}

/// A loaded model's scores of every item after a session prefix.
type Scorer = Box<dyn Fn(&[u32]) -> Vec<f32>>;

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.k == 0 {
        return Err(CliError::NoItemsAsked.into());
    }
    let (scorer, items, what): (Scorer, prnn::data::intern::Interner, String) = if args.run.join(BASELINE_FILE).exists() {
        let (record, dataset, fitted) = super::baseline::refit(&args.run)?;
        let n_items = dataset.items.len();
        let scorer = Box::new(move |prefix: &[u32]| {
            let mut scores = vec![0.0f32; n_items];
            let mut scratch = fitted.scratch();
            fitted.score(prefix, &mut scores, &mut scratch);
            scores
        });
        (scorer, dataset.items, record.baseline)
    } else {
        let trained = session::trained(&args.run, args.device.as_deref(), None, Purpose::Recommend)?;
        let what = format!("{} after {} epoch(s)", trained.model, trained.epoch);
        let executor = prnn::lower::Autograd::new(trained.network);
        (Box::new(move |prefix: &[u32]| session_scores(&executor, prefix)), trained.items, what)
    };
    if let Some(path) = &args.sessions {
        return batch(path, args.k, &scorer, &items, &what);
    }
    let prefix = known(&args.session, &items)?;
    let scores = scorer(&prefix);
    let order = top_k(&scores, args.k);
    if args.format == OutputFormat::Json {
        println!("{}", answer(&what, prefix.len(), &order, &scores, &items));
        return Ok(());
    }
    println!("top {} of {} items for a session of {} known item(s), {what}:", order.len(), scores.len(), prefix.len());
    println!("{:>4}  {:<20}  {:>10}", "rank", "item", "score");
    for (rank, &item) in order.iter().enumerate() {
        println!("{:>4}  {:<20}  {:>10.6}", rank + 1, items.get_str(item as u32), scores[item]);
    }
    Ok(())
}

/// The JSON answer for one session, as `prnn serve` gives it.
fn answer(what: &str, events: usize, order: &[usize], scores: &[f32], items: &prnn::data::intern::Interner) -> serde_json::Value {
    let listed: Vec<serde_json::Value> =
        order.iter().map(|&item| serde_json::json!({ "item": items.get_str(item as u32), "score": scores[item] })).collect();
    serde_json::json!({ "model": what, "events": events, "items": listed })
}

/// One JSON line per line of `path` (standard input for `-`): the answer, with the session's line number and
/// the items left out as unknown; a line with no known item gets an `error` instead, and the others go on.
fn batch(path: &std::path::Path, k: usize, scorer: &Scorer, items: &prnn::data::intern::Interner, what: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(|source| prnn::run::FileError::Read {
            what: "the sessions file",
            path: path.to_path_buf(),
            source,
        })?))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut answered, mut refused) = (0u64, 0u64);
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(|source| prnn::run::FileError::Read { what: "the sessions file", path: path.to_path_buf(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let session: Vec<String> = line.split(',').map(|id| id.trim().to_string()).filter(|id| !id.is_empty()).collect();
        let Prefix { known, unknown } = known_items(&session, items);
        let mut value = if known.is_empty() {
            refused += 1;
            serde_json::json!({ "error": { "code": "no_known_item", "message": "no item of this session occurs in the training data" } })
        } else {
            answered += 1;
            let scores = scorer(&known);
            answer(what, known.len(), &top_k(&scores, k), &scores, items)
        };
        let fields = value.as_object_mut().expect("an object");
        fields.insert("line".into(), serde_json::json!(index + 1));
        if !unknown.is_empty() {
            fields.insert("unknown".into(), serde_json::json!(unknown));
        }
        writeln!(out, "{value}")?;
    }
    out.flush()?;
    eprintln!("{answered} session(s) answered{}", if refused > 0 { format!(", {refused} with no known item") } else { String::new() });
    Ok(())
}
