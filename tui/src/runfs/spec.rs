//! The run config a user writes (`CONFIG.ron`, given to `gantry train`) and the resolved
//! record of it that a run folder keeps (`run.ron`).
//!
//! Unknown fields are errors (`deny_unknown_fields`), and parse errors carry the line and
//! column, so a typo is named rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunFsError;
use crate::data::options::{
    Augment, Filter, GroupBy, Normalize, Resize, Splits, Synthetic, Window,
};

/// What `gantry train` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Plugin name (`conv-ae`, found on the plugin search path) or a path to a `.so`.
    pub plugin: String,
    /// Hyper-parameters passed to the plugin; any subset of its `describe()` defaults.
    #[serde(default)]
    pub params: BTreeMap<String, ron::Value>,
    pub data: DataSpec,
    pub train: TrainSpec,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Where the runner runs: `Local` (default) or `Slurm(partition: .., gres: .., ..)`.
    #[serde(default)]
    pub launcher: super::launcher::Launcher,
    /// For a `.py` plugin: the virtualenv it imports from (relative to the config's
    /// folder); default the caller's `VIRTUAL_ENV`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PathBuf>,
}

fn default_device() -> String {
    "auto".into()
}

/// Where the images come from and how they are shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub kind: DataKind,
    /// Root folder of the dataset (IDX: the folder holding the four files; Csv: what
    /// relative image paths are resolved against).
    pub root: PathBuf,
    /// (height, width) every image is brought to.
    pub size: (u32, u32),
    /// 1 (gray) or 3 (RGB); images are converted.
    #[serde(default = "default_channels")]
    pub channels: u32,
    /// One-class training: train and val keep this class only; test keeps every class,
    /// this one as normal and the rest as anomalies.
    #[serde(default)]
    pub normal_class: Option<String>,
    /// Fraction of train carved out as validation when the layout has no val split.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// `Given` (the layout's splits) or `Auto(val: 0.1, test: 0.2)`.
    #[serde(default)]
    pub splits: Splits,
    /// Keeps each group (e.g. a patient) inside one split: `Regex("...")` over file names.
    #[serde(default)]
    pub group_by: Option<GroupBy>,
    /// Csv: the table of images (relative to the config's folder or absolute). Dicom: an
    /// optional table of labels (else labels are folder names).
    #[serde(default)]
    pub csv: Option<PathBuf>,
    /// Csv: the column holding image paths.
    #[serde(default = "default_path_column")]
    pub path_column: String,
    /// Csv: the column holding class labels.
    #[serde(default = "default_label_column")]
    pub label_column: String,
    /// Csv: a column of train/val/test, for `splits: Given`.
    #[serde(default)]
    pub split_column: Option<String>,
    /// Idx: names of labels 0, 1, ... (else "0", "1", ...).
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
    /// Dicom: the intensity window (`Auto`, `Brain`, `Subdural`, `Bone`,
    /// `Custom(center: 40, width: 80)`).
    #[serde(default)]
    pub window: Window,
    /// `Stretch` (default), `CenterCrop` or `Pad`.
    #[serde(default)]
    pub resize: Resize,
    /// `Bilinear` (default), `Nearest`, `Bicubic` or `Lanczos3`.
    #[serde(default)]
    pub filter: Filter,
    /// `Unit` ([0, 1], default) or `MeanStd(mean: [..], std: [..])`.
    #[serde(default)]
    pub normalize: Normalize,
    /// Training-time augmentation: `augment: (hflip: true, rotate: 10, ...)`.
    #[serde(default)]
    pub augment: Augment,
    /// Skip images that fail to decode (counted, listed in train.log and status.ron)
    /// instead of failing the run.
    #[serde(default)]
    pub skip_bad: bool,
    /// At most this many images per split, a seeded random subset (after splitting and
    /// the one-class filter): quick experiments on a large dataset.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Extra training images from a finished class-conditional GAN run.
    #[serde(default)]
    pub synthetic: Option<Synthetic>,
}

impl DataSpec {
    /// A spec of `kind` with every optional field at its default.
    pub fn new(kind: DataKind, root: PathBuf, size: (u32, u32)) -> DataSpec {
        DataSpec {
            kind,
            root,
            size,
            channels: default_channels(),
            normal_class: None,
            val_fraction: default_val_fraction(),
            splits: Splits::default(),
            group_by: None,
            csv: None,
            path_column: default_path_column(),
            label_column: default_label_column(),
            split_column: None,
            class_names: None,
            window: Window::default(),
            resize: Resize::default(),
            filter: Filter::default(),
            normalize: Normalize::default(),
            augment: Augment::default(),
            skip_bad: false,
            limit: None,
            synthetic: None,
        }
    }
}

fn default_channels() -> u32 {
    1
}

fn default_val_fraction() -> f64 {
    0.1
}

fn default_path_column() -> String {
    "path".into()
}

fn default_label_column() -> String {
    "label".into()
}

/// Dataset layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataKind {
    /// `ROOT/{train,val,test}/<class>/*.{png,jpg,jpeg,tif,tiff}` (Keras
    /// `flow_from_directory`), or `ROOT/<class>/*` with `splits: Auto(..)`.
    ImageFolder,
    /// A CSV of image paths and labels (ISIC style).
    Csv,
    /// MNIST-style IDX files, gzipped or not.
    Idx,
    /// A folder tree of DICOM files; labels from folder names or a CSV.
    Dicom,
}

/// The training schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub epochs: u32,
    pub batch_size: u32,
    /// Learning rate; the plugin's default when absent.
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    /// Also checkpoint (`checkpoints/last`) every this many steps, not only after each
    /// epoch's evaluation: a crash then loses at most this many steps.
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// What a NaN or infinite training scalar does: `Fail` (default) or
    /// `Rollback(lr_factor: 0.5, retries: 3)`.
    #[serde(default)]
    pub on_nan: NanPolicy,
}

/// What the runner does when a training step emits a NaN or infinite scalar.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum NanPolicy {
    /// End the run `failed`, naming the step and the tag.
    #[default]
    Fail,
    /// Go back to the last checkpoint (or the start) with the learning rate multiplied by
    /// `lr_factor`, at most `retries` times; then fail.
    Rollback { lr_factor: f64, retries: u32 },
}

impl RunSpec {
    /// Parses a config file's text; errors carry `path:line:column`.
    pub fn parse(path: &Path, text: &str) -> Result<RunSpec, RunFsError> {
        let spec: RunSpec = super::ron_options()
            .from_str(text)
            .map_err(|e| RunFsError::Parse {
                path: path.to_path_buf(),
                line: e.span.start.line,
                column: e.span.start.col,
                message: e.code.to_string(),
            })?;
        spec.validate().map_err(|message| RunFsError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(spec)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<RunSpec, RunFsError> {
        let text = super::read_text(path)?;
        RunSpec::parse(path, &text)
    }

    /// Checks values serde cannot: ranges and consistency. Messages name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.train.epochs == 0 {
            return Err("train.epochs must be at least 1".into());
        }
        if self.train.batch_size == 0 {
            return Err("train.batch_size must be at least 1".into());
        }
        if let Some(lr) = self.train.lr
            && !(lr > 0.0 && lr.is_finite())
        {
            return Err(format!("train.lr must be a positive number, not {lr}"));
        }
        if self.train.checkpoint_every == Some(0) {
            return Err("train.checkpoint_every must be at least 1 (steps)".into());
        }
        if let NanPolicy::Rollback { lr_factor, .. } = self.train.on_nan {
            if !(lr_factor > 0.0 && lr_factor < 1.0) {
                return Err(format!(
                    "train.on_nan Rollback lr_factor must be in (0, 1), not {lr_factor}"
                ));
            }
            if self.train.lr.is_none() {
                return Err(
                    "train.on_nan Rollback lowers train.lr, so train.lr must be set".into(),
                );
            }
        }
        if !matches!(self.data.channels, 1 | 3) {
            return Err(format!(
                "data.channels must be 1 (gray) or 3 (RGB), not {}",
                self.data.channels
            ));
        }
        let (h, w) = self.data.size;
        if h == 0 || w == 0 || h > 8192 || w > 8192 {
            return Err(format!("data.size ({h}, {w}) must be between 1 and 8192"));
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return Err(format!(
                "data.val_fraction must be in [0, 1), not {}",
                self.data.val_fraction
            ));
        }
        self.validate_data()?;
        self.launcher.validate()?;
        Ok(())
    }

    /// The data fields serde cannot check: split fractions, the group regex, fields that
    /// belong to another kind, normalisation and augmentation ranges.
    fn validate_data(&self) -> Result<(), String> {
        let d = &self.data;
        if let Splits::Auto { val, test } = d.splits {
            let ok = |f: f64| (0.0..1.0).contains(&f);
            if !ok(val) || !ok(test) || val + test >= 1.0 {
                return Err(format!(
                    "data.splits Auto(val: {val}, test: {test}): each must be in [0, 1) and \
                     their sum below 1"
                ));
            }
        }
        if let Some(GroupBy::Regex(re)) = &d.group_by {
            regex::Regex::new(re).map_err(|e| format!("data.group_by Regex({re:?}): {e}"))?;
        }
        if d.limit == Some(0) {
            return Err("data.limit must be at least 1".into());
        }
        if d.kind == DataKind::Csv && d.csv.is_none() {
            return Err("data.csv is required with kind: Csv (the table of images)".into());
        }
        if d.split_column.is_some() && d.kind != DataKind::Csv {
            return Err("data.split_column applies to kind: Csv only".into());
        }
        if d.class_names.is_some() && d.kind != DataKind::Idx {
            return Err("data.class_names applies to kind: Idx only".into());
        }
        if d.window != Window::Auto && d.kind != DataKind::Dicom {
            return Err("data.window applies to kind: Dicom only".into());
        }
        if let Some((_, width)) = d.window.center_width()
            && (width.is_nan() || width < 1.0)
        {
            return Err(format!("data.window width must be at least 1, not {width}"));
        }
        crate::data::transform::check_normalize(&d.normalize, d.channels)?;
        let a = &d.augment;
        for (name, v, max) in [
            ("shift", a.shift, 0.5),
            ("rotate", a.rotate, 180.0),
            ("crop", a.crop, 1.0),
            ("brightness", a.brightness, 1.0),
            ("contrast", a.contrast, 1.0),
        ] {
            if !(0.0..=max).contains(&v) {
                return Err(format!(
                    "data.augment.{name} must be in [0, {max}], not {v}"
                ));
            }
        }
        Ok(())
    }

    /// The params as RON map text for the plugin's `create`.
    pub fn params_text(&self) -> String {
        ron::to_string(&self.params).unwrap_or_else(|_| "{}".into())
    }
}

/// `run.ron`: the resolved config, written once when the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The folder name.
    pub id: String,
    pub spec: RunSpec,
    pub plugin: PluginRecord,
    /// `git describe` of the working directory the run was started from, if any.
    pub git: Option<String>,
    pub host: String,
    /// Unix seconds.
    pub created: f64,
    pub gantry_version: String,
}

/// Which plugin trained the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub family: String,
    pub abi: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"(
        plugin: "conv-ae",
        params: {"latent": 64},
        data: (kind: ImageFolder, root: "PATH", size: (64, 64), channels: 1, normal_class: "normal"),
        train: (epochs: 5, batch_size: 32, lr: 0.001, seed: 0),
        device: "auto",
    )"#;

    #[test]
    fn the_documented_example_parses() {
        let spec = RunSpec::parse(Path::new("c.ron"), EXAMPLE).unwrap();
        assert_eq!(spec.plugin, "conv-ae");
        assert_eq!(spec.data.size, (64, 64));
        assert_eq!(spec.data.normal_class.as_deref(), Some("normal"));
        assert_eq!(spec.train.lr, Some(0.001));
        assert_eq!(spec.params_text(), "{\"latent\":64}");
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = EXAMPLE.replace("batch_size: 32", "batch_size: 32, epoch: 3");
        let err = RunSpec::parse(Path::new("cfg.ron"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cfg.ron:5:"), "{err}");
        assert!(err.contains("epoch"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let text = EXAMPLE.replace("channels: 1", "channels: 2");
        let err = RunSpec::parse(Path::new("cfg.ron"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.channels"), "{err}");
        let text = EXAMPLE.replace("epochs: 5", "epochs: 0");
        let err = RunSpec::parse(Path::new("cfg.ron"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.epochs"), "{err}");
    }

    #[test]
    fn records_round_trip() {
        let record = RunRecord {
            id: "r".into(),
            spec: RunSpec::parse(Path::new("c.ron"), EXAMPLE).unwrap(),
            plugin: PluginRecord {
                path: "/p/libconv_ae.so".into(),
                name: "conv-ae".into(),
                version: "0.1.0".into(),
                family: "autoencoder".into(),
                abi: "1.0".into(),
            },
            git: None,
            host: "h".into(),
            created: 1.5,
            gantry_version: "0.1.0".into(),
        };
        let text = ron::ser::to_string_pretty(&record, Default::default()).unwrap();
        assert_eq!(ron::from_str::<RunRecord>(&text).unwrap(), record);
    }
}
