//! Custom candle ops with fast CPU implementations, shared by every plugin. Each has the
//! plain candle composition it replaces as its test oracle, and falls back to that
//! composition on devices it does not implement (CUDA).

pub mod act;
pub mod conv;
pub(crate) mod cpu;
mod direct_conv;
pub mod layout;
pub mod pool;

/// Compiles a kernel once per x86-64 SIMD level (AVX-512, AVX2 with FMA, the baseline) and
/// calls the best one this CPU has, detected once at run time. Why: a plugin is built for
/// baseline x86-64 (SSE2) so that it loads on any machine, and the kit's loops then run at
/// a quarter of the vector width the CPU has; built for the host instead, conv-ae's
/// evaluation ran 25% and its training 10% faster. Rayon closures are not compiled with
/// the target features, so each kernel is a plain function a closure calls per chunk, and
/// what it calls must inline into it (`#[inline(always)]`).
macro_rules! simd_kernel {
    ($($item:tt)*) => {
        #[multiversion::multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+avx+fma+bmi1+bmi2+lzcnt+popcnt",
            "x86_64+avx2+avx+fma+bmi1+bmi2+lzcnt+popcnt",
        ))]
        $($item)*
    };
}
pub(crate) use simd_kernel;

#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};

    /// Seeded values in [-1, 1).
    pub fn rand(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Largest absolute difference.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }
}
