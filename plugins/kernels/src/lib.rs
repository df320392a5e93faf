//! gantry's own CUDA kernels: their CUDA C sources, compiled to PTX by NVRTC at run time
//! for the GPU at hand, and the launch configurations that go with them.
//!
//! This crate has no CUDA dependency: the sources are strings and the launch logic is plain
//! Rust, so both are tested on machines without a GPU (`cargo test -p gantry-kernels`;
//! `cargo test nvrtc` compiles every source with NVRTC and, where `ptxas` is available,
//! assembles it for sm_80 and sm_90 and fails on register spills). `gantry-kit` launches
//! them through candle's CUDA device when built with its `cuda` feature, and every kernel
//! has a CPU twin there that serves as its test oracle.

pub mod launch;

/// One CUDA C translation unit and the `extern "C"` kernels it defines.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// A module name, unique among gantry's sources (candle caches loaded modules by it).
    pub module: &'static str,
    pub source: &'static str,
    pub kernels: &'static [&'static str],
}

/// Per-row (per-image) reductions: squared error of two buffers, plain sums.
pub const REDUCE: KernelSource = KernelSource {
    module: "gantry_reduce",
    source: include_str!("cuda/reduce.cu"),
    kernels: &["gantry_row_sse", "gantry_row_sum"],
};

/// Score histogram: shared-memory atomics, then global.
pub const HISTOGRAM: KernelSource = KernelSource {
    module: "gantry_histogram",
    source: include_str!("cuda/histogram.cu"),
    kernels: &["gantry_histogram"],
};

/// The SSIM map over 11x11 Gaussian windows.
pub const SSIM: KernelSource = KernelSource {
    module: "gantry_ssim",
    source: include_str!("cuda/ssim.cu"),
    kernels: &["gantry_ssim_map"],
};

/// Every source, for the checks.
pub const ALL: &[KernelSource] = &[REDUCE, HISTOGRAM, SSIM];

/// The SSIM constants for data in [0, 1] (K1 = 0.01, K2 = 0.03).
pub const SSIM_C1: f32 = 0.01 * 0.01;
pub const SSIM_C2: f32 = 0.03 * 0.03;
/// The SSIM window's side and its Gaussian's sigma (must match `cuda/ssim.cu`).
pub const SSIM_WINDOW: usize = 11;
pub const SSIM_SIGMA: f32 = 1.5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined_extern_c_in_its_source() {
        for src in ALL {
            for kernel in src.kernels {
                let decl = format!("extern \"C\" __global__ void {kernel}(");
                assert!(
                    src.source.contains(&decl),
                    "{}: {kernel} is not declared as `{decl}`",
                    src.module
                );
            }
        }
        let mut modules: Vec<_> = ALL.iter().map(|s| s.module).collect();
        modules.dedup();
        assert_eq!(modules.len(), ALL.len(), "module names must be unique");
    }

    #[test]
    fn the_ssim_source_uses_the_same_window_as_the_rust_side() {
        assert!(
            SSIM.source
                .contains(&format!("#define GANTRY_WIN {SSIM_WINDOW}"))
        );
        assert!(
            SSIM.source
                .contains(&format!("2.0f * {SSIM_SIGMA}f * {SSIM_SIGMA}f"))
        );
    }
}
