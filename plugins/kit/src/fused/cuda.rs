//! Launching gantry's kernels on candle's CUDA device. Sources come from `gantry-kernels`,
//! compiled once per (module, GPU architecture) by NVRTC and cached; launch shapes come
//! from `gantry_kernels::launch`, where they are unit-tested without a GPU.
//!
//! Only built with the `cuda` feature. The CPU twins in `cpu.rs` define the results.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{CudaStorage, Layout, Result};
use gantry_kernels::KernelSource;
use gantry_kernels::launch::{self, Launch};

/// A kernel module compiled for one GPU generation: (module name, major, minor).
type PtxKey = (&'static str, i32, i32);

/// PTX by module and compute capability. Compiling takes NVRTC tens of milliseconds; a run
/// evaluates thousands of batches.
static PTX: Mutex<Option<HashMap<PtxKey, String>>> = Mutex::new(None);

/// The PTX of `src` for `dev`'s GPU, compiled on first use.
fn ptx(dev: &CudaDevice, src: &KernelSource) -> Result<String> {
    let (major, minor) = dev.cuda_stream().context().compute_capability().w()?;
    let key = (src.module, major, minor);
    let mut cache = PTX.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(ptx) = cache.get(&key) {
        return Ok(ptx.clone());
    }
    // NVRTC wants a 'static arch name; one small leak per GPU generation in the process.
    let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    let opts = CompileOptions {
        arch: Some(arch),
        // No contraction of a*b+c beyond the kernels' explicit fmaf: the CPU twins, which
        // are the kernels' oracles, follow the same arithmetic.
        fmad: Some(false),
        name: Some(format!("{}.cu", src.module)),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(src.source, opts).w()?.to_src();
    cache.insert(key, ptx.clone());
    Ok(ptx)
}

fn config(l: Launch) -> LaunchConfig {
    LaunchConfig {
        grid_dim: l.grid,
        block_dim: l.block,
        shared_mem_bytes: l.shared_bytes,
    }
}

fn f32_input<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    op: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    Ok(s.as_cuda_slice::<f32>()?.slice(start..end))
}

fn launch_error(e: launch::LaunchError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

pub(super) fn row_sse(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    rows: usize,
    len: usize,
) -> Result<CudaStorage> {
    let dev = &s1.device;
    let a = f32_input(s1, l1, "per_image_sse")?;
    let b = f32_input(s2, l2, "per_image_sse")?;
    let out: CudaSlice<f32> = dev.alloc_zeros::<f32>(rows)?;
    if let Some(shape) = launch::row_reduce(rows, len).map_err(launch_error)? {
        let func = dev.get_or_load_custom_func(
            "gantry_row_sse",
            gantry_kernels::REDUCE.module,
            &ptx(dev, &gantry_kernels::REDUCE)?,
        )?;
        let (len_arg, rows_arg) = (len as u64, rows as u32);
        let mut builder = func.builder();
        builder
            .arg(&a)
            .arg(&b)
            .arg(&out)
            .arg(&len_arg)
            .arg(&rows_arg);
        // SAFETY: the arguments match `gantry_row_sse`'s signature in order and type
        // (two f32 inputs of rows * len elements, an f32 output of rows, u64, u32); the
        // launch shape is `launch::row_reduce`'s, whose shared size the kernel expects.
        unsafe { builder.launch(config(shape)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

pub(super) fn row_sum(s: &CudaStorage, l: &Layout, rows: usize, len: usize) -> Result<CudaStorage> {
    let dev = &s.device;
    let x = f32_input(s, l, "row_sum")?;
    let out: CudaSlice<f32> = dev.alloc_zeros::<f32>(rows)?;
    if let Some(shape) = launch::row_reduce(rows, len).map_err(launch_error)? {
        let func = dev.get_or_load_custom_func(
            "gantry_row_sum",
            gantry_kernels::REDUCE.module,
            &ptx(dev, &gantry_kernels::REDUCE)?,
        )?;
        let (len_arg, rows_arg) = (len as u64, rows as u32);
        let mut builder = func.builder();
        builder.arg(&x).arg(&out).arg(&len_arg).arg(&rows_arg);
        // SAFETY: matches `gantry_row_sum(const float*, float*, u64, u32)`; shape from
        // `launch::row_reduce`.
        unsafe { builder.launch(config(shape)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

pub(super) fn ssim_map(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    planes: usize,
    h: usize,
    w: usize,
) -> Result<CudaStorage> {
    let dev = &s1.device;
    let x = f32_input(s1, l1, "ssim")?;
    let y = f32_input(s2, l2, "ssim")?;
    let win = gantry_kernels::SSIM_WINDOW;
    let map_len = planes * (h + 1 - win) * (w + 1 - win);
    let out: CudaSlice<f32> = dev.alloc_zeros::<f32>(map_len)?;
    if let Some((shape, tiles_x, tiles_y)) = launch::ssim_map(planes, h, w).map_err(launch_error)? {
        let func = dev.get_or_load_custom_func(
            "gantry_ssim_map",
            gantry_kernels::SSIM.module,
            &ptx(dev, &gantry_kernels::SSIM)?,
        )?;
        let (h_arg, w_arg, planes_arg) = (h as u32, w as u32, planes as u32);
        let (c1, c2) = (gantry_kernels::SSIM_C1, gantry_kernels::SSIM_C2);
        let mut builder = func.builder();
        builder
            .arg(&x)
            .arg(&y)
            .arg(&out)
            .arg(&h_arg)
            .arg(&w_arg)
            .arg(&tiles_x)
            .arg(&tiles_y)
            .arg(&planes_arg)
            .arg(&c1)
            .arg(&c2);
        // SAFETY: matches `gantry_ssim_map`'s signature (two f32 inputs of planes * h * w,
        // an f32 map of planes * (h-10) * (w-10), five u32, two f32); `launch::ssim_map`
        // checked h, w >= 11 and that every count fits its u32.
        unsafe { builder.launch(config(shape)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

pub(super) fn histogram(
    s: &CudaStorage,
    l: &Layout,
    lo: f32,
    hi: f32,
    scale: f32,
    bins: usize,
) -> Result<CudaStorage> {
    let dev = &s.device;
    let x = f32_input(s, l, "score_histogram")?;
    let n = l.shape().elem_count();
    // Zeroed: the kernel adds each block's counts into it.
    let counts: CudaSlice<u32> = dev.alloc_zeros::<u32>(bins)?;
    if let Some(shape) = launch::histogram(n, bins).map_err(launch_error)? {
        let func = dev.get_or_load_custom_func(
            "gantry_histogram",
            gantry_kernels::HISTOGRAM.module,
            &ptx(dev, &gantry_kernels::HISTOGRAM)?,
        )?;
        let (n_arg, bins_arg) = (n as u64, bins as u32);
        let mut builder = func.builder();
        builder
            .arg(&x)
            .arg(&n_arg)
            .arg(&lo)
            .arg(&hi)
            .arg(&scale)
            .arg(&bins_arg)
            .arg(&counts);
        // SAFETY: matches `gantry_histogram(const float*, u64, float, float, float, u32,
        // unsigned*)`; `launch::histogram` sized the shared counts to `bins` and checked
        // they fit; `counts` is zeroed and `bins` long.
        unsafe { builder.launch(config(shape)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(counts, dev.clone()))
}
