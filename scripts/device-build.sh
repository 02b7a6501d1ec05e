#!/usr/bin/env bash
# Builds what scripts/device-check.sh runs on a GPU machine, stripped (a device call carries at most 64 MiB),
# into target/device/: prnn and prnn-torch (which `prnn` hands training to), train-tests (tests/train.rs) and performance (benches/performance.rs).
# Usage: scripts/device-build.sh   (run from the repository root, after `make build` has installed libtorch)
set -euo pipefail
mkdir -p target/device
executable() {  # the executable of cargo's JSON messages whose target is named $1
    python3 -c 'import json, sys
name = sys.argv[1]
for line in sys.stdin:
    message = json.loads(line)
    if message.get("executable") and message.get("target", {}).get("name") == name:
        print(message["executable"])' "$1"
}
cargo build --release --locked
cp target/release/prnn target/release/prnn-torch target/device/
cp "$(cargo test --release --locked --test train --no-run --message-format=json 2>/dev/null | executable train)" target/device/train-tests
cp "$(cargo bench --locked --bench performance --no-run --message-format=json 2>/dev/null | executable performance)" target/device/performance
strip target/device/prnn target/device/prnn-torch target/device/train-tests target/device/performance
ls -l target/device
