//! `prnn recommend RUN_DIR --session ITEM,ITEM,... [-k K]`: the top-K next items for a session prefix.

use prnn::eval::recommend::{known_items, session_scores, top_k, Prefix};
use prnn::ir::memory::Purpose;
use prnn::run::BASELINE_FILE;

use super::args::OutputFormat;
use super::error::CliError;
use super::session;

pub use super::args::RecommendArgs as Args;

/// The session's items the training data holds, noting the others; a session with none is refused.
fn known(session: &[String], items: &prnn::data::intern::Interner) -> Result<Vec<u32>, CliError> {
    let Prefix { known, unknown } = known_items(session, items);
    for id in unknown {
        eprintln!("note: item `{id}` does not occur in the training data; it is left out of the session");
    }
    if known.is_empty() {
        return Err(CliError::NoKnownItem);
    }
    Ok(known)
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.k == 0 {
        return Err(CliError::NoItemsAsked.into());
    }
    let (scores, dataset, what, known) = if args.run.join(BASELINE_FILE).exists() {
        let (record, dataset, fitted) = super::baseline::refit(&args.run)?;
        let prefix = known(&args.session, &dataset.items)?;
        let mut scores = vec![0.0f32; dataset.items.len()];
        let mut scratch = fitted.scratch();
        fitted.score(&prefix, &mut scores, &mut scratch);
        (scores, dataset, record.baseline, prefix.len())
    } else {
        let trained = session::trained(&args.run, args.device.as_deref(), None, Purpose::Recommend)?;
        let prefix = known(&args.session, &trained.prepared.dataset.items)?;
        let scores = session_scores(&prnn::lower::Autograd::new(trained.network), &prefix);
        let what = format!("{} after {} epoch(s)", trained.prepared.compiled.model.name, trained.epoch);
        (scores, trained.prepared.dataset, what, prefix.len())
    };
    let order = top_k(&scores, args.k);
    if args.format == OutputFormat::Json {
        let items: Vec<serde_json::Value> =
            order.iter().map(|&item| serde_json::json!({ "item": dataset.items.get_str(item as u32), "score": scores[item] })).collect();
        println!("{}", serde_json::json!({ "model": what, "events": known, "items": items }));
        return Ok(());
    }
    println!("top {} of {} items for a session of {known} known item(s), {what}:", order.len(), scores.len());
    println!("{:>4}  {:<20}  {:>10}", "rank", "item", "score");
    for (rank, &item) in order.iter().enumerate() {
        println!("{:>4}  {:<20}  {:>10.6}", rank + 1, dataset.items.get_str(item as u32), scores[item]);
    }
    Ok(())
}
