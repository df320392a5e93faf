//! Moving batches between the ABI's borrowed f32 buffers and candle tensors.

use candle_core::{Device, Result, Tensor};
use gantry_plugin_api::Batch;

/// Copies a batch's images onto `device` as an `[n, c, h, w]` f32 tensor.
pub fn images(batch: &Batch<'_>, device: &Device) -> Result<Tensor> {
    let [n, c, h, w] = batch.shape;
    Tensor::from_slice(batch.images, (n, c, h, w), device)
}

/// A tensor's values as a flat `Vec<f32>` in row-major order, on the CPU.
pub fn to_vec(tensor: &Tensor) -> Result<Vec<f32>> {
    tensor
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// `[n, c, h, w]` of a rank-4 tensor.
pub fn dims4(tensor: &Tensor) -> Result<[usize; 4]> {
    let (n, c, h, w) = tensor.dims4()?;
    Ok([n, c, h, w])
}
