//! The CPU twins of gantry's CUDA kernels (`gantry-kernels/src/cuda/*.cu`): the same
//! results by the same arithmetic, rows and planes in parallel with rayon.

use gantry_kernels::SSIM_WINDOW;
use rayon::prelude::*;

/// Below this many elements a row is summed on the calling thread (rayon's overhead).
const PAR_MIN: usize = 1 << 14;

/// Lanes of the row sums: independent f32 accumulators the compiler keeps in vector
/// registers. Fixed, so results do not depend on the machine.
const LANES: usize = 16;

/// Sum of `f` over the elements of a row, in `LANES` interleaved f32 partial sums.
fn lane_sum(len: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let whole = len / LANES * LANES;
    for base in (0..whole).step_by(LANES) {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += f(base + k);
        }
    }
    for (k, i) in (whole..len).enumerate() {
        acc[k] += f(i);
    }
    acc.iter().sum()
}

/// Sum of squared differences of each `len`-long row.
pub(super) fn row_sse(a: &[f32], b: &[f32], len: usize) -> Vec<f32> {
    if len == 0 {
        return vec![0.0; a.len()];
    }
    let one = |(pa, pb): (&[f32], &[f32])| -> f32 {
        lane_sum(len, |i| {
            let d = pa[i] - pb[i];
            d * d
        })
    };
    if a.len() < PAR_MIN {
        a.chunks_exact(len)
            .zip(b.chunks_exact(len))
            .map(one)
            .collect()
    } else {
        a.par_chunks_exact(len)
            .zip(b.par_chunks_exact(len))
            .map(one)
            .collect()
    }
}

/// Sum of each `len`-long row.
pub(super) fn row_sum(x: &[f32], len: usize) -> Vec<f32> {
    if len == 0 {
        return vec![0.0; x.len()];
    }
    let one = |r: &[f32]| lane_sum(len, |i| r[i]);
    if x.len() < PAR_MIN {
        x.chunks_exact(len).map(one).collect()
    } else {
        x.par_chunks_exact(len).map(one).collect()
    }
}

/// The normalised 1-D Gaussian of the SSIM window, computed as the kernel computes it.
pub(super) fn gaussian() -> [f32; SSIM_WINDOW] {
    let sigma = gantry_kernels::SSIM_SIGMA;
    let mut g = [0f32; SSIM_WINDOW];
    let mut sum = 0f32;
    for (i, gi) in g.iter_mut().enumerate() {
        let d = i as f32 - (SSIM_WINDOW / 2) as f32;
        *gi = (-(d * d) / (2.0 * sigma * sigma)).exp();
        sum += *gi;
    }
    for gi in &mut g {
        *gi /= sum;
    }
    g
}

/// The SSIM map of each `h x w` plane, "valid": `(h - 10) x (w - 10)` per plane.
///
/// Separable, but with the kernel's arithmetic: the kernel runs, for each window row `i`,
/// the fused multiply-adds along the row (`j`), then adds `g[i]` times that row's result;
/// here each row's result is computed once (the horizontal pass) and reused by the 11
/// outputs whose windows contain it (the vertical pass, the same `i` order). Bit for bit
/// the kernel's sums, at 22 instead of 121 taps per pixel and quantity.
pub(super) fn ssim_map(x: &[f32], y: &[f32], h: usize, w: usize) -> Vec<f32> {
    let g = gaussian();
    let (oh, ow) = (h + 1 - SSIM_WINDOW, w + 1 - SSIM_WINDOW);
    let plane_len = h * w;
    let mut out = vec![0f32; x.len() / plane_len * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(plane_len).zip(y.par_chunks(plane_len)))
        .for_each(|(map, (px, py))| ssim_plane(px, py, h, w, &g, map));
    out
}

crate::ops::simd_kernel! {
    /// One plane's SSIM map (see [`ssim_map`]). A kernel of its own so that, compiled with
    /// FMA, `mul_add` is one instruction rather than a call into libm.
    fn ssim_plane(px: &[f32], py: &[f32], h: usize, w: usize, g: &[f32; SSIM_WINDOW], map: &mut [f32]) {
        let (c1, c2) = (gantry_kernels::SSIM_C1, gantry_kernels::SSIM_C2);
        let ow = w + 1 - SSIM_WINDOW;
        let oh = h + 1 - SSIM_WINDOW;
        // Horizontal pass: [quantity][row][out column] for x, y, xx, yy, xy.
        let mut rows = vec![0f32; 5 * h * ow];
        let (hx, rest) = rows.split_at_mut(h * ow);
        let (hy, rest) = rest.split_at_mut(h * ow);
        let (hxx, rest) = rest.split_at_mut(h * ow);
        let (hyy, hxy) = rest.split_at_mut(h * ow);
        for r in 0..h {
            for ox in 0..ow {
                let (mut rx, mut ry, mut rxx, mut ryy, mut rxy) =
                    (0f32, 0f32, 0f32, 0f32, 0f32);
                let at = r * w + ox;
                for (j, gj) in g.iter().enumerate() {
                    let (a, b) = (px[at + j], py[at + j]);
                    rx = gj.mul_add(a, rx);
                    ry = gj.mul_add(b, ry);
                    rxx = gj.mul_add(a * a, rxx);
                    ryy = gj.mul_add(b * b, ryy);
                    rxy = gj.mul_add(a * b, rxy);
                }
                let o = r * ow + ox;
                (hx[o], hy[o], hxx[o], hyy[o], hxy[o]) = (rx, ry, rxx, ryy, rxy);
            }
        }
        // Vertical pass and the SSIM formula.
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut mx, mut my, mut sxx, mut syy, mut sxy) =
                    (0f32, 0f32, 0f32, 0f32, 0f32);
                for (i, gi) in g.iter().enumerate() {
                    let o = (oy + i) * ow + ox;
                    mx = gi.mul_add(hx[o], mx);
                    my = gi.mul_add(hy[o], my);
                    sxx = gi.mul_add(hxx[o], sxx);
                    syy = gi.mul_add(hyy[o], syy);
                    sxy = gi.mul_add(hxy[o], sxy);
                }
                let vx = sxx - mx * mx;
                let vy = syy - my * my;
                let cov = sxy - mx * my;
                map[oy * ow + ox] = ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2));
            }
        }
    }
}

/// The bin of one value, bit for bit the kernel's rule; `None` for NaN.
pub(super) fn bin_of(v: f32, lo: f32, hi: f32, scale: f32, bins: usize) -> Option<usize> {
    if v.is_nan() {
        None
    } else if v <= lo {
        Some(0)
    } else if v >= hi {
        Some(bins - 1)
    } else {
        // `as u32` saturates like the kernel's conversion of an in-range positive float.
        Some((((v - lo) * scale) as u32 as usize).min(bins - 1))
    }
}

pub(super) fn histogram(x: &[f32], lo: f32, hi: f32, scale: f32, bins: usize) -> Vec<u32> {
    let mut counts = vec![0u32; bins];
    for v in x {
        if let Some(b) = bin_of(*v, lo, hi, scale, bins) {
            counts[b] += 1;
        }
    }
    counts
}
