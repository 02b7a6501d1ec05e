//! `prnn serve`'s routes: JSON in and out, every refusal a JSON error with the status that fits it, a time
//! limit and a body-size limit on every request, and a panic answered as a 500 instead of a dropped connection.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::data::intern::Interner;

use super::inference::{Answer, Batcher, InferenceError, Job};
use super::metrics::{Metrics, CONTENT_TYPE};
use super::state::{short_hash, MemoryStore, ModelHash, RedisStore, SessionState, StateError};
use super::ServeOptions;

/// How many items a request lists when it does not say.
pub const DEFAULT_K: usize = 20;
/// The longest session ID accepted, in bytes.
pub const MAX_SESSION_ID: usize = 256;
/// The longest session `/v1/recommend` replays: every item is a step that the other requests of its forward
/// pass wait for.
pub const MAX_RECOMMEND_ITEMS: usize = 1000;
/// How often a click that keeps losing the compare-and-set to other replicas is recomputed before giving up.
const MAX_ATTEMPTS: u32 = 16;

pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// What every request shares.
pub struct App {
    pub batcher: Batcher,
    pub items: Interner,
    pub name: String,
    pub hash: ModelHash,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub options: ServeOptions,
}

/// A refusal: its status, a stable code for programs and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": { "code": self.code, "message": self.message } }))).into_response()
    }
}

impl From<InferenceError> for ApiError {
    fn from(error: InferenceError) -> ApiError {
        match error {
            InferenceError::Overloaded(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", error.to_string()),
            InferenceError::Stopped | InferenceError::Failed(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference_failed", error.to_string())
            }
        }
    }
}

impl From<StateError> for ApiError {
    fn from(error: StateError) -> ApiError {
        let (status, code) = match &error {
            StateError::OtherModel { .. } => (StatusCode::CONFLICT, "other_model"),
            StateError::Damaged { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "damaged_state"),
            StateError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "state_store_unavailable"),
            StateError::Contended { .. } => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// An item ID as session files write it: JSON strings as they are, integers in decimal.
#[derive(Debug, Clone)]
struct ItemId(String);

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ItemId, D::Error> {
        struct Id;
        impl Visitor<'_> for Id {
            type Value = ItemId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an item ID (a string or an integer)")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ItemId, E> {
                Ok(ItemId(value.trim().to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ItemId, E> {
                Ok(ItemId(value.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ItemId, E> {
                Ok(ItemId(value.to_string()))
            }
        }
        deserializer.deserialize_any(Id)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickRequest {
    item: ItemId,
    k: Option<u64>,
    #[serde(default)]
    exclude_seen: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendRequest {
    items: Vec<ItemId>,
    k: Option<u64>,
    #[serde(default)]
    exclude_seen: bool,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/sessions/{session_id}/events", post(click))
        .route("/v1/sessions/{session_id}", delete(forget))
        .route("/v1/recommend", post(recommend))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(DefaultBodyLimit::max(app.options.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// Times every request out after the configured limit and counts it by route and status.
async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_string();
    let start = Instant::now();
    let limit = app.options.timeout;
    let response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request was not answered within {} ms and was abandoned; a click it carried was not applied", limit.as_millis()),
        )
        .into_response(),
    };
    app.metrics.request(&route, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed inside prnn; the server goes on (please report it)")
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route: POST /v1/sessions/{session_id}/events, DELETE /v1/sessions/{session_id}, POST /v1/recommend, GET /healthz and GET /metrics are served",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (docs/serve.md lists the routes)",
    )
}

fn session_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(session) = path.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, "bad_session_id", rejection.body_text()))?;
    if session.len() > MAX_SESSION_ID {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_session_id",
            format!("the session ID is {} bytes long; at most {MAX_SESSION_ID} are accepted", session.len()),
        ));
    }
    Ok(session)
}

fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_body" };
        ApiError::new(status, code, rejection.body_text())
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the request body is not what this route takes: {error}"))
    })
}

impl App {
    fn k(&self, k: Option<u64>) -> Result<usize, ApiError> {
        match k {
            None => Ok(DEFAULT_K),
            Some(k) if k >= 1 && k <= self.options.max_k as u64 => Ok(k as usize),
            Some(k) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_k", format!("k is {k}; it must be from 1 to {}", self.options.max_k)))
            }
        }
    }

    /// The items' indices, or a 422 naming every ID the model does not know.
    fn resolve(&self, ids: &[ItemId], unchanged: &str) -> Result<Vec<u32>, ApiError> {
        let mut unknown = Vec::new();
        let known: Vec<u32> = ids
            .iter()
            .filter_map(|ItemId(id)| {
                let found = self.items.find(id.as_bytes());
                if found.is_none() {
                    unknown.push(format!("`{id}`"));
                }
                found
            })
            .collect();
        if unknown.is_empty() {
            return Ok(known);
        }
        let shown = unknown.len().min(5);
        let more = if unknown.len() > shown { format!(" and {} more", unknown.len() - shown) } else { String::new() };
        let (noun, verb) = if unknown.len() == 1 { ("item", "does") } else { ("items", "do") };
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_item",
            format!(
                "{noun} {}{more} {verb} not occur in the training data of model `{}`{unchanged}",
                unknown[..shown].join(", "),
                self.name
            ),
        ))
    }

    /// One click on top of `state` (a new session when None): the state after it, and the ranked items.
    async fn step(
        &self,
        state: Option<&SessionState>,
        item: u32,
        k: usize,
        exclude_seen: bool,
    ) -> Result<(SessionState, Vec<(u32, f32)>), ApiError> {
        let state = state.cloned().unwrap_or(SessionState { events: 0, seen: Vec::new(), hidden: vec![0.0; self.batcher.hidden_len] });
        let excluded = if exclude_seen { distinct_sorted(state.seen.iter().copied().chain([item])) } else { Vec::new() };
        let start = (state.events > 0).then(|| state.hidden.clone());
        let Answer { hidden, top } = self.batcher.run(Job { start, items: vec![item], k, excluded }).await?;
        Ok((state.advanced(item, hidden), top))
    }

    fn ranked(&self, top: &[(u32, f32)]) -> Value {
        top.iter().map(|&(item, score)| json!({ "item": self.items.get_str(item), "score": score })).collect()
    }
}

fn distinct_sorted(items: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut all: Vec<u32> = items.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    all
}

async fn click(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = session_id(path)?;
    let request: ClickRequest = parse(body)?;
    let k = app.k(request.k)?;
    let item = app.resolve(std::slice::from_ref(&request.item), "; the session is unchanged")?[0];
    let (events, top) = match &app.store {
        Store::Memory(store) => {
            let slot = store.slot(&session);
            // Clicks on one session queue here in arrival order; the state changes only once the pass is done,
            // so a request abandoned midway (timeout, closed connection) leaves the session as it was.
            let mut held = slot.lock().await;
            let (state, top) = app.step(held.as_ref(), item, k, request.exclude_seen).await?;
            let events = state.events;
            *held = Some(state);
            (events, top)
        }
        Store::Redis(store) => {
            let _this_replica = store.stripe(&session).lock().await;
            let hidden_len = app.batcher.hidden_len;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let read = store.read(&session, &app.hash, hidden_len, app.batcher.n_items).await?;
                let (state, top) = app.step(read.state.as_ref(), item, k, request.exclude_seen).await?;
                if store.write(&session, read.version, &state, &app.hash).await? {
                    break (state.events, top);
                }
                app.metrics.conflict();
                if attempt == MAX_ATTEMPTS {
                    return Err(StateError::Contended { session, attempts: attempt }.into());
                }
            }
        }
    };
    Ok(Json(json!({ "session": session, "events": events, "items": app.ranked(&top) })))
}

async fn recommend(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let request: RecommendRequest = parse(body)?;
    let k = app.k(request.k)?;
    if request.items.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "no_items", "`items` is empty: give the session's items, oldest first"));
    }
    if request.items.len() > MAX_RECOMMEND_ITEMS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_items",
            format!(
                "`items` holds {} items; at most {MAX_RECOMMEND_ITEMS} are replayed (send the session's last ones)",
                request.items.len()
            ),
        ));
    }
    let items = app.resolve(&request.items, "")?;
    let excluded = if request.exclude_seen { distinct_sorted(items.iter().copied()) } else { Vec::new() };
    let answer = app.batcher.run(Job { start: None, items: items.clone(), k, excluded }).await?;
    Ok(Json(json!({ "events": items.len(), "items": app.ranked(&answer.top) })))
}

async fn forget(State(app): State<Arc<App>>, path: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    let session = session_id(path)?;
    let removed = match &app.store {
        Store::Memory(store) => store.remove(&session),
        Store::Redis(store) => store.remove(&session).await?,
    };
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("no session `{session}` is held (never clicked, expired or evicted)"),
        ))
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let hash: String = app.hash.iter().map(|b| format!("{b:02x}")).collect();
    let mut body = json!({
        "status": "ok",
        "model": app.name,
        "model_hash": hash,
        "model_hash_short": short_hash(&app.hash),
        "items": app.items.len(),
    });
    match &app.store {
        Store::Memory(store) => {
            body["state"] = json!("memory");
            body["sessions"] = json!(store.len());
        }
        Store::Redis(store) => {
            body["state"] = json!("redis");
            if let Err(error) = store.ping().await {
                body["status"] = json!("unavailable");
                body["error"] = json!(error.to_string());
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        }
    }
    Json(body).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.render()).into_response()
}
