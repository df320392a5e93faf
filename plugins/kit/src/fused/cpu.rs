//! The CPU twins of gantry's CUDA kernels (`gantry-kernels/src/cuda/*.cu`): the same
//! results by the same arithmetic, rows and planes in parallel with rayon.

use gantry_kernels::SSIM_WINDOW;
use rayon::prelude::*;

/// Below this many elements a row is summed on the calling thread (rayon's overhead).
const PAR_MIN: usize = 1 << 14;

/// Sum of squared differences of each `len`-long row. Accumulated in f64: this is the
/// oracle the kernel's f32 tree is held to.
pub(super) fn row_sse(a: &[f32], b: &[f32], len: usize) -> Vec<f32> {
    let one = |(pa, pb): (&[f32], &[f32])| -> f32 {
        pa.iter()
            .zip(pb)
            .map(|(x, y)| {
                let d = (*x - *y) as f64;
                d * d
            })
            .sum::<f64>() as f32
    };
    if len == 0 {
        return vec![0.0; a.len()];
    }
    let pairs = a.chunks_exact(len).zip(b.chunks_exact(len));
    if a.len() < PAR_MIN {
        pairs.map(one).collect()
    } else {
        pairs.collect::<Vec<_>>().into_par_iter().map(one).collect()
    }
}

/// Sum of each `len`-long row, in f64.
pub(super) fn row_sum(x: &[f32], len: usize) -> Vec<f32> {
    if len == 0 {
        return vec![0.0; x.len()];
    }
    let one = |r: &[f32]| r.iter().map(|v| *v as f64).sum::<f64>() as f32;
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

/// The SSIM map of each `h x w` plane, "valid": `(h - 10) x (w - 10)` per plane. Window
/// rows accumulate with fused multiply-adds in the kernel's order.
pub(super) fn ssim_map(x: &[f32], y: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (c1, c2) = (gantry_kernels::SSIM_C1, gantry_kernels::SSIM_C2);
    let g = gaussian();
    let (oh, ow) = (h + 1 - SSIM_WINDOW, w + 1 - SSIM_WINDOW);
    let plane_len = h * w;
    let mut out = vec![0f32; x.len() / plane_len * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(plane_len).zip(y.par_chunks(plane_len)))
        .for_each(|(map, (px, py))| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut mx, mut my, mut sxx, mut syy, mut sxy) =
                        (0f32, 0f32, 0f32, 0f32, 0f32);
                    for (i, gi) in g.iter().enumerate() {
                        let (mut rx, mut ry, mut rxx, mut ryy, mut rxy) =
                            (0f32, 0f32, 0f32, 0f32, 0f32);
                        let row = (oy + i) * w + ox;
                        for (j, gj) in g.iter().enumerate() {
                            let (a, b) = (px[row + j], py[row + j]);
                            rx = gj.mul_add(a, rx);
                            ry = gj.mul_add(b, ry);
                            rxx = gj.mul_add(a * a, rxx);
                            ryy = gj.mul_add(b * b, ryy);
                            rxy = gj.mul_add(a * b, rxy);
                        }
                        mx = gi.mul_add(rx, mx);
                        my = gi.mul_add(ry, my);
                        sxx = gi.mul_add(rxx, sxx);
                        syy = gi.mul_add(ryy, syy);
                        sxy = gi.mul_add(rxy, sxy);
                    }
                    let vx = sxx - mx * mx;
                    let vy = syy - my * my;
                    let cov = sxy - mx * my;
                    map[oy * ow + ox] = ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                        / ((mx * mx + my * my + c1) * (vx + vy + c2));
                }
            }
        });
    out
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
