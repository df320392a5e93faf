//! Dataset sources end to end, through the real `gantry` binary: the one-class protocol on
//! Fashion-MNIST's IDX files (Debian's `dataset-fashion-mnist`, installed by CI), a
//! BreakHis-like flat tree split by patient, `gantry data inspect`'s report and leakage
//! check, and `skip_bad`.

use std::path::{Path, PathBuf};

use gantry_e2e::{gantry, plugin_dir, scalar_rows};

/// Where Debian's `dataset-fashion-mnist` puts its IDX files.
const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

fn train(cfg: &Path, runs: &Path) -> (i32, String) {
    let (code, _, err) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "r",
        "--plugins",
        plugin_dir().to_str().unwrap(),
    ]);
    (code, err)
}

fn scalar_values(run: &Path, tag: &str) -> Vec<f64> {
    scalar_rows(run)
        .into_iter()
        .filter(|r| r.2 == tag)
        .map(|r| r.3)
        .collect()
}

#[test]
fn fashion_mnist_one_class_protocol_reports_auroc() {
    if !Path::new(FASHION_MNIST).is_dir() {
        eprintln!("skipped: {FASHION_MNIST} absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fmnist.ron");
    // 28x28 digits padded to 32x32 as GEOM does; a small subset keeps this quick.
    std::fs::write(
        &cfg,
        format!(
            r#"(
    plugin: "conv-ae",
    params: {{"channels": [8, 16], "latent": 16}},
    data: (kind: Idx, root: {FASHION_MNIST:?}, size: (32, 32), channels: 1,
           normal_class: "0", resize: Pad, limit: 400),
    train: (epochs: 2, batch_size: 32, lr: 0.002, seed: 1),
    device: "cpu",
)
"#
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let (code, err) = train(&cfg, &runs);
    assert_eq!(code, 0, "train failed: {err}");
    let run = runs.join("r");
    let auroc = scalar_values(&run, "test/auroc");
    assert_eq!(auroc.len(), 2, "one AUROC per epoch");
    assert!(auroc.iter().all(|a| (0.0..=1.0).contains(a)), "{auroc:?}");
    // Test holds every class; train only class "0" (T-shirt/top).
    let scores = std::fs::read_to_string(run.join("scores/epoch-0002.csv")).unwrap();
    let labels: std::collections::BTreeSet<&str> = scores
        .lines()
        .skip(1)
        .filter(|l| l.contains(",test,"))
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    assert!(labels.len() >= 9, "test labels {labels:?}");
}

/// BreakHis-like: a flat class tree whose file names carry the patient id.
fn breakhis_tree(root: &Path) {
    for patient in 0..12 {
        let (class, kind) = if patient % 2 == 0 {
            ("benign", "B_A")
        } else {
            ("malignant", "M_DC")
        };
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..5 {
            let name = format!("SOB_{kind}-14-{patient:05}-40-{i:03}.png");
            image::RgbImage::from_fn(20, 12, |x, y| {
                image::Rgb([(x * 12) as u8, (y * 20) as u8, (patient * 20) as u8])
            })
            .save(dir.join(name))
            .unwrap();
        }
    }
}

fn inspect(cfg: &Path) -> (i32, String, String) {
    gantry(&["data", "inspect", cfg.to_str().unwrap()])
}

#[test]
fn grouped_auto_split_keeps_patients_apart_and_inspect_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("breakhis");
    breakhis_tree(&root);
    let cfg = dir.path().join("cfg.ron");
    let config = |group: &str| {
        format!(
            r#"(
    plugin: "conv-ae",
    data: (kind: ImageFolder, root: {root:?}, size: (16, 16), channels: 3,
           splits: Auto(val: 0.17, test: 0.34){group}),
    train: (epochs: 1, batch_size: 8, seed: 4),
)
"#
        )
    };
    std::fs::write(&cfg, config(r#", group_by: Regex("-14-(\\d+)-")"#)).unwrap();
    let (code, out, err) = inspect(&cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("leakage check: clean"), "{out}");
    assert!(out.contains("20x12 Rgb8"), "stored size reported: {out}");
    // 6 patients per class of 5 images: 2 test patients and 1 val patient per class.
    let total = out.lines().find(|l| l.starts_with("total")).unwrap();
    let counts: Vec<usize> = total
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts, vec![30, 10, 20], "{out}");

    // A regex that misses a file name is an error that names the file.
    std::fs::write(&cfg, config(r#", group_by: Regex("patient(\\d+)")"#)).unwrap();
    let (code, _, err) = inspect(&cfg);
    assert_ne!(code, 0);
    assert!(err.contains("SOB_") && err.contains("patient"), "{err}");
}

#[test]
fn csv_source_with_split_column_trains_and_a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = String::from("image_id,diagnosis,fold\n");
    for i in 0..24 {
        let id = format!("ISIC_{i:07}");
        image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 15 + i) as u8]))
            .save(images.join(format!("{id}.jpg")))
            .unwrap();
        let label = if i % 4 == 0 { "melanoma" } else { "nevus" };
        let fold = match i % 6 {
            0 => "test",
            1 => "val",
            _ => "train",
        };
        csv += &format!("{id},{label},{fold}\n");
    }
    std::fs::write(dir.path().join("meta.csv"), csv).unwrap();
    let cfg = dir.path().join("cfg.ron");
    let config = |label: &str| {
        format!(
            r#"(
    plugin: "conv-ae",
    params: {{"channels": [8, 16], "latent": 8}},
    data: (kind: Csv, root: "images", csv: "meta.csv", path_column: "image_id",
           label_column: {label:?}, split_column: "fold", size: (16, 16), channels: 1,
           normal_class: "nevus"),
    train: (epochs: 1, batch_size: 8, seed: 2),
    device: "cpu",
)
"#
        )
    };
    std::fs::write(&cfg, config("diagnosis")).unwrap();
    let (code, out, err) = inspect(&cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("melanoma") && out.contains("nevus"), "{out}");
    let runs = dir.path().join("runs");
    let (code, err) = train(&cfg, &runs);
    assert_eq!(code, 0, "{err}");
    assert_eq!(scalar_values(&runs.join("r"), "test/auroc").len(), 1);

    std::fs::write(&cfg, config("dx")).unwrap();
    let (code, _, err) = inspect(&cfg);
    assert_ne!(code, 0);
    assert!(err.contains("meta.csv") && err.contains("dx"), "{err}");
}

#[test]
fn skip_bad_skips_and_reports_broken_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for split in ["train", "test"] {
        let class_dir = root.join(split).join("normal");
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..10 {
            image::GrayImage::from_pixel(16, 16, image::Luma([i * 20]))
                .save(class_dir.join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(root.join("train/normal/3.png"), b"not a png").unwrap();
    let cfg = dir.path().join("cfg.ron");
    let config = |skip: bool| {
        format!(
            r#"(
    plugin: "conv-ae",
    params: {{"channels": [8, 16], "latent": 8}},
    data: (kind: ImageFolder, root: {root:?}, size: (16, 16), val_fraction: 0.0,
           skip_bad: {skip}),
    train: (epochs: 2, batch_size: 4, seed: 2),
    device: "cpu",
)
"#
        )
    };
    std::fs::write(&cfg, config(false)).unwrap();
    let runs: PathBuf = dir.path().join("runs");
    let (code, err) = train(&cfg, &runs);
    assert_ne!(code, 0);
    assert!(err.contains("3.png"), "{err}");

    std::fs::write(&cfg, config(true)).unwrap();
    let runs = dir.path().join("runs2");
    let (code, err) = train(&cfg, &runs);
    assert_eq!(code, 0, "{err}");
    let status = std::fs::read_to_string(runs.join("r/status.ron")).unwrap();
    assert!(status.contains("skipped: 1"), "{status}");
    assert!(status.contains("train/normal/3.png"), "{status}");
    let log = std::fs::read_to_string(runs.join("r/train.log")).unwrap();
    assert_eq!(log.matches("skipped (data.skip_bad)").count(), 1, "{log}");
}
