//! Access to contiguous f32 CPU storage for the kit's kernels.

use candle_core::{CpuStorage, Layout, Result};

/// The contiguous f32 data a (storage, layout) pair describes.
pub fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Whether the kit's CPU kernels apply to this tensor (else the candle composition runs).
pub fn native(t: &candle_core::Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}
