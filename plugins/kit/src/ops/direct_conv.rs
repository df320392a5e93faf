//! Direct (loop) convolution for layers the unfold+GEMM path serves badly: a single input
//! channel (an image's first layer) or a few output channels (an image's last layer).
//! There the unfolded matrix is tall and thin, the GEMM has almost no work per byte, and
//! unfolding (and in backward re-unfolding and folding) moves 9x the activation through
//! memory for nothing: measured here, the 32->1 output layer of conv-ae at 64x64 spent
//! 80 ms per backward of a 240 ms step. These kernels read each activation a few times
//! and write nothing else.
//!
//! Same operands as [`super::conv`]'s GEMM op: `x [N, Cin, H, W]` and the flattened weight
//! `[Cout, Cin*kh*kw (+1 bias column)]`. Their backward kernels are not themselves
//! differentiable (no gradient of a gradient through these layers).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::f32_slice;
use super::simd_kernel;

/// Shapes of one direct convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Direct {
    pub kh: usize,
    pub kw: usize,
    pub pad: usize,
    pub bias: bool,
    /// Fused LeakyReLU slope, if any.
    pub slope: Option<f32>,
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    /// Columns of the flattened weight (`cin*kh*kw`, plus one with a bias).
    wcols: usize,
}

impl Direct {
    fn dims(&self, x: &[usize], w: &[usize]) -> Result<Dims> {
        let (&[n, cin, h, w_], &[cout, wcols]) = (x, w) else {
            candle_core::bail!("direct conv: bad operand shapes {x:?}, {w:?}");
        };
        if wcols != cin * self.kh * self.kw + self.bias as usize {
            candle_core::bail!("direct conv: weight {w:?} does not match {cin} input channels");
        }
        Ok(Dims {
            n,
            cin,
            cout,
            h,
            w: w_,
            ho: h + 2 * self.pad + 1 - self.kh,
            wo: w_ + 2 * self.pad + 1 - self.kw,
            wcols,
        })
    }

    /// For output column range: the `ox` range whose input column `ox + kx - pad` is
    /// inside the image.
    #[inline(always)]
    fn cols(&self, d: &Dims, kx: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(kx);
        let hi = (d.w + self.pad).saturating_sub(kx).min(d.wo);
        (lo, hi.max(lo))
    }

    /// The input row read by output row `oy` at tap `ky`, if inside the image.
    #[inline(always)]
    fn row(&self, d: &Dims, oy: usize, ky: usize) -> Option<usize> {
        (oy + ky).checked_sub(self.pad).filter(|&iy| iy < d.h)
    }
}

/// `(x, w) -> y`.
pub(super) struct DirectConv(pub Direct);
/// `(g, w) -> dx` for an input of `[n, cin, h, w]`.
struct DirectInputGrad(Direct, [usize; 4]);
/// `(x, g) -> dw` in the flattened weight layout.
struct DirectWeightGrad(Direct, usize);

impl CustomOp2 for DirectConv {
    fn name(&self) -> &'static str {
        "gantry-direct-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.0;
        let d = p.dims(l1.dims(), l2.dims())?;
        let x = f32_slice(s1, l1, self.name())?;
        let wt = f32_slice(s2, l2, self.name())?;
        let mut out = vec![0f32; d.n * d.cout * d.ho * d.wo];
        out.par_chunks_mut(d.ho * d.wo)
            .enumerate()
            .for_each(|(plane, o)| {
                let (n, co) = (plane / d.cout, plane % d.cout);
                let image = &x[n * d.cin * d.h * d.w..][..d.cin * d.h * d.w];
                forward_plane(o, image, &wt[co * d.wcols..][..d.wcols], p, d);
            });
        Ok((CpuStorage::F32(out), Shape::from((d.n, d.cout, d.ho, d.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = super::conv::through_activation(self.0.slope, res, grad)?.contiguous()?;
        let dims = x.dims4()?;
        // The network's input needs no gradient: skip the pass.
        let dx = if x.track_op() {
            Some(g.apply_op2_no_bwd(
                w,
                &DirectInputGrad(self.0, [dims.0, dims.1, dims.2, dims.3]),
            )?)
        } else {
            None
        };
        let dw = x.apply_op2_no_bwd(&g, &DirectWeightGrad(self.0, w.dim(0)?))?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp2 for DirectInputGrad {
    fn name(&self) -> &'static str {
        "gantry-direct-conv-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.0;
        let [n, cin, h, w] = self.1;
        let d = p.dims(&[n, cin, h, w], l2.dims())?;
        if l1.dims() != [d.n, d.cout, d.ho, d.wo] {
            candle_core::bail!(
                "direct conv input grad: gradient {:?} does not match",
                l1.dims()
            );
        }
        let g = f32_slice(s1, l1, self.name())?;
        let wt = f32_slice(s2, l2, self.name())?;
        let mut out = vec![0f32; n * cin * h * w];
        out.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, dx)| {
                let (n, ci) = (plane / cin, plane % cin);
                let grads = &g[n * d.cout * d.ho * d.wo..][..d.cout * d.ho * d.wo];
                input_grad_plane(dx, grads, wt, ci, p, d);
            });
        Ok((CpuStorage::F32(out), Shape::from((n, cin, h, w))))
    }
}

impl CustomOp2 for DirectWeightGrad {
    fn name(&self) -> &'static str {
        "gantry-direct-conv-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.0;
        let cout = self.1;
        let xd = l1.dims();
        let wcols = xd[1] * p.kh * p.kw + p.bias as usize;
        let d = p.dims(xd, &[cout, wcols])?;
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        // Parallel over (output, input) channel pairs: each owns its kh*kw taps, summed
        // over the batch. Bias gradients (per output channel) come after.
        let taps = p.kh * p.kw;
        let mut grads = vec![0f32; cout * d.cin * taps];
        grads
            .par_chunks_mut(taps)
            .enumerate()
            .for_each(|(pair, dw)| weight_grad_pair(dw, x, g, pair / d.cin, pair % d.cin, p, d));
        // Bias gradients: each output channel's gradient summed over the batch, in parallel
        // (serially this was a whole pass over the gradient on one core).
        let plane = d.ho * d.wo;
        let bias: Vec<f32> = if p.bias {
            (0..cout)
                .into_par_iter()
                .map(|co| {
                    (0..d.n)
                        .map(|n| plane_sum(&g[(n * cout + co) * plane..][..plane]))
                        .sum()
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(cout * wcols);
        for co in 0..cout {
            out.extend_from_slice(&grads[co * d.cin * taps..(co + 1) * d.cin * taps]);
            if p.bias {
                out.push(bias[co]);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((cout, wcols))))
    }
}
simd_kernel! {
    /// One output plane `o [Ho, Wo]` of image `x [Cin, H, W]` with weight row `wrow`:
    /// shifted row axpys, activated at the end.
    fn forward_plane(o: &mut [f32], x: &[f32], wrow: &[f32], p: Direct, d: Dims) {
        if p.bias {
            o.fill(wrow[d.wcols - 1]);
        } else {
            o.fill(0.0);
        }
        for ci in 0..d.cin {
            let xp = &x[ci * d.h * d.w..][..d.h * d.w];
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    let wv = wrow[(ci * p.kh + ky) * p.kw + kx];
                    let (lo, hi) = p.cols(&d, kx);
                    for oy in 0..d.ho {
                        let Some(iy) = p.row(&d, oy, ky) else {
                            continue;
                        };
                        let src = &xp[iy * d.w + lo + kx - p.pad..][..hi - lo];
                        let dst = &mut o[oy * d.wo + lo..][..hi - lo];
                        for (a, b) in dst.iter_mut().zip(src) {
                            *a += wv * b;
                        }
                    }
                }
            }
        }
        if let Some(s) = p.slope {
            for v in o.iter_mut() {
                *v = if *v > 0.0 { *v } else { *v * s };
            }
        }
    }
}

simd_kernel! {
    /// Input channel `ci`'s gradient plane `dx [H, W]` from one image's output gradients
    /// `g [Cout, Ho, Wo]`: the forward's axpys transposed.
    fn input_grad_plane(dx: &mut [f32], g: &[f32], wt: &[f32], ci: usize, p: Direct, d: Dims) {
        for co in 0..d.cout {
            let gp = &g[co * d.ho * d.wo..][..d.ho * d.wo];
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    let wv = wt[co * d.wcols + (ci * p.kh + ky) * p.kw + kx];
                    let (lo, hi) = p.cols(&d, kx);
                    for oy in 0..d.ho {
                        let Some(iy) = p.row(&d, oy, ky) else {
                            continue;
                        };
                        let src = &gp[oy * d.wo + lo..][..hi - lo];
                        let dst = &mut dx[iy * d.w + lo + kx - p.pad..][..hi - lo];
                        for (a, b) in dst.iter_mut().zip(src) {
                            *a += wv * b;
                        }
                    }
                }
            }
        }
    }
}

simd_kernel! {
    /// Sum of a plane, in sixteen partial sums so that it vectorises.
    fn plane_sum(x: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            for k in 0..16 {
                acc[k] += c[k];
            }
        }
        acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
    }
}

simd_kernel! {
    /// The `kh*kw` taps `dw` of channel pair (co, ci), summed over the batch.
    fn weight_grad_pair(
        dw: &mut [f32],
        x: &[f32],
        g: &[f32],
        co: usize,
        ci: usize,
        p: Direct,
        d: Dims,
    ) {
        for n in 0..d.n {
            let gp = &g[(n * d.cout + co) * d.ho * d.wo..][..d.ho * d.wo];
            let xp = &x[(n * d.cin + ci) * d.h * d.w..][..d.h * d.w];
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    let (lo, hi) = p.cols(&d, kx);
                    // Sixteen partial sums (one AVX-512 register) so the reduction
                    // vectorises: the compiler does not reassociate float additions.
                    let mut acc = [0f32; 16];
                    for oy in 0..d.ho {
                        let Some(iy) = p.row(&d, oy, ky) else {
                            continue;
                        };
                        let xs = &xp[iy * d.w + lo + kx - p.pad..][..hi - lo];
                        let gs = &gp[oy * d.wo + lo..][..hi - lo];
                        let mut xc = xs.chunks_exact(16);
                        let mut gc = gs.chunks_exact(16);
                        for (a, b) in (&mut xc).zip(&mut gc) {
                            for k in 0..16 {
                                acc[k] += a[k] * b[k];
                            }
                        }
                        for (a, b) in xc.remainder().iter().zip(gc.remainder()) {
                            acc[0] += a * b;
                        }
                    }
                    dw[ky * p.kw + kx] += acc.iter().sum::<f32>();
                }
            }
        }
    }
}
