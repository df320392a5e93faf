//! Image quality of a batch against a reference batch (reconstructions against inputs,
//! generated against real), as the scalars a plugin emits in `eval`: PSNR and SSIM always,
//! MS-SSIM where the images are large enough for it (161 px a side).
//!
//! PSNR and SSIM run as the kit's fused ops ([`crate::fused`]), on the batch's own device:
//! on a GPU only one number per image is copied back. MS-SSIM comes from
//! `gantry-image-metrics` on the host. Both reproduce piq's definitions, so the numbers
//! match what a PyTorch script logs with piq.

use candle_core::{Result, Tensor};
use gantry_image_metrics::{self as iq, ImageBatch};

use crate::fused;

/// The smallest side MS-SSIM's five scales fit in (11 px at the coarsest).
const MS_SSIM_MIN_SIDE: usize = 161;

/// `(name, batch mean)` for each metric that applies to `[N, C, H, W]` tensors in [0, 1].
/// Values are clamped to [0, 1] first (piq refuses anything outside).
pub fn batch_quality(x: &Tensor, y: &Tensor) -> Result<Vec<(&'static str, f64)>> {
    let (n, c, h, w) = x.dims4()?;
    if y.dims4()? != (n, c, h, w) {
        candle_core::bail!("quality: shapes {:?} and {:?} differ", x.dims(), y.dims());
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let (xc, yc) = (x.clamp(0f32, 1f32)?, y.clamp(0f32, 1f32)?);
    let mean = |t: Tensor| -> Result<f64> {
        t.to_dtype(candle_core::DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()
    };
    let mut out = vec![("psnr", mean(fused::per_image_psnr(&xc, &yc)?)?)];
    // SSIM needs the 11x11 window to fit; smaller images simply have no SSIM.
    if h.min(w) >= gantry_kernels::SSIM_WINDOW {
        out.push(("ssim", mean(fused::per_image_ssim(&xc, &yc)?)?));
    }
    if h.min(w) >= MS_SSIM_MIN_SIDE {
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            t.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()
        };
        let (a, b) = (flat(&xc)?, flat(&yc)?);
        let batch = |data| ImageBatch { data, n, c, h, w };
        if let Ok(v) = iq::ms_ssim(&batch(&a), &batch(&b)) {
            out.push(("ms_ssim", v));
        }
    }
    out.retain(|(_, v)| v.is_finite());
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
        assert!((get("psnr").unwrap() - 80.0).abs() < 1e-4);
        assert!((get("ssim").unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(get("ms_ssim"), None, "32 px is below MS-SSIM's 161");
        let noisy = (&x * 0.5).unwrap();
        let q = batch_quality(&x, &noisy).unwrap();
        let psnr = q.iter().find(|(n, _)| *n == "psnr").unwrap().1;
        assert!(psnr < 30.0, "{psnr}");
    }

    #[test]
    fn batch_means_match_image_metrics() {
        let x = Tensor::rand(0f32, 1.0, (3, 1, 40, 40), &Device::Cpu).unwrap();
        let y = ((&x * 0.7).unwrap() + 0.1).unwrap();
        let q = batch_quality(&x, &y).unwrap();
        let a: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let batch = |data| ImageBatch {
            data,
            n: 3,
            c: 1,
            h: 40,
            w: 40,
        };
        let want_psnr = iq::psnr(&batch(&a), &batch(&b)).unwrap();
        let want_ssim = iq::ssim(&batch(&a), &batch(&b)).unwrap();
        assert!((q[0].1 - want_psnr).abs() < 1e-4, "{q:?} vs {want_psnr}");
        assert!((q[1].1 - want_ssim).abs() < 1e-5, "{q:?} vs {want_ssim}");
    }

    #[test]
    fn images_below_the_ssim_window_report_psnr_only() {
        let x = Tensor::rand(0f32, 1.0, (2, 1, 8, 8), &Device::Cpu).unwrap();
        let q = batch_quality(&x, &x).unwrap();
        assert_eq!(q.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec!["psnr"]);
    }
}
