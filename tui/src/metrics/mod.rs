//! Metrics computed by the host from what plugins emit: ranking quality of anomaly scores.

pub mod auroc;
pub mod histogram;
pub mod threshold;
