//! `prnn serve`'s counters for GET /metrics, in the Prometheus (OpenMetrics) text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/v1/sessions/{session_id}/events`), never the path itself, which would make a
    /// series per session.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every series the server reports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    sessions: Gauge,
    evictions: Family<ReasonLabels, Counter>,
    batch_size: Histogram,
    conflicts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("prnn_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered, by route and status", requests.clone());
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register("request_duration_seconds", "Time from a request's arrival to its answer, by route", latency.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Sessions held in this process's store", sessions.clone());
        let evictions = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "evictions",
            "Sessions dropped from this process's store: `capacity` (least recently used) or `ttl` (idle too long)",
            evictions.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register("batch_size", "Requests gathered into one forward pass", batch_size.clone());
        let conflicts = Counter::default();
        registry.register(
            "state_conflicts",
            "Clicks recomputed because another replica wrote the session first (Redis state)",
            conflicts.clone(),
        );
        Metrics { registry, requests, latency, sessions, evictions, batch_size, conflicts }
    }

    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route: route.to_string(), status }).inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_string() }).observe(seconds);
    }

    pub fn sessions_held(&self, count: usize) {
        self.sessions.set(count as i64);
    }

    pub fn evicted(&self, reason: &str) {
        self.evictions.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
    }

    pub fn evictions(&self, reason: &str) -> u64 {
        self.evictions.get_or_create(&ReasonLabels { reason: reason.to_string() }).get()
    }

    pub fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    /// The text GET /metrics answers.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String does not fail");
        text
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_its_labels() {
        let metrics = Metrics::new();
        metrics.request("/v1/recommend", 200, 0.001);
        metrics.evicted("ttl");
        metrics.batch(7);
        metrics.sessions_held(3);
        let text = metrics.render();
        for line in [
            r#"prnn_serve_requests_total{route="/v1/recommend",status="200"} 1"#,
            r#"prnn_serve_evictions_total{reason="ttl"} 1"#,
            "prnn_serve_sessions 3",
            "prnn_serve_batch_size_count 1",
            r#"prnn_serve_request_duration_seconds_count{route="/v1/recommend"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no line `{line}` in\n{text}");
        }
    }
}
