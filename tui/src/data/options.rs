//! The dataset options of a run config (`data: (...)`) beyond the layout: how samples are
//! split, how DICOM values are windowed, how images are shaped, normalised and augmented.
//! Plain serde types, shared by the config parser and the data modules.

use serde::{Deserialize, Serialize};

/// How samples are assigned to train, val and test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Splits {
    /// The layout's own splits: ImageFolder's `train/val/test` folders, a CSV's split
    /// column, IDX's train and t10k files. A missing val split is carved out of train
    /// (`val_fraction`).
    #[default]
    Given,
    /// Every sample pooled and split by seed, stratified by class (and grouped, with
    /// `group_by`): `Auto(val: 0.1, test: 0.2)`.
    Auto { val: f64, test: f64 },
}

/// What ties samples together that must stay in one split (one patient's images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupBy {
    /// A regex over the file name (not the folders); its first capture group (or the whole
    /// match) is the group key, e.g. BreakHis' patient id `Regex("^SOB_._[A-Z]+-(\\d+-\\d+)")`.
    Regex(String),
}

/// Named CT windows (Hounsfield units, center/width), as CQ500 work uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Window {
    /// The file's own WindowCenter/WindowWidth, else its stored value range.
    #[default]
    Auto,
    /// 40/80.
    Brain,
    /// 80/200.
    Subdural,
    /// 600/2800.
    Bone,
    /// Explicit center and width in rescaled units: `Custom(center: 40, width: 80)`.
    Custom { center: f64, width: f64 },
}

impl Window {
    /// (center, width) of a fixed window; `None` for `Auto`.
    pub fn center_width(&self) -> Option<(f64, f64)> {
        match *self {
            Window::Auto => None,
            Window::Brain => Some((40.0, 80.0)),
            Window::Subdural => Some((80.0, 200.0)),
            Window::Bone => Some((600.0, 2800.0)),
            Window::Custom { center, width } => Some((center, width)),
        }
    }
}

/// How an image is brought to the configured size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Resize {
    /// Scaled to exactly the size (aspect ratio not kept), as Keras' loaders do.
    #[default]
    Stretch,
    /// Scaled so the shorter side fits, then the center cut out (aspect ratio kept).
    CenterCrop,
    /// Centered on a zero canvas of the size, scaled down first only if larger (aspect
    /// ratio kept): e.g. 28x28 digits padded to 32x32.
    Pad,
}

/// The resampling filter of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Filter {
    Nearest,
    /// Bilinear, Keras' and torchvision's default.
    #[default]
    Bilinear,
    Bicubic,
    Lanczos3,
}

/// Value scaling after shaping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Normalize {
    /// Values in [0, 1].
    #[default]
    Unit,
    /// `(x - mean[c]) / std[c]` per channel, on [0, 1] values (one value applies to all
    /// channels): `MeanStd(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])`.
    MeanStd { mean: Vec<f32>, std: Vec<f32> },
}

/// Training-time augmentation, deterministic by seed, epoch and sample; never applied to
/// val or test. Every field defaults to off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// Mirror top-bottom with probability 1/2.
    pub vflip: bool,
    /// Rotate by a random multiple of 90 degrees (square images only).
    pub rot90: bool,
    /// Largest translation, as a fraction of the size (0.1 = up to 10%), zero filled.
    pub shift: f32,
    /// Largest rotation in degrees (bilinear, zero filled).
    pub rotate: f32,
    /// Random crop: a window of at least this fraction of each side (0.8), scaled back up
    /// to the size; 0 or 1 = off.
    pub crop: f32,
    /// Brightness jitter: add a value in [-b, b].
    pub brightness: f32,
    /// Contrast jitter: scale about the image mean by a factor in [1-c, 1+c].
    pub contrast: f32,
}

impl Augment {
    /// Whether any augmentation is on.
    pub fn any(&self) -> bool {
        self.hflip
            || self.vflip
            || self.rot90
            || self.shift > 0.0
            || self.rotate > 0.0
            || (self.crop > 0.0 && self.crop < 1.0)
            || self.brightness > 0.0
            || self.contrast > 0.0
    }
}
