//! What happens to one sample between the disk and a batch: read (file, DICOM or IDX),
//! shape (channels, size), then per use augment (training only) and normalise. Shaped
//! pixels are what the prefetcher caches, so augmentation differs every epoch while
//! decoding happens once.

use super::decode::Shape;
use super::options::{Augment, Normalize};
use super::transform::{self, Shaping};
use super::{DataError, Loader, Sample};
use crate::runfs::spec::DataSpec;

/// The per-sample steps of one run's data.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub loader: Loader,
    pub shaping: Shaping,
    pub normalize: Normalize,
    pub augment: Augment,
    /// The run's seed; augmentation draws from (seed, epoch, sample).
    pub seed: u64,
    /// Undecodable images are skipped (and reported) instead of failing the pass.
    pub skip_bad: bool,
}

impl Pipeline {
    pub fn new(spec: &DataSpec, loader: Loader, seed: u64) -> Pipeline {
        let (height, width) = spec.size;
        Pipeline {
            loader,
            shaping: Shaping {
                shape: Shape {
                    channels: spec.channels,
                    height,
                    width,
                },
                resize: spec.resize,
                filter: spec.filter,
            },
            normalize: spec.normalize.clone(),
            augment: spec.augment.clone(),
            seed,
            skip_bad: spec.skip_bad,
        }
    }

    /// A pipeline with no augmentation, [0, 1] values and the default resize: tests and
    /// tools.
    pub fn plain(loader: Loader, shape: Shape) -> Pipeline {
        Pipeline {
            loader,
            shaping: Shaping {
                shape,
                resize: Default::default(),
                filter: Default::default(),
            },
            normalize: Normalize::Unit,
            augment: Augment::default(),
            seed: 0,
            skip_bad: false,
        }
    }

    pub fn shape(&self) -> Shape {
        self.shaping.shape
    }

    /// Decoded and shaped: CHW values in [0, 1]. Cacheable.
    pub fn shaped(&self, sample: &Sample) -> Result<Vec<f32>, DataError> {
        let img = self.loader.read(sample)?;
        Ok(transform::shape_image(&img, &self.shaping))
    }

    /// The batch-ready values: augmented when `augment_as` gives (epoch, sample index)
    /// and augmentation is configured, then normalised.
    pub fn finish(
        &self,
        shaped: &[f32],
        augment_as: Option<(u32, usize)>,
    ) -> Result<Vec<f32>, DataError> {
        let mut px = shaped.to_vec();
        if let Some((epoch, index)) = augment_as
            && self.augment.any()
        {
            let seed = mix(self.seed, u64::from(epoch), index as u64);
            transform::augment(&mut px, self.shape(), &self.augment, seed);
        }
        transform::normalize(&mut px, self.shape(), &self.normalize).map_err(|message| {
            DataError::Layout {
                path: "data.normalize".into(),
                message,
            }
        })?;
        Ok(px)
    }
}

/// A well-spread 64-bit seed from three numbers (splitmix64 finaliser on each step), so
/// neighbouring epochs and samples get unrelated augmentations.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let step = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    step(step(step(a).wrapping_add(b)).wrapping_add(c))
}
