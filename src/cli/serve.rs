//! `prnn serve RUN_DIR`: a trained run's network answering live sessions over HTTP (the server is `prnn::serve`).

use std::time::Duration;

use prnn::ir::memory::Purpose;
use prnn::run::BASELINE_FILE;
use prnn::serve::{BatchOptions, Model, ServeOptions, StateOption};

use super::args::StatePlace;
use super::error::CliError;
use super::session;

pub use super::args::ServeArgs as Args;

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.run.join(BASELINE_FILE).exists() {
        return Err(CliError::ServeBaseline(args.run.clone()).into());
    }
    let state = match &args.state {
        StatePlace::Memory => StateOption::Memory { capacity: args.max_sessions },
        StatePlace::Redis(url) => StateOption::Redis { url: url.clone(), prefix: args.state_prefix.clone() },
    };
    let trained = session::trained(&args.run, args.device.as_deref(), args.threads, Purpose::Recommend)?;
    let checkpoint = std::fs::read(&trained.checkpoint).map_err(|source| prnn::run::file::FileError::Read {
        what: "checkpoint",
        path: trained.checkpoint.clone(),
        source,
    })?;
    let model = Model { network: trained.network, items: trained.items, name: trained.model, hash: *blake3::hash(&checkpoint).as_bytes() };
    let max_batch = args.max_batch.get();
    let options = ServeOptions {
        addr: args.addr,
        state,
        session_ttl: Duration::from_secs_f64(args.session_ttl),
        batch: BatchOptions { max_batch, max_wait: Duration::from_micros(args.batch_wait_us), queue: (16 * max_batch).max(4096) },
        timeout: Duration::from_millis(args.timeout_ms.get() as u64),
        max_body_bytes: args.max_body_bytes.get(),
        max_k: args.max_k.get(),
    };
    let (name, epoch, device) = (model.name.clone(), trained.epoch, session::device_name(trained.device));
    let items = model.items.len();
    let hash = prnn::serve::state::short_hash(&model.hash);
    prnn::serve::serve(model, options, |addr, state| {
        eprintln!("serving {name} after {epoch} epoch(s) (model {hash}, {items} items, {device}, {state})");
        // The last line before requests are answered; scripts and tests wait for it.
        eprintln!("listening on http://{addr}");
    })?;
    eprintln!("stopped");
    Ok(())
}
