//! 2x2 max pooling and 2x nearest upsampling with single-pass backward kernels.
//!
//! candle 0.11 differentiates `max_pool2d` with six full-resolution tensor ops (upsample,
//! compare, cast, average-pool, upsample, multiply) and `upsample_nearest2d` with a grouped
//! convolution that runs one convolution per channel. Here each backward is one pass.
//! Every kernel's backward is another kernel of this module (upsample and sum-pool are
//! adjoint; max-pool's routing and gathering are adjoint), so gradients of any order work.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{f32_slice, native};
use super::simd_kernel;

fn dims4(layout: &Layout, op: &str) -> Result<(usize, usize, usize, usize)> {
    match layout.dims() {
        &[n, c, h, w] => Ok((n, c, h, w)),
        d => candle_core::bail!("{op}: expected NCHW, got {d:?}"),
    }
}

/// `[N, C, H, W] -> [N, C, 2H, 2W]`, nearest.
pub fn upsample2x(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        x.contiguous()?.apply_op1(Upsample2)
    } else {
        let (_, _, h, w) = x.dims4()?;
        x.upsample_nearest2d(2 * h, 2 * w)
    }
}

/// 2x2, stride-2 max pooling (H and W even). Gradient goes to the first maximum of each
/// window, as PyTorch's does.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        let (_, _, h, w) = x.dims4()?;
        if h % 2 != 0 || w % 2 != 0 {
            candle_core::bail!("max_pool2x2 needs even height and width, got {h}x{w}");
        }
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}

struct Upsample2;
struct SumPool2;
struct MaxPool2;
/// `(x, grad_pooled) -> grad_x`: each window's gradient to its first maximum.
struct MaxPool2Route;
/// `(x, g) -> pooled`: each window's value of `g` at the first maximum of `x`.
struct MaxPool2Gather;

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "gantry-upsample2x"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l, self.name())?;
        let x = f32_slice(s, l, self.name())?;
        let mut out = vec![0f32; n * c * 4 * h * w];
        out.par_chunks_mut(4 * h * w)
            .zip(x.par_chunks(h * w))
            .for_each(|(o, p)| upsample_plane(o, p, h, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, 2 * h, 2 * w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(SumPool2)?))
    }
}

impl CustomOp1 for SumPool2 {
    fn name(&self) -> &'static str {
        "gantry-sumpool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l, self.name())?;
        let x = f32_slice(s, l, self.name())?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .for_each(|(o, p)| sum_pool_plane(o, p, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Upsample2)?))
    }
}

simd_kernel! {
    /// One plane `p [h, w]` to `o [2h, 2w]`, each value into its 2x2 block.
    fn upsample_plane(o: &mut [f32], p: &[f32], h: usize, w: usize) {
        for y in 0..h {
            let src = &p[y * w..][..w];
            let row = &mut o[2 * y * 2 * w..][..2 * w];
            for (pair, v) in row.chunks_exact_mut(2).zip(src) {
                pair[0] = *v;
                pair[1] = *v;
            }
            o.copy_within(2 * y * 2 * w..(2 * y + 1) * 2 * w, (2 * y + 1) * 2 * w);
        }
    }
}

simd_kernel! {
    /// One plane `p [h, w]` to `o [h/2, w/2]`, each 2x2 block summed.
    fn sum_pool_plane(o: &mut [f32], p: &[f32], w: usize) {
        let wo = w / 2;
        for (y, o) in o.chunks_exact_mut(wo).enumerate() {
            let (r0, r1) = (&p[2 * y * w..][..w], &p[(2 * y + 1) * w..][..w]);
            for (x, o) in o.iter_mut().enumerate() {
                *o = r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1];
            }
        }
    }
}

simd_kernel! {
    /// One plane `p [h, w]` to `o [h/2, w/2]`, each 2x2 block's first maximum: the value
    /// of [`argmax`]'s choice as a chain of compare-selects, which vectorises where the
    /// index arithmetic does not.
    fn max_pool_plane(o: &mut [f32], p: &[f32], w: usize) {
        let wo = w / 2;
        for (y, o) in o.chunks_exact_mut(wo).enumerate() {
            let (r0, r1) = (&p[2 * y * w..][..w], &p[(2 * y + 1) * w..][..w]);
            for (x, o) in o.iter_mut().enumerate() {
                let mut best = r0[2 * x];
                for v in [r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]] {
                    best = if v > best { v } else { best };
                }
                *o = best;
            }
        }
    }
}

simd_kernel! {
    /// Pooled gradients `g [h/2, w/2]` to `o [h, w]`, each at its window's first maximum
    /// in `p` and zero elsewhere: every element written, by compare-selects that
    /// vectorise (the first maximum as in [`argmax`]).
    fn route_plane(o: &mut [f32], p: &[f32], g: &[f32], w: usize) {
        let wo = w / 2;
        for (y, g) in g.chunks_exact(wo).enumerate() {
            let (p0, p1) = (&p[2 * y * w..][..w], &p[(2 * y + 1) * w..][..w]);
            let (o0, o1) = o[2 * y * w..][..2 * w].split_at_mut(w);
            for (x, &g) in g.iter().enumerate() {
                let v = [p0[2 * x], p0[2 * x + 1], p1[2 * x], p1[2 * x + 1]];
                let (mut best, mut at) = (v[0], 0);
                for (i, &v) in v.iter().enumerate().skip(1) {
                    if v > best {
                        best = v;
                        at = i;
                    }
                }
                o0[2 * x] = if at == 0 { g } else { 0.0 };
                o0[2 * x + 1] = if at == 1 { g } else { 0.0 };
                o1[2 * x] = if at == 2 { g } else { 0.0 };
                o1[2 * x + 1] = if at == 3 { g } else { 0.0 };
            }
        }
    }
}

simd_kernel! {
    /// `o [h/2, w/2]`: each window's value of `g [h, w]` at the first maximum of `p`.
    fn gather_plane(o: &mut [f32], p: &[f32], g: &[f32], w: usize) {
        let wo = w / 2;
        for (y, o) in o.chunks_exact_mut(wo).enumerate() {
            for (x, o) in o.iter_mut().enumerate() {
                *o = g[offset(w, y, x, argmax(p, w, y, x))];
            }
        }
    }
}

/// Index (0..4: top-left, top-right, bottom-left, bottom-right) of the first maximum of the
/// window at pooled (y, x).
#[inline(always)]
fn argmax(p: &[f32], w: usize, y: usize, x: usize) -> usize {
    let v = [
        p[2 * y * w + 2 * x],
        p[2 * y * w + 2 * x + 1],
        p[(2 * y + 1) * w + 2 * x],
        p[(2 * y + 1) * w + 2 * x + 1],
    ];
    let mut best = 0;
    for i in 1..4 {
        // `>` keeps the first of equal maxima; NaN never wins, as in PyTorch's CPU kernel
        // only when it comes first.
        if v[i] > v[best] {
            best = i;
        }
    }
    best
}

#[inline(always)]
fn offset(w: usize, y: usize, x: usize, k: usize) -> usize {
    (2 * y + k / 2) * w + 2 * x + k % 2
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "gantry-maxpool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l, self.name())?;
        let x = f32_slice(s, l, self.name())?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .for_each(|(o, p)| max_pool_plane(o, p, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2(&grad.contiguous()?, MaxPool2Route)?))
    }
}

impl CustomOp2 for MaxPool2Route {
    fn name(&self) -> &'static str {
        "gantry-maxpool2x2-route"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l1, self.name())?;
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * h * w];
        out.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(g.par_chunks(ho * wo)))
            .for_each(|(o, (p, g))| route_plane(o, p, g, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, h, w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _g: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Piecewise constant in x; linear in g with MaxPool2Gather as its adjoint.
        Ok((
            None,
            Some(x.apply_op2(&grad.contiguous()?, MaxPool2Gather)?),
        ))
    }
}

impl CustomOp2 for MaxPool2Gather {
    fn name(&self) -> &'static str {
        "gantry-maxpool2x2-gather"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l1, self.name())?;
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w).zip(g.par_chunks(h * w)))
            .for_each(|(o, (p, g))| gather_plane(o, p, g, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _g: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(x.apply_op2(&grad.contiguous()?, MaxPool2Route)?)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Var};

    use super::*;
    use crate::ops::testing::{max_diff, rand};

    #[test]
    fn max_pool_and_upsample_match_candle_forward_and_backward() {
        let x = Var::from_tensor(&rand(&[2, 3, 6, 8], 1)).unwrap();
        let probe = rand(&[2, 3, 3, 4], 2);
        let ours = max_pool2x2(&x).unwrap();
        let theirs = x.max_pool2d(2).unwrap();
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
        // candle 0.11 multiplies the routed gradient by the window's mean mask (1/4 without
        // ties) where it means to divide by the tie count: its max-pool gradient is a
        // quarter of the true one. Ours is the true one (PyTorch's), checked here as four
        // times candle's on tie-free random data.
        let theirs_fixed = (g2.get(&x).unwrap() * 4.0).unwrap();
        assert!(max_diff(g1.get(&x).unwrap(), &theirs_fixed) < 1e-6);

        let probe = rand(&[2, 3, 12, 16], 3);
        let ours = upsample2x(&x).unwrap();
        let theirs = x.upsample_nearest2d(12, 16).unwrap();
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
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
    }

    /// Ties go to the first maximum of the window, as in PyTorch.
    #[test]
    fn ties_route_to_the_first_maximum() {
        let x = Var::from_tensor(
            &Tensor::new(&[[[[1f32, 1.0], [1.0, 1.0]]]], &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap();
        let g = max_pool2x2(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let got: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, vec![1.0, 0.0, 0.0, 0.0]);
    }

    /// The pooled value is the element the gradient is routed to, with NaNs anywhere in
    /// the window (the vectorised forward and the index-based routing agree).
    #[test]
    fn forward_value_is_the_routed_element() {
        let nan = f32::NAN;
        let windows = [
            [1.0, nan, 3.0, 2.0],
            [nan, 5.0, 1.0, 1.0],
            [1.0, 2.0, nan, 5.0],
            [2.0, 2.0, 1.0, 0.0],
        ];
        let mut data = vec![0f32; 16];
        for (i, win) in windows.iter().enumerate() {
            data[2 * i] = win[0];
            data[2 * i + 1] = win[1];
            data[8 + 2 * i] = win[2];
            data[8 + 2 * i + 1] = win[3];
        }
        let x = Tensor::from_vec(data.clone(), (1, 1, 2, 8), &candle_core::Device::Cpu).unwrap();
        let pooled: Vec<f32> = max_pool2x2(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ones = Tensor::ones((1, 1, 1, 4), DType::F32, &candle_core::Device::Cpu).unwrap();
        let mask: Vec<f32> = x
            .apply_op2(&ones, MaxPool2Route)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, value) in pooled.iter().enumerate() {
            let picked: Vec<f32> = [2 * i, 2 * i + 1, 8 + 2 * i, 9 + 2 * i]
                .into_iter()
                .filter(|&k| mask[k] == 1.0)
                .map(|k| data[k])
                .collect();
            assert_eq!(picked.len(), 1, "window {i}");
            assert_eq!(picked[0].to_bits(), value.to_bits(), "window {i}");
        }
    }

    /// The adjoint pairs: <A x, y> == <x, A* y>.
    #[test]
    fn backward_kernels_are_adjoint() {
        let dot = |a: &Tensor, b: &Tensor| -> f32 {
            (a * b).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let x = rand(&[2, 2, 4, 6], 4);
        let y = rand(&[2, 2, 8, 12], 5);
        let up = x.apply_op1(Upsample2).unwrap();
        let down = y.apply_op1(SumPool2).unwrap();
        assert!((dot(&up, &y) - dot(&x, &down)).abs() < 1e-4);
        let probe = rand(&[2, 2, 4, 6], 6);
        let g = rand(&[2, 2, 2, 3], 7);
        let h = rand(&[2, 2, 4, 6], 8);
        let routed = probe.apply_op2(&g, MaxPool2Route).unwrap();
        let gathered = probe.apply_op2(&h, MaxPool2Gather).unwrap();
        assert!((dot(&routed, &h) - dot(&g, &gathered)).abs() < 1e-4);
    }
}
