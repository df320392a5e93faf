//! 2-D convolution as one GEMM over the whole batch (im2col), with a backward pass that is
//! GEMMs plus col2im.
//!
//! Why: candle 0.11's CPU conv2d backward computes the input gradient with
//! `conv_transpose2d`, a direct loop parallel only over output channels, which dominates a
//! training step. Here the forward is `W[Cout, K] x cols[K, N*L]` (K = Cin*kh*kw, L =
//! Hout*Wout) and candle's autodiff differentiates the matmul with two more GEMMs; the
//! only hand-written kernels are `im2col` and its adjoint `col2im`, pure data movement.
//! Because each is the other's backward, the composition is differentiable to any order
//! as candle's own ops are (gradients of gradients, as WGAN-GP's penalty needs, still
//! depend on candle not detaching inside backward: `CANDLE_GRAD_DO_NOT_DETACH`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::act::LeakyReluScale;
use super::cpu::{f32_slice, native};
use super::direct_conv::{Direct, DirectConv};
use super::simd_kernel;

/// Geometry of one convolution's unfold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    /// An extra row of ones after the K unfolded rows, so a bias column appended to the
    /// weights is added by the same GEMM (and its gradient comes out of the GEMM's backward
    /// instead of a strided reduction).
    ones_row: bool,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(dims: &[usize], kh: usize, kw: usize, pad: usize, ones_row: bool) -> Result<Geometry> {
        let &[n, c, h, w] = dims else {
            candle_core::bail!("conv2d input must be NCHW, got {dims:?}");
        };
        if h + 2 * pad < kh || w + 2 * pad < kw {
            candle_core::bail!("conv2d kernel {kh}x{kw} larger than padded input {h}x{w}");
        }
        Ok(Geometry {
            ones_row,
            n,
            c,
            h,
            w,
            kh,
            kw,
            pad,
            ho: h + 2 * pad - kh + 1,
            wo: w + 2 * pad - kw + 1,
        })
    }

    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Rows of the unfolded matrix.
    fn rows(&self) -> usize {
        self.k() + self.ones_row as usize
    }

    fn cols(&self) -> usize {
        self.n * self.ho * self.wo
    }
}

/// `[N, C, H, W]` -> `[C*kh*kw (+1), N*Ho*Wo]`, stride 1, zero padding.
fn im2col(x: &[f32], g: Geometry) -> Vec<f32> {
    let ncols = g.cols();
    let mut out = vec![0f32; g.rows() * ncols];
    out.par_chunks_mut(ncols)
        .enumerate()
        .for_each(|(row, dst)| {
            if row == g.k() {
                dst.fill(1.0);
            } else {
                im2col_row(dst, x, row, g);
            }
        });
    out
}

/// The adjoint of [`im2col`]: sums columns back into `[N, C, H, W]` (the ones row, a
/// constant, has no adjoint and is ignored).
fn col2im(cols: &[f32], g: Geometry) -> Vec<f32> {
    let mut out = vec![0f32; g.n * g.c * g.h * g.w];
    // Parallel over images: each owns a disjoint, contiguous slice of the output.
    out.par_chunks_mut(g.c * g.h * g.w)
        .enumerate()
        .for_each(|(n, img)| col2im_image(img, cols, n, g));
    out
}

simd_kernel! {
    /// Unfolded row `row` (one input channel at one kernel tap) for every image: shifted
    /// copies of the channel's rows, zeros where the tap reads padding.
    fn im2col_row(dst: &mut [f32], x: &[f32], row: usize, g: Geometry) {
        let (c, ky, kx) = (row / (g.kh * g.kw), (row / g.kw) % g.kh, row % g.kw);
        // Output x range whose input column lies inside the image.
        let lo = g.pad.saturating_sub(kx);
        let hi = (g.w + g.pad - kx).min(g.wo);
        for n in 0..g.n {
            let src = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            let dst = &mut dst[n * g.ho * g.wo..][..g.ho * g.wo];
            for oy in 0..g.ho {
                let iy = oy + ky;
                let row_out = &mut dst[oy * g.wo..][..g.wo];
                if iy < g.pad || iy - g.pad >= g.h {
                    row_out.fill(0.0);
                    continue;
                }
                let src_row = &src[(iy - g.pad) * g.w..][..g.w];
                row_out[..lo].fill(0.0);
                if hi > lo {
                    row_out[lo..hi].copy_from_slice(&src_row[lo + kx - g.pad..hi + kx - g.pad]);
                }
                if hi < g.wo {
                    row_out[hi.max(lo)..].fill(0.0);
                }
            }
        }
    }
}

simd_kernel! {
    /// Image `n`'s planes `img [C, H, W]`, summed from its columns of every unfolded row.
    fn col2im_image(img: &mut [f32], cols: &[f32], n: usize, g: Geometry) {
        let ncols = g.cols();
        for c in 0..g.c {
            let plane = &mut img[c * g.h * g.w..][..g.h * g.w];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (c * g.kh + ky) * g.kw + kx;
                    let src = &cols[row * ncols + n * g.ho * g.wo..][..g.ho * g.wo];
                    let lo = g.pad.saturating_sub(kx);
                    let hi = (g.w + g.pad - kx).min(g.wo);
                    if hi <= lo {
                        continue;
                    }
                    for oy in 0..g.ho {
                        let iy = oy + ky;
                        if iy < g.pad || iy - g.pad >= g.h {
                            continue;
                        }
                        let dst = &mut plane[(iy - g.pad) * g.w + lo + kx - g.pad..][..hi - lo];
                        let s = &src[oy * g.wo + lo..][..hi - lo];
                        for (d, v) in dst.iter_mut().zip(s) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

simd_kernel! {
    /// One image `dst [Cout, L]` out of the GEMM's `y [Cout, nc*L]`, activated on the way.
    fn gemm_to_image(dst: &mut [f32], y: &[f32], img: usize, nc: usize, l: usize, slope: Option<f32>) {
        let cout = dst.len() / l;
        for co in 0..cout {
            let (d, src) = (&mut dst[co * l..(co + 1) * l], &y[co * nc * l + img * l..][..l]);
            match slope {
                Some(s) => {
                    for (d, &v) in d.iter_mut().zip(src) {
                        *d = if v > 0.0 { v } else { v * s };
                    }
                }
                None => d.copy_from_slice(src),
            }
        }
    }
}

/// `x -> cols`; backward is [`Col2Im`].
struct Im2Col {
    kh: usize,
    kw: usize,
    pad: usize,
    ones_row: bool,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "gantry-im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(layout.dims(), self.kh, self.kw, self.pad, self.ones_row)?;
        let x = f32_slice(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(im2col(x, g)),
            Shape::from((g.rows(), g.cols())),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = Geometry::new(arg.dims(), self.kh, self.kw, self.pad, self.ones_row)?;
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im { g })?))
    }
}

/// `cols -> x` (summing overlaps); backward is [`Im2Col`].
struct Col2Im {
    g: Geometry,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "gantry-col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        if layout.dims() != [g.rows(), g.cols()] {
            candle_core::bail!(
                "col2im: expected [{}, {}], got {:?}",
                g.rows(),
                g.cols(),
                layout.dims()
            );
        }
        let cols = f32_slice(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(col2im(cols, g)),
            Shape::from((g.n, g.c, g.h, g.w)),
        ))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = self.g;
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col {
            kh: g.kh,
            kw: g.kw,
            pad: g.pad,
            ones_row: g.ones_row,
        })?))
    }
}

/// Bytes of unfolded columns per chunk of images: small enough to stay in cache between
/// the unfold and the GEMM, and never kept for the backward pass (it unfolds again), so
/// memory does not grow with `K x N x H x W` per layer.
const CHUNK_BYTES: usize = 4 << 20;

/// Stride-1 2-D convolution with zero padding: `x [N, Cin, H, W]`, `weight [Cout, Cin, kh,
/// kw]`, optional `bias [Cout]`. On the CPU with f32 it runs as GEMMs over chunks of the
/// batch (bias folded in as a ones row); elsewhere it is candle's `conv2d`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, pad: usize) -> Result<Tensor> {
    conv2d_act(x, weight, bias, pad, None)
}

/// [`conv2d`] followed by LeakyReLU with `slope` (0 for ReLU), fused: the activation is
/// applied while the output is written, and its derivative while the gradient is read,
/// saving two full passes over the activation map and a node of the autodiff graph.
pub fn conv2d_act(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    pad: usize,
    slope: Option<f64>,
) -> Result<Tensor> {
    let (cout, cin, kh, kw) = weight.dims4()?;
    if !native(x) {
        let y = x.conv2d(weight, pad, 1, 1, 1)?;
        let y = match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, cout, 1, 1))?)?,
            None => y,
        };
        return match slope {
            Some(s) => super::act::leaky_relu(&y, s),
            None => Ok(y),
        };
    }
    let slope = slope.map(|s| s as f32);
    let w = weight.reshape((cout, cin * kh * kw))?;
    let w = match bias {
        Some(b) => Tensor::cat(&[&w, &b.reshape((cout, 1))?], 1)?,
        None => w,
    };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    if uses_direct(cin, cout) {
        return x.apply_op2(
            &w,
            DirectConv(Direct {
                kh,
                kw,
                pad,
                bias: bias.is_some(),
                slope,
            }),
        );
    }
    x.apply_op2(
        &w,
        Conv2dGemm {
            kh,
            kw,
            pad,
            ones_row: bias.is_some(),
            slope,
        },
    )
}

/// The gradient before a fused activation: `grad * act'(y)`, read from the activated
/// output (its sign is the pre-activation's for any slope >= 0).
pub(super) fn through_activation(
    slope: Option<f32>,
    res: &Tensor,
    grad: &Tensor,
) -> Result<Tensor> {
    match slope {
        Some(slope) => res.apply_op2(&grad.contiguous()?, LeakyReluScale { slope }),
        None => Ok(grad.clone()),
    }
}

/// `[Cout, Cin*kh*kw]` -> `[Cin, Cout, kh, kw]` with both kernel axes reversed: the
/// kernel whose stride-1 convolution is this layer's input gradient.
fn flip_transpose(w: &Tensor, cout: usize, cin: usize, kh: usize, kw: usize) -> Result<Tensor> {
    let dev = w.device();
    let rev = |n: usize| Tensor::from_vec((0..n as u32).rev().collect::<Vec<u32>>(), n, dev);
    w.reshape((cout, cin, kh, kw))?
        .index_select(&rev(kh)?, 2)?
        .index_select(&rev(kw)?, 3)?
        .transpose(0, 1)?
        .contiguous()
}

/// Layers with one input channel or at most four output channels run as direct loops (see
/// [`super::direct_conv`]): their unfolded matrix is all memory traffic and little GEMM.
fn uses_direct(cin: usize, cout: usize) -> bool {
    cin == 1 || cout <= 4
}

/// `(x [N, Cin, H, W], w [Cout, K (+1)]) -> y [N, Cout, Ho, Wo]`, chunk by chunk.
struct Conv2dGemm {
    kh: usize,
    kw: usize,
    pad: usize,
    ones_row: bool,
    /// Fused LeakyReLU slope, if any.
    slope: Option<f32>,
}

impl Conv2dGemm {
    fn geometry(&self, dims: &[usize]) -> Result<Geometry> {
        Geometry::new(dims, self.kh, self.kw, self.pad, self.ones_row)
    }

    /// Images per chunk for this geometry.
    fn chunk(&self, g: &Geometry) -> usize {
        let per_image = g.rows() * g.ho * g.wo * 4;
        (CHUNK_BYTES / per_image.max(1)).clamp(1, g.n.max(1))
    }
}

impl CustomOp2 for Conv2dGemm {
    fn name(&self) -> &'static str {
        "gantry-conv2d-gemm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(l1.dims())?;
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let cout = l2.dims()[0];
        if l2.dims() != [cout, g.rows()] {
            candle_core::bail!(
                "conv2d: weight {:?} does not match {} unfolded rows",
                l2.dims(),
                g.rows()
            );
        }
        let w = Tensor::from_slice(w, (cout, g.rows()), &candle_core::Device::Cpu)?;
        let l = g.ho * g.wo;
        let mut out = vec![0f32; g.n * cout * l];
        let chunk = self.chunk(&g);
        let plane = g.c * g.h * g.w;
        for (i, out_chunk) in out.chunks_mut(chunk * cout * l).enumerate() {
            let n0 = i * chunk;
            let nc = out_chunk.len() / (cout * l);
            let gc = Geometry { n: nc, ..g };
            let cols = im2col(&x[n0 * plane..(n0 + nc) * plane], gc);
            let cols = Tensor::from_vec(cols, (gc.rows(), gc.cols()), &candle_core::Device::Cpu)?;
            let y = w.matmul(&cols)?;
            // Read the GEMM's output in place rather than copying it out first.
            let (storage, y_layout) = y.storage_and_layout();
            let candle_core::Storage::Cpu(y_cpu) = &*storage else {
                candle_core::bail!("{}: GEMM output left the CPU", self.name());
            };
            let y = f32_slice(y_cpu, y_layout, self.name())?;
            // [Cout, nc*L] -> [nc, Cout, L]: the GEMM's layout to NCHW, activated on the way.
            let slope = self.slope;
            out_chunk
                .par_chunks_mut(cout * l)
                .enumerate()
                .for_each(|(img, dst)| gemm_to_image(dst, y, img, nc, l, slope));
        }
        Ok((CpuStorage::F32(out), Shape::from((g.n, cout, g.ho, g.wo))))
    }

    /// `dW = (sum over chunks of cols x G^T)^T`, unfolding each chunk again rather than
    /// keeping the forward's columns. `dX` is `col2im(W^T x G)` per chunk when the layer
    /// widens (Cout >= Cin), and otherwise the forward convolution of `G` with the
    /// flipped, transposed kernel, which unfolds `Cout*kh*kw` rows instead of folding
    /// `Cin*kh*kw` (half the memory traffic in a decoder). Built from differentiable ops,
    /// so the gradient can itself be differentiated.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = &through_activation(self.slope, res, grad)?;
        let g = self.geometry(x.dims())?;
        let cout = w.dim(0)?;
        let chunk = self.chunk(&g);
        let want_dx = x.track_op();
        let flipped_dx = want_dx && cout < g.c;
        let mut dw: Option<Tensor> = None;
        let mut dx = Vec::new();
        let mut n0 = 0;
        while n0 < g.n {
            let nc = chunk.min(g.n - n0);
            let gc = Geometry { n: nc, ..g };
            let cols = x.narrow(0, n0, nc)?.contiguous()?.apply_op1(Im2Col {
                kh: g.kh,
                kw: g.kw,
                pad: g.pad,
                ones_row: g.ones_row,
            })?;
            let gy = super::layout::swap_first_two(&grad.narrow(0, n0, nc)?)?
                .reshape((cout, gc.cols()))?;
            // dW^T = cols x G^T: the gemm crate runs this layout 1.3-9x faster than
            // G x cols^T (long-K products with a transposed right operand pack slowly;
            // `cargo bench -p gantry-kit --bench gemm` prints both).
            let part = cols.matmul(&gy.t()?)?;
            dw = Some(match dw {
                Some(acc) => (acc + part)?,
                None => part,
            });
            if want_dx && !flipped_dx {
                dx.push(
                    w.t()?
                        .matmul(&gy)?
                        .contiguous()?
                        .apply_op1(Col2Im { g: gc })?,
                );
            }
            n0 += nc;
        }
        if flipped_dx {
            let flipped = flip_transpose(&w.narrow(1, 0, g.k())?, cout, g.c, g.kh, g.kw)?;
            let dx = conv2d(grad, &flipped, None, g.kh - 1 - g.pad)?;
            let dw = dw.map(|t| t.t()?.contiguous()).transpose()?;
            return Ok((Some(dx), dw));
        }
        // The network's input needs no gradient: `dx` is only built for tracked inputs.
        let dw = dw.map(|t| t.t()?.contiguous()).transpose()?;
        let dx = if dx.is_empty() {
            None
        } else {
            Some(Tensor::cat(&dx, 0)?)
        };
        Ok((dx, dw))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::ops::testing::{max_diff, rand};

    /// Forward and every gradient equal candle's own conv2d, for padded, unpadded and
    /// non-square shapes.
    #[test]
    fn matches_candle_conv2d_forward_and_backward() {
        for (n, cin, h, w, cout, k, pad) in [
            // GEMM path.
            (2, 3, 8, 8, 6, 3, 1),
            (3, 5, 7, 5, 6, 3, 0),
            (1, 6, 4, 6, 8, 1, 0),
            (2, 5, 5, 5, 7, 5, 2),
            // GEMM path, narrowing (Cout < Cin): the flipped-kernel input gradient.
            (2, 8, 6, 6, 5, 3, 1),
            (2, 9, 5, 7, 6, 5, 2),
            (1, 10, 6, 5, 6, 3, 0),
            // Direct path: one input channel, or few output channels.
            (2, 1, 8, 8, 6, 3, 1),
            (3, 8, 7, 5, 1, 3, 1),
            (2, 6, 6, 6, 3, 5, 2),
            (1, 4, 5, 7, 2, 3, 0),
        ] {
            let x = Var::from_tensor(&rand(&[n, cin, h, w], 1)).unwrap();
            let wt = Var::from_tensor(&rand(&[cout, cin, k, k], 2)).unwrap();
            let b = Var::from_tensor(&rand(&[cout], 3)).unwrap();
            let probe = rand(&[n, cout, h + 2 * pad - k + 1, w + 2 * pad - k + 1], 4);
            let ours = conv2d(&x, &wt, Some(&b), pad).unwrap();
            let reference = x
                .conv2d(&wt, pad, 1, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, cout, 1, 1)).unwrap())
                .unwrap();
            assert!(
                max_diff(&ours, &reference) < 1e-4,
                "forward {n} {cin} {h} {w}"
            );
            let g1 = (ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (reference * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &wt, &b] {
                let (a, r) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(
                    max_diff(a, r) < 1e-3,
                    "gradient of {:?} for {n} {cin} {h} {w}",
                    v.dims()
                );
            }
        }
    }

    /// The fused activation equals conv2d followed by LeakyReLU, forward and backward, on
    /// both the GEMM and the direct path.
    #[test]
    fn fused_activation_matches_conv_then_leaky_relu() {
        for (cin, cout) in [(5, 7), (8, 2), (1, 6)] {
            let x = Var::from_tensor(&rand(&[2, cin, 6, 6], 11)).unwrap();
            let wt = Var::from_tensor(&rand(&[cout, cin, 3, 3], 12)).unwrap();
            let b = Var::from_tensor(&rand(&[cout], 13)).unwrap();
            let probe = rand(&[2, cout, 6, 6], 14);
            for slope in [0.2, 0.0] {
                let fused = conv2d_act(&x, &wt, Some(&b), 1, Some(slope)).unwrap();
                let plain =
                    crate::ops::act::leaky_relu(&conv2d(&x, &wt, Some(&b), 1).unwrap(), slope)
                        .unwrap();
                assert!(
                    max_diff(&fused, &plain) < 1e-5,
                    "forward {cin}->{cout} slope {slope}"
                );
                let g1 = (fused * &probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let g2 = (plain * &probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for v in [&x, &wt, &b] {
                    let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                    assert!(
                        d < 1e-4,
                        "gradient {:?} {cin}->{cout} slope {slope}: {d}",
                        v.dims()
                    );
                }
            }
        }
    }

    /// im2col and col2im are adjoint: <im2col(x), c> == <x, col2im(c)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let g = Geometry::new(&[2, 3, 5, 4], 3, 3, 1, false).unwrap();
        let x = rand(&[2, 3, 5, 4], 5)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = rand(&[g.k() * g.cols()], 6).to_vec1::<f32>().unwrap();
        let lhs: f64 = im2col(&x, g)
            .iter()
            .zip(&c)
            .map(|(a, b)| (*a * *b) as f64)
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(col2im(&c, g))
            .map(|(a, b)| (*a * b) as f64)
            .sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }
}
