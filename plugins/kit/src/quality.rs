//! Image quality of a batch against a reference batch (reconstructions against inputs,
//! generated against real), as the scalars a plugin emits in `eval`: PSNR and SSIM always,
//! MS-SSIM where the images are large enough for it (161 px a side). Computed by
//! `gantry-image-metrics`, which reproduces piq's definitions, so the numbers match what a
//! PyTorch script logs with piq.

use candle_core::{Result, Tensor};
use gantry_image_metrics::{self as iq, ImageBatch};

/// A batch metric of `gantry-image-metrics`.
type Metric = fn(&ImageBatch, &ImageBatch) -> std::result::Result<f64, String>;

/// `(name, batch mean)` for each metric that applies to `[N, C, H, W]` tensors in [0, 1].
/// Values are clamped to [0, 1] first (piq refuses anything outside).
pub fn batch_quality(x: &Tensor, y: &Tensor) -> Result<Vec<(&'static str, f64)>> {
    let (n, c, h, w) = x.dims4()?;
    if y.dims4()? != (n, c, h, w) {
        candle_core::bail!("quality: shapes {:?} and {:?} differ", x.dims(), y.dims());
    }
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        t.clamp(0f32, 1f32)?
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()
    };
    let (a, b) = (flat(x)?, flat(y)?);
    let (xa, yb) = (
        ImageBatch {
            data: &a,
            n,
            c,
            h,
            w,
        },
        ImageBatch {
            data: &b,
            n,
            c,
            h,
            w,
        },
    );
    let mut out = Vec::new();
    let metrics: [(&'static str, Metric); 3] = [
        ("psnr", iq::psnr),
        ("ssim", iq::ssim),
        ("ms_ssim", iq::ms_ssim),
    ];
    for (name, f) in metrics {
        // A metric that does not apply (too small for MS-SSIM) is left out, not an error.
        if let Ok(v) = f(&xa, &yb)
            && v.is_finite()
        {
            out.push((name, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn identical_batches_score_perfectly_and_small_images_skip_ms_ssim() {
        let x = Tensor::rand(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu).unwrap();
        let q = batch_quality(&x, &x).unwrap();
        let get = |k: &str| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert!((get("psnr").unwrap() - 80.0).abs() < 1e-6);
        assert!((get("ssim").unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(get("ms_ssim"), None, "32 px is below MS-SSIM's 161");
        let noisy = (&x * 0.5).unwrap();
        let q = batch_quality(&x, &noisy).unwrap();
        let psnr = q.iter().find(|(n, _)| *n == "psnr").unwrap().1;
        assert!(psnr < 30.0, "{psnr}");
    }
}
