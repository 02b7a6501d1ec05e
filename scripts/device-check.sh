#!/usr/bin/env bash
# GPU checks, run on a machine with an NVIDIA GPU and a torch 2.11.0 install but no cargo: the binaries are
# built elsewhere (release, stripped) into target/device/ by scripts/device-build.sh and copied with the repository.
#   prnn, train-tests (cargo test --release --test train), performance (cargo bench --bench performance --no-run)
# Usage: scripts/device-check.sh OUT_DIR   (run from the repository root; TORCH_LIB overrides the torch lib folder)
# With PRNN_PEER (a copy of the official GRU4Rec PyTorch code, carried beside the binaries and never committed)
# and PRNN_PEER_PYTHON (a Python with torch and pandas) exported, the performance step runs rows 1 and 3 with
# prnn and the official code side by side on the GPU instead (docs/performance.md).
set -uo pipefail
out=${1:?OUT_DIR}
mkdir -p "$out"
lib=${TORCH_LIB:-$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -1)}
export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bin=target/device
step() { echo "=== $*"; local t0=$SECONDS; "$@"; echo "=== exit $? after $((SECONDS - t0)) s"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step $bin/prnn doctor
step env PRNN_TEST_DEVICE=cuda timeout 120 $bin/train-tests --test-threads=1
step timeout 60 $bin/prnn data prepare examples/yoochoose-categories.toml
step timeout 120 $bin/prnn train specs/gru4rec_xe.prnn --config examples/yoochoose-categories.toml --out "$out/row1" --device cuda epochs=2
step timeout 60 $bin/prnn eval "$out/row1" --device cuda
step timeout 120 $bin/prnn train specs/gru4rec_bprmax.prnn --config examples/yoochoose-categories.toml --out "$out/row3" --device cuda epochs=1
step timeout 60 $bin/prnn eval "$out/row3" --device cuda
step timeout 120 $bin/prnn train specs/parallel_alt.prnn --config examples/yoochoose-categories.toml --out "$out/parallel_alt" --device cuda epochs=2
step timeout 60 $bin/prnn eval "$out/parallel_alt" --device cuda
# The speed table of docs/performance.md on this GPU (it generates its synthetic data first).
step env PRNN_BIN=$bin/prnn PRNN_ROOT=$PWD timeout 540 $bin/performance --device cuda --no-write > "$out/performance-cuda.md"
rm -f "$out"/*/checkpoint.safetensors  # large; the metrics, evaluations and ranks come back
