#!/usr/bin/env python3
"""Float64 reference fixtures for the numeric kernels of src/lower (tests/reference.rs reads them).

Regenerate with

    python3 scripts/reference/make_fixtures.py

from the repository root (or from anywhere: paths are relative to this file). The output is deterministic:
a fixed seed, inputs that are multiples of 1/256 (exactly representable in float32, so the float32 tensors
of the tests hold exactly the inputs used here), and Python's shortest round-trip float repr. Rerunning
gives byte-identical files. Plain Python only (math, random, json); no numpy.

Files written to tests/fixtures/reference/:

- gru.json         one GRU step and a three-step recurrence, both forms (GRU4Rec's reset-before-product
                   and PyTorch's GRUCell reset-after-product), with and without the hidden-side bias.
- activation.json  tanh, linear, softmax (identity) and elu(alpha) on a score matrix, and their derivatives.
- loss.json        the five losses (TOP1, BPR, TOP1-max, BPR-max, cross-entropy with and without logQ) on
                   [M, M + S] score matrices, S = 0, S > 0 and duplicate columns: values and gradients
                   with respect to the scores (analytic here, checked against central differences).
                   `far_negative` holds TOP1-max and BPR-max on a matrix whose negatives are all near -100
                   (read by an ignored test: the kernel's softmax over negatives underflows there).
- adagrad.json     Adagrad with and without momentum: dense steps, lazy row-sparse steps, and the dense
                   update that the sparse one deliberately differs from.

The formulas are GRU4Rec's, as documented in src/lower/{gru,loss,optim}.rs.
"""

import json
import math
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "reference")
LOG_EPS = 1e-24

rng = random.Random(20240611)


# ---------------------------------------------------------------- small matrix helpers (lists of rows)


def grid(lo, hi):
    """A random multiple of 1/256 in [lo, hi]: exact in float32."""
    return rng.randint(int(lo * 256), int(hi * 256)) / 256


def rand_matrix(rows, cols, lo=-1.0, hi=1.0):
    return [[grid(lo, hi) for _ in range(cols)] for _ in range(rows)]


def rand_vector(n, lo=-1.0, hi=1.0):
    return [grid(lo, hi) for _ in range(n)]


def matmul(a, b):
    inner = len(b)
    assert all(len(row) == inner for row in a)
    return [[math.fsum(row[k] * b[k][j] for k in range(inner)) for j in range(len(b[0]))] for row in a]


def columns(m, start, count):
    return [row[start : start + count] for row in m]


def zip_map(f, *ms):
    return [[f(*xs) for xs in zip(*rows)] for rows in zip(*ms)]


def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def dsigmoid(x):
    s = sigmoid(x)
    return s * (1.0 - s)


def zeros(rows, cols):
    return [[0.0] * cols for _ in range(rows)]


def copy(m):
    return [list(row) for row in m]


# ---------------------------------------------------------------- GRU


def gru_reset_before(x_proj, h, w_hh):
    """GRU4Rec: blocks [n, r, z]; r, z from h W; n = tanh(x_n + (r*h) W_n); h' = (1-z) h + z n."""
    hidden = len(h[0])
    x_n, x_r, x_z = (columns(x_proj, k * hidden, hidden) for k in range(3))
    w_n = columns(w_hh, 0, hidden)
    w_r = columns(w_hh, hidden, hidden)
    w_z = columns(w_hh, 2 * hidden, hidden)
    r = zip_map(lambda a, b: sigmoid(a + b), x_r, matmul(h, w_r))
    z = zip_map(lambda a, b: sigmoid(a + b), x_z, matmul(h, w_z))
    n = zip_map(lambda a, b: math.tanh(a + b), x_n, matmul(zip_map(lambda a, b: a * b, r, h), w_n))
    return zip_map(lambda zz, hh, nn: (1.0 - zz) * hh + zz * nn, z, h, n)


def gru_reset_after(x_proj, h, w_hh, b_hn):
    """PyTorch GRUCell: blocks [r, z, n]; n = tanh(x_n + r*(h W_n + b_hn)); h' = (1-z) n + z h."""
    hidden = len(h[0])
    x_r, x_z, x_n = (columns(x_proj, k * hidden, hidden) for k in range(3))
    w_r = columns(w_hh, 0, hidden)
    w_z = columns(w_hh, hidden, hidden)
    w_n = columns(w_hh, 2 * hidden, hidden)
    bias = b_hn if b_hn is not None else [0.0] * hidden
    r = zip_map(lambda a, b: sigmoid(a + b), x_r, matmul(h, w_r))
    z = zip_map(lambda a, b: sigmoid(a + b), x_z, matmul(h, w_z))
    hn = [[v + bias[j] for j, v in enumerate(row)] for row in matmul(h, w_n)]
    n = zip_map(lambda a, rr, b: math.tanh(a + rr * b), x_n, r, hn)
    return zip_map(lambda zz, hh, nn: (1.0 - zz) * nn + zz * hh, z, h, n)


def gru_fixture():
    batch, hidden = 4, 3
    cases = []
    forms = [("reset_before_product", False), ("reset_after_product", True), ("reset_after_product", False)]
    for form, with_bias in forms:
        h0 = rand_matrix(batch, hidden)
        w_hh = rand_matrix(hidden, 3 * hidden)
        b_hn = rand_vector(hidden) if with_bias else None
        xs = [rand_matrix(batch, 3 * hidden, -1.5, 1.5) for _ in range(3)]
        states = []
        h = h0
        for x in xs:
            h = gru_reset_before(x, h, w_hh) if form == "reset_before_product" else gru_reset_after(x, h, w_hh, b_hn)
            states.append(h)
        cases.append(
            {
                "name": f"{form}{'_with_b_hn' if with_bias else ''}",
                "form": form,
                "h0": h0,
                "w_hh": w_hh,
                "b_hn": b_hn,
                "x_proj": xs,
                "expected": states,
            }
        )
    return {"batch": batch, "hidden": hidden, "cases": cases}


# ---------------------------------------------------------------- activations


def activation_fixture():
    # Away from 0, where elu's derivative is one-sided.
    scores = [[grid(0.05, 2.5) * rng.choice([-1.0, 1.0]) for _ in range(6)] for _ in range(4)]
    cases = []
    for name, alpha in [("tanh", None), ("linear", None), ("softmax", None), ("elu", 1.0), ("elu", 0.5)]:
        if name == "tanh":
            f, df = math.tanh, lambda x: 1.0 - math.tanh(x) ** 2
        elif name in ("linear", "softmax"):
            f, df = (lambda x: x), (lambda x: 1.0)
        else:
            f = lambda x, a=alpha: x if x > 0 else a * (math.exp(x) - 1.0)
            df = lambda x, a=alpha: 1.0 if x > 0 else a * math.exp(x)
        cases.append(
            {
                "activation": name,
                "alpha": alpha,
                "expected": [[f(x) for x in row] for row in scores],
                "derivative": [[df(x) for x in row] for row in scores],
            }
        )
    return {"scores": scores, "cases": cases}


# ---------------------------------------------------------------- losses


def negative_weights(s, i):
    """Softmax over row i's negatives (j != i); the positive gets 0."""
    row = s[i]
    peak = max(v for j, v in enumerate(row) if j != i)
    e = [0.0 if j == i else math.exp(v - peak) for j, v in enumerate(row)]
    total = math.fsum(e)
    return [v / total for v in e]


def loss_value(kind, s, log_p, bpreg=0.0, logq=0.0):
    m, n = len(s), len(s[0])
    rows = []
    for i in range(m):
        t = s[i][i]
        row = s[i]
        if kind == "cross_entropy":
            logits = [v - logq * log_p[j] if logq > 0 and log_p is not None else v for j, v in enumerate(row)]
            peak = max(logits)
            e = [math.exp(v - peak) for v in logits]
            p = e[i] / math.fsum(e)
            rows.append(-math.log(p + LOG_EPS))
        elif kind == "top1":
            mean = math.fsum(sigmoid(v - t) + sigmoid(v * v) for v in row) / n
            rows.append(mean - sigmoid(t * t) / n)
        elif kind == "bpr":
            rows.append(-math.fsum(math.log(sigmoid(t - v) + LOG_EPS) for v in row) / n)
        elif kind == "top1_max":
            w = negative_weights(s, i)
            rows.append(math.fsum(w[j] * (sigmoid(v - t) + sigmoid(v * v)) for j, v in enumerate(row)))
        elif kind == "bpr_max":
            w = negative_weights(s, i)
            ranking = -math.log(math.fsum(sigmoid(t - v) * w[j] for j, v in enumerate(row)) + LOG_EPS)
            rows.append(ranking + bpreg * math.fsum(w[j] * v * v for j, v in enumerate(row)))
        else:
            raise ValueError(kind)
    return math.fsum(rows)


def loss_gradient(kind, s, log_p, bpreg=0.0, logq=0.0):
    """d loss / d scores, derived by hand from the formulas of loss_value."""
    m, n = len(s), len(s[0])
    g = zeros(m, n)
    for i in range(m):
        t = s[i][i]
        row = s[i]
        if kind == "cross_entropy":
            logits = [v - logq * log_p[j] if logq > 0 and log_p is not None else v for j, v in enumerate(row)]
            peak = max(logits)
            e = [math.exp(v - peak) for v in logits]
            total = math.fsum(e)
            p = [v / total for v in e]
            # -log(p_i + eps): d/dl_j = -p_i (delta_ij - p_j) / (p_i + eps)
            c = p[i] / (p[i] + LOG_EPS)
            for j in range(n):
                g[i][j] = c * (p[j] - (1.0 if j == i else 0.0))
        elif kind == "top1":
            for j, v in enumerate(row):
                if j != i:
                    g[i][j] = (dsigmoid(v - t) + 2.0 * v * dsigmoid(v * v)) / n
            # The positive's own regulariser term cancels against the subtracted sigma(t^2)/N.
            g[i][i] = -math.fsum(dsigmoid(v - t) for j, v in enumerate(row) if j != i) / n
        elif kind == "bpr":
            q = [dsigmoid(t - v) / (sigmoid(t - v) + LOG_EPS) for v in row]
            for j in range(n):
                if j != i:
                    g[i][j] = q[j] / n
            g[i][i] = -math.fsum(q[j] for j in range(n) if j != i) / n
        elif kind == "top1_max":
            w = negative_weights(s, i)
            f = [sigmoid(v - t) + sigmoid(v * v) for v in row]
            big_f = math.fsum(w[j] * f[j] for j in range(n))
            for k, v in enumerate(row):
                if k != i:
                    g[i][k] = w[k] * (f[k] - big_f) + w[k] * (dsigmoid(v - t) + 2.0 * v * dsigmoid(v * v))
            g[i][i] = -math.fsum(w[j] * dsigmoid(v - t) for j, v in enumerate(row) if j != i)
        elif kind == "bpr_max":
            w = negative_weights(s, i)
            a = [sigmoid(t - v) for v in row]
            big_a = math.fsum(w[j] * a[j] for j in range(n))
            denominator = big_a + LOG_EPS
            big_r = math.fsum(w[j] * v * v for j, v in enumerate(row))
            for k, v in enumerate(row):
                if k != i:
                    ranking = -(w[k] * (a[k] - big_a) - w[k] * dsigmoid(t - v)) / denominator
                    regulariser = bpreg * (w[k] * (v * v - big_r) + 2.0 * w[k] * v)
                    g[i][k] = ranking + regulariser
            g[i][i] = -math.fsum(w[j] * dsigmoid(t - v) for j, v in enumerate(row) if j != i) / denominator
        else:
            raise ValueError(kind)
    return g


def check_gradient(kind, s, log_p, **kw):
    """Central differences in float64 agree with the analytic gradient (a self-check of this script)."""
    analytic = loss_gradient(kind, s, log_p, **kw)
    step = 1e-6
    for i in range(len(s)):
        for j in range(len(s[0])):
            up, down = copy(s), copy(s)
            up[i][j] += step
            down[i][j] -= step
            numeric = (loss_value(kind, up, log_p, **kw) - loss_value(kind, down, log_p, **kw)) / (2 * step)
            scale = 1.0 + abs(loss_value(kind, s, log_p, **kw))
            assert abs(numeric - analytic[i][j]) < 1e-7 * scale, (kind, kw, i, j, numeric, analytic[i][j])
    return analytic


LOSSES = [
    {"kind": "top1"},
    {"kind": "bpr"},
    {"kind": "top1_max"},
    {"kind": "bpr_max", "bpreg": 0.0},
    {"kind": "bpr_max", "bpreg": 1.0},
    {"kind": "cross_entropy", "logq": 0.0},
    {"kind": "cross_entropy", "logq": 0.5},
    {"kind": "cross_entropy", "logq": 1.0},
]


def loss_fixture():
    m = 4
    cases = []
    # S = 0: square scores; S = 2: six columns; duplicate columns: six columns where target column 2 is the
    # same item as target column 0, and the extra negatives 4 and 5 are the same items as targets 1 and 3
    # (equal scores in every row, equal popularity). Nothing is masked for duplicates, as in GRU4Rec.
    s0 = rand_matrix(m, m, -2.0, 2.0)
    s2 = rand_matrix(m, m + 2, -2.0, 2.0)
    dup = rand_matrix(m, m + 2, -2.0, 2.0)
    duplicates = [(2, 0), (4, 1), (5, 3)]
    for row in dup:
        for copy_col, original in duplicates:
            row[copy_col] = row[original]
    p0 = rand_vector(m, -6.0, -1.0)
    p2 = rand_vector(m + 2, -6.0, -1.0)
    pdup = rand_vector(m + 2, -6.0, -1.0)
    for copy_col, original in duplicates:
        pdup[copy_col] = pdup[original]
    for name, scores, log_p in [("square", s0, p0), ("extra_negatives", s2, p2), ("duplicate_columns", dup, pdup)]:
        results = []
        for spec in LOSSES:
            kw = {k: v for k, v in spec.items() if k != "kind"}
            results.append(
                {
                    "loss": spec["kind"],
                    "bpreg": spec.get("bpreg"),
                    "logq": spec.get("logq"),
                    "value": loss_value(spec["kind"], scores, log_p, **kw),
                    "gradient": check_gradient(spec["kind"], scores, log_p, **kw),
                }
            )
        cases.append({"name": name, "scores": scores, "log_popularity": log_p, "losses": results})
    # Every negative far below zero (a linear output can get there): the softmax over negatives is still
    # well defined, and so are both max losses and their gradients.
    far = [[grid(-1.0, 1.0) if i == j else grid(-100.0, -92.0) for j in range(m + 2)] for i in range(m)]
    far_losses = []
    for spec in [{"kind": "top1_max"}, {"kind": "bpr_max", "bpreg": 0.01}]:
        kw = {k: v for k, v in spec.items() if k != "kind"}
        far_losses.append(
            {
                "loss": spec["kind"],
                "bpreg": spec.get("bpreg"),
                "logq": None,
                "value": loss_value(spec["kind"], far, None, **kw),
                "gradient": check_gradient(spec["kind"], far, None, **kw),
            }
        )
    far_case = {"name": "far_negative_scores", "scores": far, "log_popularity": None, "losses": far_losses}
    return {"rows": m, "cases": cases, "far_negative": far_case}


# ---------------------------------------------------------------- Adagrad


def adagrad_dense(value, acc, mom, grad, lr, mu, eps):
    value, acc, mom = copy(value), copy(acc), copy(mom)
    for r in range(len(value)):
        for c in range(len(value[0])):
            g = grad[r][c]
            acc[r][c] += g * g
            step = lr * g / math.sqrt(acc[r][c] + eps)
            if mu > 0:
                mom[r][c] = mu * mom[r][c] - step
                value[r][c] += mom[r][c]
            else:
                value[r][c] -= step
    return value, acc, mom


def adagrad_sparse(value, acc, mom, rows, grad_rows, lr, mu, eps):
    """The lazy rule: only the given rows change; the others keep value, accumulator and momentum."""
    value, acc, mom = copy(value), copy(acc), copy(mom)
    for r, grad in zip(rows, grad_rows):
        for c in range(len(value[0])):
            g = grad[c]
            acc[r][c] += g * g
            step = lr * g / math.sqrt(acc[r][c] + eps)
            if mu > 0:
                mom[r][c] = mu * mom[r][c] - step
                value[r][c] += mom[r][c]
            else:
                value[r][c] -= step
    return value, acc, mom


def adagrad_fixture():
    n_rows, width = 6, 3
    lr, eps = 0.1, 0.01  # eps large enough that sqrt(acc + eps) and sqrt(acc) + eps differ visibly
    value0 = rand_matrix(n_rows, width)
    # Unsorted rows; row 5 is skipped in steps 2 and 3 after moving in step 1, row 2 in step 3.
    row_sets = [[0, 2, 5], [2, 1], [4, 0, 3]]
    steps = []
    for rows in row_sets:
        grad_rows = [rand_vector(width, -0.5, 0.5) for _ in rows]
        padded = zeros(n_rows, width)
        for r, g in zip(rows, grad_rows):
            padded[r] = list(g)
        dense = rand_matrix(n_rows, width, -0.5, 0.5)
        steps.append({"rows": rows, "gradient_rows": grad_rows, "padded_gradient": padded, "dense_gradient": dense})

    runs = []
    for mu in [0.0, 0.3]:
        for mode in ["dense", "sparse", "dense_padded"]:
            value, acc, mom = value0, zeros(n_rows, width), zeros(n_rows, width)
            after = []
            for step in steps:
                if mode == "dense":
                    value, acc, mom = adagrad_dense(value, acc, mom, step["dense_gradient"], lr, mu, eps)
                elif mode == "dense_padded":
                    value, acc, mom = adagrad_dense(value, acc, mom, step["padded_gradient"], lr, mu, eps)
                else:
                    value, acc, mom = adagrad_sparse(value, acc, mom, step["rows"], step["gradient_rows"], lr, mu, eps)
                after.append({"value": value, "accumulator": acc, "momentum": mom})
            runs.append({"momentum": mu, "mode": mode, "after": after})
    return {"learning_rate": lr, "eps": eps, "value": value0, "steps": steps, "runs": runs}


# ---------------------------------------------------------------- output


def dump(obj, indent=0):
    """JSON with numeric vectors on one line, so that matrices read as rows."""
    pad = " " * indent
    if isinstance(obj, dict):
        items = [f'{pad} {json.dumps(k)}: {dump(v, indent + 1).lstrip()}' for k, v in obj.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in obj):
        return pad + "[" + ", ".join(json.dumps(x) for x in obj) + "]"
    if isinstance(obj, list):
        return pad + "[\n" + ",\n".join(dump(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return pad + json.dumps(obj)


def main():
    os.makedirs(OUT, exist_ok=True)
    # Fixed order: every fixture draws from the one seeded generator.
    fixtures = [
        ("gru.json", gru_fixture()),
        ("activation.json", activation_fixture()),
        ("loss.json", loss_fixture()),
        ("adagrad.json", adagrad_fixture()),
    ]
    for name, data in fixtures:
        text = dump(data) + "\n"
        json.loads(text)  # well-formed
        with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(os.path.join(OUT, name))}")


if __name__ == "__main__":
    main()
