//! `prnn recommend RUN_DIR --session ITEM,ITEM,... [-k K]`: the top-K next items for a session prefix.

use prnn::eval::recommend::{known_items, session_scores, top_k, Prefix};
use prnn::ir::memory::Purpose;
use prnn::run::{self, BASELINE_FILE, CONFIG_FILE};
use prnn::train::checkpoint;

use super::error::{CheckpointUse, CliError};
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
        let folder = run::read_run(&args.run)?;
        let record = folder.record;
        let config_path = args.run.join(CONFIG_FILE);
        let prepared = session::prepare_for(
            Purpose::Recommend,
            args.device.as_deref(),
            folder.spec,
            folder.config_text,
            &config_path,
            &record.config_dir,
            &record.overrides,
            record.validation,
        )?;
        let device = session::device(args.device.as_deref(), &prepared.config)?;
        let mut network = session::network(&prepared, device);
        let checkpoint_path = args.run.join(checkpoint::FILE_NAME);
        if !checkpoint_path.exists() {
            return Err(CliError::NoCheckpoint { dir: args.run.clone(), needed_for: CheckpointUse::Recommend }.into());
        }
        let info = checkpoint::load(&checkpoint_path, &mut network, &prepared.dataset.items)
            .map_err(|source| CliError::Checkpoint { needed_for: CheckpointUse::Recommend, source })?;
        let prefix = known(&args.session, &prepared.dataset.items)?;
        let scores = session_scores(&prnn::lower::Autograd::new(network), &prefix);
        (scores, prepared.dataset, format!("{} after {} epoch(s)", prepared.compiled.model.name, info.epoch), prefix.len())
    };
    let order = top_k(&scores, args.k);
    println!("top {} of {} items for a session of {known} known item(s), {what}:", order.len(), scores.len());
    println!("{:>4}  {:<20}  {:>10}", "rank", "item", "score");
    for (rank, &item) in order.iter().enumerate() {
        println!("{:>4}  {:<20}  {:>10.6}", rank + 1, dataset.items.get_str(item as u32), scores[item]);
    }
    Ok(())
}
