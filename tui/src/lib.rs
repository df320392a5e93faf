//! gantry: a terminal cockpit for training medical-imaging models.
//!
//! Modules, each with one job: [`cli`] (commands), [`runfs`] (the run-folder format),
//! [`data`] (datasets and batches), [`trainer`] (the runner's training loop),
//! [`metrics`], [`plugins`] (finding and describing plugins), [`gpu`] (GPU statistics from
//! NVML, when the driver is there), [`interop`] (TensorBoard event files and Keras CSV
//! histories, read and written), [`ui`] (the dashboard).

pub mod cli;
pub mod config;
pub mod control;
pub mod data;
pub mod fixtures;
pub mod gpu;
pub mod interop;
pub mod metrics;
pub mod plugins;
pub mod remote;
pub mod runfs;
pub mod text;
pub mod trainer;
pub mod ui;
