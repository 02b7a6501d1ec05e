#!/usr/bin/env bash
# The acceptance check against the official GRU4Rec: "row 1" (specs/gru4rec_xe.prnn: 100 units, batch 50,
# cross-entropy, adagrad lr 0.1, one epoch) on data/yoochoose-cat as shipped, conservative ties. Passes when
# prnn reaches at least 98% of the official code's Recall@20 0.650 and MRR@20 0.285.
# Usage: scripts/gru4rec-row1.sh [OUT_DIR] [--device cpu|cuda]   (needs target/release/prnn: make build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gru4rec-row1-$(date -u +%Y%m%d-%H%M%S)}
shift || true
prnn=${PRNN:-target/release/prnn}
"$prnn" train specs/gru4rec_xe.prnn --config examples/yoochoose-categories.toml --out "$out" "$@"
"$prnn" eval "$out" "$@"
python3 - "$out/eval.json" <<'PY'
import json, sys
m = next(m for m in json.load(open(sys.argv[1]))["metrics"] if m["cutoff"] == 20)
ok = m["recall"] >= 0.98 * 0.650 and m["mrr"] >= 0.98 * 0.285
print(f"Recall@20 {m['recall']:.4f} (bar {0.98 * 0.650:.4f}), MRR@20 {m['mrr']:.4f} (bar {0.98 * 0.285:.4f}): {'pass' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
