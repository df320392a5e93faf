//! Datasets: finding images on disk, decoding them to f32 tensors, and feeding batches to
//! the trainer from a background thread.

pub mod csv_table;
pub mod decode;
pub mod dicom;
pub mod idx;
pub mod image_folder;
pub mod options;
pub mod pipeline;
pub mod prefetch;
pub mod source;
pub mod spill;
pub mod splits;
pub mod synth;
pub mod transform;

use std::path::PathBuf;
use std::sync::Arc;

use options::Window;

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
    /// The file holding the image (for IDX, the images file).
    pub path: PathBuf,
    /// Path relative to the dataset root, as score files name it (IDX: `train/000123`).
    pub name: String,
    /// Index into [`Dataset::classes`].
    pub class: u32,
    /// Which in-memory image this is, for sources that are not one file per image (IDX:
    /// 0 = train set, 1 = test set, and the index within it).
    pub frame: Option<(u8, u32)>,
    /// The `group_by` key (e.g. a patient id), if grouping is configured.
    pub group: Option<String>,
}

impl Sample {
    /// A sample stored as its own file.
    pub fn file(path: PathBuf, name: String, class: u32) -> Sample {
        Sample {
            path,
            name,
            class,
            frame: None,
            group: None,
        }
    }
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
    /// How a sample's pixels are read.
    pub loader: Loader,
}

impl Dataset {
    /// Whether a label counts as anomalous (positive) for AUROC.
    pub fn is_anomalous(&self, class: u32) -> bool {
        self.normal.is_some_and(|n| n != class)
    }
}

/// How a dataset's samples become images.
#[derive(Clone)]
pub enum Loader {
    /// One image file per sample (PNG, JPEG, TIFF).
    Files,
    /// DICOM files, windowed.
    Dicom(Window),
    /// IDX arrays in memory: [train set, test set].
    Idx(Arc<[idx::IdxImages; 2]>),
    /// Another loader plus generated images (`data.synthetic`), addressed by samples whose
    /// frame set is [`SYNTHETIC_SET`].
    WithSynthetic {
        base: Box<Loader>,
        images: Arc<Vec<image::DynamicImage>>,
    },
}

/// The frame set of generated images (`Sample::frame`).
pub const SYNTHETIC_SET: u8 = 255;

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loader::Files => write!(f, "Files"),
            Loader::Dicom(w) => write!(f, "Dicom({w:?})"),
            Loader::Idx(sets) => write!(f, "Idx({} + {} images)", sets[0].len(), sets[1].len()),
            Loader::WithSynthetic { base, images } => {
                write!(f, "{base:?} + {} synthetic", images.len())
            }
        }
    }
}

impl Loader {
    /// The image of `sample`, decoded but not yet shaped.
    pub fn read(&self, sample: &Sample) -> Result<image::DynamicImage, DataError> {
        match (self, sample.frame) {
            (Loader::WithSynthetic { images, .. }, Some((SYNTHETIC_SET, i))) => images
                .get(i as usize)
                .cloned()
                .ok_or_else(|| DataError::Layout {
                    path: sample.path.clone(),
                    message: format!("synthetic image {i} is past the end ({})", images.len()),
                }),
            (Loader::WithSynthetic { base, .. }, _) => base.read(sample),
            (Loader::Idx(sets), Some((set, i))) => {
                let images = &sets[usize::from(set).min(1)];
                if (i as usize) < images.len() {
                    Ok(image::DynamicImage::ImageLuma8(images.image(i as usize)))
                } else {
                    Err(DataError::Layout {
                        path: sample.path.clone(),
                        message: format!("image {i} is past the end ({})", images.len()),
                    })
                }
            }
            (Loader::Dicom(window), _) => dicom::read(&sample.path, *window),
            _ => decode::read(&sample.path),
        }
    }
}
