//! Reconstruction losses, batch-mean and per-image.

use candle_core::{D, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Which reconstruction loss a model trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Reconstruction {
    /// Mean squared error.
    #[default]
    Mse,
    /// Binary cross-entropy on outputs in (0, 1) (targets in [0, 1]).
    Bce,
}

/// Per-element loss, same shape as the inputs.
fn elementwise(kind: Reconstruction, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    match kind {
        Reconstruction::Mse => (pred - target)?.sqr(),
        Reconstruction::Bce => {
            // Clamped as PyTorch's BCELoss clamps its logs at -100.
            let eps = 1e-7;
            let p = pred.clamp(eps, 1.0 - eps)?;
            let pos = (target * p.log()?)?;
            let neg = ((1.0 - target)? * (1.0 - &p)?.log()?)?;
            (pos + neg)?.neg()
        }
    }
}

/// The loss averaged over every element of the batch (a scalar tensor).
pub fn mean(kind: Reconstruction, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    elementwise(kind, pred, target)?.mean_all()
}

/// The loss averaged per image: shape `[n]`.
pub fn per_image(kind: Reconstruction, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    elementwise(kind, pred, target)?
        .flatten_from(1)?
        .mean(D::Minus1)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn mse_per_image_and_mean_agree_with_hand_values() {
        let pred = Tensor::new(&[[0.0f32, 1.0], [0.5, 0.5]], &Device::Cpu).unwrap();
        let target = Tensor::new(&[[1.0f32, 1.0], [0.5, 0.0]], &Device::Cpu).unwrap();
        let per: Vec<f32> = per_image(Reconstruction::Mse, &pred, &target)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(per, vec![0.5, 0.125]);
        let m: f32 = mean(Reconstruction::Mse, &pred, &target)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((m - 0.3125).abs() < 1e-7);
    }

    #[test]
    fn bce_matches_the_formula() {
        let pred = Tensor::new(&[[0.8f32]], &Device::Cpu).unwrap();
        let target = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        let v: f32 = mean(Reconstruction::Bce, &pred, &target)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((v - (-(0.8f32).ln())).abs() < 1e-6);
    }
}
