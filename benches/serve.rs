//! `prnn serve` under load: requests per second and latency percentiles of single clicks, driven over loopback by
//! wrk (Debian's `wrk` package), for GRU4Rec row 1 and a parallel p-RNN (ID + category/price features) on
//! data/yoochoose-cat, with in-process state and with Redis state, at several numbers of concurrent connections.
//!
//! Usage: `cargo bench --bench serve -- [--seconds S] [--connections 1,8,64,256]` (default 10 s per level).
//! Each click is one `POST /v1/sessions/{id}/events` of a random training item on one of 100,000 random
//! sessions, asking for the top 20. The models are trained for this (1 epoch, at most 3,000 mini-batches: the
//! network's size is what costs, not its accuracy) into `target/bench-data/serve/`. Redis is `PRNN_TEST_REDIS`
//! when set, else a `redis-server` started here. wrk and the server share this machine's cores, as any load
//! generator on one machine must. It measures; it asserts nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_prnn-torch"))
}

struct Model {
    label: &'static str,
    spec: &'static str,
    overrides: &'static [&'static str],
}

const MODELS: &[Model] = &[
    Model { label: "GRU4Rec row 1 (ID only, 100 units, cross-entropy)", spec: "specs/gru4rec_xe.prnn", overrides: &["epochs=1"] },
    Model {
        label: "Parallel p-RNN (ID + categories, 100+100 units)",
        spec: "specs/parallel_res.prnn",
        overrides: &["schedule.id_net=1", "schedule.content_net=1"],
    },
];

fn train(model: &Model, out: &Path) -> PathBuf {
    let name = Path::new(model.spec).file_stem().unwrap().to_string_lossy().to_string();
    let run = out.join(&name);
    if run.join("checkpoint.safetensors").is_file() {
        return run;
    }
    let _ = std::fs::remove_dir_all(&run);
    eprintln!("training {} for the benchmark ...", model.spec);
    let status = Command::new(runtime())
        .current_dir(ROOT)
        .args(["train", model.spec, "--config", "examples/yoochoose-categories.toml", "--out"])
        .arg(&run)
        .args(model.overrides)
        .arg("max_batches=3000")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "training {} failed", model.spec);
    run
}

/// The training items, one per line, for the load script to pick from.
fn write_items(out: &Path) -> PathBuf {
    let path = out.join("items.txt");
    let file = std::fs::File::open(Path::new(ROOT).join("data/yoochoose-cat/train.tsv.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    let mut items: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split('\t').nth(1)).collect();
    items.sort_unstable();
    items.dedup();
    std::fs::write(&path, items.join("\n") + "\n").unwrap();
    path
}

fn write_script(out: &Path, items: &Path) -> PathBuf {
    let path = out.join("click.lua");
    let script = format!(
        r#"-- One click of a random training item on one of 100,000 random sessions, top 20.
local items = {{}}
for line in io.lines("{}") do items[#items + 1] = line end
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local item = items[math.random(1, #items)]
  return wrk.format(nil, "/v1/sessions/s" .. math.random(1, 100000) .. "/events", nil, '{{"item":"' .. item .. '","k":20}}')
end
"#,
        items.display()
    );
    std::fs::write(&path, script).unwrap();
    path
}

/// A Redis server: `PRNN_TEST_REDIS`, else one started here that dies with this process.
fn redis(processes: &mut Vec<Child>) -> String {
    if let Ok(url) = std::env::var("PRNN_TEST_REDIS") {
        return url;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: prctl only, between fork and exec: the server is killed when this process ends.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    processes.push(command.spawn().expect("redis-server (Debian: apt-get install redis-server), or set PRNN_TEST_REDIS"));
    for _ in 0..200 {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let mut answer = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n" {
                return format!("redis://127.0.0.1:{port}");
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not answer on port {port}");
}

fn start_server(run: &Path, state: &[String]) -> (Child, String) {
    let mut child = Command::new(runtime())
        .arg("serve")
        .arg(run)
        .args(["--addr", "127.0.0.1:0"])
        .args(state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the server stopped before listening").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// The server's (sum, count) of requests per forward pass so far.
fn batch_totals(address: &str) -> (f64, f64) {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0);
    (value("prnn_serve_batch_size_sum"), value("prnn_serve_batch_size_count"))
}

struct Level {
    connections: usize,
    requests_per_second: f64,
    p50: String,
    p99: String,
    failures: u64,
    mean_batch: f64,
}

fn wrk(address: &str, script: &Path, connections: usize, seconds: u64) -> String {
    let threads = connections.min(2);
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(address)
        .current_dir(script.parent().unwrap())
        .output()
        .expect("wrk (Debian: apt-get install wrk)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn measure(address: &str, script: &Path, connections: usize, seconds: u64) -> Level {
    let before = batch_totals(address);
    let text = wrk(address, script, connections, seconds);
    let after = batch_totals(address);
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string())).unwrap_or_default();
    let failures = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Non-2xx or 3xx responses:").or_else(|| l.strip_prefix("Socket errors:").map(|_| "0"))
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum();
    Level {
        connections,
        requests_per_second: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        failures,
        mean_batch: (after.0 - before.0) / (after.1 - before.1).max(1.0),
    }
}

fn main() {
    let mut seconds = 10u64;
    let mut levels = vec![1usize, 8, 64, 256];
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => seconds = rest.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--connections" => {
                levels =
                    rest.next().map(|v| v.split(',').map(|c| c.parse().expect("--connections 1,8,64")).collect()).expect("--connections")
            }
            other => panic!("unknown argument `{other}`; usage: cargo bench --bench serve -- [--seconds S] [--connections 1,8,64,256]"),
        }
    }
    let out = Path::new(ROOT).join("target/bench-data/serve");
    std::fs::create_dir_all(&out).unwrap();
    let items = write_items(&out);
    let script = write_script(&out, &items);
    let mut processes = Vec::new();
    let redis_url = redis(&mut processes);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut table = String::new();
    table += &format!(
        "Measured {} on {cpu} ({cores} cores), wrk and the server on the same machine, {seconds} s per level.\n\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")
    );
    table += "| model | state | connections | requests/s | p50 | p99 | mean batch | failed |\n|---|---|---:|---:|---:|---:|---:|---:|\n";
    for model in MODELS {
        let run = train(model, &out);
        for (state_label, state) in [
            ("in process", vec![]),
            // A prefix per model: a state written by one model is refused by the other (409), by design.
            (
                "Redis",
                vec![
                    "--state".to_string(),
                    redis_url.clone(),
                    "--state-prefix".into(),
                    format!("prnn-bench:{}:{}:", std::process::id(), model.spec),
                ],
            ),
        ] {
            let (mut server, address) = start_server(&run, &state);
            // Warm-up: first passes allocate, Redis fills.
            wrk(&address, &script, 8, 2);
            for &connections in &levels {
                let level = measure(&address, &script, connections, seconds);
                let row = format!(
                    "| {} | {state_label} | {} | {:.0} | {} | {} | {:.1} | {} |\n",
                    model.label, level.connections, level.requests_per_second, level.p50, level.p99, level.mean_batch, level.failures
                );
                eprint!("{row}");
                table += &row;
            }
            let _ = server.kill();
            let _ = server.wait();
        }
    }
    for mut process in processes {
        let _ = process.kill();
        let _ = process.wait();
    }
    println!("\n{table}");
}
