//! Seeded weight initialisation. candle's CPU RNG cannot be seeded, so weights drawn by
//! candle's own initialisers differ run to run; a run must be reproducible from its seed.
//!
//! The scheme is PyTorch's default for `Conv2d` and `Linear` (the reference the benchmarks'
//! twins use): weights and biases uniform in `±1/sqrt(fan_in)`, where `fan_in` is the
//! product of the weight's dimensions after the first. Values come from ChaCha8 seeded by
//! the run seed, visited in sorted tensor-name order, so they are identical on every
//! machine and every candle version.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Re-initialises every `*.weight` of rank >= 2 and its sibling `*.bias` in `varmap`.
/// Other tensors (batch-norm scales, embeddings) are left as their layer created them.
pub fn pytorch_default(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let fan_in = if let Some(stem) = name.strip_suffix(".weight") {
            let _ = stem;
            let dims = var.dims();
            if dims.len() < 2 {
                continue;
            }
            dims[1..].iter().product::<usize>()
        } else if let Some(stem) = name.strip_suffix(".bias") {
            match data.get(&format!("{stem}.weight")) {
                Some(w) if w.dims().len() >= 2 => w.dims()[1..].iter().product::<usize>(),
                _ => continue,
            }
        } else {
            continue;
        };
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        let tensor = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&tensor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    use super::*;

    fn build(seed: u64) -> VarMap {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        candle_nn::linear(100, 4, vb.pp("fc")).unwrap();
        pytorch_default(&varmap, seed).unwrap();
        varmap
    }

    fn values(varmap: &VarMap, name: &str) -> Vec<f32> {
        let data = varmap.data().lock().unwrap();
        data[name].flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_same_weights_and_bounds_hold() {
        let a = build(7);
        let b = build(7);
        let c = build(8);
        assert_eq!(values(&a, "fc.weight"), values(&b, "fc.weight"));
        assert_ne!(values(&a, "fc.weight"), values(&c, "fc.weight"));
        // fan_in = 100 -> bound 0.1, for the weight and its bias.
        for name in ["fc.weight", "fc.bias"] {
            let v = values(&a, name);
            assert!(
                v.iter().all(|x| x.abs() <= 0.1 + 1e-7),
                "{name} out of bounds"
            );
            assert!(
                v.iter().any(|x| x.abs() > 0.05),
                "{name} suspiciously small"
            );
        }
    }
}
