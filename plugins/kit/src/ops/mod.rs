//! Custom candle ops with fast CPU implementations, shared by every plugin. Each has the
//! plain candle composition it replaces as its test oracle, and falls back to that
//! composition on devices it does not implement (CUDA).

pub mod act;
pub mod conv;
mod cpu;
mod direct_conv;
pub mod pool;

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
