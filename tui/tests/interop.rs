//! TensorBoard event files and Keras CSV histories against what the real tools write:
//! fixtures made once by PyPI's tensorboardX and tensorboard (`fixtures/tfevents/
//! make_fixtures.py`, committed with the files), the tailing reader on growing, torn and
//! damaged files, gantry's writer read back by gantry and, when `GANTRY_TB_PYTHON` names a
//! python with tensorboard installed, by TensorBoard's own EventAccumulator; image
//! summaries from the fixtures and, where a python has torch, tensorboard and Pillow, from
//! PyTorch's own `add_image`.

use std::io::Write;
use std::path::{Path, PathBuf};

use gantry::interop::foreign::{self, ForeignKind, ForeignRun};
use gantry::interop::keras_csv::KerasCsvTail;
use gantry::interop::tfevents::{
    self, EventFileTail, EventItem, EventWriter, ScalarPoint, proto, read_run_scalars, read_scalars,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// The wall time the fixture script starts from.
const T0: f64 = 1_700_000_000.0;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tfevents")
}

fn only_file(dir: &Path) -> PathBuf {
    let files = tfevents::event_files(dir, 100);
    assert_eq!(files.len(), 1, "{}: {files:?}", dir.display());
    files[0].clone()
}

/// (tag, step, value) of the points with `tag`.
fn series(points: &[ScalarPoint], tag: &str) -> Vec<(i64, f64)> {
    points
        .iter()
        .filter(|p| p.tag == tag)
        .map(|p| (p.step, p.value))
        .collect()
}

fn tags(points: &[ScalarPoint]) -> Vec<String> {
    let mut tags: Vec<String> = points.iter().map(|p| p.tag.clone()).collect();
    tags.sort();
    tags.dedup();
    tags
}

#[test]
fn reads_tensorboardx_simple_values_and_skips_images_histograms_text() {
    let file = only_file(&fixtures().join("pytorch"));
    let points = read_scalars(&file).unwrap();
    assert_eq!(tags(&points), vec!["train/loss", "val/accuracy"]);
    let loss = series(&points, "train/loss");
    assert_eq!(
        loss,
        (0..10)
            .map(|s| (s, 1.0 - 0.0625 * s as f64))
            .collect::<Vec<_>>()
    );
    assert_eq!(series(&points, "val/accuracy"), vec![(4, 0.5), (9, 0.625)]);
    assert_eq!(points[0].wall_time, T0);
    let mut tail = EventFileTail::new();
    tail.read(&file).unwrap();
    assert_eq!(tail.file_version.as_deref(), Some("brain.Event:2"));
    assert_eq!(tail.bad_count, 0);
}

#[test]
fn reads_tf2_tensor_scalars_in_every_encoding() {
    let keras = fixtures().join("keras");
    let train = read_run_scalars(&keras.join("train")).unwrap();
    assert_eq!(
        tags(&train),
        vec!["epoch_accuracy", "epoch_learning_rate", "epoch_loss"]
    );
    // scalar_pb's packed float_val, as f32.
    assert_eq!(
        series(&train, "epoch_loss"),
        vec![(0, 0.5), (1, 0.25), (2, f64::from((0.5f64 / 3.0) as f32))]
    );
    // tensor_content bytes.
    assert_eq!(
        series(&train, "epoch_accuracy"),
        vec![(0, 0.25), (1, 0.5), (2, 0.75)]
    );
    // double_val, its metadata only on the first value.
    assert_eq!(
        series(&train, "epoch_learning_rate"),
        vec![(0, 0.001), (1, 0.0005), (2, 0.00025)]
    );
    let validation = read_run_scalars(&keras.join("validation")).unwrap();
    // The histogram and the image are not scalars.
    assert_eq!(tags(&validation), vec!["epoch_loss", "epoch_seen"]);
    // half_val and int64_val.
    assert_eq!(
        series(&validation, "epoch_loss"),
        vec![(0, 0.75), (1, 0.375), (2, 0.25)]
    );
    assert_eq!(
        series(&validation, "epoch_seen"),
        vec![(0, 1000.0), (1, 2000.0), (2, 3000.0)]
    );
}

#[test]
fn a_session_start_drops_the_steps_it_restarts() {
    // What TensorBoard's EventAccumulator reads from this file: [0, 1, 2, 13, 14].
    let points = read_scalars(&only_file(&fixtures().join("restart"))).unwrap();
    assert_eq!(
        series(&points, "loss"),
        vec![(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0)]
    );
}

#[test]
fn a_truncated_last_record_waits_then_completes() {
    let src = only_file(&fixtures().join("pytorch"));
    let bytes = std::fs::read(&src).unwrap();
    let whole = read_scalars(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.1.h.1");
    let mut tail = EventFileTail::new();
    let mut got = Vec::new();
    // Appended in uneven pieces, most of them cutting a record in two.
    let mut file = std::fs::File::create(&path).unwrap();
    for piece in bytes.chunks(37) {
        file.write_all(piece).unwrap();
        let read = tail.read(&path).unwrap();
        assert!(read.stuck.is_none() && !read.restarted);
        got.extend(read.items);
    }
    let points: Vec<ScalarPoint> = got
        .into_iter()
        .filter_map(|i| match i {
            EventItem::Scalar(p) => Some(p),
            EventItem::Restart { .. } | EventItem::Image(_) => None,
        })
        .collect();
    assert_eq!(points, whole);
    assert_eq!(tail.offset(), bytes.len() as u64);
}

#[test]
fn a_damaged_record_is_an_error_naming_file_and_offset() {
    let src = only_file(&fixtures().join("keras/train"));
    let mut bytes = std::fs::read(&src).unwrap();
    // The second record starts after the first (12 + len + 4 bytes).
    let first_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let second = 16 + first_len;
    bytes[second + 20] ^= 0x40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.1.h.1");
    std::fs::write(&path, &bytes).unwrap();
    let err = read_scalars(&path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string())
            && err.contains(&format!("record at byte {second}"))
            && err.contains("data CRC mismatch"),
        "{err}"
    );
    // The tail keeps what came before and stops there, saying why.
    let mut tail = EventFileTail::new();
    let read = tail.read(&path).unwrap();
    assert!(
        read.items.is_empty(),
        "the first record is the file version"
    );
    assert!(read.stuck.is_some());
    assert_eq!(tail.offset(), second as u64);
}

fn write_sample_events(dir: &Path) -> (PathBuf, Vec<(String, u64, f64)>) {
    let mut writer = EventWriter::create(dir, 1_234_567_890.5).unwrap();
    let mut written = Vec::new();
    for step in 1..=20u64 {
        let tag = "train/loss";
        let value = 1.0 / step as f64;
        writer.scalar(1_234_567_890.0 + step as f64, step, tag, value);
        written.push((tag.to_string(), step, value));
        if step % 10 == 0 {
            writer.scalar(
                1_234_567_891.0 + step as f64,
                step,
                "val/psnr",
                20.0 + step as f64,
            );
            written.push(("val/psnr".into(), step, 20.0 + step as f64));
        }
        writer.flush().unwrap();
    }
    (writer.path().to_path_buf(), written)
}

#[test]
fn the_writer_round_trips_through_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = write_sample_events(dir.path());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("events.out.tfevents.1234567890.")
            && name.ends_with(&format!(".{}.gantry", std::process::id())),
        "{name}"
    );
    let mut tail = EventFileTail::new();
    let read = tail.read(&path).unwrap();
    assert_eq!(tail.file_version.as_deref(), Some("brain.Event:2"));
    let got: Vec<(String, u64, f64)> = read
        .items
        .into_iter()
        .map(|i| match i {
            EventItem::Scalar(p) => (p.tag, p.step as u64, p.value),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<(String, u64, f64)> = written
        .into_iter()
        .map(|(t, s, v)| (t, s, f64::from(v as f32)))
        .collect();
    assert_eq!(got, want);
}

/// Runs `read_with_tensorboard.py` on `path` with `GANTRY_TB_PYTHON`; `None` (and a note)
/// when that is not set.
fn tensorboard_reads(path: &Path) -> Option<serde_json::Value> {
    let Some(python) = std::env::var_os("GANTRY_TB_PYTHON") else {
        eprintln!(
            "skipped: GANTRY_TB_PYTHON is not set (a python with tensorboard installed, \
             e.g. target/ci-venv/bin/python after .ci/python-tools)"
        );
        return None;
    };
    let out = std::process::Command::new(&python)
        .arg(fixtures().join("read_with_tensorboard.py"))
        .arg(path)
        .output()
        .expect("run GANTRY_TB_PYTHON");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("JSON from read_with_tensorboard.py"))
}

#[test]
fn tensorboards_own_reader_reads_what_gantry_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (_, written) = write_sample_events(dir.path());
    // The same second and pid names the same file: a second writer must not clobber it.
    assert!(
        EventWriter::create(dir.path(), 1_234_567_890.9).is_err(),
        "an existing event file was opened again"
    );
    // A restart at step 15 with new values from there, as a resumed runner writes.
    let mut writer = EventWriter::create(dir.path(), 1_234_568_000.0).unwrap();
    writer.restart(1_234_568_000.0, 15);
    writer.scalar(1_234_568_001.0, 15, "train/loss", 0.5);
    writer.flush().unwrap();
    let mut want: Vec<(String, u64, f64)> = written
        .into_iter()
        .filter(|(_, s, _)| *s < 15)
        .map(|(t, s, v)| (t, s, f64::from(v as f32)))
        .collect();
    want.push(("train/loss".into(), 15, 0.5));
    want.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let ours: Vec<(String, u64, f64)> = {
        let mut v: Vec<_> = read_run_scalars(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| (p.tag, p.step as u64, p.value))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    };
    assert_eq!(ours, want);
    let Some(json) = tensorboard_reads(dir.path()) else {
        return;
    };
    let theirs: Vec<(String, u64, f64)> = json
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(tag, points)| {
            points
                .as_array()
                .unwrap()
                .iter()
                .map(move |p| (tag.clone(), p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        })
        .collect();
    assert_eq!(
        theirs, want,
        "TensorBoard's EventAccumulator read otherwise"
    );
}

#[test]
fn keras_histories_and_logdirs_become_foreign_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logdir = root.join("fit/20240101-120000");
    for split in ["train", "validation"] {
        let src = only_file(&fixtures().join("keras").join(split));
        std::fs::create_dir_all(logdir.join(split)).unwrap();
        std::fs::copy(&src, logdir.join(split).join(src.file_name().unwrap())).unwrap();
    }
    let history = root.join("history.csv");
    std::fs::write(&history, "epoch,loss,val_loss\n0,0.9,1.0\n").unwrap();
    let found = foreign::discover(root);
    assert_eq!(
        found
            .iter()
            .map(|f| (f.id.as_str(), f.kind))
            .collect::<Vec<_>>(),
        vec![
            ("fit/20240101-120000", ForeignKind::TensorBoard),
            ("history.csv", ForeignKind::KerasCsv)
        ]
    );
    let mut tb = ForeignRun::new(&found[0]);
    let read = tb.refresh();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let mut tb_tags: Vec<String> = read
        .changes
        .iter()
        .filter_map(|c| match c {
            foreign::Change::Row(r) => Some(r.tag.clone()),
            foreign::Change::Purge { .. } => None,
        })
        .collect();
    tb_tags.sort();
    tb_tags.dedup();
    assert_eq!(
        tb_tags,
        vec![
            "train/epoch_accuracy",
            "train/epoch_learning_rate",
            "train/epoch_loss",
            "validation/epoch_loss",
            "validation/epoch_seen"
        ]
    );
    assert_eq!(tb.files, 2);
    assert!(tb.refresh().changes.is_empty(), "nothing new");
    let mut csv = ForeignRun::new(&found[1]);
    assert_eq!(csv.refresh().changes.len(), 2);
    let mut f = std::fs::File::options()
        .append(true)
        .open(&history)
        .unwrap();
    f.write_all(b"1,0.8,0.9\n").unwrap();
    let read = csv.refresh();
    let rows: Vec<(String, u64, f64)> = read
        .changes
        .into_iter()
        .filter_map(|c| match c {
            foreign::Change::Row(r) => Some((r.tag, r.step, r.value)),
            foreign::Change::Purge { .. } => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![("loss".into(), 1, 0.8), ("val_loss".into(), 1, 0.9)]
    );
    assert!(csv.is_live(gantry::runfs::time::now()));
    // A broken history: the first line lost its epoch column.
    std::fs::write(&history, "loss\n0.1\n").unwrap();
    let read = csv.refresh();
    assert!(read.restarted);
    assert!(
        read.errors.iter().any(|e| e.contains("history.csv:1")),
        "{:?}",
        read.errors
    );
}

/// Arbitrary bytes and mutations of real files: every reader answers with values or an
/// error naming the file, never a panic.
#[test]
fn hostile_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.1.h.1");
    let csv = dir.path().join("history.csv");
    let seeds: Vec<Vec<u8>> = ["pytorch", "keras/train", "keras/validation", "restart"]
        .iter()
        .map(|d| std::fs::read(only_file(&fixtures().join(d))).unwrap())
        .collect();
    let strategy = (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..512),
    );
    // GANTRY_FUZZ_SCALE multiplies the cases, as in hostile_input.rs.
    let scale: f64 = std::env::var("GANTRY_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    let config = ProptestConfig {
        cases: ((1000.0 * scale) as u32).max(1),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    TestRunner::new(config)
        .run(&strategy, |(seed, flips, cut, noise)| {
            let mut bytes = seeds[seed].clone();
            for (at, xor) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            for data in [&bytes, &noise] {
                std::fs::write(&path, data).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut tail = EventFileTail::new();
                if let Ok(read) = tail.read(&path)
                    && let Some(e) = read.stuck
                {
                    prop_assert!(e.to_string().contains("events.out.tfevents.1.h.1"));
                }
                let _ = proto::decode_event(data);
                let _ = proto::decode_summary(data);
                let _ = proto::decode_scalar_tensor(data);
                std::fs::write(&csv, data).map_err(|e| TestCaseError::fail(e.to_string()))?;
                match KerasCsvTail::new().read(&csv) {
                    Ok(read) => {
                        if let Some(e) = read.refused {
                            prop_assert!(e.to_string().contains("history.csv"));
                        }
                    }
                    Err(e) => prop_assert!(e.to_string().contains("history.csv")),
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A python that has what `SummaryWriter.add_image` needs (torch, tensorboard, Pillow):
/// `GANTRY_TORCH_PYTHON`, else the Python plugins' venv (`GANTRY_TEST_VENV`, default
/// `target/py-venv`) when it has them. `None`, and a note, otherwise.
fn torch_tensorboard_python() -> Option<PathBuf> {
    let python = match std::env::var_os("GANTRY_TORCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("GANTRY_TEST_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py-venv"))
            .join("bin/python"),
    };
    let check = "import PIL, tensorboard; from torch.utils.tensorboard import SummaryWriter";
    let ok = std::process::Command::new(&python)
        .args(["-c", check])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: {} lacks torch, tensorboard or Pillow (set GANTRY_TORCH_PYTHON to a \
             python with all three)",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// PyTorch's own `add_image` and `add_images`, read by gantry as TensorBoard's own
/// EventAccumulator reads them (the same images, byte for byte), listed as the samples
/// of a foreign run and decoded to the pixels torch was given.
#[test]
fn pytorchs_add_image_reads_as_tensorboard_reads_it_and_shows_as_samples() {
    let Some(python) = torch_tensorboard_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("torch-run");
    let out = std::process::Command::new(&python)
        .arg(fixtures().join("write_torch_images.py"))
        .arg(&logdir)
        .output()
        .expect("run the torch python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs: Vec<(String, u64, u64, u64, String)> = theirs
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(tag, images)| {
            images.as_array().unwrap().iter().map(move |i| {
                (
                    tag.clone(),
                    i[0].as_u64().unwrap(),
                    i[1].as_u64().unwrap(),
                    i[2].as_u64().unwrap(),
                    i[3].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    theirs.sort();
    let mut tail = EventFileTail::new();
    let read = tail.read(&only_file(&logdir)).unwrap();
    assert_eq!((tail.bad_count, tail.refused_count), (0, 0));
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut ours: Vec<(String, u64, u64, u64, String)> = read
        .items
        .iter()
        .filter_map(|i| match i {
            EventItem::Image(p) => Some((
                p.tag.clone(),
                p.step as u64,
                u64::from(p.width),
                u64::from(p.height),
                hex(&p.png),
            )),
            _ => None,
        })
        .collect();
    ours.sort();
    assert_eq!(ours.len(), 9);
    assert_eq!(
        ours, theirs,
        "TensorBoard's EventAccumulator read otherwise"
    );
    // The dashboard's store: the samples of a foreign run, by step and tag.
    let mut store = gantry::ui::store::RunStore::new(vec![dir.path().to_path_buf()]);
    store.rescan();
    let run = &store.runs[&logdir];
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.series["loss"].steps, vec![0, 1, 2]);
    let listed: Vec<(u32, &str)> = run
        .samples
        .iter()
        .map(|s| (s.epoch, s.name.as_str()))
        .collect();
    let want: Vec<(u32, &str)> = (0..3)
        .flat_map(|s| [(s, "batch"), (s, "grey"), (s, "recon/0")])
        .collect();
    assert_eq!(listed, want);
    let pixels = |step: u32, tag: &str| {
        let sample = run
            .samples
            .iter()
            .find(|s| s.epoch == step && s.name == tag)
            .unwrap();
        let img = gantry::ui::views::samples::load(sample).unwrap();
        let (w, h) = img.dimensions();
        (w, h, img.get_pixel(0, 0).0, img.get_pixel(w - 1, h - 1).0)
    };
    assert_eq!(pixels(0, "recon/0"), (12, 8, [255, 0, 0], [0, 0, 255]));
    assert_eq!(pixels(1, "recon/0"), (12, 8, [0, 0, 255], [255, 0, 0]));
    assert_eq!(pixels(2, "grey"), (7, 5, [80; 3], [80; 3]));
    assert_eq!(pixels(1, "batch").0, 8, "two 4x4 images tiled by torch");
}

/// The committed fixtures' images: tensorboardX's `add_image` (a 4x4 black RGB image)
/// and the Keras layout's TF2 image tensors (whose bytes are no real PNG).
#[test]
fn the_fixtures_images_are_read() {
    let mut tail = EventFileTail::new();
    let read = tail.read(&only_file(&fixtures().join("pytorch"))).unwrap();
    let images: Vec<&tfevents::ImagePoint> = read
        .items
        .iter()
        .filter_map(|i| match i {
            EventItem::Image(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(images.len(), 1);
    assert_eq!(
        (
            images[0].tag.as_str(),
            images[0].step,
            images[0].width,
            images[0].height
        ),
        ("sample", 9, 4, 4)
    );
    let img = image::load_from_memory(&images[0].png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (4, 4));
    assert!(img.pixels().all(|p| p.0 == [0, 0, 0]));
    let mut tail = EventFileTail::new();
    let read = tail
        .read(&only_file(&fixtures().join("keras/validation")))
        .unwrap();
    let images: Vec<(&str, i64, u32, u32, &[u8])> = read
        .items
        .iter()
        .filter_map(|i| match i {
            EventItem::Image(p) => Some((p.tag.as_str(), p.step, p.width, p.height, &p.png[..])),
            _ => None,
        })
        .collect();
    assert_eq!(
        images,
        (0..3)
            .map(|s| ("epoch_image", s, 1, 1, &b"\x89PNG not really"[..]))
            .collect::<Vec<_>>()
    );
}
