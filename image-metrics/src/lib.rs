//! Full-reference image quality metrics, computed exactly as the `piq` Python package (v0.8)
//! defines them with its default arguments, so that numbers shown here match what a
//! PyTorch training script logs with piq: PSNR, SSIM, MS-SSIM, GMSD, MS-GMSD, MDSI and
//! HaarPSI.
//!
//! Inputs are batches of images with values in [0, 1] (piq's `data_range=1`), NCHW `f32`,
//! grey (C = 1) or RGB (C = 3). Every metric has a batch form returning the mean over the
//! batch (piq's `reduction='mean'`) and a `*_per_image` form (`reduction='none'`).
//! Arithmetic is in `f64` throughout; `tests/fixtures/image_quality/reference.json` holds
//! piq's float64 values, which these functions reproduce to about 1e-12.
//!
//! Direction: higher is better for PSNR, SSIM, MS-SSIM and HaarPSI; lower is better for
//! GMSD, MS-GMSD and MDSI (they measure deviation; 0 for identical images).
//!
//! piq details reproduced here (they change the numbers, so they matter):
//! - convolutions are cross-correlations; SSIM's Gaussian window is applied "valid" (no
//!   padding), the Prewitt gradients of GMSD/MDSI pad with zeros to keep the size, and the
//!   even-sized Haar filters of HaarPSI pad `k/2 - 1` before and `k/2` after (MATLAB 'same');
//! - 2x2 average pooling floors odd sizes after padding *both* axes by one when *either* is
//!   odd: zeros at the end for GMSD, MS-GMSD and HaarPSI, replicated edges at the start for
//!   MS-SSIM;
//! - SSIM (and MDSI) first average-pool by `f = max(1, round(min(H, W) / 256))` with
//!   Python's round-half-to-even;
//! - SSIM and MS-SSIM are computed per channel and averaged over channels (RGB is not
//!   converted); GMSD, MS-GMSD and HaarPSI use the luma Y of YIQ (0.299, 0.587, 0.114), MDSI
//!   converts to LHM and repeats a grey channel three times;
//! - PSNR is `-10 log10(MSE + 1e-8)`, so identical images give 80 dB rather than infinity.

/// A batch of `n` images with `c` channels of `h` x `w` pixels, NCHW (row-major within a
/// plane), values in [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct ImageBatch<'a> {
    pub data: &'a [f32],
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl ImageBatch<'_> {
    /// Channel `k` of image `i`, widened to f64 (all arithmetic is in f64).
    fn plane(&self, i: usize, k: usize) -> Plane {
        let len = self.h * self.w;
        let start = (i * self.c + k) * len;
        let v = self.data[start..start + len]
            .iter()
            .map(|&p| f64::from(p))
            .collect();
        Plane {
            h: self.h,
            w: self.w,
            v,
        }
    }

    /// Every channel of image `i`.
    fn planes(&self, i: usize) -> Vec<Plane> {
        (0..self.c).map(|k| self.plane(i, k)).collect()
    }

    /// Shape and content checks shared by every metric (piq asserts the same).
    fn validate(&self) -> Result<(), String> {
        if self.c != 1 && self.c != 3 {
            return Err(format!(
                "expected 1 (grey) or 3 (RGB) channels, got {}",
                self.c
            ));
        }
        if self.n == 0 || self.h == 0 || self.w == 0 {
            return Err(format!("empty batch: shape {}", self.shape()));
        }
        let expected = self.n * self.c * self.h * self.w;
        if self.data.len() != expected {
            return Err(format!(
                "data holds {} values, shape {} needs {expected}",
                self.data.len(),
                self.shape()
            ));
        }
        if let Some(bad) = self.data.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(format!("values must lie in [0, 1], found {bad}"));
        }
        Ok(())
    }

    fn shape(&self) -> String {
        format!("{}x{}x{}x{}", self.n, self.c, self.h, self.w)
    }
}

/// Peak signal-to-noise ratio in dB (data range 1), batch mean. Capped at 80 dB for
/// identical images, as piq adds 1e-8 to the MSE.
pub fn psnr(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    psnr_per_image(x, y).map(|v| mean(&v))
}

/// PSNR of each image pair, over all channels together.
pub fn psnr_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    per_image(x, y, |a, b| {
        let (sum, count) = a.iter().zip(b).fold((0.0, 0usize), |(s, n), (pa, pb)| {
            let d: f64 = pa.v.iter().zip(&pb.v).map(|(p, q)| (p - q) * (p - q)).sum();
            (s + d, n + pa.v.len())
        });
        Ok(-10.0 * (sum / count as f64 + 1e-8).log10())
    })
}

/// Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01,
/// K2 0.03), batch mean. Needs at least 11x11 pixels after piq's downsampling by
/// `round(min(H, W) / 256)`.
pub fn ssim(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    ssim_per_image(x, y).map(|v| mean(&v))
}

/// SSIM of each image pair: the mean over channels of each channel's mean SSIM map.
pub fn ssim_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    let f = downsample_factor(x.h, x.w);
    if x.h / f < SSIM_WINDOW || x.w / f < SSIM_WINDOW {
        return Err(format!(
            "SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after downsampling by {f}, got {}x{}",
            x.h, x.w
        ));
    }
    let g = gaussian_window();
    per_image(x, y, |a, b| {
        let per_channel = a.iter().zip(b).map(|(pa, pb)| {
            let (pa, pb) = (pa.avg_pool(f), pb.avg_pool(f));
            ssim_and_cs(&pa, &pb, &g).0
        });
        Ok(per_channel.sum::<f64>() / a.len() as f64)
    })
}

/// Multi-scale SSIM (Wang et al. 2003) over piq's 5 scales with weights
/// (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), batch mean. Needs at least 161x161 pixels,
/// so that the coarsest scale still fits the 11x11 window.
pub fn ms_ssim(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    ms_ssim_per_image(x, y).map(|v| mean(&v))
}

/// MS-SSIM of each image pair, averaged over channels.
pub fn ms_ssim_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    let min = MS_SSIM_MIN_SIZE;
    if x.h < min || x.w < min {
        return Err(format!(
            "MS-SSIM needs at least {min}x{min} pixels, got {}x{}",
            x.h, x.w
        ));
    }
    let g = gaussian_window();
    per_image(x, y, |a, b| {
        let per_channel = a.iter().zip(b).map(|(pa, pb)| ms_ssim_channel(pa, pb, &g));
        Ok(per_channel.sum::<f64>() / a.len() as f64)
    })
}

/// Gradient magnitude similarity deviation (Xue et al. 2014), batch mean: the standard
/// deviation of the gradient similarity map of the luma, after 2x2 average pooling.
pub fn gmsd(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    gmsd_per_image(x, y).map(|v| mean(&v))
}

/// GMSD of each image pair.
pub fn gmsd_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    per_image(x, y, |a, b| {
        let (ya, yb) = (luma(a).half(), luma(b).half());
        Ok(gmsd_core(&ya, &yb, GMSD_T, 0.0))
    })
}

/// Multi-scale GMSD (Zhang et al. 2017) without the chromatic term (piq's default), batch
/// mean. Needs at least 17x17 pixels.
pub fn ms_gmsd(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    ms_gmsd_per_image(x, y).map(|v| mean(&v))
}

/// MS-GMSD of each image pair.
pub fn ms_gmsd_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    let min = (1 << MS_GMSD_WEIGHTS.len()) + 1;
    if x.h < min || x.w < min {
        return Err(format!(
            "MS-GMSD needs at least {min}x{min} pixels, got {}x{}",
            x.h, x.w
        ));
    }
    per_image(x, y, |a, b| {
        let (mut ya, mut yb) = (luma(a).scale(255.0), luma(b).scale(255.0));
        let mut total = 0.0;
        for (scale, weight) in MS_GMSD_WEIGHTS.iter().enumerate() {
            if scale > 0 {
                (ya, yb) = (ya.half(), yb.half());
            }
            let g = gmsd_core(&ya, &yb, 170.0, 0.5);
            total += weight * g * g;
        }
        Ok(total.sqrt())
    })
}

/// Mean deviation similarity index (Nafchi et al. 2016) with piq's defaults (sum
/// combination, C1 140, C2 55, C3 550, alpha 0.6, q = o = 0.25), batch mean. Grey images
/// are treated as RGB with three equal channels, as piq does.
pub fn mdsi(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    mdsi_per_image(x, y).map(|v| mean(&v))
}

/// MDSI of each image pair.
pub fn mdsi_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    let f = downsample_factor(x.h, x.w);
    per_image(x, y, |a, b| {
        let prep = |p: &[Plane]| -> [Plane; 3] {
            let pooled: Vec<Plane> = p
                .iter()
                .map(|q| q.scale(255.0).pad_zero((f - 1) / 2, f / 2).avg_pool(f))
                .collect();
            let rgb = if pooled.len() == 1 {
                [&pooled[0], &pooled[0], &pooled[0]]
            } else {
                [&pooled[0], &pooled[1], &pooled[2]]
            };
            LHM.map(|wts| Plane::combine(&rgb, &wts))
        };
        Ok(mdsi_core(&prep(a), &prep(b)))
    })
}

/// Haar wavelet-based perceptual similarity index (Reisenhofer et al. 2018) with piq's
/// defaults (3 scales, subsampling, C 30, alpha 4.2), batch mean. Needs at least 16x16
/// pixels (the largest Haar filter before subsampling).
pub fn haarpsi(x: &ImageBatch, y: &ImageBatch) -> Result<f64, String> {
    haarpsi_per_image(x, y).map(|v| mean(&v))
}

/// HaarPSI of each image pair.
pub fn haarpsi_per_image(x: &ImageBatch, y: &ImageBatch) -> Result<Vec<f64>, String> {
    let min = 1 << (HAAR_SCALES + 1);
    if x.h < min || x.w < min {
        return Err(format!(
            "HaarPSI needs at least {min}x{min} pixels, got {}x{}",
            x.h, x.w
        ));
    }
    per_image(x, y, |a, b| {
        let prep = |p: &[Plane]| -> Vec<Plane> {
            let scaled: Vec<Plane> = p.iter().map(|q| q.scale(255.0)).collect();
            let chans = if scaled.len() == 3 {
                let rgb = [&scaled[0], &scaled[1], &scaled[2]];
                YIQ.iter().map(|wts| Plane::combine(&rgb, wts)).collect()
            } else {
                scaled
            };
            chans.iter().map(Plane::half).collect()
        };
        Ok(haarpsi_core(&prep(a), &prep(b)))
    })
}

const SSIM_WINDOW: usize = 11;
const SSIM_SIGMA: f64 = 1.5;
const SSIM_C1: f64 = 0.01 * 0.01;
const SSIM_C2: f64 = 0.03 * 0.03;
const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// `(window - 1) * 2^(scales - 1) + 1`: the coarsest scale must still hold the window.
const MS_SSIM_MIN_SIZE: usize = (SSIM_WINDOW - 1) * (1 << (MS_SSIM_WEIGHTS.len() - 1)) + 1;
/// GMSD's stability constant for data in [0, 1] (170 on the 0-255 scale).
const GMSD_T: f64 = 170.0 / (255.0 * 255.0);
const MS_GMSD_WEIGHTS: [f64; 4] = [0.096, 0.596, 0.289, 0.019];
/// RGB -> YIQ rows (piq's `rgb2yiq`).
const YIQ: [[f64; 3]; 3] = [
    [0.299, 0.587, 0.114],
    [0.5959, -0.2746, -0.3213],
    [0.2115, -0.5227, 0.3112],
];
/// RGB -> LHM rows (piq's `rgb2lhm`; note 0.2989, not YIQ's 0.299).
const LHM: [[f64; 3]; 3] = [
    [0.2989, 0.587, 0.114],
    [0.3, 0.04, -0.35],
    [0.34, -0.6, 0.17],
];
const HAAR_SCALES: usize = 3;

/// Validates both batches, checks they match, and applies `metric` to each image pair.
fn per_image(
    x: &ImageBatch,
    y: &ImageBatch,
    metric: impl Fn(&[Plane], &[Plane]) -> Result<f64, String>,
) -> Result<Vec<f64>, String> {
    x.validate()?;
    y.validate()?;
    if (x.n, x.c, x.h, x.w) != (y.n, y.c, y.h, y.w) {
        return Err(format!("shapes differ: {} vs {}", x.shape(), y.shape()));
    }
    (0..x.n)
        .map(|i| metric(&x.planes(i), &y.planes(i)))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// piq's `max(1, round(min(H, W) / 256))`, with Python's round-half-to-even.
fn downsample_factor(h: usize, w: usize) -> usize {
    ((h.min(w) as f64 / 256.0).round_ties_even() as usize).max(1)
}

/// The luma plane: Y of YIQ for RGB, the plane itself for grey.
fn luma(p: &[Plane]) -> Plane {
    if p.len() == 3 {
        Plane::combine(&[&p[0], &p[1], &p[2]], &YIQ[0])
    } else {
        p[0].clone()
    }
}

/// Normalised 1-D Gaussian; its outer product is piq's normalised 2-D window.
fn gaussian_window() -> Vec<f64> {
    let mid = (SSIM_WINDOW - 1) as f64 / 2.0;
    let g: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-(i as f64 - mid).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = g.iter().sum();
    g.iter().map(|v| v / sum).collect()
}

/// Mean SSIM and mean contrast-structure (CS) maps of one channel, window applied "valid".
fn ssim_and_cs(x: &Plane, y: &Plane, g: &[f64]) -> (f64, f64) {
    let (oh, ow) = (x.h + 1 - g.len(), x.w + 1 - g.len());
    let blur = |p: &Plane| p.correlate(g, g, 0, 0, oh, ow);
    let (mu_x, mu_y) = (blur(x), blur(y));
    let xx = blur(&x.zip(x, |a, b| a * b));
    let yy = blur(&y.zip(y, |a, b| a * b));
    let xy = blur(&x.zip(y, |a, b| a * b));
    let (mut ssim_sum, mut cs_sum) = (0.0, 0.0);
    for i in 0..mu_x.v.len() {
        let (mx, my) = (mu_x.v[i], mu_y.v[i]);
        let sxx = xx.v[i] - mx * mx;
        let syy = yy.v[i] - my * my;
        let sxy = xy.v[i] - mx * my;
        let cs = (2.0 * sxy + SSIM_C2) / (sxx + syy + SSIM_C2);
        cs_sum += cs;
        ssim_sum += (2.0 * mx * my + SSIM_C1) / (mx * mx + my * my + SSIM_C1) * cs;
    }
    let n = mu_x.v.len() as f64;
    (ssim_sum / n, cs_sum / n)
}

/// MS-SSIM of one channel: CS at the four finer scales, SSIM at the coarsest, each clamped
/// at 0 and raised to its weight. Scales are halved after replicating the first row and
/// column when a side is odd (piq's rule).
fn ms_ssim_channel(x: &Plane, y: &Plane, g: &[f64]) -> f64 {
    let (mut x, mut y) = (x.clone(), y.clone());
    let mut product = 1.0;
    let last = MS_SSIM_WEIGHTS.len() - 1;
    for (level, weight) in MS_SSIM_WEIGHTS.iter().enumerate() {
        if level > 0 {
            let pad = (x.h % 2).max(x.w % 2);
            x = x.pad_replicate_start(pad).avg_pool(2);
            y = y.pad_replicate_start(pad).avg_pool(2);
        }
        let (s, cs) = ssim_and_cs(&x, &y, g);
        let value = if level == last { s } else { cs };
        product *= value.max(0.0).powf(*weight);
    }
    product
}

/// Prewitt gradient magnitude, zero-padded to keep the size.
fn gradient_magnitude(p: &Plane) -> Plane {
    const THIRD: [f64; 3] = [1.0 / 3.0; 3];
    const DIFF: [f64; 3] = [-1.0, 0.0, 1.0];
    let gx = p.correlate(&THIRD, &DIFF, 1, 1, p.h, p.w);
    let gy = p.correlate(&DIFF, &THIRD, 1, 1, p.h, p.w);
    gx.zip(&gy, |a, b| (a * a + b * b).sqrt())
}

/// piq's `similarity_map`: `(2ab - alpha ab + c) / (a^2 + b^2 - alpha ab + c)`.
fn similarity(a: f64, b: f64, c: f64, alpha: f64) -> f64 {
    (2.0 * a * b - alpha * a * b + c) / (a * a + b * b - alpha * a * b + c)
}

/// Population standard deviation of the gradient magnitude similarity map.
fn gmsd_core(x: &Plane, y: &Plane, t: f64, alpha: f64) -> f64 {
    let gms = gradient_magnitude(x).zip(&gradient_magnitude(y), |a, b| similarity(a, b, t, alpha));
    let m = mean(&gms.v);
    (gms.v.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / gms.v.len() as f64).sqrt()
}

/// MDSI from LHM planes (0-255 scale): gradient similarity (with the fused image's
/// gradients), chromatic similarity, summed, then the deviation of their complex 4th roots.
fn mdsi_core(x: &[Plane; 3], y: &[Plane; 3]) -> f64 {
    const C1: f64 = 140.0;
    const C2: f64 = 55.0;
    const C3: f64 = 550.0;
    const ALPHA: f64 = 0.6;
    const Q: f64 = 0.25;
    const O: f64 = 0.25;
    let gx = gradient_magnitude(&x[0]);
    let gy = gradient_magnitude(&y[0]);
    let gavg = gradient_magnitude(&x[0].zip(&y[0], |a, b| (a + b) / 2.0));
    let roots: Vec<(f64, f64)> = (0..gx.v.len())
        .map(|i| {
            let gs = similarity(gx.v[i], gy.v[i], C1, 0.0)
                + similarity(gx.v[i], gavg.v[i], C2, 0.0)
                - similarity(gy.v[i], gavg.v[i], C2, 0.0);
            let (hx, mx, hy, my) = (x[1].v[i], x[2].v[i], y[1].v[i], y[2].v[i]);
            let cs =
                (2.0 * (hx * hy + mx * my) + C3) / (hx * hx + hy * hy + mx * mx + my * my + C3);
            complex_pow(ALPHA * gs + (1.0 - ALPHA) * cs, Q)
        })
        .collect();
    let n = roots.len() as f64;
    let (mr, mi) = roots
        .iter()
        .fold((0.0, 0.0), |(r, i), z| (r + z.0, i + z.1));
    let (mr, mi) = (mr / n, mi / n);
    let dev = roots
        .iter()
        .map(|z| ((z.0 - mr).powi(2) + (z.1 - mi).powi(2)).sqrt())
        .sum::<f64>()
        / n;
    dev.powf(O)
}

/// A real number raised to `exp` as a complex number (negative bases get phase pi * exp),
/// piq's `pow_for_complex` on a real tensor.
fn complex_pow(base: f64, exp: f64) -> (f64, f64) {
    let r = base.abs().powf(exp);
    let phi = 0.0f64.atan2(base) * exp;
    (r * phi.cos(), r * phi.sin())
}

/// HaarPSI from (subsampled, 0-255) Y or YIQ planes.
fn haarpsi_core(x: &[Plane], y: &[Plane]) -> f64 {
    const C: f64 = 30.0;
    const ALPHA: f64 = 4.2;
    let (cx, cy) = (haar_coefficients(&x[0]), haar_coefficients(&y[0]));
    let abs = |p: &Plane| p.zip(p, |a, _| a.abs());
    // Coarsest-scale magnitudes weight the two orientations.
    let mut weights: Vec<Plane> = (4..6)
        .map(|k| abs(&cx[k]).zip(&abs(&cy[k]), f64::max))
        .collect();
    let mean_sim = |a: [&Plane; 2], b: [&Plane; 2]| {
        let s0 = abs(a[0]).zip(&abs(b[0]), |p, q| similarity(p, q, C, 0.0));
        let s1 = abs(a[1]).zip(&abs(b[1]), |p, q| similarity(p, q, C, 0.0));
        s0.zip(&s1, |p, q| (p + q) / 2.0)
    };
    let mut sims: Vec<Plane> = (0..2)
        .map(|o| mean_sim([&cx[o], &cx[o + 2]], [&cy[o], &cy[o + 2]]))
        .collect();
    if x.len() == 3 {
        // Chroma: I and Q averaged over 2x2 (zero past the end), compared by magnitude.
        let smooth = |p: &Plane| p.correlate(&[0.5, 0.5], &[0.5, 0.5], 0, 0, p.h, p.w);
        let (ix, qx, iy, qy) = (smooth(&x[1]), smooth(&x[2]), smooth(&y[1]), smooth(&y[2]));
        sims.push(mean_sim([&ix, &qx], [&iy, &qy]));
        weights.push(weights[0].zip(&weights[1], |a, b| (a + b) / 2.0));
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (s, w) in sims.iter().zip(&weights) {
        for (sv, wv) in s.v.iter().zip(&w.v) {
            num += sigmoid(sv * ALPHA) * wv;
            den += wv;
        }
    }
    let score = (num + f64::EPSILON) / (den + f64::EPSILON);
    ((score / (1.0 - score)).ln() / ALPHA).powi(2)
}

/// Haar responses at 3 scales, [scale 0 rows, scale 0 columns, scale 1 ..., scale 2 ...],
/// filters of side 2, 4, 8 padded MATLAB-'same' style.
fn haar_coefficients(p: &Plane) -> Vec<Plane> {
    let mut out = Vec::with_capacity(2 * HAAR_SCALES);
    for scale in 0..HAAR_SCALES {
        let k = 2usize << scale;
        let flat = vec![1.0 / k as f64; k];
        let signed: Vec<f64> = (0..k).map(|i| if i < k / 2 { 1.0 } else { -1.0 }).collect();
        let pad = k / 2 - 1;
        out.push(p.correlate(&signed, &flat, pad, pad, p.h, p.w));
        out.push(p.correlate(&flat, &signed, pad, pad, p.h, p.w));
    }
    out
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// One image channel in f64, row-major.
#[derive(Debug, Clone)]
struct Plane {
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Plane {
    /// `sum_k weights[k] * planes[k]`, pixelwise (a colour-space row).
    fn combine(planes: &[&Plane; 3], weights: &[f64; 3]) -> Plane {
        let v = (0..planes[0].v.len())
            .map(|i| (0..3).map(|k| weights[k] * planes[k].v[i]).sum())
            .collect();
        Plane {
            h: planes[0].h,
            w: planes[0].w,
            v,
        }
    }

    fn zip(&self, other: &Plane, f: impl Fn(f64, f64) -> f64) -> Plane {
        let v = self
            .v
            .iter()
            .zip(&other.v)
            .map(|(&a, &b)| f(a, b))
            .collect();
        Plane {
            h: self.h,
            w: self.w,
            v,
        }
    }

    fn scale(&self, s: f64) -> Plane {
        self.zip(self, |a, _| a * s)
    }

    fn at(&self, r: usize, c: usize) -> f64 {
        self.v[r * self.w + c]
    }

    /// Separable cross-correlation with `col` down and `row` across, sampling zeros outside
    /// the plane: output pixel (i, j) reads input rows from `i - pad_top`, columns from
    /// `j - pad_left`.
    fn correlate(
        &self,
        col: &[f64],
        row: &[f64],
        pad_top: usize,
        pad_left: usize,
        out_h: usize,
        out_w: usize,
    ) -> Plane {
        let sample = |idx: usize, pad: usize, len: usize| idx.checked_sub(pad).filter(|&r| r < len);
        let mut tmp = vec![0.0; out_h * self.w];
        for i in 0..out_h {
            for (a, k) in col.iter().enumerate() {
                if let Some(r) = sample(i + a, pad_top, self.h) {
                    let src = &self.v[r * self.w..(r + 1) * self.w];
                    for (t, s) in tmp[i * self.w..(i + 1) * self.w].iter_mut().zip(src) {
                        *t += k * s;
                    }
                }
            }
        }
        let mut v = vec![0.0; out_h * out_w];
        for i in 0..out_h {
            let src = &tmp[i * self.w..(i + 1) * self.w];
            for j in 0..out_w {
                v[i * out_w + j] = row
                    .iter()
                    .enumerate()
                    .filter_map(|(b, k)| sample(j + b, pad_left, self.w).map(|c| k * src[c]))
                    .sum();
            }
        }
        Plane {
            h: out_h,
            w: out_w,
            v,
        }
    }

    /// Non-overlapping `f` x `f` means, dropping incomplete blocks (`avg_pool2d`).
    fn avg_pool(&self, f: usize) -> Plane {
        if f == 1 {
            return self.clone();
        }
        let (h, w) = (self.h / f, self.w / f);
        let mut v = Vec::with_capacity(h * w);
        for i in 0..h {
            for j in 0..w {
                let s: f64 = (0..f)
                    .flat_map(|a| (0..f).map(move |b| (i * f + a, j * f + b)))
                    .map(|(r, c)| self.at(r, c))
                    .sum();
                v.push(s / (f * f) as f64);
            }
        }
        Plane { h, w, v }
    }

    /// Zeros: `before` rows/columns at the top and left, `after` at the bottom and right.
    fn pad_zero(&self, before: usize, after: usize) -> Plane {
        let (h, w) = (self.h + before + after, self.w + before + after);
        let mut v = vec![0.0; h * w];
        for r in 0..self.h {
            let dst = (r + before) * w + before;
            v[dst..dst + self.w].copy_from_slice(&self.v[r * self.w..(r + 1) * self.w]);
        }
        Plane { h, w, v }
    }

    /// `pad` copies of the first row and first column in front (replicate padding).
    fn pad_replicate_start(&self, pad: usize) -> Plane {
        let (h, w) = (self.h + pad, self.w + pad);
        let v = (0..h)
            .flat_map(|r| (0..w).map(move |c| (r.saturating_sub(pad), c.saturating_sub(pad))))
            .map(|(r, c)| self.at(r, c))
            .collect();
        Plane { h, w, v }
    }

    /// piq's 2x2 downsampling: pad both axes with one zero at the end when either side is
    /// odd, then 2x2 average pooling.
    fn half(&self) -> Plane {
        let pad = (self.h % 2).max(self.w % 2);
        self.pad_zero(0, pad).avg_pool(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    type Metric = fn(&ImageBatch, &ImageBatch) -> Result<Vec<f64>, String>;
    const METRICS: [(&str, Metric); 7] = [
        ("psnr", psnr_per_image),
        ("ssim", ssim_per_image),
        ("ms_ssim", ms_ssim_per_image),
        ("gmsd", gmsd_per_image),
        ("ms_gmsd", ms_gmsd_per_image),
        ("mdsi", mdsi_per_image),
        ("haarpsi", haarpsi_per_image),
    ];
    const REFERENCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/image_quality/reference.json"
    );

    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let n = chunk.iter().fold(0u32, |acc, &b| (acc << 6) | u32::from(b))
                << (6 * (4 - chunk.len()));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }

    /// Decodes a fixture image array: base64(zlib(u8)) -> f32 as `b as f32 / 255.0`.
    fn decode_images(s: &str) -> Vec<f32> {
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&base64_decode(s)[..])
            .read_to_end(&mut raw)
            .expect("zlib");
        raw.iter().map(|&b| f32::from(b) / 255.0).collect()
    }

    fn batch<'a>(data: &'a [f32], shape: &[usize]) -> ImageBatch<'a> {
        ImageBatch {
            data,
            n: shape[0],
            c: shape[1],
            h: shape[2],
            w: shape[3],
        }
    }

    #[test]
    fn matches_piq_reference_values() {
        let text = std::fs::read_to_string(REFERENCE).expect("reference.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut checked = 0;
        let mut worst = [0.0f64; METRICS.len()];
        for case in doc["cases"].as_array().expect("cases") {
            let name = case["name"].as_str().unwrap();
            let shape: Vec<usize> = case["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let (xd, yd) = (
                decode_images(case["x"].as_str().unwrap()),
                decode_images(case["y"].as_str().unwrap()),
            );
            let (x, y) = (batch(&xd, &shape), batch(&yd, &shape));
            for (m, (metric, per_image_fn)) in METRICS.into_iter().enumerate() {
                let got = per_image_fn(&x, &y);
                let Some(want) = case["per_image"][metric].as_array() else {
                    assert!(
                        got.is_err(),
                        "{name}/{metric}: piq refused, we returned {got:?}"
                    );
                    continue;
                };
                let got = got.unwrap_or_else(|e| panic!("{name}/{metric}: {e}"));
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(want) {
                    let w = w.as_f64().unwrap();
                    worst[m] = worst[m].max((g - w).abs());
                    assert!((g - w).abs() < 1e-4, "{name}/{metric}: {g} vs piq {w}");
                }
                let want_mean = case["values"][metric].as_f64().unwrap();
                assert!(
                    (mean(&got) - want_mean).abs() < 1e-4,
                    "{name}/{metric} mean"
                );
                checked += 1;
            }
        }
        for ((metric, _), diff) in METRICS.iter().zip(worst) {
            eprintln!("{metric}: max |rust - piq| = {diff:.2e}");
        }
        assert!(checked >= 35, "only {checked} (case, metric) pairs checked");
    }

    fn test_image(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w)
            .map(|i| {
                let (r, col) = ((i / w) % h, i % w);
                (0.5 + 0.4
                    * ((r as f32) * 0.3).sin()
                    * ((col as f32) * 0.2 + i as f32 / (h * w) as f32).cos())
                .clamp(0.0, 1.0)
            })
            .collect()
    }

    #[test]
    fn identical_images_score_perfectly() {
        for (c, h, w) in [(1, 170, 165), (3, 161, 200)] {
            let d = test_image(c, h, w);
            let x = ImageBatch {
                data: &d,
                n: 1,
                c,
                h,
                w,
            };
            assert!(
                (psnr(&x, &x).unwrap() - 80.0).abs() < 1e-9,
                "PSNR caps at 80 dB"
            );
            assert!((ssim(&x, &x).unwrap() - 1.0).abs() < 1e-12);
            assert!((ms_ssim(&x, &x).unwrap() - 1.0).abs() < 1e-12);
            assert!(gmsd(&x, &x).unwrap().abs() < 1e-12);
            assert!(ms_gmsd(&x, &x).unwrap().abs() < 1e-12);
            assert!(mdsi(&x, &x).unwrap().abs() < 1e-6);
            assert!((haarpsi(&x, &x).unwrap() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn rejects_bad_inputs_with_a_reason() {
        let d = vec![0.5f32; 2 * 32 * 32];
        let two = ImageBatch {
            data: &d,
            n: 1,
            c: 2,
            h: 32,
            w: 32,
        };
        assert!(psnr(&two, &two).unwrap_err().contains("channels"));
        let a = ImageBatch {
            data: &d,
            n: 2,
            c: 1,
            h: 32,
            w: 32,
        };
        let b = ImageBatch {
            data: &d,
            n: 1,
            c: 1,
            h: 64,
            w: 32,
        };
        assert!(ssim(&a, &b).unwrap_err().contains("shapes differ"));
        assert!(ms_ssim(&a, &a).unwrap_err().contains("161x161"));
        let small = ImageBatch {
            data: &d[..100],
            n: 1,
            c: 1,
            h: 10,
            w: 10,
        };
        assert!(ssim(&small, &small).unwrap_err().contains("11x11"));
        assert!(haarpsi(&small, &small).unwrap_err().contains("16x16"));
        assert!(ms_gmsd(&small, &small).unwrap_err().contains("17x17"));
        let short = ImageBatch {
            data: &d[..10],
            n: 1,
            c: 1,
            h: 32,
            w: 32,
        };
        assert!(gmsd(&short, &short).unwrap_err().contains("needs 1024"));
        let hot = vec![1.5f32; 32 * 32];
        let out = ImageBatch {
            data: &hot,
            n: 1,
            c: 1,
            h: 32,
            w: 32,
        };
        assert!(mdsi(&out, &out).unwrap_err().contains("[0, 1]"));
    }

    #[test]
    fn downsample_factor_rounds_half_to_even_like_python() {
        assert_eq!(downsample_factor(100, 500), 1);
        assert_eq!(downsample_factor(383, 400), 1); // 1.496
        assert_eq!(downsample_factor(384, 400), 2); // 1.5 -> 2
        assert_eq!(downsample_factor(640, 700), 2); // 2.5 -> 2
        assert_eq!(downsample_factor(896, 900), 4); // 3.5 -> 4
    }
}
