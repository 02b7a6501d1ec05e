//! The GRU step in its two forms: GRU4Rec's reset-before-product and PyTorch's standard cell.
//!
//! Both take the input's contribution already projected (`x W_in + b`, `[B, 3H]`), because how an input is
//! projected depends on its kind (row lookup, weighted row sum, matrix product) and a subnet may sum several.

use tch::Tensor;

pub use crate::ir::graph::GruForm;

/// One GRU step. `x_proj` `[B, 3H]` holds the input's projection plus the input bias; `h` `[B, H]`;
/// `w_hh` `[H, 3H]`; `b_hn` `[H]` is used by the reset-after form only.
pub fn gru_step(form: GruForm, x_proj: &Tensor, h: &Tensor, w_hh: &Tensor, b_hn: Option<&Tensor>) -> Tensor {
    let hidden = h.size()[1];
    match form {
        GruForm::ResetBeforeProduct => {
            let x = x_proj.split(hidden, 1);
            let (x_n, x_r, x_z) = (&x[0], &x[1], &x[2]);
            let w_n = w_hh.narrow(1, 0, hidden);
            let w_rz = w_hh.narrow(1, hidden, 2 * hidden);
            let h_rz = h.mm(&w_rz).split(hidden, 1);
            let reset = (x_r + &h_rz[0]).sigmoid();
            let update = (x_z + &h_rz[1]).sigmoid();
            let candidate = (x_n + (&reset * h).mm(&w_n)).tanh();
            h + &update * (candidate - h)
        }
        GruForm::ResetAfterProduct => {
            let x = x_proj.split(hidden, 1);
            let mut hh = h.mm(w_hh).split(hidden, 1);
            if let Some(b_hn) = b_hn {
                hh[2] = &hh[2] + b_hn;
            }
            let reset = (&x[0] + &hh[0]).sigmoid();
            let update = (&x[1] + &hh[1]).sigmoid();
            let candidate = (&x[2] + &reset * &hh[2]).tanh();
            &candidate + &update * (h - &candidate)
        }
    }
}
