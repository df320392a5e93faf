//! LeakyReLU as one pass forward and one pass backward. candle-nn composes it from five
//! tensor ops (`max(x, 0) + slope * min(x, 0)`), whose backward takes about ten more, all
//! over full activation maps.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{f32_slice, native};
use super::simd_kernel;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// `x` where positive, `slope * x` elsewhere.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if native(x) {
        x.contiguous()?.apply_op1(LeakyRelu {
            slope: slope as f32,
        })
    } else {
        candle_nn::ops::leaky_relu(x, slope)
    }
}

struct LeakyRelu {
    slope: f32,
}

/// `(x, g) -> g * (x > 0 ? 1 : slope)`: the derivative applied to a gradient. `x` may be
/// the activation's input or its output (same sign for any slope >= 0).
pub(super) struct LeakyReluScale {
    pub(super) slope: f32,
}

simd_kernel! {
    /// `o = leaky_relu(x)`.
    fn leaky_chunk(o: &mut [f32], x: &[f32], slope: f32) {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = if v > 0.0 { v } else { v * slope };
        }
    }
}

simd_kernel! {
    /// `o = g * leaky_relu'(x)`.
    fn leaky_scale_chunk(o: &mut [f32], x: &[f32], g: &[f32], slope: f32) {
        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
            *o = if x > 0.0 { g } else { g * slope };
        }
    }
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "gantry-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let slope = self.slope;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| leaky_chunk(o, x, slope));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2(
            &grad.contiguous()?,
            LeakyReluScale { slope: self.slope },
        )?))
    }
}

impl CustomOp2 for LeakyReluScale {
    fn name(&self) -> &'static str {
        "gantry-leaky-relu-scale"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        if x.len() != g.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let slope = self.slope;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| leaky_scale_chunk(o, x, g, slope));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _g: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Piecewise constant in x; linear in g.
        Ok((
            None,
            Some(x.apply_op2(&grad.contiguous()?, LeakyReluScale { slope: self.slope })?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::ops::testing::{max_diff, rand};

    #[test]
    fn matches_candle_nn_forward_and_backward() {
        let x = Var::from_tensor(&rand(&[3, 4, 5, 7], 1)).unwrap();
        let probe = rand(&[3, 4, 5, 7], 2);
        let ours = leaky_relu(&x, 0.2).unwrap();
        let theirs = candle_nn::ops::leaky_relu(&x, 0.2).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-7);
        let g1 = (ours * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (theirs * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-6);
    }
}
