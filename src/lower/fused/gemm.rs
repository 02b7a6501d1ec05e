//! Matrix products over plain `f32` memory, executed by libtorch's CPU BLAS without copying.
//!
//! The fused step keeps its activations and gradients in Rust vectors; only the products go to libtorch,
//! through tensors that borrow that memory. Transposes and column blocks are strides, never copies.

use tch::{Device, Kind, Tensor};

/// A row-major matrix in borrowed memory: `rows × cols`, rows `stride` apart, read transposed when asked.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    stride: usize,
    transposed: bool,
}

impl<'a> Matrix<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "a {rows}×{cols} matrix needs {} values, got {}", rows * cols, data.len());
        Matrix { data, rows, cols, stride: cols, transposed: false }
    }

    /// Columns `start..start + count` of every row.
    pub fn columns(self, start: usize, count: usize) -> Self {
        assert!(!self.transposed && start + count <= self.cols);
        Matrix { data: &self.data[start..], cols: count, ..self }
    }

    pub fn t(self) -> Self {
        Matrix { transposed: !self.transposed, ..self }
    }

    /// The shape as used in a product.
    fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    fn tensor(&self) -> Tensor {
        // Safety: the tensor lives only inside `product`, while `data` is borrowed, and is only read.
        let tensor = unsafe {
            Tensor::from_blob(
                self.data.as_ptr().cast(),
                &[self.rows as i64, self.cols as i64],
                &[self.stride as i64, 1],
                Kind::Float,
                Device::Cpu,
            )
        };
        if self.transposed {
            tensor.tr()
        } else {
            tensor
        }
    }
}

/// A row-major output matrix in borrowed memory, `rows × cols`, rows `stride` apart.
pub struct MatrixMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    stride: usize,
}

impl<'a> MatrixMut<'a> {
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "a {rows}×{cols} matrix needs {} values, got {}", rows * cols, data.len());
        MatrixMut { data, rows, cols, stride: cols }
    }

    /// Columns `start..start + count` of every row of a matrix `stride` wide.
    pub fn columns(data: &'a mut [f32], rows: usize, stride: usize, start: usize, count: usize) -> Self {
        assert!(start + count <= stride && data.len() >= rows * stride);
        MatrixMut { data: &mut data[start..], rows, cols: count, stride }
    }
}

/// `out = a · b`, or `out += a · b` when `accumulate`.
pub fn product(out: MatrixMut<'_>, a: Matrix<'_>, b: Matrix<'_>, accumulate: bool) {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    assert!(k == k2 && m == out.rows && n == out.cols, "product of {m}×{k} and {k2}×{n} into {}×{}", out.rows, out.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                out.data[row * out.stride..row * out.stride + n].fill(0.0);
            }
        }
        return;
    }
    // Safety: `out.data` is borrowed mutably for the duration of the call and the tensor does not outlive it.
    let mut target = unsafe {
        Tensor::from_blob(
            out.data.as_mut_ptr().cast_const().cast(),
            &[m as i64, n as i64],
            &[out.stride as i64, 1],
            Kind::Float,
            Device::Cpu,
        )
    };
    let (a, b) = (a.tensor(), b.tensor());
    if accumulate {
        let _ = target.addmm_(&a, &b);
    } else {
        let _ = a.mm_out(&target, &b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], (m, k): (usize, usize), b: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_with_transposes_and_column_blocks() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2×3
        let b: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5 - 2.0).collect(); // 3×4
        let mut out = vec![0.0; 8];
        product(MatrixMut::new(&mut out, 2, 4), Matrix::new(&a, 2, 3), Matrix::new(&b, 3, 4), false);
        assert_eq!(out, naive(&a, (2, 3), &b, 4));
        // aᵀ stored as 3×2, read transposed.
        let a_t: Vec<f32> = vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        let mut again = vec![1.0; 8];
        product(MatrixMut::new(&mut again, 2, 4), Matrix::new(&a_t, 3, 2).t(), Matrix::new(&b, 3, 4), true);
        let expected: Vec<f32> = naive(&a, (2, 3), &b, 4).iter().map(|v| v + 1.0).collect();
        assert_eq!(again, expected);
        // Columns 1..3 of b into columns 2..4 of a 2×5 output.
        let mut wide = vec![9.0; 10];
        product(MatrixMut::columns(&mut wide, 2, 5, 2, 2), Matrix::new(&a, 2, 3), Matrix::new(&b, 3, 4).columns(1, 2), false);
        let full = naive(&a, (2, 3), &b, 4);
        assert_eq!(&wide[..2], &[9.0, 9.0]);
        assert_eq!(&wide[2..5], &[full[1], full[2], 9.0]);
        assert_eq!(&wide[7..10], &[full[5], full[6], 9.0]);
    }
}
