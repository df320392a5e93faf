//! Datasets: finding images on disk, decoding them to f32 tensors, and feeding batches to
//! the trainer from a background thread.

pub mod csv_table;
pub mod decode;
pub mod dicom;
pub mod idx;
pub mod image_folder;
pub mod options;
pub mod prefetch;
pub mod synth;
pub mod transform;

use std::path::PathBuf;

/// Errors reading a dataset; each names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    /// Path relative to the dataset root, as score files name it.
    pub name: String,
    /// Index into [`Dataset::classes`].
    pub class: u32,
}

/// A dataset split into train, val and test.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    /// Class names, sorted; labels index this.
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub test: Vec<Sample>,
    /// The normal class of one-class training, if configured.
    pub normal: Option<u32>,
    /// True when `val` was carved out of `train` because the dataset had none.
    pub val_carved: bool,
}

impl Dataset {
    /// Whether a label counts as anomalous (positive) for AUROC.
    pub fn is_anomalous(&self, class: u32) -> bool {
        self.normal.is_some_and(|n| n != class)
    }
}
