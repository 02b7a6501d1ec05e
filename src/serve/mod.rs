//! `prnn serve`: live next-item recommendations over HTTP from a trained network, each session's hidden state
//! kept between clicks in process or in Redis (docs/serve.md).
//!
//! - [`inference`]: the network on one thread, concurrent requests gathered into one forward pass.
//! - [`state`]: the session stores (bounded in-process LRU with a time to live; Redis, shared by replicas) and
//!   the versioned encoding of a state.
//! - [`http`]: the routes, their JSON and their errors, timeouts and the body limit.
//! - [`metrics`]: what GET /metrics reports.

pub mod http;
pub mod inference;
pub mod metrics;
pub mod state;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::data::intern::Interner;
use crate::lower::Network;

pub use inference::BatchOptions;
use metrics::Metrics;
use state::{MemoryStore, ModelHash, RedisStore, StateError};

/// Where session states live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOption {
    /// In this process, at most `capacity` sessions.
    Memory { capacity: NonZeroUsize },
    /// In Redis at `url`, each session under `prefix` + its ID.
    Redis { url: String, prefix: String },
}

/// Everything `prnn serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub state: StateOption,
    /// A session idle for longer is forgotten.
    pub session_ttl: Duration,
    pub batch: BatchOptions,
    /// A request not answered within this is answered 503.
    pub timeout: Duration,
    /// Larger request bodies are refused (413).
    pub max_body_bytes: usize,
    /// The most items a request may ask for.
    pub max_k: usize,
}

/// The trained network a server answers from, with what identifies it.
pub struct Model {
    pub network: Network,
    /// The training data's item IDs, indexed as the network's items.
    pub items: Interner,
    pub name: String,
    /// The checkpoint's content hash: stamped on every shared state.
    pub hash: ModelHash,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// Serves `model` until SIGINT or SIGTERM; `ready` is told the address it listens on (the port chosen when
/// the options' is 0) once requests can be made.
pub fn serve(model: Model, options: ServeOptions, ready: impl FnOnce(SocketAddr, &str)) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("prnn-serve").build().map_err(ServeError::Server)?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let store = match &options.state {
            StateOption::Memory { capacity } => http::Store::Memory(MemoryStore::new(*capacity, options.session_ttl, metrics.clone())),
            StateOption::Redis { url, prefix } => http::Store::Redis(RedisStore::connect(url, prefix.clone(), options.session_ttl).await?),
        };
        let listener =
            tokio::net::TcpListener::bind(options.addr).await.map_err(|source| ServeError::Listen { addr: options.addr, source })?;
        let addr = listener.local_addr().map_err(ServeError::Server)?;
        let describe = match &options.state {
            StateOption::Memory { capacity } => format!("in-process state for up to {capacity} sessions"),
            StateOption::Redis { url, .. } => format!("state in Redis at {url}"),
        };
        let Model { network, items, name, hash } = model;
        let batcher = inference::Batcher::start(network, options.batch, metrics.clone());
        let app = Arc::new(http::App { batcher, items, name, hash, store, metrics, options });
        if let http::Store::Memory(_) = &app.store {
            tokio::spawn(sweep_expired(app.clone()));
        }
        ready(addr, &describe);
        axum::serve(listener, http::router(app)).with_graceful_shutdown(shutdown_signal()).await.map_err(ServeError::Server)
    })
}

/// Drops expired in-process sessions every second, so that an idle server's memory and its metrics follow
/// the time to live.
async fn sweep_expired(app: Arc<http::App>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1).min(app.options.session_ttl.max(Duration::from_millis(10))));
    loop {
        ticks.tick().await;
        if let http::Store::Memory(store) = &app.store {
            store.sweep();
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = interrupt => {}
        _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {}
    }
}
