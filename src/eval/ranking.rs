//! Exact ranks against the whole catalogue on the CPU, in two passes: a low-precision product bounds every
//! item's score against the target's, and only the items that bound leaves undecided are scored again exactly.
//!
//! # What "exact" means
//!
//! The merged scores are one product, `s_j = c_j + x · W_j` ([`crate::lower::autograd::output_table`]). An
//! exact score is that expression in float32 with one fixed order of operations, [`exact_score`]: sixteen
//! lanes of products and sums over the width, the lanes added pairwise, then the bias. A BLAS product's
//! float32 result depends on the shapes it is given (scoring 300 items of a row again in a smaller MKL
//! product gave the full product's bits for only 10-16% of them), so ranks exact against a BLAS product
//! could not be rechecked item by item. Every ranking here, the recheck and the all-exact reference
//! ([`exact_ranks`]) alike, scores through that one function, so the two passes give the reference's
//! ranks, tie for tie.
//!
//! # The bound
//!
//! The first pass multiplies `x' = [x̃, 1, 1, 1, -t₁, -t₂, -t₃]` by `W'_j = [W̃_j, c₁, c₂, c₃, 1, 1, 1]`, where
//! `x̃, W̃` are `x, W` rounded to the pass's precision (bfloat16, or float32 itself), `c₁ + c₂ + c₃` is the
//! bias and `t₁ + t₂ + t₃` the target's exact score, each split into pieces of that precision. The product
//! is then about `s_j - s_t` itself: near the target's score, where ranks are decided, it is near zero, and
//! rounding it to the pass's precision costs almost nothing. With `u` the pass's unit roundoff, `γ` float32's
//! `(width + 7) · 2⁻²⁴` and Cauchy-Schwarz for each sum of products, the product `v` differs from
//! `s_j - s_t` by at most
//!
//! ```text
//! u/(1-u)·|v|  +  (‖x - x̃‖ + 2γ·max(‖x‖, ‖x̃‖))·max(‖W_j‖, ‖W̃_j‖)  +  ‖x‖·‖W_j - W̃_j‖
//!              +  2.02γ·|c_j| + |c_j - Σcᵢ|  +  1.01γ·|s_t| + |s_t - Σtᵢ|  +  10⁻³⁰
//! ```
//!
//! (the output rounding; the inputs' rounding; float32 accumulation in the product and in [`exact_score`];
//! the pieces' remainders; products that hardware flushes to zero). An item whose `v` lies below minus
//! that bound scores below the target, one above it scores above; the rest are scored exactly. Every
//! recheck also checks the bound: an item whose exact score falls outside it would make the whole row be
//! counted exactly, and is counted in [`Ranker::bound_misses`] (no test or run has seen one).
//!
//! Rows or items the bound cannot cover (a non-finite value, norms beyond 10¹⁵, scores beyond 10³⁰) are
//! scored exactly, every time.

use tch::{Device, Kind, Tensor};

use crate::config::Ties;
use crate::lower::fused::kernels::vectorised;
use crate::runtime::parallel;

/// Lanes of [`exact_dot`]: fixed, so the result is the same whatever vector width the CPU has.
const LANES: usize = 16;

/// Norms beyond this are not bounded; such rows and items are scored exactly.
const NORM_LIMIT: f64 = 1e15;
/// Biases and target scores beyond this are scored exactly.
const SCORE_LIMIT: f64 = 1e30;
/// Float32's unit roundoff.
const UNIT: f64 = 1.0 / (1u64 << 24) as f64;
/// Every bound term is made this much larger when it is rounded to float32, so that the float32 sum
/// of the terms stays above the true bound.
const INFLATE: f64 = 1.0 + 1.0 / 1024.0;

/// `x · w` in float32, in the fixed order every exact score uses: lane `l % 16` sums the products of
/// positions `l`, `l + 16`, ... in order, then the lanes are added pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1).
/// Products and sums round separately (no fused multiply-add), so every CPU gives the same bits.
#[inline(always)]
pub fn exact_dot(x: &[f32], w: &[f32]) -> f32 {
    assert_eq!(x.len(), w.len(), "a dot product of vectors of different lengths");
    let mut lanes = [0.0f32; LANES];
    let whole = x.len() / LANES * LANES;
    for (xs, ws) in x[..whole].chunks_exact(LANES).zip(w[..whole].chunks_exact(LANES)) {
        for lane in 0..LANES {
            lanes[lane] += xs[lane] * ws[lane];
        }
    }
    for (lane, (a, b)) in x[whole..].iter().zip(&w[whole..]).enumerate() {
        lanes[lane] += a * b;
    }
    let mut width = LANES / 2;
    while width > 0 {
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The exact score of an item with output row `w` and bias `bias` for the scored state `x`: `bias + x · w`.
#[inline(always)]
pub fn exact_score(x: &[f32], w: &[f32], bias: f32) -> f32 {
    bias + exact_dot(x, w)
}

vectorised! {
    /// [`exact_score`] of `items` (indices into `weights` `[n, x.len()]` and `bias`), into `out`.
    pub fn exact_scores(x: &[f32], weights: &[f32], bias: &[f32], items: &[u32], out: &mut [f32]) {
        let width = x.len();
        for (&item, score) in items.iter().zip(out.iter_mut()) {
            let item = item as usize;
            *score = exact_score(x, &weights[item * width..(item + 1) * width], bias[item]);
        }
    }
}

vectorised! {
    /// [`exact_score`] of each `(position, row)` pair: the item `covered[position]` for the row `row` of `x`.
    fn exact_pair_scores(x: &[f32], weights: &[f32], bias: &[f32], covered: &[u32], pairs: &[(u32, u32)], out: &mut [f32]) {
        let width = weights.len() / bias.len().max(1);
        for (&(position, row), score) in pairs.iter().zip(out.iter_mut()) {
            let (item, row) = (covered[position as usize] as usize, row as usize);
            *score = exact_score(&x[row * width..(row + 1) * width], &weights[item * width..(item + 1) * width], bias[item]);
        }
    }
}

/// Whether `value` is above `limit` or either is NaN: a NaN competitor outranks the target, as in
/// [`super::metrics`].
#[inline(always)]
fn beyond<T: PartialOrd>(value: T, limit: T) -> bool {
    !matches!(value.partial_cmp(&limit), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
}

/// The precision of the first pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPass {
    /// bfloat16 products: about three times float32's speed where the CPU multiplies bfloat16 in hardware.
    BFloat16,
    /// float32 products: few rechecks; for CPUs without bfloat16 instructions.
    Float32,
}

impl FirstPass {
    /// bfloat16 where the CPU has bfloat16 products (AVX-512 BF16 or AMX), float32 elsewhere.
    pub fn for_this_cpu() -> FirstPass {
        if crate::runtime::cpu::has_bfloat16_products() {
            FirstPass::BFloat16
        } else {
            FirstPass::Float32
        }
    }

    /// Pieces that split a float32 bias or score exactly (up to a remainder the bound counts).
    fn pieces(self) -> usize {
        match self {
            FirstPass::BFloat16 => 3,
            FirstPass::Float32 => 1,
        }
    }

    /// Unit roundoff of the pass's output.
    fn unit(self) -> f64 {
        match self {
            FirstPass::BFloat16 => 1.0 / 256.0,
            FirstPass::Float32 => UNIT,
        }
    }

    fn kind(self) -> Kind {
        match self {
            FirstPass::BFloat16 => Kind::BFloat16,
            FirstPass::Float32 => Kind::Float,
        }
    }
}

/// `value` rounded to the nearest bfloat16 (ties to even), as its bits; subnormal results become zero, as
/// bfloat16 dot-product instructions treat them. Callers keep `value` finite and below 10³⁰.
fn to_bfloat16(value: f32) -> u16 {
    let bits = value.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    if rounded & 0x7f80 == 0 {
        rounded & 0x8000
    } else {
        rounded
    }
}

fn from_bfloat16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `value` in the pass's precision, as float32, and as that precision's bits (bfloat16) or value (float32).
fn round(pass: FirstPass, value: f32) -> f32 {
    match pass {
        FirstPass::BFloat16 => from_bfloat16(to_bfloat16(value)),
        FirstPass::Float32 => value,
    }
}

/// `value` as `pieces` values of the pass's precision whose sum approaches it; the remainder is returned.
fn split(pass: FirstPass, value: f32, pieces: &mut [f32]) -> f64 {
    let mut rest = value;
    for piece in pieces.iter_mut() {
        *piece = round(pass, rest);
        // Exact in float32: `piece` is `rest` rounded to fewer bits, so their difference is representable.
        rest -= *piece;
    }
    f64::from(rest).abs()
}

/// `value` rounded up to float32 after [`INFLATE`].
fn upper(value: f64) -> f32 {
    (value * INFLATE) as f32
}

fn norm(values: impl Iterator<Item = f32>) -> f64 {
    values.map(|v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt()
}

/// One row's side of the bound.
#[derive(Clone, Copy)]
struct RowBound {
    /// Multiplies each item's weight norm.
    per_norm: f32,
    /// Multiplies each item's rounding residual: `‖x‖`.
    per_residual: f32,
    /// Added to every item's bound.
    constant: f32,
}

/// Ranks rows of scored states against a fixed catalogue (one [`crate::lower::autograd::OutputTable`]).
pub struct Ranker {
    pass: FirstPass,
    /// The first pass's `[covered, width + 2·pieces]` matrix.
    table: Tensor,
    /// `γ` of the module documentation.
    gamma: f64,
    catalogue: Catalogue,
    /// The first pass's products, `[rows, covered]`, kept between batches.
    products: Option<Tensor>,
    rechecked: u64,
    bound_misses: u64,
}

/// What the threads of a ranking pass read.
struct Catalogue {
    ties: Ties,
    width: usize,
    /// `[n_items, width]` float32, and the biases: what exact scores read.
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// Whether each item competes (all items, or a candidate mask).
    competes: Option<Vec<bool>>,
    /// How many items compete.
    n_competitors: u64,
    /// The competitors the first pass covers, in the order of its table's rows (ascending).
    covered: Vec<u32>,
    /// The competitors it cannot bound, scored exactly for every row.
    uncovered: Vec<u32>,
    /// Per covered item: `max(‖W_j‖, ‖W̃_j‖)`, `‖W_j - W̃_j‖` and its bias terms, each rounded up.
    item_norm: Vec<f32>,
    item_residual: Vec<f32>,
    item_constant: Vec<f32>,
    /// The output's rounding, relative to its magnitude.
    output_unit: f32,
}

impl Ranker {
    /// A ranker over `weights` `[bias.len(), width]` and `bias` (float32, as exact scores read them), the
    /// items of `candidates` competing (every item without it), ties broken as `ties`.
    pub fn new(weights: Vec<f32>, bias: Vec<f32>, width: usize, candidates: Option<&[bool]>, ties: Ties, pass: FirstPass) -> Ranker {
        let n_items = bias.len();
        assert_eq!(weights.len(), n_items * width, "weights must be [items, width]");
        if let Some(mask) = candidates {
            assert_eq!(mask.len(), n_items, "the candidate mask must have one entry per item");
        }
        let pieces = pass.pieces();
        let table_width = width + 2 * pieces;
        let gamma = (table_width + 1) as f64 * UNIT / (1.0 - (table_width + 1) as f64 * UNIT);
        let mut covered = Vec::new();
        let mut uncovered = Vec::new();
        let mut rows: Vec<f32> = Vec::new();
        let (mut item_norm, mut item_residual, mut item_constant) = (Vec::new(), Vec::new(), Vec::new());
        let mut bias_pieces = vec![0.0f32; pieces];
        for item in 0..n_items {
            if candidates.is_some_and(|mask| !mask[item]) {
                continue;
            }
            let w = &weights[item * width..(item + 1) * width];
            let c = bias[item];
            let weight_norm = norm(w.iter().copied());
            let coverable =
                w.iter().all(|v| v.is_finite()) && weight_norm <= NORM_LIMIT && c.is_finite() && f64::from(c).abs() <= SCORE_LIMIT;
            if !coverable {
                uncovered.push(item as u32);
                continue;
            }
            covered.push(item as u32);
            let start = rows.len();
            rows.extend(w.iter().map(|&v| round(pass, v)));
            let rounded_norm = norm(rows[start..].iter().copied());
            let residual = norm(w.iter().zip(&rows[start..]).map(|(&v, &r)| v - r));
            let bias_rest = split(pass, c, &mut bias_pieces);
            rows.extend_from_slice(&bias_pieces);
            rows.extend(std::iter::repeat_n(1.0, pieces));
            item_norm.push(upper(weight_norm.max(rounded_norm)));
            item_residual.push(upper(residual));
            item_constant.push(upper(2.02 * gamma * f64::from(c).abs() + bias_rest));
        }
        let table = host_tensor(pass, &rows, covered.len(), table_width);
        let n_competitors = candidates.map_or(n_items as u64, |mask| mask.iter().filter(|&&m| m).count() as u64);
        let catalogue = Catalogue {
            ties,
            width,
            weights,
            bias,
            competes: candidates.map(<[bool]>::to_vec),
            n_competitors,
            covered,
            uncovered,
            item_norm,
            item_residual,
            item_constant,
            output_unit: upper(pass.unit() / (1.0 - pass.unit())),
        };
        Ranker { pass, table, gamma, catalogue, products: None, rechecked: 0, bound_misses: 0 }
    }

    /// Items scored exactly after the first pass so far, over all rows.
    pub fn rechecked(&self) -> u64 {
        self.rechecked
    }

    /// Rechecked items whose exact score fell outside the first pass's bound (their rows were then counted
    /// exactly): a broken assumption about the product, never a wrong rank.
    pub fn bound_misses(&self) -> u64 {
        self.bound_misses
    }

    /// The 1-based rank of each row's target, `x` `[targets.len(), width]` the rows' scored states, in two
    /// passes. Competitors, ties and NaN are handled as in [`super::metrics`].
    pub fn ranks(&mut self, x: &[f32], targets: &[u32]) -> Vec<f64> {
        let (width, rows) = (self.catalogue.width, targets.len());
        assert_eq!(x.len(), rows * width, "x must be [targets, width]");
        let target_scores = self.catalogue.target_scores(x, targets);
        let pieces = self.pass.pieces();
        let table_width = width + 2 * pieces;
        // Rows the first pass can bound get their side of the bound; the others are counted exactly.
        let mut inputs = vec![0.0f32; rows * table_width];
        let mut bounds: Vec<Option<RowBound>> = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = &x[r * width..(r + 1) * width];
            let target = target_scores[r];
            let x_norm = norm(row.iter().copied());
            if !(row.iter().all(|v| v.is_finite()) && x_norm <= NORM_LIMIT && f64::from(target).abs() <= SCORE_LIMIT) {
                bounds.push(None);
                continue;
            }
            let input = &mut inputs[r * table_width..(r + 1) * table_width];
            for (rounded, &v) in input.iter_mut().zip(row) {
                *rounded = round(self.pass, v);
            }
            let rounded_norm = norm(input[..width].iter().copied());
            let residual = norm(row.iter().zip(&input[..width]).map(|(&v, &r)| v - r));
            input[width..width + pieces].fill(1.0);
            let target_rest = split(self.pass, -target, &mut input[width + pieces..]);
            bounds.push(Some(RowBound {
                per_norm: upper(residual + 2.0 * self.gamma * x_norm.max(rounded_norm)),
                per_residual: upper(x_norm),
                constant: upper(1.01 * self.gamma * f64::from(target).abs() + target_rest + 1e-30),
            }));
        }
        let covered = self.catalogue.covered.len();
        let any_bounded = covered > 0 && bounds.iter().any(Option::is_some);
        if any_bounded {
            let inputs = host_tensor(self.pass, &inputs, rows, table_width);
            // One buffer for every batch: allocating `[rows, catalogue]` anew each time costs page faults.
            let buffer = match self.products.take() {
                Some(buffer) if buffer.size()[0] >= rows as i64 => buffer,
                _ => Tensor::empty([rows as i64, covered as i64], (self.pass.kind(), Device::Cpu)),
            };
            let _ = inputs.mm_out(&buffer.narrow(0, 0, rows as i64), &self.table.tr());
            self.products = Some(buffer);
        }
        let products = self.products.as_ref().filter(|_| any_bounded).map(|products| Products::of(self.pass, products, rows * covered));
        let this = &self.catalogue;

        // The first pass: per row, the items surely above the target, and the positions it leaves undecided.
        let mut first: Vec<(u64, Vec<u32>)> = vec![(0, Vec::new()); rows];
        let parts = parallel::parts_for(rows * covered.max(1)).min(rows.max(1));
        parallel::for_each_row_block(&mut first, 1, parts, &|_, block_rows, mine| {
            for (r, (above, undecided)) in block_rows.zip(mine.iter_mut()) {
                if let (Some(bound), Some(products)) = (bounds[r], products) {
                    *above = this.scan(products.row(r, covered), bound, undecided);
                }
            }
        });
        // The recheck, item by item: the rows that left an item undecided score it one after another, so
        // its weights are read from memory once per batch.
        let mut pairs: Vec<(u32, u32)> =
            first.iter().enumerate().flat_map(|(r, (_, undecided))| undecided.iter().map(move |&p| (p, r as u32))).collect();
        pairs.sort_unstable();
        let mut rechecked = vec![0.0f32; pairs.len()];
        let parts = parallel::parts_for(pairs.len() * width).min(pairs.len().max(1));
        parallel::for_each_row_block(&mut rechecked, 1, parts, &|_, range, scores| {
            exact_pair_scores(x, &this.weights, &this.bias, &this.covered, &pairs[range], scores);
        });
        let mut counts: Vec<RowCounts> = first.iter().map(|(above, _)| RowCounts { above: *above, ..RowCounts::default() }).collect();
        let mut target_seen = vec![false; rows];
        for (&(position, r), &score) in pairs.iter().zip(&rechecked) {
            let (position, r) = (position as usize, r as usize);
            let (Some(bound), Some(products)) = (bounds[r], products) else { unreachable!("only bounded rows leave items undecided") };
            let target_score = target_scores[r];
            let value = products.row(r, covered).value(position);
            let allowed = this.item_bounds().at(position, value, bound);
            let counts = &mut counts[r];
            counts.bound_missed |= beyond((f64::from(value) - (f64::from(score) - f64::from(target_score))).abs(), f64::from(allowed));
            counts.rechecked += 1;
            counts.above += u64::from(beyond(score, target_score));
            counts.equal += u64::from(score == target_score);
            target_seen[r] |= this.covered[position] == targets[r];
        }
        // The target's own product lies within its bound of zero, so a covered target is always rechecked:
        // one the first pass decided is a miss. Rows without a first pass, and rows with a miss, are
        // counted exactly.
        for (r, counts) in counts.iter_mut().enumerate() {
            let target = targets[r];
            let target_covered =
                this.competes.as_ref().is_none_or(|mask| mask[target as usize]) && this.covered.binary_search(&target).is_ok();
            counts.bound_missed |= bounds[r].is_some() && products.is_some() && target_covered && !target_seen[r];
        }
        let exact = |r: usize, counts: &RowCounts| bounds[r].is_none() || products.is_none() || counts.bound_missed;
        let exact_rows = counts.iter().enumerate().filter(|(r, counts)| exact(*r, counts)).count();
        let work = (exact_rows * covered + rows * this.uncovered.len()) * width;
        parallel::for_each_row_block(&mut counts, 1, parallel::parts_for(work).min(rows.max(1)), &|_, block_rows, mine| {
            let mut scores = Vec::new();
            for (r, counts) in block_rows.zip(mine.iter_mut()) {
                let row = &x[r * width..(r + 1) * width];
                if exact(r, counts) {
                    let (above, equal) = this.exact_counts(row, target_scores[r], &mut scores);
                    *counts = RowCounts { above, equal, rechecked: 0, bound_missed: counts.bound_missed };
                } else {
                    let (above, equal) = this.counts_of(row, target_scores[r], &this.uncovered, &mut scores);
                    counts.above += above;
                    counts.equal += equal;
                }
            }
        });
        self.rechecked += counts.iter().map(|c| c.rechecked).sum::<u64>();
        self.bound_misses += counts.iter().filter(|c| c.bound_missed).count() as u64;
        (0..rows).map(|r| self.catalogue.rank(counts[r].above, counts[r].equal, targets[r], target_scores[r])).collect()
    }

    /// [`Ranker::ranks`] with every competitor scored exactly: the reference the two passes must equal.
    pub fn exact_ranks(&self, x: &[f32], targets: &[u32]) -> Vec<f64> {
        let width = self.catalogue.width;
        assert_eq!(x.len(), targets.len() * width, "x must be [targets, width]");
        let target_scores = self.catalogue.target_scores(x, targets);
        let mut scores = Vec::new();
        (0..targets.len())
            .map(|r| {
                let (above, equal) = self.catalogue.exact_counts(&x[r * width..(r + 1) * width], target_scores[r], &mut scores);
                self.catalogue.rank(above, equal, targets[r], target_scores[r])
            })
            .collect()
    }
}

impl Catalogue {
    fn target_scores(&self, x: &[f32], targets: &[u32]) -> Vec<f32> {
        let width = self.width;
        let mut scores = vec![0.0f32; targets.len()];
        for (r, (&target, score)) in targets.iter().zip(scores.iter_mut()).enumerate() {
            assert!((target as usize) < self.bias.len(), "target {target} is not an item of the catalogue");
            exact_scores(&x[r * width..(r + 1) * width], &self.weights, &self.bias, &[target], std::slice::from_mut(score));
        }
        scores
    }

    /// How many competitors score above `target_score` (NaN counting above) and how many equal it, every
    /// score exact.
    fn exact_counts(&self, x: &[f32], target_score: f32, scores: &mut Vec<f32>) -> (u64, u64) {
        let (covered, uncovered) =
            (self.counts_of(x, target_score, &self.covered, scores), self.counts_of(x, target_score, &self.uncovered, scores));
        (covered.0 + uncovered.0, covered.1 + uncovered.1)
    }

    /// [`Catalogue::exact_counts`] over `items` only.
    fn counts_of(&self, x: &[f32], target_score: f32, items: &[u32], scores: &mut Vec<f32>) -> (u64, u64) {
        let (mut above, mut equal) = (0, 0);
        for items in items.chunks(1024) {
            scores.resize(items.len(), 0.0);
            exact_scores(x, &self.weights, &self.bias, items, scores);
            for &score in scores.iter() {
                above += u64::from(beyond(score, target_score));
                equal += u64::from(score == target_score);
            }
        }
        (above, equal)
    }

    fn item_bounds(&self) -> ItemBounds<'_> {
        ItemBounds { norm: &self.item_norm, residual: &self.item_residual, constant: &self.item_constant, output_unit: self.output_unit }
    }

    /// The first pass over one row: how many covered items are surely above the target, with the positions
    /// of those it leaves undecided pushed to `undecided`.
    fn scan(&self, products: RowProducts<'_>, bound: RowBound, undecided: &mut Vec<u32>) -> u64 {
        let items = self.item_bounds();
        match products {
            RowProducts::BFloat16(values) => scan_bfloat16(values, items, bound, undecided),
            RowProducts::Float32(values) => scan_float32(values, items, bound, undecided),
        }
    }

    fn target_counted(&self, target: u32) -> u64 {
        self.competes.as_ref().map_or(1, |mask| u64::from(mask[target as usize]))
    }

    /// The rank from the counts of competitors above and equal to the target (the target among them when it
    /// competes), as [`super::metrics::target_ranks`] defines it.
    fn rank(&self, above: u64, equal: u64, target: u32, target_score: f32) -> f64 {
        let target_counted = self.target_counted(target);
        if target_score.is_nan() {
            return (self.n_competitors + 1 - target_counted) as f64;
        }
        let tied_others = equal.saturating_sub(target_counted) as f64;
        let above = above as f64;
        match self.ties {
            Ties::Standard => above + 1.0,
            Ties::Conservative => above + tied_others + 1.0,
            Ties::Median => above + 1.0 + tied_others * 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RowCounts {
    above: u64,
    equal: u64,
    rechecked: u64,
    bound_missed: bool,
}

/// The first pass's products of every row, in host memory.
#[derive(Clone, Copy)]
enum Products<'a> {
    BFloat16(&'a [u16]),
    Float32(&'a [f32]),
}

impl<'a> Products<'a> {
    /// The first `len` products of the buffer `products`.
    fn of(pass: FirstPass, products: &'a Tensor, len: usize) -> Products<'a> {
        assert!(products.device() == Device::Cpu && products.is_contiguous() && products.kind() == pass.kind() && len <= products.numel());
        // Safety: a contiguous CPU tensor of `len` elements of that kind, alive and unchanged while borrowed.
        unsafe {
            match pass {
                FirstPass::BFloat16 => Products::BFloat16(std::slice::from_raw_parts(products.data_ptr() as *const u16, len)),
                FirstPass::Float32 => Products::Float32(std::slice::from_raw_parts(products.data_ptr() as *const f32, len)),
            }
        }
    }

    fn row(self, r: usize, width: usize) -> RowProducts<'a> {
        match self {
            Products::BFloat16(values) => RowProducts::BFloat16(&values[r * width..(r + 1) * width]),
            Products::Float32(values) => RowProducts::Float32(&values[r * width..(r + 1) * width]),
        }
    }
}

#[derive(Clone, Copy)]
enum RowProducts<'a> {
    BFloat16(&'a [u16]),
    Float32(&'a [f32]),
}

impl RowProducts<'_> {
    fn value(self, position: usize) -> f32 {
        match self {
            RowProducts::BFloat16(values) => from_bfloat16(values[position]),
            RowProducts::Float32(values) => values[position],
        }
    }
}

/// The items' side of the bound, in the order of the first pass's table.
#[derive(Clone, Copy)]
struct ItemBounds<'a> {
    norm: &'a [f32],
    residual: &'a [f32],
    constant: &'a [f32],
    output_unit: f32,
}

impl ItemBounds<'_> {
    /// The bound of the item at `position` for the product `value` of a row bounded by `row`.
    #[inline(always)]
    fn at(&self, position: usize, value: f32, row: RowBound) -> f32 {
        self.output_unit * value.abs()
            + row.per_norm * self.norm[position]
            + row.per_residual * self.residual[position]
            + self.constant[position]
            + row.constant
    }
}

/// How many products of one row lie above their bound, with the positions of those within it pushed to
/// `undecided`. Sixteen at a time, counted without branches so that it vectorises, the undecided ones as
/// a bit mask.
#[inline(always)]
fn scan<V: Copy>(products: &[V], value: impl Fn(V) -> f32, items: ItemBounds<'_>, row: RowBound, undecided: &mut Vec<u32>) -> u64 {
    const CHUNK: usize = 16;
    let classify = |v: f32, norm: f32, residual: f32, constant: f32| {
        let bound = items.output_unit * v.abs() + row.per_norm * norm + row.per_residual * residual + constant + row.constant;
        let above = v > bound;
        (above, !above && v >= -bound)
    };
    let mut above = 0u64;
    let whole = products.len() / CHUNK * CHUNK;
    let chunks = products[..whole]
        .chunks_exact(CHUNK)
        .zip(items.norm[..whole].chunks_exact(CHUNK))
        .zip(items.residual[..whole].chunks_exact(CHUNK))
        .zip(items.constant[..whole].chunks_exact(CHUNK));
    for (index, (((values, norms), residuals), constants)) in chunks.enumerate() {
        let (mut up, mut open) = (0u32, 0u32);
        for k in 0..CHUNK {
            let (is_above, is_open) = classify(value(values[k]), norms[k], residuals[k], constants[k]);
            up += u32::from(is_above);
            open |= u32::from(is_open) << k;
        }
        above += u64::from(up);
        while open != 0 {
            undecided.push((index * CHUNK) as u32 + open.trailing_zeros());
            open &= open - 1;
        }
    }
    for (position, &product) in products.iter().enumerate().skip(whole) {
        let (is_above, is_open) = classify(value(product), items.norm[position], items.residual[position], items.constant[position]);
        above += u64::from(is_above);
        if is_open {
            undecided.push(position as u32);
        }
    }
    above
}

vectorised! {
    fn scan_bfloat16(products: &[u16], items: ItemBounds<'_>, row: RowBound, undecided: &mut Vec<u32>) -> u64 {
        scan(products, from_bfloat16, items, row, undecided)
    }
}

vectorised! {
    fn scan_float32(products: &[f32], items: ItemBounds<'_>, row: RowBound, undecided: &mut Vec<u32>) -> u64 {
        scan(products, |v| v, items, row, undecided)
    }
}

/// A float32 host buffer as a `[rows, cols]` tensor of the pass's kind.
fn host_tensor(pass: FirstPass, values: &[f32], rows: usize, cols: usize) -> Tensor {
    let tensor = Tensor::from_slice(values).view([rows as i64, cols as i64]);
    match pass {
        FirstPass::BFloat16 => tensor.to_kind(Kind::BFloat16),
        FirstPass::Float32 => tensor,
    }
    .to_device(Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::target_ranks;
    use crate::rng::SplitMix64;

    fn uniform(random: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (random.unit_f32() * 2.0 - 1.0) * scale).collect()
    }

    /// A catalogue and rows to rank against it.
    struct Case {
        name: &'static str,
        width: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
        x: Vec<f32>,
        targets: Vec<u32>,
        candidates: Option<Vec<bool>>,
    }

    impl Case {
        fn random(name: &'static str, seed: u64, items: usize, width: usize, rows: usize) -> Case {
            let mut random = SplitMix64::new(seed);
            let weights = uniform(&mut random, items * width, 0.3);
            let bias = uniform(&mut random, items, 0.1);
            let x = uniform(&mut random, rows * width, 1.0);
            let targets = (0..rows).map(|_| (random.next_u64() % items as u64) as u32).collect();
            Case { name, width, weights, bias, x, targets, candidates: None }
        }

        fn items(&self) -> usize {
            self.bias.len()
        }

        /// Makes item `to` a copy of item `from`, so that the two always tie.
        fn copy_item(&mut self, from: usize, to: usize) {
            let width = self.width;
            let row: Vec<f32> = self.weights[from * width..(from + 1) * width].to_vec();
            self.weights[to * width..(to + 1) * width].copy_from_slice(&row);
            self.bias[to] = self.bias[from];
        }

        /// Ranks from exact scores counted by the tensor implementation of the metrics: an independent count.
        fn reference(&self, ties: Ties) -> Vec<f64> {
            let (width, items) = (self.width, self.items());
            let rows = self.targets.len();
            let mut scores = vec![0.0f32; rows * items];
            for r in 0..rows {
                for item in 0..items {
                    scores[r * items + item] =
                        exact_score(&self.x[r * width..(r + 1) * width], &self.weights[item * width..(item + 1) * width], self.bias[item]);
                }
            }
            let scores = Tensor::from_slice(&scores).view([rows as i64, items as i64]);
            let targets: Vec<i64> = self.targets.iter().map(|&t| i64::from(t)).collect();
            let mask = self.candidates.as_ref().map(|mask| Tensor::from_slice(mask));
            Vec::<f64>::try_from(target_ranks(&scores, &Tensor::from_slice(&targets), mask.as_ref(), ties)).unwrap()
        }

        /// Both passes and the all-exact path give the reference's ranks, in every tie mode, without a miss.
        fn check(&self) -> u64 {
            let mut rechecked = 0;
            for ties in [Ties::Standard, Ties::Conservative, Ties::Median] {
                let expected = self.reference(ties);
                for pass in [FirstPass::BFloat16, FirstPass::Float32] {
                    let mut ranker =
                        Ranker::new(self.weights.clone(), self.bias.clone(), self.width, self.candidates.as_deref(), ties, pass);
                    // Twice: the second call reuses the product buffer.
                    for _ in 0..2 {
                        let ranks = ranker.ranks(&self.x, &self.targets);
                        for (r, (got, want)) in ranks.iter().zip(&expected).enumerate() {
                            assert_eq!(got, want, "{}: {pass:?}, {ties:?}, row {r} (target {})", self.name, self.targets[r]);
                        }
                    }
                    assert_eq!(ranker.exact_ranks(&self.x, &self.targets), expected, "{}: exact, {ties:?}", self.name);
                    assert_eq!(ranker.bound_misses(), 0, "{}: {pass:?}", self.name);
                    rechecked += ranker.rechecked();
                }
            }
            rechecked
        }
    }

    #[test]
    fn exact_dot_sums_sixteen_lanes_then_pairs() {
        let mut random = SplitMix64::new(3);
        for width in [1, 5, 16, 37, 100, 512] {
            let (x, w) = (uniform(&mut random, width, 1.0), uniform(&mut random, width, 1.0));
            let mut lanes = [0.0f32; 16];
            for l in 0..width {
                lanes[l % 16] += x[l] * w[l];
            }
            let halves = |lanes: &[f32]| -> Vec<f32> { (0..lanes.len() / 2).map(|l| lanes[l] + lanes[l + lanes.len() / 2]).collect() };
            let expected = halves(&halves(&halves(&halves(&lanes))))[0];
            assert_eq!(exact_dot(&x, &w).to_bits(), expected.to_bits(), "width {width}");
            // The vectorised build gives the same bits as the portable one.
            let mut out = [0.0f32];
            exact_scores(&x, &w, &[0.5], &[0], &mut out);
            assert_eq!(out[0].to_bits(), (0.5 + expected).to_bits());
        }
    }

    #[test]
    fn bfloat16_rounds_to_nearest_even_and_flushes_subnormals() {
        assert_eq!(to_bfloat16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(to_bfloat16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bfloat16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bfloat16(-2.5), 0xc020);
        assert_eq!(to_bfloat16(1e-39), 0);
        assert_eq!(to_bfloat16(-1e-39), 0x8000);
        let mut random = SplitMix64::new(5);
        for v in uniform(&mut random, 10_000, 1e3) {
            let rounded = from_bfloat16(to_bfloat16(v));
            assert!(f64::from(rounded - v).abs() <= f64::from(v).abs() / 256.0, "{v} -> {rounded}");
        }
    }

    #[test]
    fn two_passes_rank_random_rows_as_exact_scores_do() {
        for (width, items) in [(5, 700), (16, 500), (37, 900), (100, 2000)] {
            let case = Case::random("random", width as u64, items, width, 40);
            case.check();
        }
    }

    #[test]
    fn ties_and_near_ties_with_the_target_are_decided_exactly() {
        let mut case = Case::random("ties", 11, 1500, 48, 30);
        // Exact ties: copies of each target, and of other items.
        for r in 0..case.targets.len() {
            let target = case.targets[r] as usize;
            for k in 1..=3 {
                case.copy_item(target, (target + 97 * k) % case.items());
            }
        }
        // Near ties: copies of each target moved by one ulp in one weight or in the bias.
        let width = case.width;
        for r in 0..case.targets.len() {
            let target = case.targets[r] as usize;
            let (up, down, bias_up) = ((target + 500) % case.items(), (target + 501) % case.items(), (target + 502) % case.items());
            for (copy, shift) in [(up, 1i32), (down, -1)] {
                case.copy_item(target, copy);
                let weight = &mut case.weights[copy * width + r % width];
                *weight = f32::from_bits((weight.to_bits() as i32 + shift) as u32);
            }
            case.copy_item(target, bias_up);
            case.bias[bias_up] = f32::from_bits(case.bias[bias_up].to_bits() + 1);
        }
        // A row of zeros: every score is its bias.
        case.x[..width].fill(0.0);
        case.check();
    }

    #[test]
    fn a_large_bias_over_small_products_keeps_ranks_exact() {
        let mut case = Case::random("cancellation", 17, 1200, 64, 20);
        for (item, bias) in case.bias.iter_mut().enumerate() {
            *bias = 1e4 + (item % 7) as f32 * 1e-3;
        }
        for weight in case.weights.iter_mut() {
            *weight *= 1e-4;
        }
        case.check();
    }

    #[test]
    fn candidate_masks_with_targets_inside_and_outside() {
        let mut case = Case::random("candidates", 23, 1000, 40, 50);
        let mask: Vec<bool> = (0..case.items()).map(|item| item % 3 != 0).collect();
        // Some targets outside the mask compete as themselves only.
        case.targets[0] = 0;
        case.targets[1] = 3;
        case.targets[2] = 1;
        case.candidates = Some(mask);
        case.check();
    }

    #[test]
    fn values_the_bound_cannot_cover_are_scored_exactly() {
        let mut case = Case::random("non-finite", 29, 800, 24, 12);
        let width = case.width;
        case.weights[5 * width] = f32::NAN;
        case.weights[6 * width + 3] = f32::INFINITY;
        case.weights[7 * width..8 * width].fill(1e16);
        case.bias[8] = f32::NEG_INFINITY;
        case.bias[9] = 3e30;
        // A NaN row, a row of huge norm, and a row whose target's score is NaN.
        case.x[width] = f32::NAN;
        case.x[2 * width..3 * width].fill(1e16);
        case.targets[3] = 5;
        case.targets[4] = 8;
        case.check();
    }

    #[test]
    fn a_huge_catalogue_rechecks_few_items() {
        let case = Case::random("huge catalogue", 31, 150_000, 12, 6);
        let rechecked = case.check();
        // Rechecks are the point of the bound: far fewer than the catalogue for each row, pass and tie mode.
        assert!(rechecked < 6 * 6 * 150_000 / 10, "{rechecked} rechecks");
    }
}
