//! The ImageFolder layout: `ROOT/{train,val,test}/<class>/*.{png,jpg,jpeg,tif,tiff}`, as
//! Keras' `flow_from_directory` and the seeds' projects use it.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DataError, Dataset, Sample};

pub const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

/// Indexes an ImageFolder tree. With `normal_class`, train and val keep that class only
/// (one-class training) and test keeps every class. Without a `val` split, `val_fraction`
/// of train is carved out, chosen by `seed`.
pub fn open(
    root: &Path,
    normal_class: Option<&str>,
    val_fraction: f64,
    seed: u64,
) -> Result<Dataset, DataError> {
    let layout = |path: &Path, message: String| DataError::Layout {
        path: path.to_path_buf(),
        message,
    };
    if !root.is_dir() {
        return Err(layout(root, "dataset root is not a folder".into()));
    }
    let splits = ["train", "val", "test"].map(|s| root.join(s));
    if !splits[0].is_dir() {
        return Err(layout(
            root,
            "no train/ folder: expected ROOT/{train,val,test}/<class>/<images>".into(),
        ));
    }
    let mut classes: Vec<String> = Vec::new();
    for split in &splits {
        for class in subdirs(split)? {
            if !classes.contains(&class) {
                classes.push(class);
            }
        }
    }
    classes.sort();
    let normal = match normal_class {
        None => None,
        Some(name) => Some(classes.iter().position(|c| c == name).ok_or_else(|| {
            layout(
                root,
                format!("normal_class {name:?} is not among the classes found: {classes:?}"),
            )
        })? as u32),
    };
    let mut train = index_split(root, &splits[0], &classes)?;
    let mut val = index_split(root, &splits[1], &classes)?;
    let test = index_split(root, &splits[2], &classes)?;
    let val_carved = val.is_empty() && val_fraction > 0.0;
    if val_carved {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0F7A1_u64);
        train.shuffle(&mut rng);
        let n_val = ((train.len() as f64 * val_fraction).round() as usize).min(train.len() - 1);
        val = train.split_off(train.len() - n_val);
        train.sort_by(|a, b| a.name.cmp(&b.name));
        val.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if let Some(n) = normal {
        train.retain(|s| s.class == n);
        val.retain(|s| s.class == n);
    }
    if train.is_empty() {
        return Err(layout(
            &splits[0],
            match normal_class {
                Some(c) => format!("no training images of class {c:?}"),
                None => "no training images".into(),
            },
        ));
    }
    Ok(Dataset {
        root: root.to_path_buf(),
        classes,
        train,
        val,
        test,
        normal,
        val_carved,
    })
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

/// Every image of one split, sorted by name so the order never depends on the filesystem.
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
        paths.sort();
        samples.extend(paths.into_iter().map(|path| {
            Sample {
                name: path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
                path,
                class: label,
            }
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

    fn touch_images(root: &Path, split: &str, class: &str, n: usize) {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(format!("{i:03}.png")), b"").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
    }

    #[test]
    fn one_class_layout_with_carved_val() {
        let dir = tempfile::tempdir().unwrap();
        touch_images(dir.path(), "train", "normal", 20);
        touch_images(dir.path(), "test", "normal", 3);
        touch_images(dir.path(), "test", "anomalous", 4);
        let ds = open(dir.path(), Some("normal"), 0.1, 0).unwrap();
        assert_eq!(ds.classes, vec!["anomalous", "normal"]);
        assert_eq!(ds.normal, Some(1));
        assert!(ds.val_carved);
        assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (18, 2, 7));
        assert!(ds.train.iter().all(|s| !ds.val.contains(s)), "no leakage");
        assert!(ds.test.iter().any(|s| ds.is_anomalous(s.class)));
        assert!(ds.train[0].name.starts_with("train/normal/"));
        // Deterministic by seed.
        let again = open(dir.path(), Some("normal"), 0.1, 0).unwrap();
        assert_eq!(again.val, ds.val);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), None, 0.1, 0).unwrap_err().to_string();
        assert!(err.contains("no train/ folder"), "{err}");
        touch_images(dir.path(), "train", "normal", 2);
        let err = open(dir.path(), Some("healthy"), 0.1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"healthy\"") && err.contains("normal"),
            "{err}"
        );
    }
}
