//! Fused evaluation kernels: per-image squared error, PSNR and SSIM, and score histograms,
//! as candle custom ops. Each runs gantry's own CUDA kernel (`gantry-kernels`, compiled by
//! NVRTC for the GPU at hand) when the tensors live on a CUDA device, and its CPU twin
//! otherwise, so model and metric code calls one function on any device.
//!
//! Why fused: candle composes these from element-wise ops and reductions, each a full pass
//! over the batch with a temporary the size of the batch, and the host-side metrics need
//! the whole batch copied off the GPU. These produce N numbers on the device; evaluation
//! copies N floats instead of N images.
//!
//! The CPU twins are the CUDA kernels' test oracles: they follow the kernels' arithmetic
//! (f32, fused multiply-adds in the same order for SSIM, the same binning rule for the
//! histogram). They are themselves tested against plain candle ops and against
//! `gantry-image-metrics` (which matches piq).

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

pub use gantry_kernels::launch::LaunchError;

/// PSNR's floor on the MSE (piq's 1e-8): identical images score 80 dB, not infinity.
const PSNR_EPS: f64 = 1e-8;

/// `[N, ...]` as a contiguous f32 `[N, L]`.
fn rows(t: &Tensor) -> Result<Tensor> {
    let (n, len) = (t.dim(0)?, row_len(t));
    t.to_dtype(DType::F32)?.reshape((n, len))?.contiguous()
}

/// Elements per image of a `[N, ...]` batch (also when N is 0).
fn row_len(t: &Tensor) -> usize {
    t.dims()[1..].iter().product()
}

fn same_shape(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{op}: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    if a.rank() == 0 {
        candle_core::bail!("{op}: expected a batch [N, ...], got a scalar");
    }
    Ok(())
}

/// Sum of squared differences per image: `[N, ...]` twice in, `[N]` f32 out.
pub fn per_image_sse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("per_image_sse", a, b)?;
    if a.dim(0)? == 0 {
        // No kernel for nothing (CUDA refuses empty grids and zero-byte allocations).
        return Tensor::zeros(0, DType::F32, a.device());
    }
    rows(a)?.apply_op2_no_bwd(&rows(b)?, &RowSse)
}

/// Mean squared error per image (the reconstruction score of an autoencoder): `[N]` f32.
pub fn per_image_mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    per_image_sse(a, b)? / row_len(a).max(1) as f64
}

/// PSNR in dB per image, data range 1 (piq's definition, as `gantry-image-metrics`).
pub fn per_image_psnr(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mse = per_image_mse(a, b)?;
    ((mse + PSNR_EPS)?.log()? * (-10.0 / std::f64::consts::LN_10))?.to_dtype(DType::F32)
}

/// SSIM per image of `[N, C, H, W]` batches in [0, 1]: the mean over channels of each
/// channel's mean SSIM map (11x11 Gaussian window, sigma 1.5, applied "valid"), after
/// piq's average-pool downsampling by `round(min(H, W) / 256)` for large images.
pub fn per_image_ssim(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("per_image_ssim", a, b)?;
    let (n, c, h, w) = a.dims4()?;
    let f = ((h.min(w) as f64 / 256.0).round_ties_even() as usize).max(1);
    let (a, b) = if f > 1 {
        (a.avg_pool2d(f)?, b.avg_pool2d(f)?)
    } else {
        (a.clone(), b.clone())
    };
    let (h, w) = (h / f, w / f);
    // Refuse here, with the image size, rather than deep inside a kernel.
    gantry_kernels::launch::ssim_map(n * c, h, w).map_err(candle_core::Error::wrap)?;
    if n * c == 0 {
        return Tensor::zeros(n, DType::F32, a.device());
    }
    let planes = |t: &Tensor| -> Result<Tensor> {
        t.to_dtype(DType::F32)?.reshape((n * c, h, w))?.contiguous()
    };
    let map = planes(&a)?.apply_op2_no_bwd(&planes(&b)?, &SsimMap)?;
    let (oh, ow) = (map.dim(1)?, map.dim(2)?);
    let per_plane = map.reshape((n * c, oh * ow))?.apply_op1_no_bwd(&RowSum)?;
    (per_plane.reshape((n, c))?.sum(1)? / (c * oh * ow) as f64)?.to_dtype(DType::F32)
}

/// Counts of `values` in `bins` equal bins over [lo, hi]: NaN is skipped, values at or
/// below `lo` count in the first bin and at or above `hi` in the last. `[bins]` u32.
pub fn score_histogram(values: &Tensor, lo: f32, hi: f32, bins: usize) -> Result<Tensor> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        candle_core::bail!("score_histogram: range [{lo}, {hi}] must be finite with hi > lo");
    }
    // Checked here so a bad bin count fails the same way on every device.
    gantry_kernels::launch::histogram(1, bins).map_err(candle_core::Error::wrap)?;
    let flat = values.to_dtype(DType::F32)?.flatten_all()?.contiguous()?;
    flat.apply_op1_no_bwd(&Histogram {
        lo,
        hi,
        scale: bins as f32 / (hi - lo),
        bins,
    })
}

/// `[rows, L]` x2 -> `[rows]`: sum of squared differences of each row.
struct RowSse;

/// `[rows, L]` -> `[rows]`: sum of each row.
struct RowSum;

/// `[planes, H, W]` x2 -> `[planes, H - 10, W - 10]`: the SSIM map.
struct SsimMap;

/// `[n]` -> `[bins]` u32.
struct Histogram {
    lo: f32,
    hi: f32,
    /// `bins / (hi - lo)` in f32, computed once so both devices bin identically.
    scale: f32,
    bins: usize,
}

fn dims2(op: &str, layout: &Layout) -> Result<(usize, usize)> {
    match layout.dims() {
        [r, l] => Ok((*r, *l)),
        d => candle_core::bail!("{op}: expected [rows, len], got {d:?}"),
    }
}

fn dims3(op: &str, layout: &Layout) -> Result<(usize, usize, usize)> {
    match layout.dims() {
        [p, h, w] => Ok((*p, *h, *w)),
        d => candle_core::bail!("{op}: expected [planes, h, w], got {d:?}"),
    }
}

impl CustomOp2 for RowSse {
    fn name(&self) -> &'static str {
        "gantry-row-sse"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, len) = dims2(self.name(), l1)?;
        let a = crate::ops::cpu::f32_slice(s1, l1, self.name())?;
        let b = crate::ops::cpu::f32_slice(s2, l2, self.name())?;
        Ok((CpuStorage::F32(cpu::row_sse(a, b, len)), Shape::from(rows)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (rows, len) = dims2(self.name(), l1)?;
        Ok((cuda::row_sse(s1, l1, s2, l2, rows, len)?, Shape::from(rows)))
    }
}

impl CustomOp1 for RowSum {
    fn name(&self) -> &'static str {
        "gantry-row-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, len) = dims2(self.name(), l)?;
        let x = crate::ops::cpu::f32_slice(s, l, self.name())?;
        Ok((CpuStorage::F32(cpu::row_sum(x, len)), Shape::from(rows)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (rows, len) = dims2(self.name(), l)?;
        Ok((cuda::row_sum(s, l, rows, len)?, Shape::from(rows)))
    }
}

impl CustomOp2 for SsimMap {
    fn name(&self) -> &'static str {
        "gantry-ssim-map"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (planes, h, w) = dims3(self.name(), l1)?;
        gantry_kernels::launch::ssim_map(planes, h, w).map_err(candle_core::Error::wrap)?;
        let x = crate::ops::cpu::f32_slice(s1, l1, self.name())?;
        let y = crate::ops::cpu::f32_slice(s2, l2, self.name())?;
        let map = cpu::ssim_map(x, y, h, w);
        let win = gantry_kernels::SSIM_WINDOW;
        Ok((
            CpuStorage::F32(map),
            Shape::from((planes, h + 1 - win, w + 1 - win)),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (planes, h, w) = dims3(self.name(), l1)?;
        let win = gantry_kernels::SSIM_WINDOW;
        Ok((
            cuda::ssim_map(s1, l1, s2, l2, planes, h, w)?,
            Shape::from((planes, h + 1 - win, w + 1 - win)),
        ))
    }
}

impl CustomOp1 for Histogram {
    fn name(&self) -> &'static str {
        "gantry-histogram"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = crate::ops::cpu::f32_slice(s, l, self.name())?;
        let counts = cpu::histogram(x, self.lo, self.hi, self.scale, self.bins);
        Ok((CpuStorage::U32(counts), Shape::from(self.bins)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let counts = cuda::histogram(s, l, self.lo, self.hi, self.scale, self.bins)?;
        Ok((counts, Shape::from(self.bins)))
    }
}

#[cfg(test)]
mod tests;
