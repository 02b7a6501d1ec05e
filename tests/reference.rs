//! Numeric tests of the lowering kernels (GRU step, activations, losses and their gradients, Adagrad) against
//! float64 reference fixtures.
//!
//! The fixtures in tests/fixtures/reference/ are written by scripts/reference/make_fixtures.py (plain Python,
//! float64, fixed seed) and committed; these tests only read them. Every input is a multiple of 1/256, so the
//! float32 tensors hold exactly the reference's inputs. A float32 result `got` matches a float64 expectation
//! `want` when `|got - want| <= TOL * (1 + |want|)`, i.e. 1e-5 absolute near zero and 1e-5 relative beyond.

use std::path::Path;

use prnn::check::{Activation, Loss};
use prnn::lower::gru::{gru_step, GruForm};
use prnn::lower::loss::{activate, loss as loss_of};
use prnn::lower::optim::{Adagrad, AdagradState};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-5;

type Matrix = Vec<Vec<f64>>;

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vector(v: &[f64]) -> Tensor {
    let values: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(&values).to_device(Device::Cpu)
}

fn matrix(m: &[Vec<f64>]) -> Tensor {
    let cols = m[0].len();
    assert!(m.iter().all(|row| row.len() == cols), "ragged matrix in a fixture");
    let values: Vec<f32> = m.iter().flatten().map(|&x| x as f32).collect();
    Tensor::from_slice(&values).reshape([m.len() as i64, cols as i64])
}

fn values(t: &Tensor) -> Vec<f64> {
    assert_eq!(t.kind(), Kind::Float, "kernels work in float32");
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn rows_tensor(rows: &[i64]) -> Tensor {
    Tensor::from_slice(rows)
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= TOL * (1.0 + want.abs())
}

/// Asserts every entry of `got` (shape `[rows, cols]` of `want`) is within tolerance of `want`.
fn assert_matrix(got: &Tensor, want: &[Vec<f64>], what: &str) {
    assert_eq!(got.size(), vec![want.len() as i64, want[0].len() as i64], "{what}: shape");
    let got = values(got);
    for (k, (g, w)) in got.iter().zip(want.iter().flatten()).enumerate() {
        let (i, j) = (k / want[0].len(), k % want[0].len());
        assert!(close(*g, *w), "{what}[{i}][{j}]: got {g}, want {w} (diff {:e})", g - w);
    }
}

fn assert_scalar(got: &Tensor, want: f64, what: &str) {
    assert_eq!(got.size(), Vec::<i64>::new(), "{what}: a scalar");
    let g = got.double_value(&[]);
    assert!(close(g, want), "{what}: got {g}, want {want} (diff {:e})", g - want);
}

/// Bit-for-bit equality of two float32 tensors.
fn assert_bitwise(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let g = Vec::<f32>::try_from(got.flatten(0, -1)).unwrap();
    let w = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what}: flat entry {k} changed from {b} to {a}");
    }
}

fn row(t: &Tensor, r: i64) -> Tensor {
    t.narrow(0, r, 1)
}

// ------------------------------------------------------------------------------------------------- GRU

#[derive(Deserialize)]
struct GruFixture {
    batch: usize,
    hidden: usize,
    cases: Vec<GruCase>,
}

#[derive(Deserialize)]
struct GruCase {
    name: String,
    form: String,
    h0: Matrix,
    w_hh: Matrix,
    b_hn: Option<Vec<f64>>,
    x_proj: Vec<Matrix>,
    expected: Vec<Matrix>,
}

fn form(name: &str) -> GruForm {
    match name {
        "reset_before_product" => GruForm::ResetBeforeProduct,
        "reset_after_product" => GruForm::ResetAfterProduct,
        _ => panic!("unknown GRU form `{name}` in gru.json"),
    }
}

#[test]
fn gru_step_matches_reference_in_both_forms() {
    let fixture: GruFixture = fixture("gru.json");
    let forms: Vec<&str> = fixture.cases.iter().map(|c| c.form.as_str()).collect();
    assert!(forms.contains(&"reset_before_product") && forms.contains(&"reset_after_product"));
    for case in &fixture.cases {
        let gru_form = form(&case.form);
        let w_hh = matrix(&case.w_hh);
        let b_hn = case.b_hn.as_deref().map(vector);
        assert_eq!(w_hh.size(), vec![fixture.hidden as i64, 3 * fixture.hidden as i64]);
        // Three steps, each from the kernel's own previous state (float32 all along).
        let mut h = matrix(&case.h0);
        assert_eq!(h.size(), vec![fixture.batch as i64, fixture.hidden as i64]);
        for (step, (x, want)) in case.x_proj.iter().zip(&case.expected).enumerate() {
            h = gru_step(gru_form, &matrix(x), &h, &w_hh, b_hn.as_ref());
            assert_matrix(&h, want, &format!("{} step {step}", case.name));
        }
        // One step from the reference's own previous state, so that errors cannot hide behind the recurrence.
        let h1 = gru_step(gru_form, &matrix(&case.x_proj[1]), &matrix(&case.expected[0]), &w_hh, b_hn.as_ref());
        assert_matrix(&h1, &case.expected[1], &format!("{} single step", case.name));
    }
}

#[test]
fn gru_reset_before_product_ignores_b_hn() {
    let fixture: GruFixture = fixture("gru.json");
    let case = fixture.cases.iter().find(|c| c.form == "reset_before_product").unwrap();
    let (x, h, w_hh) = (matrix(&case.x_proj[0]), matrix(&case.h0), matrix(&case.w_hh));
    let bias = vector(&vec![0.5; fixture.hidden]);
    let without = gru_step(GruForm::ResetBeforeProduct, &x, &h, &w_hh, None);
    let with = gru_step(GruForm::ResetBeforeProduct, &x, &h, &w_hh, Some(&bias));
    assert_bitwise(&with, &without, "reset-before-product with b_hn");
}

#[test]
fn gru_forms_differ_on_the_same_inputs() {
    // The fixtures would not catch a swapped form if both gave the same numbers.
    let fixture: GruFixture = fixture("gru.json");
    let case = &fixture.cases[0];
    let (x, h, w_hh) = (matrix(&case.x_proj[0]), matrix(&case.h0), matrix(&case.w_hh));
    let before = gru_step(GruForm::ResetBeforeProduct, &x, &h, &w_hh, None);
    let after = gru_step(GruForm::ResetAfterProduct, &x, &h, &w_hh, None);
    let diff = (&before - &after).abs().max().double_value(&[]);
    assert!(diff > 1e-2, "the two forms agree to {diff}");
}

// ------------------------------------------------------------------------------------------ activations

#[derive(Deserialize)]
struct ActivationFixture {
    scores: Matrix,
    cases: Vec<ActivationCase>,
}

#[derive(Deserialize)]
struct ActivationCase {
    activation: String,
    alpha: Option<f64>,
    expected: Matrix,
    derivative: Matrix,
}

#[test]
fn activations_and_their_derivatives_match_reference() {
    let fixture: ActivationFixture = fixture("activation.json");
    for case in &fixture.cases {
        let activation = match (case.activation.as_str(), case.alpha) {
            ("tanh", None) => Activation::Tanh,
            ("linear", None) => Activation::Linear,
            ("softmax", None) => Activation::Softmax,
            ("elu", Some(alpha)) => Activation::Elu { alpha },
            other => panic!("unknown activation {other:?} in activation.json"),
        };
        let what = format!("{activation:?}");
        let scores = matrix(&fixture.scores).set_requires_grad(true);
        let out = activate(activation, &scores);
        assert_matrix(&out, &case.expected, &what);
        out.sum(Kind::Float).backward();
        assert_matrix(&scores.grad(), &case.derivative, &format!("d {what}"));
    }
}

#[test]
fn elu_derivative_at_zero_is_one_sided() {
    let alpha = 0.5;
    let scores = Tensor::from_slice(&[0.0f32, -0.0]).set_requires_grad(true);
    activate(Activation::Elu { alpha }, &scores).sum(Kind::Float).backward();
    for d in values(&scores.grad()) {
        assert!(d == 1.0 || d == alpha, "elu'(0) = {d}, want 1 (from the right) or {alpha} (from the left)");
    }
}

// ------------------------------------------------------------------------------------------------ losses

#[derive(Deserialize)]
struct LossFixture {
    rows: usize,
    cases: Vec<LossCase>,
    far_negative: LossCase,
}

#[derive(Deserialize)]
struct LossCase {
    name: String,
    scores: Matrix,
    log_popularity: Option<Vec<f64>>,
    losses: Vec<LossResult>,
}

#[derive(Deserialize)]
struct LossResult {
    loss: String,
    bpreg: Option<f64>,
    logq: Option<f64>,
    value: f64,
    gradient: Matrix,
}

impl LossResult {
    fn kernel_loss(&self) -> Loss {
        match (self.loss.as_str(), self.bpreg, self.logq) {
            ("top1", None, None) => Loss::Top1,
            ("bpr", None, None) => Loss::Bpr,
            ("top1_max", None, None) => Loss::Top1Max,
            ("bpr_max", Some(bpreg), None) => Loss::BprMax { bpreg },
            ("cross_entropy", None, Some(logq)) => Loss::CrossEntropy { logq },
            _ => panic!("unknown loss {} in loss.json", self.loss),
        }
    }
}

#[test]
fn losses_and_their_gradients_match_reference() {
    let fixture: LossFixture = fixture("loss.json");
    let mut seen = std::collections::BTreeSet::new();
    for case in &fixture.cases {
        assert_eq!(case.scores.len(), fixture.rows);
        let log_p = vector(case.log_popularity.as_ref().unwrap());
        for result in &case.losses {
            let loss = result.kernel_loss();
            seen.insert(result.loss.clone());
            let what = format!("{} on {}", result.loss, case.name);
            let what = match (result.bpreg, result.logq) {
                (Some(bpreg), _) => format!("{what} (bpreg {bpreg})"),
                (_, Some(logq)) => format!("{what} (logq {logq})"),
                _ => what,
            };
            let scores = matrix(&case.scores).set_requires_grad(true);
            let value = loss_of(loss, &scores, Some(&log_p));
            assert_scalar(&value, result.value, &what);
            value.backward();
            assert_matrix(&scores.grad(), &result.gradient, &format!("d {what} / d scores"));
        }
    }
    let all = ["bpr", "bpr_max", "cross_entropy", "top1", "top1_max"];
    assert_eq!(seen.iter().map(String::as_str).collect::<Vec<_>>(), all, "every loss is covered");
}

#[test]
fn cross_entropy_without_logq_ignores_popularity() {
    let fixture: LossFixture = fixture("loss.json");
    for case in &fixture.cases {
        let scores = matrix(&case.scores);
        let log_p = vector(case.log_popularity.as_ref().unwrap());
        let plain = loss_of(Loss::CrossEntropy { logq: 0.0 }, &scores, None);
        let given = loss_of(Loss::CrossEntropy { logq: 0.0 }, &scores, Some(&log_p));
        assert_bitwise(&given, &plain, &format!("cross-entropy logq 0 on {}", case.name));
    }
}

#[test]
fn logq_changes_cross_entropy() {
    // Guards the fixtures: logq > 0 must give another value than logq = 0, or the logQ case tests nothing.
    let fixture: LossFixture = fixture("loss.json");
    for case in &fixture.cases {
        let values: Vec<f64> = case.losses.iter().filter(|r| r.loss == "cross_entropy").map(|r| r.value).collect();
        assert!(values.len() >= 2 && values.windows(2).all(|w| (w[0] - w[1]).abs() > 1e-2), "{}: {values:?}", case.name);
    }
}

#[test]
fn max_losses_stay_finite_when_every_negative_is_far_below_zero() {
    let fixture: LossFixture = fixture("loss.json");
    let case = &fixture.far_negative;
    for result in &case.losses {
        let what = format!("{} on {}", result.loss, case.name);
        let scores = matrix(&case.scores).set_requires_grad(true);
        let value = loss_of(result.kernel_loss(), &scores, None);
        assert_scalar(&value, result.value, &what);
        value.backward();
        assert_matrix(&scores.grad(), &result.gradient, &format!("d {what} / d scores"));
    }
}

// ----------------------------------------------------------------------------------------------- Adagrad

#[derive(Deserialize)]
struct AdagradFixture {
    learning_rate: f64,
    eps: f64,
    value: Matrix,
    steps: Vec<AdagradStep>,
    runs: Vec<AdagradRun>,
}

#[derive(Deserialize)]
struct AdagradStep {
    rows: Vec<i64>,
    gradient_rows: Matrix,
    padded_gradient: Matrix,
    dense_gradient: Matrix,
}

#[derive(Deserialize)]
struct AdagradRun {
    momentum: f64,
    mode: String,
    after: Vec<AdagradAfter>,
}

#[derive(Deserialize)]
struct AdagradAfter {
    value: Matrix,
    accumulator: Matrix,
    momentum: Matrix,
}

impl AdagradFixture {
    fn optimizer(&self, momentum: f64) -> Adagrad {
        Adagrad { learning_rate: self.learning_rate, momentum, eps: self.eps }
    }

    fn run(&self, momentum: f64, mode: &str) -> &AdagradRun {
        self.runs
            .iter()
            .find(|r| r.momentum == momentum && r.mode == mode)
            .unwrap_or_else(|| panic!("no {mode} run at momentum {momentum} in adagrad.json"))
    }

    fn momenta(&self) -> Vec<f64> {
        let mut momenta: Vec<f64> = self.runs.iter().map(|r| r.momentum).collect();
        momenta.dedup();
        momenta
    }

    fn untouched(&self, step: &AdagradStep) -> Vec<i64> {
        (0..self.value.len() as i64).filter(|r| !step.rows.contains(r)).collect()
    }
}

fn assert_state(value: &Tensor, state: &AdagradState, want: &AdagradAfter, what: &str) {
    assert_matrix(value, &want.value, &format!("{what}: value"));
    assert_matrix(&state.accumulator, &want.accumulator, &format!("{what}: accumulator"));
    if let Some(momentum) = &state.momentum {
        assert_matrix(momentum, &want.momentum, &format!("{what}: momentum"));
    } else {
        assert!(want.momentum.iter().flatten().all(|&m| m == 0.0), "{what}: the reference has momentum");
    }
}

/// A snapshot of value, accumulator and momentum.
fn snapshot(value: &Tensor, state: &AdagradState) -> [Tensor; 3] {
    let momentum = state.momentum.as_ref().map_or_else(|| value.zeros_like(), Tensor::copy);
    [value.copy(), state.accumulator.copy(), momentum]
}

#[test]
fn adagrad_dense_matches_reference() {
    let fixture: AdagradFixture = fixture("adagrad.json");
    assert!(fixture.momenta().contains(&0.0) && fixture.momenta().iter().any(|&m| m > 0.0));
    for mu in fixture.momenta() {
        let optimizer = fixture.optimizer(mu);
        let run = fixture.run(mu, "dense");
        let mut value = matrix(&fixture.value);
        let mut state = AdagradState::zeros_like(&value, mu > 0.0);
        for (k, (step, want)) in fixture.steps.iter().zip(&run.after).enumerate() {
            optimizer.dense_step(&mut value, &mut state, &matrix(&step.dense_gradient));
            assert_state(&value, &state, want, &format!("dense, momentum {mu}, step {k}"));
        }
    }
}

#[test]
fn adagrad_sparse_without_momentum_is_dense_on_touched_rows() {
    let fixture: AdagradFixture = fixture("adagrad.json");
    let optimizer = fixture.optimizer(0.0);
    let run = fixture.run(0.0, "sparse");
    let mut sparse_value = matrix(&fixture.value);
    // A momentum buffer is carried to check that μ = 0 leaves it alone.
    let mut sparse = AdagradState::zeros_like(&sparse_value, true);
    let mut dense_value = matrix(&fixture.value);
    let mut dense = AdagradState::zeros_like(&dense_value, false);
    for (k, (step, want)) in fixture.steps.iter().zip(&run.after).enumerate() {
        let what = format!("sparse, momentum 0, step {k}");
        let before = snapshot(&sparse_value, &sparse);
        let rows = rows_tensor(&step.rows);
        optimizer.sparse_step(&mut sparse_value, &mut sparse, &rows, &matrix(&step.gradient_rows));
        optimizer.dense_step(&mut dense_value, &mut dense, &matrix(&step.padded_gradient));
        assert_state(&sparse_value, &sparse, want, &what);
        let after = snapshot(&sparse_value, &sparse);
        for r in fixture.untouched(step) {
            for (name, (a, b)) in ["value", "accumulator", "momentum"].iter().zip(after.iter().zip(&before)) {
                assert_bitwise(&row(a, r), &row(b, r), &format!("{what}: untouched row {r}: {name}"));
            }
        }
        // Dense Adagrad with a gradient that is zero off the rows: the same numbers everywhere.
        let dense_want: Matrix = values(&dense_value).chunks(fixture.value[0].len()).map(<[f64]>::to_vec).collect();
        assert_matrix(&sparse_value, &dense_want, &format!("{what}: against dense"));
        let dense_acc: Matrix = values(&dense.accumulator).chunks(fixture.value[0].len()).map(<[f64]>::to_vec).collect();
        assert_matrix(&sparse.accumulator, &dense_acc, &format!("{what}: accumulator against dense"));
    }
    assert_bitwise(sparse.momentum.as_ref().unwrap(), &sparse_value.zeros_like(), "momentum at μ = 0");
}

#[test]
fn adagrad_sparse_with_momentum_is_lazy() {
    let fixture: AdagradFixture = fixture("adagrad.json");
    let mut skipped_after_moving = 0;
    for mu in fixture.momenta().into_iter().filter(|&m| m > 0.0) {
        let optimizer = fixture.optimizer(mu);
        let lazy = fixture.run(mu, "sparse");
        let eager = fixture.run(mu, "dense_padded");
        let mut value = matrix(&fixture.value);
        let mut state = AdagradState::zeros_like(&value, true);
        let mut dense_value = matrix(&fixture.value);
        let mut dense = AdagradState::zeros_like(&dense_value, true);
        for (k, step) in fixture.steps.iter().enumerate() {
            let what = format!("sparse, momentum {mu}, step {k}");
            let before = snapshot(&value, &state);
            let rows = rows_tensor(&step.rows);
            optimizer.sparse_step(&mut value, &mut state, &rows, &matrix(&step.gradient_rows));
            optimizer.dense_step(&mut dense_value, &mut dense, &matrix(&step.padded_gradient));
            assert_state(&value, &state, &lazy.after[k], &what);
            assert_state(&dense_value, &dense, &eager.after[k], &format!("dense (padded), momentum {mu}, step {k}"));
            let after = snapshot(&value, &state);
            for r in fixture.untouched(step) {
                // Not moved, momentum not decayed, accumulator untouched: bit for bit.
                for (name, (a, b)) in ["value", "accumulator", "momentum"].iter().zip(after.iter().zip(&before)) {
                    assert_bitwise(&row(a, r), &row(b, r), &format!("{what}: untouched row {r}: {name}"));
                }
                // A row with momentum that the step skips: the dense update moves it, the lazy one does not.
                let had_momentum = row(&before[2], r).abs().max().double_value(&[]) > 0.0;
                if had_momentum {
                    skipped_after_moving += 1;
                    let gap = (row(&value, r) - row(&dense_value, r)).abs().max().double_value(&[]);
                    assert!(gap > 1e-3, "{what}: row {r}: lazy and dense updates agree to {gap}");
                    let moved = (row(&dense_value, r) - row(&before[0], r)).abs().max().double_value(&[]);
                    assert!(moved > 1e-3, "{what}: row {r}: dense momentum should have moved it, moved {moved}");
                }
            }
        }
    }
    assert!(skipped_after_moving >= 2, "the fixtures skip a row that has momentum {skipped_after_moving} times");
}
