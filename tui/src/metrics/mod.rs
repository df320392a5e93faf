//! Metrics computed by the host from what plugins emit: ranking quality of anomaly scores.

pub mod auroc;
pub mod classification;
pub mod histogram;
/// Full-reference image metrics (PSNR, SSIM, ...), in their own crate so that plugins
/// compute them too.
pub use gantry_image_metrics as image_quality;
pub mod pca;
pub mod ranking;
pub mod threshold;
