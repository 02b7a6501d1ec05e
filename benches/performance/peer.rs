//! The official GRU4Rec PyTorch code as the harness's peer: run on the same data and settings as a prnn row,
//! interleaved with it, so that a speed ratio comes from one machine in one run.
//!
//! The peer is never part of this repository. `PRNN_PEER` names a checkout of the public repository
//! hidasib/GRU4Rec_PyTorch_Official (with numpy 2 it needs `_init_numpy_weights` to return float32:
//! docs/performance.md), `PRNN_PEER_PYTHON` a Python with torch and pandas (default `python3`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the official code is and what runs it.
pub struct Peer {
    pub checkout: PathBuf,
    pub python: PathBuf,
}

impl Peer {
    /// The peer `PRNN_PEER` names, if any; panics with what is missing when the checkout has no `run.py`.
    pub fn from_env() -> Option<Peer> {
        let checkout = PathBuf::from(std::env::var_os("PRNN_PEER")?);
        assert!(
            checkout.join("run.py").is_file() && checkout.join("gru4rec_pytorch.py").is_file(),
            "PRNN_PEER={} is not a checkout of GRU4Rec_PyTorch_Official (no run.py and gru4rec_pytorch.py)",
            checkout.display()
        );
        let python = std::env::var_os("PRNN_PEER_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
        Some(Peer { checkout, python })
    }

    /// The torch version the peer's Python imports.
    pub fn torch_version(&self) -> String {
        let output = Command::new(&self.python).args(["-c", "import torch; print(torch.__version__, torch.get_num_threads())"]).output();
        match output {
            Ok(output) if output.status.success() => {
                let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
                let (version, threads) = text.split_once(' ').unwrap_or((&text, "?"));
                format!("torch {version}, {threads} threads")
            }
            _ => panic!("PRNN_PEER_PYTHON={} cannot import torch", self.python.display()),
        }
    }
}

/// What one run of the official code measured.
pub struct PeerRun {
    /// From its own epoch line, `[X mb/s | Y e/s]`.
    pub batches_per_second: f64,
    /// From `Evaluation took X s`, when it evaluated.
    pub eval_seconds: Option<f64>,
    pub recall_at_20: Option<f64>,
    pub mrr_at_20: Option<f64>,
}

/// Trains one epoch of `params` (GRU4Rec's parameter string) on `train`, on prnn's device (`cpu`, `cuda` or
/// `cuda:N`), then evaluates on `test` with conservative ties at cut-off 20 when given.
pub fn run(peer: &Peer, params: &str, train: &Path, test: Option<&Path>, device: &str, log: &Path) -> PeerRun {
    // The official code names a GPU with its index.
    let device = if device == "cuda" { "cuda:0" } else { device };
    let mut command = Command::new(&peer.python);
    command.current_dir(&peer.checkout).arg("run.py").arg(train).args(["-ps", params, "-d", device]);
    if let Some(test) = test {
        command.arg("-t").arg(test).args(["-m", "20", "-e", "conservative"]);
    }
    let output = command.output().expect("the peer's Python starts");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    std::fs::write(log, &text).expect("the peer's log is writable");
    assert!(output.status.success(), "the official code failed (log: {})", log.display());
    parse(&text).unwrap_or_else(|| panic!("no epoch line in the official code's output (log: {})", log.display()))
}

fn number_before(text: &str, unit: &str) -> Option<f64> {
    let end = text.find(unit)?;
    text[..end].trim_end().rsplit([' ', '[', '(']).next()?.parse().ok()
}

/// Reads the official code's output: its epoch line, evaluation time and metrics.
fn parse(text: &str) -> Option<PeerRun> {
    let epoch = text.lines().find(|l| l.starts_with("Epoch1 -->"))?;
    let rates = &epoch[epoch.find('[')?..];
    let eval_seconds = text.lines().find_map(|l| l.strip_prefix("Evaluation took ")).and_then(|rest| number_before(rest, "s"));
    let metrics = text.lines().find(|l| l.starts_with("Recall@20:"));
    let field = |name: &str| -> Option<f64> { metrics?.split(name).nth(1)?.split_whitespace().next()?.parse().ok() };
    Some(PeerRun {
        batches_per_second: number_before(rates, "mb/s")?,
        eval_seconds,
        recall_at_20: field("Recall@20:"),
        mrr_at_20: field("MRR@20:"),
    })
}
