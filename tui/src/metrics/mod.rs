//! Metrics computed by the host from what plugins emit: ranking quality of anomaly scores.

pub mod auroc;
pub mod classification;
pub mod histogram;
pub mod image_quality;
pub mod pca;
pub mod ranking;
pub mod threshold;
