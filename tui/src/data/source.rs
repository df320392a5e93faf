//! From a run config's `data` section to a split [`Dataset`]: index the layout (ImageFolder,
//! Csv, Idx, Dicom), tag group keys, split (the layout's own splits or `Auto`), apply the
//! one-class protocol, and check that what training needs is there. Everything here runs
//! before a run folder is created, so a dataset error leaves nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::csv_table::{self, SplitName};
use super::image_folder::{self, Indexed};
use super::options::{GroupBy, Splits};
use super::splits::{self, Grouper};
use super::{DataError, Dataset, Loader, Sample, dicom, idx};
use crate::runfs::spec::{DataKind, DataSpec};

/// Opens the dataset `spec` describes. Relative `root` and `csv` must already be resolved.
pub fn open(spec: &DataSpec, seed: u64) -> Result<Dataset, DataError> {
    let root = spec.root.as_path();
    let layout = |message: String| DataError::Layout {
        path: root.to_path_buf(),
        message,
    };
    let pooled = matches!(spec.splits, Splits::Auto { .. });
    let (mut indexed, loader) = match spec.kind {
        DataKind::ImageFolder => (image_folder::index(root, pooled)?, Loader::Files),
        DataKind::Csv => (index_csv(spec)?, Loader::Files),
        DataKind::Idx => index_idx(spec)?,
        DataKind::Dicom => (index_dicom(spec, pooled)?, Loader::Dicom(spec.window)),
    };
    if let Some(GroupBy::Regex(pattern)) = &spec.group_by {
        let grouper = Grouper::new(pattern).map_err(layout)?;
        for (s, _) in &mut indexed.samples {
            s.group = Some(grouper.key(&s.name).map_err(layout)?);
        }
    }
    let classes = indexed.classes;
    let (mut train, mut val, test, val_carved) = match spec.splits {
        Splits::Auto { val, test } => {
            let all = indexed.samples.into_iter().map(|(s, _)| s).collect();
            let a = splits::assign(all, val, test, seed);
            for (name, split, fraction) in [("val", &a.val, val), ("test", &a.test, test)] {
                if fraction > 0.0 && split.is_empty() {
                    return Err(layout(format!(
                        "splits: Auto gives {name} no images ({fraction} of too few samples \
                         or groups); lower it to 0 or add data"
                    )));
                }
            }
            (a.train, a.val, a.test, false)
        }
        Splits::Given => given_splits(indexed.samples, spec, seed).map_err(layout)?,
    };
    let normal = match &spec.normal_class {
        None => None,
        Some(name) => Some(classes.iter().position(|c| c == name).ok_or_else(|| {
            layout(format!(
                "normal_class {name:?} is not among the classes found: {classes:?}"
            ))
        })? as u32),
    };
    if let Some(n) = normal {
        train.retain(|s| s.class == n);
        val.retain(|s| s.class == n);
    }
    let mut test = test;
    if let Some(limit) = spec.limit {
        for (i, split) in [&mut train, &mut val, &mut test].into_iter().enumerate() {
            subset(split, limit, seed ^ (i as u64 + 1) << 48);
        }
    }
    if train.is_empty() {
        return Err(layout(match &spec.normal_class {
            Some(c) => format!("no training images of class {c:?}"),
            None => "no training images".into(),
        }));
    }
    Ok(Dataset {
        root: root.to_path_buf(),
        classes,
        train,
        val,
        test,
        normal,
        val_carved,
        loader,
    })
}

/// Keeps a seeded random `limit` of `samples`, in name order.
fn subset(samples: &mut Vec<Sample>, limit: usize, seed: u64) {
    if samples.len() <= limit {
        return;
    }
    samples.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    samples.truncate(limit);
    samples.sort_by(|a, b| a.name.cmp(&b.name));
}

type Split4 = (Vec<Sample>, Vec<Sample>, Vec<Sample>, bool);

/// The layout's own splits; a missing val is carved out of train (stratified, grouped).
fn given_splits(
    samples: Vec<(Sample, Option<SplitName>)>,
    spec: &DataSpec,
    seed: u64,
) -> Result<Split4, String> {
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (s, split) in samples {
        match split {
            Some(SplitName::Train) => train.push(s),
            Some(SplitName::Val) => val.push(s),
            Some(SplitName::Test) => test.push(s),
            None => {
                return Err(format!(
                    "{} has no split of its own: set splits: Auto(val: 0.1, test: 0.2){}",
                    s.name,
                    if spec.kind == DataKind::Csv {
                        " or data.split_column"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    let carve = val.is_empty() && spec.val_fraction > 0.0 && train.len() > 1;
    if carve {
        let a = splits::assign(train, spec.val_fraction, 0.0, seed ^ 0x5EED_0F7A1);
        train = a.train;
        val = a.val;
    }
    Ok((train, val, test, carve))
}

fn index_csv(spec: &DataSpec) -> Result<Indexed, DataError> {
    let csv = spec.csv.as_deref().ok_or_else(|| DataError::Layout {
        path: spec.root.clone(),
        message: "data.csv is required with kind: Csv".into(),
    })?;
    let rows = csv_table::read(
        csv,
        &spec.root,
        &spec.path_column,
        &spec.label_column,
        spec.split_column.as_deref(),
    )?;
    let classes: Vec<String> = rows
        .iter()
        .map(|r| r.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let samples = rows
        .into_iter()
        .map(|r| {
            let class = classes.binary_search(&r.label).expect("collected") as u32;
            let name = relative_name(&spec.root, &r.path);
            (Sample::file(r.path, name, class), r.split)
        })
        .collect();
    Ok(Indexed { classes, samples })
}

fn index_idx(spec: &DataSpec) -> Result<(Indexed, Loader), DataError> {
    let (train, test) = idx::open(&spec.root)?;
    let max_label = train.labels.iter().chain(&test.labels).copied().max();
    let classes: Vec<String> = match &spec.class_names {
        Some(names) => {
            if let Some(m) = max_label
                && usize::from(m) >= names.len()
            {
                return Err(DataError::Layout {
                    path: spec.root.clone(),
                    message: format!(
                        "data.class_names has {} names, but the labels go up to {m}",
                        names.len()
                    ),
                });
            }
            names.clone()
        }
        None => (0..=max_label.map_or(0, usize::from))
            .map(|l| l.to_string())
            .collect(),
    };
    let mut samples = Vec::with_capacity(train.labels.len() + test.labels.len());
    let sets = [
        (&train, "train", SplitName::Train),
        (&test, "test", SplitName::Test),
    ];
    for (set, (split, prefix, tag)) in sets.into_iter().enumerate() {
        for (i, &label) in split.labels.iter().enumerate() {
            let sample = Sample {
                path: spec.root.clone(),
                name: format!("{prefix}/{i:05}"),
                class: u32::from(label),
                frame: Some((set as u8, i as u32)),
                group: None,
            };
            samples.push((sample, Some(tag)));
        }
    }
    let images = Arc::new([train.images, test.images]);
    Ok((Indexed { classes, samples }, Loader::Idx(images)))
}

/// DICOM trees: labels from a CSV (`data.csv`, paths relative to the root) or from folder
/// names: `ROOT/<class>/...`, or `ROOT/{train,val,test}/<class>/...` for given splits.
fn index_dicom(spec: &DataSpec, pooled: bool) -> Result<Indexed, DataError> {
    let root = spec.root.as_path();
    let files = dicom::index(root)?;
    if files.is_empty() {
        return Err(DataError::Layout {
            path: root.to_path_buf(),
            message: "no DICOM files found (files with the DICM marker at byte 128)".into(),
        });
    }
    if let Some(csv) = &spec.csv {
        let rows = csv_table::read(csv, root, &spec.path_column, &spec.label_column, None)?;
        let classes: Vec<String> = rows
            .iter()
            .map(|r| r.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let samples = rows
            .into_iter()
            .map(|r| {
                let class = classes.binary_search(&r.label).expect("collected") as u32;
                let name = relative_name(root, &r.path);
                (Sample::file(r.path, name, class), None)
            })
            .collect();
        return Ok(Indexed { classes, samples });
    }
    let has_splits = !pooled && root.join("train").is_dir();
    let mut tagged = Vec::new();
    for path in files {
        let name = relative_name(root, &path);
        let parts: Vec<&str> = name.split('/').collect();
        let (split, class) = if has_splits {
            let split = match parts[0] {
                "train" => SplitName::Train,
                "val" => SplitName::Val,
                "test" => SplitName::Test,
                _ => continue,
            };
            (Some(split), parts.get(1).filter(|_| parts.len() > 2))
        } else {
            (None, parts.first().filter(|_| parts.len() > 1))
        };
        let Some(class) = class else {
            return Err(DataError::Layout {
                path: path.clone(),
                message: "a DICOM file outside a class folder: expected ROOT/<class>/... \
                          (or ROOT/{train,val,test}/<class>/...), or labels in data.csv"
                    .into(),
            });
        };
        let class = class.to_string();
        tagged.push((path, name, class, split));
    }
    let classes: Vec<String> = tagged
        .iter()
        .map(|t| t.2.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let samples = tagged
        .into_iter()
        .map(|(path, name, class, split)| {
            let label = classes.binary_search(&class).expect("collected") as u32;
            (Sample::file(path, name, label), split)
        })
        .collect();
    Ok(Indexed { classes, samples })
}

/// `path` relative to `root` with `/` separators, or the whole path if outside it.
fn relative_name(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    rel.to_string_lossy().replace('\\', "/")
}
