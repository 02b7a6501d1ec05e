//! Where `prnn serve` keeps each session between clicks: a bounded in-process store (least recently used out
//! first, idle sessions expire), or Redis, shared by every replica, with a versioned, model-stamped encoding.
//!
//! A click reads a session's state, runs one step, and writes the new state. Per replica, clicks on one session
//! wait for each other (FIFO), so they are applied in arrival order. Across Redis replicas a write succeeds only
//! if the session's version is still the one that was read (a compare-and-set in a Lua script); a click that
//! loses the race is recomputed from the winner's state, so no click is ever lost.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::metrics::Metrics;

/// One session's state: its hidden vectors (every subnet's, in merge order, back to back) and its items.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    /// Clicks applied so far.
    pub events: u64,
    /// The distinct items clicked, in order of first click (for `exclude_seen`).
    pub seen: Vec<u32>,
    /// Every subnet's hidden state after the last click.
    pub hidden: Vec<f32>,
}

impl SessionState {
    /// A state after one more click on `item`.
    pub fn advanced(&self, item: u32, hidden: Vec<f32>) -> SessionState {
        let mut seen = self.seen.clone();
        if !seen.contains(&item) {
            seen.push(item);
        }
        SessionState { events: self.events + 1, seen, hidden }
    }
}

/// The identity of the model a server runs: states written by one model mean nothing to another.
pub type ModelHash = [u8; 32];

/// The first bytes of every encoded state, and the encoding's version.
const MAGIC: &[u8; 8] = b"PRNNSESS";
const FORMAT: u16 = 1;
const HEADER: usize = 8 + 2 + 32 + 8 + 4 + 4;

/// Why a stored state cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    #[error(
        "session `{session}` holds a state written by another model ({}, this server runs {}); \
         DELETE the session to start it over with this model",
        short_hash(.written_by), short_hash(.serving)
    )]
    OtherModel { session: String, written_by: ModelHash, serving: ModelHash },
    #[error("the stored state of session `{session}` is damaged ({why}); DELETE the session to start it over")]
    Damaged { session: String, why: String },
    #[error("the session store failed: {0}")]
    Store(String),
    #[error("session `{session}` kept changing under concurrent clicks ({attempts} attempts); try again")]
    Contended { session: String, attempts: u32 },
}

/// A model hash as people read it: its first 12 hex digits.
pub fn short_hash(hash: &ModelHash) -> String {
    hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes a state for a shared store: magic, format version, the model's hash, then the counts and values
/// (little-endian), so that a replica of another model or another prnn refuses it instead of misreading it.
pub fn encode(state: &SessionState, model: &ModelHash) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + 4 * (state.seen.len() + state.hidden.len()));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(model);
    bytes.extend_from_slice(&state.events.to_le_bytes());
    bytes.extend_from_slice(&(state.seen.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(state.hidden.len() as u32).to_le_bytes());
    for item in &state.seen {
        bytes.extend_from_slice(&item.to_le_bytes());
    }
    for value in &state.hidden {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// What a server of `model` with `hidden_len` state values over `n_items` items accepts of `bytes`.
pub fn decode(bytes: &[u8], session: &str, model: &ModelHash, hidden_len: usize, n_items: usize) -> Result<SessionState, StateError> {
    let damaged = |why: &str| StateError::Damaged { session: session.to_string(), why: why.to_string() };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(damaged("it is not a prnn session state"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format != FORMAT {
        return Err(damaged(&format!("its encoding is version {format}, this prnn reads version {FORMAT}")));
    }
    let written_by: ModelHash = bytes[10..42].try_into().expect("32 bytes");
    if &written_by != model {
        return Err(StateError::OtherModel { session: session.to_string(), written_by, serving: *model });
    }
    let events = u64::from_le_bytes(bytes[42..50].try_into().expect("eight bytes"));
    let (n_seen, n_hidden) = (u32_at(50) as usize, u32_at(54) as usize);
    if n_hidden != hidden_len {
        return Err(damaged(&format!("it holds {n_hidden} state values, the model has {hidden_len}")));
    }
    if bytes.len() != HEADER + 4 * (n_seen + n_hidden) {
        return Err(damaged(&format!("it is {} bytes long, its counts say {}", bytes.len(), HEADER + 4 * (n_seen + n_hidden))));
    }
    let seen: Vec<u32> = (0..n_seen).map(|i| u32_at(HEADER + 4 * i)).collect();
    if seen.iter().any(|&item| item as usize >= n_items) {
        return Err(damaged(&format!("it names an item beyond the model's {n_items}")));
    }
    let values = HEADER + 4 * n_seen;
    let hidden = (0..n_hidden).map(|i| f32::from_bits(u32_at(values + 4 * i))).collect();
    Ok(SessionState { events, seen, hidden })
}

/// A session's place in the in-process store; its lock orders the clicks on it.
pub type Slot = Arc<tokio::sync::Mutex<Option<SessionState>>>;

struct Held {
    slot: Slot,
    last_used: Instant,
}

/// The in-process store: at most `capacity` sessions, least recently used evicted first; a session idle for
/// longer than `ttl` is gone (swept in the background, and never served when found).
pub struct MemoryStore {
    sessions: Mutex<LruCache<String, Held>>,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl MemoryStore {
    pub fn new(capacity: NonZeroUsize, ttl: Duration, metrics: Arc<Metrics>) -> MemoryStore {
        MemoryStore { sessions: Mutex::new(LruCache::new(capacity)), ttl, metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Held>> {
        // A panic while the map was locked cannot leave it half-changed: its operations do not panic midway.
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session's slot, created empty when the session is new or expired; it becomes the most recent.
    pub fn slot(&self, session: &str) -> Slot {
        let now = Instant::now();
        let mut sessions = self.lock();
        if let Some(held) = sessions.get_mut(session) {
            if now.duration_since(held.last_used) <= self.ttl {
                held.last_used = now;
                return held.slot.clone();
            }
            self.metrics.evicted("ttl");
            sessions.pop(session);
        }
        let slot = Slot::default();
        if let Some((evicted, _)) = sessions.push(session.to_string(), Held { slot: slot.clone(), last_used: now }) {
            if evicted != session {
                self.metrics.evicted("capacity");
            }
        }
        self.metrics.sessions_held(sessions.len());
        slot
    }

    /// The session's slot if it is held and not expired, without making it recent.
    pub fn existing(&self, session: &str) -> Option<Slot> {
        let sessions = self.lock();
        let held = sessions.peek(session)?;
        (held.last_used.elapsed() <= self.ttl).then(|| held.slot.clone())
    }

    /// Forgets a session; whether it was held.
    pub fn remove(&self, session: &str) -> bool {
        let mut sessions = self.lock();
        let removed = sessions.pop(session).is_some_and(|held| held.last_used.elapsed() <= self.ttl);
        self.metrics.sessions_held(sessions.len());
        removed
    }

    /// Drops every expired session (the least recently used come first, so it stops at the first live one).
    pub fn sweep(&self) {
        let mut sessions = self.lock();
        while sessions.peek_lru().is_some_and(|(_, held)| held.last_used.elapsed() > self.ttl) {
            sessions.pop_lru();
            self.metrics.evicted("ttl");
        }
        self.metrics.sessions_held(sessions.len());
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Lua compare-and-set: writes the state and its new version only if the stored version is still the one
/// read (0: the session did not exist), and renews its time to live; 1 when written, 0 when another write won.
const COMPARE_AND_SET: &str = r#"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[1] == '0') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"#;

/// A session state read from Redis, with the version a write must find still in place.
pub struct Versioned {
    pub state: Option<SessionState>,
    pub version: u64,
}

/// Session states in Redis, one hash per session under `prefix` + the session ID, expiring after `ttl` idle.
pub struct RedisStore {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    ttl: Duration,
    /// Clicks on one session wait for each other within this replica (stripes of locks keyed by the ID's
    /// hash), which keeps compare-and-set retries to clicks that really race across replicas.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`); fails when the server does not answer.
    pub async fn connect(url: &str, prefix: String, ttl: Duration) -> Result<RedisStore, StateError> {
        let client = redis::Client::open(url).map_err(|error| StateError::Store(format!("`{url}` is not a Redis address: {error}")))?;
        let connection = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|error| StateError::Store(format!("cannot connect to Redis at `{url}`: {error}")))?;
        let stripes = (0..1024).map(|_| tokio::sync::Mutex::new(())).collect();
        Ok(RedisStore { connection, script: redis::Script::new(COMPARE_AND_SET), prefix, ttl, stripes })
    }

    fn key(&self, session: &str) -> String {
        format!("{}{session}", self.prefix)
    }

    /// This replica's lock for a session: held across read, step and write.
    pub fn stripe(&self, session: &str) -> &tokio::sync::Mutex<()> {
        let hash = blake3::hash(session.as_bytes());
        let index = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("eight bytes")) as usize % self.stripes.len();
        &self.stripes[index]
    }

    /// The session's state and version; a missing session is version 0 with no state.
    pub async fn read(&self, session: &str, model: &ModelHash, hidden_len: usize, n_items: usize) -> Result<Versioned, StateError> {
        let mut connection = self.connection.clone();
        let (version, bytes): (Option<String>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.key(session))
            .arg("version")
            .arg("state")
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        match (version, bytes) {
            (Some(version), Some(bytes)) => {
                let version = version.parse::<u64>().map_err(|_| StateError::Damaged {
                    session: session.to_string(),
                    why: format!("its version `{version}` is not a number"),
                })?;
                Ok(Versioned { state: Some(decode(&bytes, session, model, hidden_len, n_items)?), version })
            }
            (None, None) => Ok(Versioned { state: None, version: 0 }),
            _ => Err(StateError::Damaged { session: session.to_string(), why: "it has a version or a state, not both".into() }),
        }
    }

    /// Writes `state` if the session is still at `version`; whether it was written.
    pub async fn write(&self, session: &str, version: u64, state: &SessionState, model: &ModelHash) -> Result<bool, StateError> {
        let mut connection = self.connection.clone();
        let written: i64 = self
            .script
            .key(self.key(session))
            .arg(version.to_string())
            .arg((version + 1).to_string())
            .arg(encode(state, model))
            .arg(self.ttl.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(written == 1)
    }

    /// Forgets a session; whether it was held.
    pub async fn remove(&self, session: &str) -> Result<bool, StateError> {
        let mut connection = self.connection.clone();
        let removed: i64 = redis::cmd("DEL").arg(self.key(session)).query_async(&mut connection).await.map_err(store_error)?;
        Ok(removed > 0)
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(|_| ()).map_err(store_error)
    }
}

fn store_error(error: redis::RedisError) -> StateError {
    StateError::Store(format!("Redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState { events: 3, seen: vec![4, 1], hidden: vec![0.5, -1.25, f32::MIN_POSITIVE] }
    }

    #[test]
    fn encoded_states_decode_to_themselves() {
        let model = [7u8; 32];
        let bytes = encode(&state(), &model);
        assert_eq!(decode(&bytes, "s", &model, 3, 5).unwrap(), state());
    }

    #[test]
    fn another_models_state_is_refused() {
        let bytes = encode(&state(), &[7u8; 32]);
        let error = decode(&bytes, "s", &[8u8; 32], 3, 5).unwrap_err();
        assert!(matches!(error, StateError::OtherModel { .. }), "{error}");
        assert!(error.to_string().contains("070707070707"), "{error}");
    }

    #[test]
    fn damaged_states_are_errors_not_panics() {
        let model = [7u8; 32];
        let bytes = encode(&state(), &model);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], "s", &model, 3, 5).is_err(), "cut at {cut}");
        }
        assert!(decode(&bytes, "s", &model, 4, 5).is_err(), "other state size");
        assert!(decode(&bytes, "s", &model, 3, 4).is_err(), "item 4 beyond 4 items");
        let mut other_format = bytes.clone();
        other_format[8] = 9;
        assert!(decode(&other_format, "s", &model, 3, 5).unwrap_err().to_string().contains("version 9"));
    }

    #[test]
    fn the_store_evicts_the_least_recently_used_and_counts_it() {
        let metrics = Arc::new(Metrics::new());
        let store = MemoryStore::new(NonZeroUsize::new(2).unwrap(), Duration::from_secs(60), metrics.clone());
        store.slot("a");
        store.slot("b");
        store.slot("a");
        store.slot("c");
        assert!(store.existing("a").is_some() && store.existing("c").is_some());
        assert!(store.existing("b").is_none(), "b was the least recently used");
        assert_eq!(metrics.evictions("capacity"), 1);
        assert!(store.remove("a") && !store.remove("a"));
    }

    #[test]
    fn expired_sessions_are_gone_and_swept() {
        let metrics = Arc::new(Metrics::new());
        let store = MemoryStore::new(NonZeroUsize::new(8).unwrap(), Duration::ZERO, metrics.clone());
        let slot = store.slot("a");
        *slot.try_lock().unwrap() = Some(state());
        std::thread::sleep(Duration::from_millis(2));
        assert!(store.existing("a").is_none());
        assert!(store.slot("a").try_lock().unwrap().is_none(), "an expired session starts over");
        std::thread::sleep(Duration::from_millis(2));
        store.sweep();
        assert!(store.is_empty());
        assert_eq!(metrics.evictions("ttl"), 2);
    }
}
