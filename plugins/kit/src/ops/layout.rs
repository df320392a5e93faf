//! Layout changes the convolutions need between NCHW and the GEMM's `[C, N*H*W]`, as
//! parallel kernels: candle's strided copy behind `permute(..).contiguous()` runs on one
//! thread, and in a 2-core training step the other core waited for it.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{f32_slice, native};
use super::simd_kernel;

/// `[A, B, rest...] -> [B, A, rest...]`, contiguous; differentiable (its adjoint is itself
/// on the swapped shape).
pub fn swap_first_two(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        x.contiguous()?.apply_op1(SwapFirstTwo)
    } else {
        x.transpose(0, 1)?.contiguous()
    }
}

struct SwapFirstTwo;

simd_kernel! {
    /// Output row `b` (`[A, inner]`) gathered from `x [A, B, inner]`.
    fn gather_row(out: &mut [f32], x: &[f32], b: usize, nb: usize, inner: usize) {
        for (a, dst) in out.chunks_exact_mut(inner).enumerate() {
            dst.copy_from_slice(&x[(a * nb + b) * inner..][..inner]);
        }
    }
}

impl CustomOp1 for SwapFirstTwo {
    fn name(&self) -> &'static str {
        "gantry-swap-first-two"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        if dims.len() < 2 {
            candle_core::bail!("{}: needs at least 2 dimensions, got {dims:?}", self.name());
        }
        let (na, nb) = (dims[0], dims[1]);
        let inner: usize = dims[2..].iter().product();
        let x = f32_slice(s, l, self.name())?;
        let mut out = vec![0f32; x.len()];
        if inner > 0 && na > 0 {
            out.par_chunks_mut(na * inner)
                .enumerate()
                .for_each(|(b, row)| gather_row(row, x, b, nb, inner));
        }
        let mut swapped = dims.to_vec();
        swapped.swap(0, 1);
        Ok((CpuStorage::F32(out), Shape::from(swapped)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(swap_first_two(grad)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::ops::testing::{max_diff, rand};

    #[test]
    fn matches_transpose_forward_and_backward() {
        let x = Var::from_tensor(&rand(&[3, 5, 4, 2], 1)).unwrap();
        let probe = rand(&[5, 3, 4, 2], 2);
        let ours = swap_first_two(&x).unwrap();
        let theirs = x.transpose(0, 1).unwrap().contiguous().unwrap();
        assert_eq!(max_diff(&ours, &theirs), 0.0);
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
        assert_eq!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()), 0.0);
    }
}
