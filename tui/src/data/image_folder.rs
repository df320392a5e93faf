//! The ImageFolder layout: `ROOT/{train,val,test}/<class>/*.{png,jpg,jpeg,tif,tiff}`, as
//! Keras' `flow_from_directory` and the seeds' projects use it.

use std::path::{Path, PathBuf};

use super::csv_table::SplitName;
use super::{DataError, Sample};

pub const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

/// The classes and images of an ImageFolder tree. With `pooled`, the tree may be flat
/// (`ROOT/<class>/*`, for `splits: Auto`) and split folders, if present, are pooled; else
/// it must be `ROOT/{train,val,test}/<class>/*` and each sample carries its split.
pub fn index(root: &Path, pooled: bool) -> Result<Indexed, DataError> {
    let layout = |path: &Path, message: String| DataError::Layout {
        path: path.to_path_buf(),
        message,
    };
    if !root.is_dir() {
        return Err(layout(root, "dataset root is not a folder".into()));
    }
    let names = [SplitName::Train, SplitName::Val, SplitName::Test];
    let split_dirs = ["train", "val", "test"].map(|s| root.join(s));
    let has_splits = split_dirs[0].is_dir();
    if !has_splits && !pooled {
        return Err(layout(
            root,
            "no train/ folder: expected ROOT/{train,val,test}/<class>/<images> (or a flat \
             ROOT/<class>/<images> with splits: Auto(val: 0.1, test: 0.2))"
                .into(),
        ));
    }
    let parents: Vec<(&Path, Option<SplitName>)> = if has_splits {
        split_dirs
            .iter()
            .zip(names)
            .map(|(d, n)| (d.as_path(), (!pooled).then_some(n)))
            .collect()
    } else {
        vec![(root, None)]
    };
    let mut classes: Vec<String> = Vec::new();
    for (dir, _) in &parents {
        for class in subdirs(dir)? {
            if !classes.contains(&class) {
                classes.push(class);
            }
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(layout(root, "no class folders found".into()));
    }
    let mut samples = Vec::new();
    for (dir, split) in parents {
        for s in index_split(root, dir, &classes)? {
            samples.push((s, split));
        }
    }
    Ok(Indexed { classes, samples })
}

/// What a layout indexer found: class names (sorted; labels index them) and samples with
/// the split the layout put them in, if it has splits.
#[derive(Debug, Clone, Default)]
pub struct Indexed {
    pub classes: Vec<String>,
    pub samples: Vec<(Sample, Option<SplitName>)>,
}

/// Sorted sub-folder names; a missing folder has none.
fn subdirs(dir: &Path) -> Result<Vec<String>, DataError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(DataError::Io {
                path: dir.to_path_buf(),
                source: e,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Every image under `split/<class>/`, sorted by name so the order never depends on the
/// filesystem. A class folder without images is an error: it would silently train a
/// classifier that can never predict that class.
fn index_split(root: &Path, split: &Path, classes: &[String]) -> Result<Vec<Sample>, DataError> {
    let mut samples = Vec::new();
    for class in subdirs(split)? {
        let label = classes.iter().position(|c| *c == class).expect("indexed") as u32;
        let dir = split.join(&class);
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::Io {
            path: dir.clone(),
            source: e,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && has_image_extension(p))
            .collect();
        if paths.is_empty() {
            return Err(DataError::Layout {
                path: dir,
                message: format!(
                    "class folder {class:?} has no images (.{})",
                    EXTENSIONS.join(", .")
                ),
            });
        }
        paths.sort();
        samples.extend(paths.into_iter().map(|path| {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            Sample::file(path, name, label)
        }));
    }
    Ok(samples)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_images(root: &Path, dir: &str, n: usize) {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(format!("{i:03}.png")), b"").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
    }

    #[test]
    fn split_layout_tags_each_sample_with_its_split() {
        let dir = tempfile::tempdir().unwrap();
        touch_images(dir.path(), "train/normal", 20);
        touch_images(dir.path(), "test/normal", 3);
        touch_images(dir.path(), "test/anomalous", 4);
        let ix = index(dir.path(), false).unwrap();
        assert_eq!(ix.classes, vec!["anomalous", "normal"]);
        assert_eq!(ix.samples.len(), 27);
        let train: Vec<_> = ix
            .samples
            .iter()
            .filter(|(_, s)| *s == Some(SplitName::Train))
            .collect();
        assert_eq!(train.len(), 20);
        assert!(train[0].0.name.starts_with("train/normal/"));
        assert_eq!(train[0].0.class, 1);
    }

    #[test]
    fn flat_layout_needs_pooling_and_is_pooled() {
        let dir = tempfile::tempdir().unwrap();
        touch_images(dir.path(), "benign", 3);
        touch_images(dir.path(), "malignant", 2);
        let err = index(dir.path(), false).unwrap_err().to_string();
        assert!(
            err.contains("no train/ folder") && err.contains("Auto"),
            "{err}"
        );
        let ix = index(dir.path(), true).unwrap();
        assert_eq!(ix.classes, vec!["benign", "malignant"]);
        assert!(ix.samples.iter().all(|(_, s)| s.is_none()));
        assert_eq!(ix.samples.len(), 5);
    }

    #[test]
    fn an_empty_class_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        touch_images(dir.path(), "train/normal", 2);
        std::fs::create_dir_all(dir.path().join("train/rare")).unwrap();
        let err = index(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("rare") && err.contains("no images"), "{err}");
    }
}
