#!/usr/bin/env bash
# Trains every spec in specs/ for one epoch on each shipped dataset that has its input kinds, evaluates it,
# and prints one line per run. Usage: scripts/smoke-specs.sh [OUT_DIR] [MAX_BATCHES_FOR_LARGE_MODELS]
# Models of 500 units or more stop each epoch after MAX_BATCHES mini-batches (default 300); the others run
# whole epochs. Run folders go to OUT_DIR (default runs/smoke), which must not exist yet.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/smoke}
cap=${2:-300}
prnn=${PRNN:-target/release/prnn}
if [ -e "$out" ]; then
  echo "error: $out exists; give another folder" >&2
  exit 5
fi
mkdir -p "$out"
printf '%-28s %-24s %8s %8s %12s\n' spec config recall@20 mrr@20 train_ev/s
for spec in specs/*.prnn; do
  name=$(basename "$spec" .prnn)
  if grep -q 'input image' "$spec"; then
    configs="amazon-id-image-text"
  elif grep -qE ': *(feature|dense|sparse)' "$spec"; then
    configs="yoochoose-categories amazon-text amazon-image-vectors"
  else
    configs="yoochoose-categories"
  fi
  extra=()
  if grep -qE 'hidden *= *(5|10)[0-9][0-9]' "$spec"; then
    extra=("max_batches=$cap")
  fi
  for config in $configs; do
    run="$out/$name-$config"
    "$prnn" train "$spec" --config "examples/$config.toml" --out "$run" epochs=1 "${extra[@]}" 2>"$run.log" >/dev/null
    "$prnn" eval "$run" >"$run.eval" 2>>"$run.log"
    rate=$(python3 -c "import json,sys; print(round(sum(json.loads(l)['events_per_second'] for l in open('$run/metrics.jsonl'))/sum(1 for _ in open('$run/metrics.jsonl'))))")
    python3 - "$run/eval.json" "$name" "$config" "$rate" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
m = next(m for m in e["metrics"] if m["cutoff"] == 20)
print(f"{sys.argv[2]:<28} {sys.argv[3]:<24} {m['recall']:8.4f} {m['mrr']:8.4f} {sys.argv[4]:>12}")
PY
  done
done
