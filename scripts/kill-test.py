#!/usr/bin/env python3
"""Crash safety, proven repeatedly: SIGKILL `prnn train`, `prnn data prepare` and `prnn run` at random moments,
continue each the way a user would, and compare with an uninterrupted run (docs/reliability.md).

Usage: scripts/kill-test.py [--kills N] [--seed S] [--prnn target/release/prnn] [--work DIR] [--only train|prepare|run]

Every phase first runs the command once uninterrupted (the reference, also timing it), then N times: start it,
kill it at a uniformly random moment within the reference's duration, and continue:
- train: `prnn train --resume RUN` (half of the resumes are killed again at random), or a fresh start when the kill
  came before the run folder was written; then `prnn eval`. Compared: checkpoint.safetensors byte for byte,
  ranks.tsv byte for byte, eval.json without its two timing fields (`seconds`, `events_per_second`).
- prepare: the cache file left behind must be absent or load (`prnn data stats` reads it), never torn; then
  `prnn data prepare` again, and the cache file must equal the reference's byte for byte.
- run: the whole process group is killed (the parent and the cells' children, as a crash of the machine would);
  `prnn run` again with the same arguments continues; results.csv must equal the reference's in every column but
  the timing ones.
It measures and prints a summary table; it exits non-zero when a comparison failed. Needs only Python 3.
"""

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SPEC = """model small {
  input id       : item_id
  input category : sparse
  subnet id_net       = gru(id, hidden = 32, dropout = 0.2)
  subnet category_net = gru(category, hidden = 32)
  merge = parallel(id_net, category_net)
}
train {
  optimizer = adagrad(lr = 0.1, momentum = 0.1)
  batch     = 32
  negatives = in_batch(extra = 16, alpha = 0.5)
  schedule  = alternating(epochs = 3, order = [id_net, category_net])
}
"""

ID_ONLY = """model ids {
  input id : item_id
  subnet id_net = gru(id, hidden = 24)
}
train {
  optimizer = adagrad(lr = 0.1)
  batch     = 32
  schedule  = simultaneous(epochs = 2)
}
"""

CONFIG = """[data]
train = "data/train.tsv"
test  = "data/test.tsv"

[inputs.category]
kind     = "sparse"
items    = "data/items.tsv"
columns  = ["category"]
encoding = "categorical"

[eval]
cutoffs = [5, 20]

[run]
out = "runs"
threads = 1
checkpoint_batches = 50

[experiment]
specs     = ["small.prnn", "ids.prnn"]
seeds     = [1, 2]
baselines = ["popularity", "item_knn"]
reference = "item_knn"
jobs      = 1
"""


def run(args, cwd, check=True, quiet=True):
    result = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and result.returncode != 0:
        sys.exit(f"`{' '.join(map(str, args))}` failed ({result.returncode}):\n{result.stderr}")
    return result


def timed(args, cwd):
    started = time.monotonic()
    run(args, cwd)
    return time.monotonic() - started


def kill_at_random(args, cwd, horizon, rng, group=False):
    """Starts `args`, SIGKILLs it (or its process group) after a random time below `horizon`; returns when it
    died (and whether it had already finished)."""
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=group)
    delay = rng.uniform(0.0, horizon)
    try:
        process.wait(timeout=delay)
        return delay, True
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGKILL)
        process.wait()
        if group:
            # Children in the group die with it; give the kernel a moment to reap them and drop their locks.
            time.sleep(0.2)
        return delay, False


def without_timing(eval_json):
    record = json.loads(eval_json)
    record.pop("seconds", None)
    record.pop("events_per_second", None)
    return record


def results_without_timing(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    header = rows[0]
    keep = [i for i, name in enumerate(header) if not any(word in name.lower() for word in ("second", "/s", "time", "rate"))]
    return [[row[i] for i in keep] for row in rows]


def phase_train(prnn, work, kills, rng, report):
    reference = work / "train-reference"
    duration = timed([prnn, "train", "small.prnn", "--config", "run.toml", "--out", reference], work)
    run([prnn, "eval", reference], work)
    same, mid_epoch, restarts = 0, 0, 0
    for i in range(kills):
        out = work / f"train-{i}"
        delay, finished = kill_at_random([prnn, "train", "small.prnn", "--config", "run.toml", "--out", out], work, duration, rng)
        if (out / "partial.safetensors").exists() and not finished:
            mid_epoch += 1
        resumed_kills = 0
        while True:
            if not (out / "run.json").exists():
                # Killed before the run folder was written: start again, as a user would.
                shutil.rmtree(out, ignore_errors=True)
                command = [prnn, "train", "small.prnn", "--config", "run.toml", "--out", out]
                restarts += 1
            else:
                command = [prnn, "train", "--resume", out]
            if resumed_kills == 0 and rng.random() < 0.5:
                resumed_kills += 1
                kill_at_random(command, work, duration, rng)
                continue
            run(command, work)
            break
        run([prnn, "eval", out], work)
        checkpoint = (out / "checkpoint.safetensors").read_bytes() == (reference / "checkpoint.safetensors").read_bytes()
        ranks = (out / "ranks.tsv").read_bytes() == (reference / "ranks.tsv").read_bytes()
        evaluation = without_timing((out / "eval.json").read_text()) == without_timing((reference / "eval.json").read_text())
        ok = checkpoint and ranks and evaluation
        same += ok
        print(f"train   kill {i + 1:2}/{kills} at {delay:5.2f} s of {duration:.2f} s: "
              f"{'identical' if ok else f'DIFFERS (checkpoint {checkpoint}, ranks {ranks}, eval {evaluation})'}", flush=True)
    report.append(("prnn train (+ eval)", kills, same, f"{duration:.1f} s", f"{mid_epoch} killed inside an epoch, {restarts} restarted before run.json"))
    return same == kills


def phase_prepare(prnn, work, kills, rng, report):
    # A larger dataset than training's, so that reading it takes long enough to be killed anywhere in it.
    run([prnn, "data", "synth", "--sessions", "400000", "--items", "20000", str(work / "big")], work)
    (work / "prepare.toml").write_text(CONFIG.replace('"data/', '"big/').replace('out = "runs"', 'out = "prepared"'))
    cache = work / "prepared" / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    duration = timed([prnn, "data", "prepare", "prepare.toml"], work)
    files = sorted(cache.glob("dataset-*.safetensors"))
    assert len(files) == 1, files
    reference = files[0].read_bytes()
    same, left_behind = 0, 0
    for i in range(kills):
        shutil.rmtree(cache, ignore_errors=True)
        delay, _ = kill_at_random([prnn, "data", "prepare", "prepare.toml"], work, duration, rng)
        leftover = sorted(cache.glob("dataset-*.safetensors")) if cache.exists() else []
        intact = True
        if leftover:
            left_behind += 1
            # A cache file that exists is complete: stats reads it back.
            intact = leftover[0].read_bytes() == reference and run([prnn, "data", "stats", "prepare.toml"], work, check=False).returncode == 0
        run([prnn, "data", "prepare", "prepare.toml"], work)
        files = sorted(cache.glob("dataset-*.safetensors"))
        ok = intact and len(files) == 1 and files[0].read_bytes() == reference
        same += ok
        print(f"prepare kill {i + 1:2}/{kills} at {delay:5.2f} s of {duration:.2f} s: {'identical' if ok else 'DIFFERS'}"
              f"{' (a complete cache was already in place)' if leftover else ''}", flush=True)
    report.append(("prnn data prepare", kills, same, f"{duration:.1f} s", f"{left_behind} kills came after the cache was complete"))
    return same == kills


def phase_run(prnn, work, kills, rng, report):
    reference = work / "experiment-reference"
    duration = timed([prnn, "run", "--config", "run.toml", "--out", reference], work)
    expected = results_without_timing(reference / "results.csv")
    same = 0
    for i in range(kills):
        out = work / f"experiment-{i}"
        command = [prnn, "run", "--config", "run.toml", "--out", out]
        delay, _ = kill_at_random(command, work, duration, rng, group=True)
        run(command, work)
        ok = results_without_timing(out / "results.csv") == expected
        same += ok
        print(f"run     kill {i + 1:2}/{kills} at {delay:5.2f} s of {duration:.2f} s: {'identical' if ok else 'DIFFERS'}", flush=True)
    report.append(("prnn run", kills, same, f"{duration:.1f} s", "the process group killed (parent and cells)"))
    return same == kills


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prnn", default="target/release/prnn")
    parser.add_argument("--work", default="target/kill-test")
    parser.add_argument("--only", choices=["train", "prepare", "run"], action="append")
    args = parser.parse_args()
    prnn = str(Path(args.prnn).resolve())
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run([prnn, "data", "synth", "--sessions", "20000", "--items", "2000", str(work / "data")], work)
    (work / "small.prnn").write_text(SPEC)
    (work / "ids.prnn").write_text(ID_ONLY)
    (work / "run.toml").write_text(CONFIG)
    rng = random.Random(args.seed)
    phases = {"prepare": phase_prepare, "train": phase_train, "run": phase_run}
    report, ok = [], True
    for name in args.only or ["prepare", "train", "run"]:
        ok &= phases[name](prnn, work, args.kills, rng, report)
    print()
    print(f"| command | kills | identical | uninterrupted run | notes |")
    print(f"|---|---|---|---|---|")
    for command, kills, same, duration, notes in report:
        print(f"| `{command}` | {kills} | {same} | {duration} | {notes} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
