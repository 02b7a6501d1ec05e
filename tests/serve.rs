//! `prnn serve` over real HTTP on loopback: every route and error status, eviction and time to live, concurrent
//! clicks on one session, Redis state across restarts and replicas, and the equivalence with `prnn recommend`.
//!
//! The Redis tests use the server `PRNN_TEST_REDIS` names (`make test` starts one, scripts/with-redis.sh), else
//! start `redis-server` from the PATH themselves; without either they fail and say how to get one.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use common::{prnn, stderr};

/// A running `prnn serve`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(run: &Path, extra: &[&str]) -> Server {
        let binary = assert_cmd::cargo::cargo_bin("prnn-torch");
        let mut child = Command::new(binary)
            .args(["--color", "never", "serve"])
            .arg(run)
            .args(["--addr", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on ") {
                        break address.to_string();
                    }
                    seen += &line;
                    seen += "\n";
                }
                _ => panic!("the server stopped before listening: {seen} (exit {:?})", child.wait()),
            }
        };
        // Keep draining stderr so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { child, base, agent }
    }

    /// A request's status and JSON body (Null when the body is empty).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", Some(body)) => self.agent.post(&url).send_json(body),
            ("POST", None) => self.agent.post(&url).send_empty(),
            _ => unreachable!(),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    fn raw(&self, bytes: &[u8]) -> String {
        let address = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(bytes).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    fn click(&self, session: &str, item: &str, k: usize) -> (u16, Value) {
        self.call("POST", &format!("/v1/sessions/{session}/events"), Some(json!({ "item": item, "k": k })))
    }

    fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn model(inputs: &str, body: &str) -> String {
    format!(
        "model m {{\n{inputs}\n{body}\n output = scores(activation = tanh)\n loss = top1\n}}\n\
         train {{\n optimizer = adagrad(lr = 0.1)\n batch = 16\n schedule = simultaneous(epochs = 1)\n}}\n"
    )
}

/// The architectures of the paper as the server meets them: every input kind and embedding, every merge.
fn architectures() -> Vec<(&'static str, String)> {
    vec![
        ("id_only", model(" input id : item_id", " subnet a = gru(id, hidden = 8)")),
        ("constrained_embedding", model(" input id : item_id(embedding = constrained)", " subnet a = gru(id, hidden = 8)")),
        ("separate_embedding", model(" input id : item_id(embedding = separate(dim = 5))", " subnet a = gru(id, hidden = 8)")),
        ("feature_only", model(" input vector : dense", " subnet b = gru(vector, hidden = 8)")),
        (
            "concatenated",
            model(
                " input id : item_id\n input category : sparse\n input vector : dense",
                " subnet a = gru(id, category, vector, hidden = 8)",
            ),
        ),
        (
            "parallel",
            model(
                " input id : item_id\n input category : sparse",
                " subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 6)\n merge = parallel(a, b, weights = [1, 0.5])",
            ),
        ),
        (
            "shared_w",
            model(
                " input id : item_id\n input category : sparse",
                " subnet a = gru(id, hidden = 8)\n subnet b = gru(category, hidden = 8)\n merge = shared_w(a, b, weights = [1, 2])",
            ),
        ),
        (
            "interaction",
            model(
                " input id : item_id\n input vector : dense",
                " subnet a = gru(id, hidden = 8)\n subnet b = gru(vector, hidden = 8)\n merge = interaction(primary = a, b)",
            ),
        ),
    ]
}

fn data() -> common::Synthetic {
    common::synthetic(prnn::data::synth::SynthConfig { sessions: 240, items: 120, clusters: 6, dim: 4, ..Default::default() })
}

/// Trains `spec` for one epoch into `data`'s folder `name`.
fn train(data: &common::Synthetic, name: &str, spec: &str, overrides: &[&str]) -> PathBuf {
    let spec_path = data.dir.path().join(format!("{name}.prnn"));
    std::fs::write(&spec_path, spec).unwrap();
    let run = data.dir.path().join(name);
    let output =
        prnn().arg("train").arg(&spec_path).arg("--config").arg(&data.config).arg("--out").arg(&run).args(overrides).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
    run
}

/// The test set's sessions, as item IDs, in file order.
fn test_sessions(data: &common::Synthetic) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(data.dir.path().join("test.tsv")).unwrap();
    let mut sessions: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        match sessions.last_mut() {
            Some((id, items)) if id == fields[0] => items.push(fields[1].to_string()),
            _ => sessions.push((fields[0].to_string(), vec![fields[1].to_string()])),
        }
    }
    sessions.into_iter().map(|(_, items)| items).collect()
}

/// Items the run's training data holds: its test items that `prnn recommend` does not leave out.
fn known_sessions(run: &Path, data: &common::Synthetic, count: usize) -> Vec<Vec<String>> {
    let train = std::fs::read_to_string(data.dir.path().join("train.tsv")).unwrap();
    let known: std::collections::HashSet<&str> = train.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap()).collect();
    let _ = run;
    test_sessions(data)
        .into_iter()
        .map(|items| items.into_iter().filter(|i| known.contains(i.as_str())).collect::<Vec<_>>())
        .filter(|items| items.len() >= 3)
        .take(count)
        .collect()
}

fn recommend_cli(run: &Path, session: &[String], k: usize) -> Value {
    let output = prnn()
        .arg("recommend")
        .arg(run)
        .args(["--format", "json", "-k", &k.to_string(), "--session", &session.join(",")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The same ranking: rank by rank the same score to float rounding, and the same item unless the scores tie.
fn assert_same_ranking(served: &Value, expected: &Value, what: &str) {
    let (served, expected) = (served.as_array().unwrap(), expected.as_array().unwrap());
    assert_eq!(served.len(), expected.len(), "{what}");
    for (rank, (s, e)) in served.iter().zip(expected).enumerate() {
        let (a, b) = (s["score"].as_f64().unwrap(), e["score"].as_f64().unwrap());
        let tolerance = 1e-5 * b.abs().max(1.0);
        assert!((a - b).abs() <= tolerance, "{what}: rank {} scores {a} served, {b} by `prnn recommend`", rank + 1);
        if s["item"] != e["item"] {
            let other = expected.iter().find(|x| x["item"] == s["item"]).unwrap_or_else(|| panic!("{what}: {s} not in {expected:?}"));
            assert!((other["score"].as_f64().unwrap() - a).abs() <= tolerance, "{what}: rank {}: {s} against {e}", rank + 1);
        }
    }
}

#[test]
fn served_clicks_rank_as_prnn_recommend_on_the_whole_session_for_every_architecture() {
    let data = data();
    for (name, spec) in architectures() {
        let run = train(&data, name, &spec, &[]);
        let sessions = known_sessions(&run, &data, 2);
        assert_eq!(sessions.len(), 2, "the test set has sessions of three known items");
        let server = Server::start(&run, &[]);
        for (s, session) in sessions.iter().enumerate() {
            let id = format!("{name}-{s}");
            let mut last = Value::Null;
            for (n, item) in session.iter().enumerate() {
                let (status, body) = server.click(&id, item, 10);
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["events"], json!(n + 1), "{name}");
                last = body;
            }
            let expected = recommend_cli(&run, session, 10);
            assert_same_ranking(&last["items"], &expected["items"], &format!("{name}, clicks one by one"));
            let (status, whole) = server.call("POST", "/v1/recommend", Some(json!({ "items": session, "k": 10 })));
            assert_eq!(status, 200, "{name}: {whole}");
            assert_same_ranking(&whole["items"], &expected["items"], &format!("{name}, the whole session at once"));
        }
        server.stop();
    }
}

#[test]
fn every_route_answers_and_every_refusal_has_its_status_and_a_json_message() {
    let data = data();
    let (_, spec) = &architectures()[5];
    let run = train(&data, "parallel", spec, &[]);
    let session = &known_sessions(&run, &data, 1)[0];
    let server = Server::start(&run, &["--max-k", "500", "--max-body-bytes", "16384", "--timeout-ms", "1000"]);

    let (status, health) = server.call("GET", "/healthz", None);
    assert_eq!(status, 200);
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(health["state"], json!("memory"));
    assert_eq!(health["model"], json!("m"));
    let hash = blake3::hash(&std::fs::read(run.join("checkpoint.safetensors")).unwrap()).to_hex().to_string();
    assert_eq!(health["model_hash"], json!(hash), "the model is identified by its checkpoint");

    // A click; then an unknown item, which leaves the session as it was.
    let (status, first) = server.click("s", &session[0], 5);
    assert_eq!((status, first["events"].clone(), first["items"].as_array().unwrap().len()), (200, json!(1), 5));
    let (status, unknown) = server.click("s", "no-such-item", 5);
    assert_eq!(status, 422, "{unknown}");
    assert_eq!(unknown["error"]["code"], json!("unknown_item"));
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(message.contains("`no-such-item`") && message.contains("unchanged"), "{message}");
    let (_, second) = server.click("s", &session[1], 5);
    assert_eq!(second["events"], json!(2), "the unknown item was not counted");
    let expected = recommend_cli(&run, &session[..2], 5);
    assert_same_ranking(&second["items"], &expected["items"], "after an unknown item");

    // Items already clicked are left out when asked: a k beyond the catalogue lists every item but those.
    let catalogue = health["items"].as_u64().unwrap() as usize;
    let (_, all) = server.call("POST", "/v1/sessions/t/events", Some(json!({ "item": session[0], "k": 500 })));
    let ranked: Vec<&Value> = all["items"].as_array().unwrap().iter().map(|i| &i["item"]).collect();
    assert_eq!(ranked.len(), catalogue);
    assert!(ranked.contains(&&json!(session[0])));
    let (_, fresh) = server.call("POST", "/v1/sessions/t/events", Some(json!({ "item": session[1], "k": 500, "exclude_seen": true })));
    let left: Vec<&Value> = fresh["items"].as_array().unwrap().iter().map(|i| &i["item"]).collect();
    let clicked = if session[0] == session[1] { 1 } else { 2 };
    assert_eq!(left.len(), catalogue - clicked, "{fresh}");
    assert!(!left.contains(&&json!(session[0])) && !left.contains(&&json!(session[1])));
    let (_, stateless) =
        server.call("POST", "/v1/recommend", Some(json!({ "items": [session[0], session[0]], "k": 500, "exclude_seen": true })));
    assert_eq!(stateless["items"].as_array().unwrap().len(), catalogue - 1);

    // Integer item IDs are their decimal text.
    let numeric: u64 = session[2].parse().unwrap();
    let (status, body) = server.call("POST", "/v1/sessions/n/events", Some(json!({ "item": numeric })));
    assert_eq!((status, body["items"].as_array().unwrap().len()), (200, 20), "k defaults to 20");

    let refusals: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("POST", "/v1/sessions/s/events", Some(json!({ "item": session[0], "k": 0 })), 400, "bad_k"),
        ("POST", "/v1/sessions/s/events", Some(json!({ "item": session[0], "k": 501 })), 400, "bad_k"),
        ("POST", "/v1/sessions/s/events", Some(json!({ "itme": session[0] })), 400, "bad_json"),
        ("POST", "/v1/sessions/s/events", Some(json!({ "item": [1, 2] })), 400, "bad_json"),
        ("POST", "/v1/sessions/s/events", None, 400, "bad_json"),
        ("POST", "/v1/recommend", Some(json!({ "items": [] })), 400, "no_items"),
        ("POST", "/v1/recommend", Some(json!({ "items": [session[0], "x1", "x2"] })), 422, "unknown_item"),
        ("DELETE", "/v1/sessions/never-seen", None, 404, "unknown_session"),
        ("GET", "/v2/anything", None, 404, "not_found"),
        ("GET", "/v1/recommend", None, 405, "method_not_allowed"),
    ];
    for (method, path, body, status, code) in refusals {
        let (got, answer) = server.call(method, path, body.clone());
        assert_eq!(got, status, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["error"]["code"], json!(code), "{method} {path}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let long_id = "x".repeat(300);
    let (status, answer) = server.click(&long_id, &session[0], 5);
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!("bad_session_id")));

    // Malformed JSON, a body over the limit, a body that never finishes (the time limit), garbage bytes.
    let bad = server.raw(b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"items\":");
    assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("bad_json"), "{bad}");
    let many = vec![session[0].clone(); 1001];
    let (status, answer) = server.call("POST", "/v1/recommend", Some(json!({ "items": many })));
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!("too_many_items")), "{answer}");
    let big = format!("{{\"items\": [{}]}}", vec![format!("\"{}\"", session[0]); 4000].join(","));
    let (status, answer) = server.call("POST", "/v1/recommend", Some(serde_json::from_str(&big).unwrap()));
    assert_eq!((status, answer["error"]["code"].clone()), (413, json!("body_too_large")), "{answer}");
    let stalled =
        server.raw(b"POST /v1/sessions/s/events HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{\"item\":");
    assert!(stalled.starts_with("HTTP/1.1 503") && stalled.contains("\"timeout\""), "{stalled}");
    let _ = server.raw(b"\x00\xff\xfe garbage \r\n\r\n");
    let _ = server.raw(b"GET /v1/sessions/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (status, _) = server.call("GET", "/healthz", None);
    assert_eq!(status, 200, "the server is still up");
    let (_, third) = server.click("s", &session[2], 5);
    assert_eq!(third["events"], json!(3), "no refusal or stalled request changed the session");

    let (status, _) = server.call("DELETE", "/v1/sessions/s", None);
    assert_eq!(status, 204);
    let (_, restarted) = server.click("s", &session[0], 5);
    assert_eq!(restarted["events"], json!(1), "a deleted session starts over");

    let metrics = server.metrics();
    for line in [
        r#"prnn_serve_requests_total{route="/v1/sessions/{session_id}/events",status="422"} 1"#,
        r#"prnn_serve_requests_total{route="/v1/recommend",status="413"} 1"#,
        r#"prnn_serve_requests_total{route="/v1/sessions/{session_id}/events",status="503"} 1"#,
        r#"prnn_serve_requests_total{route="/v1/sessions/{session_id}",status="204"} 1"#,
        "prnn_serve_sessions 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
    assert!(metrics.contains("prnn_serve_batch_size_count") && metrics.contains("prnn_serve_request_duration_seconds_bucket"));
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).map_or(0, |v| v as u64)
}

#[test]
fn the_least_recently_used_session_is_evicted_and_idle_ones_expire() {
    let data = data();
    let run = train(&data, "id_only", &architectures()[0].1, &[]);
    let items = &known_sessions(&run, &data, 1)[0];
    let server = Server::start(&run, &["--max-sessions", "2", "--session-ttl", "600"]);
    server.click("a", &items[0], 3);
    server.click("b", &items[0], 3);
    server.click("a", &items[1], 3);
    server.click("c", &items[0], 3);
    assert_eq!(server.click("a", &items[2], 3).1["events"], json!(3), "`a` was used recently and is kept");
    assert_eq!(server.click("b", &items[1], 3).1["events"], json!(1), "`b` was the least recently used: evicted, it starts over");
    let metrics = server.metrics();
    assert_eq!(metric(&metrics, r#"prnn_serve_evictions_total{reason="capacity"}"#), 2, "b, then c\n{metrics}");
    server.stop();

    let server = Server::start(&run, &["--session-ttl", "0.3"]);
    server.click("a", &items[0], 3);
    assert_eq!(server.click("a", &items[1], 3).1["events"], json!(2));
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = server.metrics();
    assert_eq!(metric(&metrics, r#"prnn_serve_evictions_total{reason="ttl"}"#), 1, "swept after its time to live\n{metrics}");
    assert_eq!(metric(&metrics, "prnn_serve_sessions"), 0);
    assert_eq!(server.click("a", &items[2], 3).1["events"], json!(1), "an expired session starts over");
}

/// Clicks `items` on `session` from one thread each, spread over `servers`; every click's answer.
fn concurrent_clicks(servers: &[&Server], session: &str, items: &[String]) -> Vec<(String, u64)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(n, item)| {
                let server = servers[n % servers.len()];
                scope.spawn(move || {
                    let (status, body) = server.click(session, item, 5);
                    assert_eq!(status, 200, "{body}");
                    (item.clone(), body["events"].as_u64().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// No click lost: every answer saw a different count, 1 to N, and the session's final state is the items in
/// that order.
fn assert_applied_in_order(run: &Path, server: &Server, session: &str, mut applied: Vec<(String, u64)>, last: &str) {
    applied.sort_by_key(|(_, events)| *events);
    let counts: Vec<u64> = applied.iter().map(|(_, events)| *events).collect();
    assert_eq!(counts, (1..=applied.len() as u64).collect::<Vec<_>>(), "every click applied exactly once");
    let (_, after) = server.click(session, last, 8);
    assert_eq!(after["events"], json!(applied.len() + 1));
    let mut order: Vec<String> = applied.into_iter().map(|(item, _)| item).collect();
    order.push(last.to_string());
    assert_same_ranking(&after["items"], &recommend_cli(run, &order, 8)["items"], "after concurrent clicks");
}

#[test]
fn concurrent_clicks_on_one_session_are_each_applied_once_in_order() {
    let data = data();
    let run = train(&data, "id_only", &architectures()[0].1, &[]);
    let known = known_sessions(&run, &data, 6).concat();
    let items: Vec<String> = known.iter().cycle().take(24).cloned().collect();
    let server = Server::start(&run, &[]);
    let applied = concurrent_clicks(&[&server], "busy", &items);
    assert_applied_in_order(&run, &server, "busy", applied, &known[0]);
}

/// A Redis server for these tests: `PRNN_TEST_REDIS`, else one started here on a free port, which stops when
/// this test process ends (its shell waits on a pipe that only this process holds open).
fn redis_url() -> String {
    static URL: OnceLock<(String, Option<Mutex<Child>>)> = OnceLock::new();
    let (url, _) = URL.get_or_init(|| {
        if let Ok(url) = std::env::var("PRNN_TEST_REDIS") {
            return (url, None);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The child, and with it the pipe to its stdin, lives in the static until the process ends.
        let child = Command::new("sh")
            .args(["-c", "redis-server \"$@\" & server=$!; read _; kill $server", "sh"])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let alive = Some(Mutex::new(child));
        for _ in 0..200 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream.write_all(b"PING\r\n").unwrap();
                let mut answer = [0u8; 7];
                if stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n" {
                    return (format!("redis://127.0.0.1:{port}"), alive);
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "redis-server did not answer on port {port}: install it (`apt-get install redis-server`; `make test` does) \
             or set PRNN_TEST_REDIS=redis://HOST:PORT"
        );
    });
    url.clone()
}

/// The Redis options of a test: its own key prefix, so that tests sharing a Redis server never meet.
fn redis_state(prefix: &str) -> Vec<String> {
    let unique = format!("prnn-test:{}:{prefix}:", std::process::id());
    vec!["--state".into(), redis_url(), "--state-prefix".into(), unique]
}

fn start_with(run: &Path, options: &[String]) -> Server {
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    Server::start(run, &options)
}

#[test]
fn redis_state_is_shared_by_replicas_and_survives_a_restart() {
    let data = data();
    let run = train(&data, "parallel", &architectures()[5].1, &[]);
    let session = known_sessions(&run, &data, 1).remove(0);
    let state = redis_state("replicas");
    let first = start_with(&run, &state);
    let second = start_with(&run, &state);
    assert_eq!(first.call("GET", "/healthz", None).1["state"], json!("redis"));
    // Clicks alternate between the replicas; then the first is killed and a new one takes over.
    assert_eq!(first.click("v", &session[0], 5).1["events"], json!(1));
    assert_eq!(second.click("v", &session[1], 5).1["events"], json!(2));
    first.stop();
    let restarted = start_with(&run, &state);
    let (status, last) = restarted.click("v", &session[2], 5);
    assert_eq!((status, last["events"].clone()), (200, json!(3)), "{last}");
    assert_same_ranking(&last["items"], &recommend_cli(&run, &session[..3], 5)["items"], "after a restart");

    // Concurrent clicks on one session through two replicas: none lost, applied in one order.
    let known = known_sessions(&run, &data, 6).concat();
    let items: Vec<String> = known.iter().cycle().take(20).cloned().collect();
    let applied = concurrent_clicks(&[&second, &restarted], "shared", &items);
    assert_applied_in_order(&run, &second, "shared", applied, &known[1]);

    let (status, _) = second.call("DELETE", "/v1/sessions/v", None);
    assert_eq!(status, 204);
    assert_eq!(restarted.call("DELETE", "/v1/sessions/v", None).0, 404, "deleted for every replica");

    // Idle sessions expire in Redis too.
    let mut short = redis_state("ttl");
    short.extend(["--session-ttl".into(), "0.2".into()]);
    let server = start_with(&run, &short);
    server.click("t", &session[0], 5);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server.click("t", &session[1], 5).1["events"], json!(1));
}

#[test]
fn a_state_written_by_another_model_is_refused() {
    let data = data();
    let spec = &architectures()[0].1;
    let one = train(&data, "one", spec, &["seed=1"]);
    let other = train(&data, "other", spec, &["seed=2"]);
    let session = known_sessions(&one, &data, 1).remove(0);
    let state = redis_state("models");
    let server = start_with(&one, &state);
    assert_eq!(server.click("m", &session[0], 5).0, 200);
    server.stop();
    let server = start_with(&other, &state);
    let (status, answer) = server.click("m", &session[1], 5);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], json!("other_model"));
    assert!(answer["error"]["message"].as_str().unwrap().contains("DELETE"), "{answer}");
    assert_eq!(server.call("DELETE", "/v1/sessions/m", None).0, 204);
    assert_eq!(server.click("m", &session[1], 5).1["events"], json!(1), "started over with this model");
}

#[test]
fn a_baseline_folder_and_an_unreachable_redis_are_refused_before_serving() {
    let data = data();
    let run = train(&data, "id_only", &architectures()[0].1, &[]);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output =
        prnn().arg("serve").arg(&run).args(["--addr", "127.0.0.1:0", "--state", &format!("redis://127.0.0.1:{free}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot connect to Redis"), "{}", stderr(&output));
    let output = prnn().arg("serve").arg(&run).args(["--state", "postgres://x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let baseline = data.dir.path().join("pop");
    let output = prnn().args(["baseline", "popularity", "--config"]).arg(&data.config).arg("--out").arg(&baseline).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = prnn().arg("serve").arg(&baseline).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("baseline"), "{}", stderr(&output));
}
