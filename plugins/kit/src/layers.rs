//! Layers built on the kit's fast ops, named as candle-nn's (`weight`, `bias`) so
//! checkpoints read the same.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::ops;

/// Stride-1, zero-padded 2-D convolution with bias, running on [`ops::conv::conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    pad: usize,
}

/// A `k`x`k` convolution from `cin` to `cout` channels. Weights start as candle-nn's
/// (Kaiming); [`crate::init::pytorch_default`] re-draws them from the run seed.
pub fn conv2d(cin: usize, cout: usize, k: usize, pad: usize, vb: VarBuilder) -> Result<Conv2d> {
    let weight = vb.get_with_hints(
        (cout, cin, k, k),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    let bound = 1.0 / ((cin * k * k) as f64).sqrt();
    let bias = vb.get_with_hints(
        cout,
        "bias",
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    Ok(Conv2d { weight, bias, pad })
}

impl Conv2d {
    /// The convolution followed by LeakyReLU with `slope` (0 for ReLU), fused into one op.
    pub fn forward_leaky(&self, x: &Tensor, slope: f64) -> Result<Tensor> {
        ops::conv::conv2d_act(x, &self.weight, Some(&self.bias), self.pad, Some(slope))
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv::conv2d(x, &self.weight, Some(&self.bias), self.pad)
    }
}
