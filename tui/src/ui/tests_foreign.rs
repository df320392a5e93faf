//! Runs other programs wrote, side by side with gantry's: a PyTorch-style TensorBoard
//! logdir (tensorboardX's file), a Keras TensorBoard logdir (train/ and validation/), and
//! a Keras CSVLogger history that is still growing, and the image summaries of
//! TensorBoard logdirs in the Samples view. Fixture event files are those PyPI's
//! tensorboardX and tensorboard wrote (`tui/tests/fixtures/tfevents/`).

use std::fs::{File, FileTimes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crossterm::event::KeyCode;

use super::app::View;
use super::tests::{app, key, render, root, select, store};
use crate::fixtures::NOW;
use crate::interop::tfevents;
use crate::runfs::status::Liveness;

fn event_fixture(dir: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tfevents")
        .join(dir);
    tfevents::event_files(&dir, 10).remove(0)
}

/// Copies a fixture file into `dir`, its modification time `age` seconds before [`NOW`]
/// (what "live" is judged by).
fn place(src: &Path, dir: &Path, name: &str, age: f64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    set_age(&dst, age);
    dst
}

fn set_age(path: &Path, age: f64) {
    let when = UNIX_EPOCH + Duration::from_secs_f64(NOW - age);
    File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(when))
        .unwrap();
}

const HISTORY: &str = "epoch,accuracy,loss,val_accuracy,val_loss\n\
                       0,0.61,0.92,0.58,0.95\n\
                       1,0.72,0.71,0.69,0.77\n\
                       2,0.79,0.55,0.74,0.63\n\
                       3,0.83,0.46,0.77,0.58\n";

/// The standard gantry root plus three foreign runs, and a gantry run holding its own
/// event file (which must not show as a run of its own).
fn foreign_root(name: &str) -> PathBuf {
    let root = root(name);
    place(
        &event_fixture("pytorch"),
        &root.join("pytorch-run"),
        "events.out.tfevents.1700000000.fixture.1.0",
        7200.0,
    );
    for split in ["train", "validation"] {
        let src = event_fixture(&format!("keras/{split}"));
        let name = src.file_name().unwrap().to_string_lossy().into_owned();
        place(
            &src,
            &root.join("fit/20240101-120000").join(split),
            &name,
            86_400.0,
        );
    }
    let history = root.join("history.csv");
    std::fs::write(&history, HISTORY).unwrap();
    set_age(&history, 20.0);
    place(
        &event_fixture("pytorch"),
        &root.join("ae-finished"),
        "events.out.tfevents.1800000000.fixture-host.7.gantry",
        600.0,
    );
    root
}

#[test]
fn foreign_runs_are_listed_beside_gantry_runs() {
    let root = foreign_root("foreign-list");
    let store = store(&root);
    let mut ids: Vec<String> = store.runs.values().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "ae-failed",
            "ae-finished",
            "ae-running",
            "broken",
            "evil\u{1b}[31mred",
            "fit/20240101-120000",
            "history.csv",
            "pytorch-run",
        ],
        "gantry's own event file is no run of its own"
    );
    let run = |id: &str| store.runs.values().find(|r| r.id() == id).unwrap();
    assert_eq!(run("pytorch-run").plugin(), "tensorboard");
    assert_eq!(run("history.csv").plugin(), "keras-csv");
    assert_eq!(
        run("history.csv").liveness(NOW, "this-host"),
        Some(Liveness::External { live: true })
    );
    assert_eq!(
        run("pytorch-run").liveness(NOW, "this-host"),
        Some(Liveness::External { live: false })
    );
    let keras = run("fit/20240101-120000");
    assert_eq!(
        keras.series.keys().collect::<Vec<_>>(),
        vec![
            "train/epoch_accuracy",
            "train/epoch_learning_rate",
            "train/epoch_loss",
            "validation/epoch_loss",
            "validation/epoch_seen"
        ]
    );
    assert!(keras.errors.is_empty(), "{:?}", keras.errors);
    let mut app = app();
    select(&mut app, &root, "history.csv");
    app.view = View::Overview;
    let screen = render(&mut app, &store, 110, 30);
    assert!(screen.contains("keras-csv"), "{screen}");
    assert!(screen.contains("external · live"), "{screen}");
    insta::assert_snapshot!("foreign_overview_110x30", screen);
}

#[test]
fn foreign_scalars_show_in_losses_and_metrics() {
    let root = foreign_root("foreign-views");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "fit/20240101-120000");
    app.view = View::Losses;
    let losses = render(&mut app, &store, 110, 30);
    assert!(losses.contains("epoch_loss"), "{losses}");
    insta::assert_snapshot!("foreign_keras_tb_losses_110x30", losses);
    select(&mut app, &root, "history.csv");
    app.view = View::Metrics;
    let metrics = render(&mut app, &store, 110, 30);
    assert!(metrics.contains("val_loss"), "{metrics}");
    insta::assert_snapshot!("foreign_keras_csv_metrics_110x30", metrics);
    // Keras' `loss` and `val_loss` share a chart, as `train/` and `validation/` above.
    app.view = View::Losses;
    let losses = render(&mut app, &store, 110, 30);
    assert!(
        losses.contains(" loss smooth") && !losses.contains("val_loss smooth"),
        "{losses}"
    );
    insta::assert_snapshot!("foreign_keras_csv_losses_110x30", losses);
    select(&mut app, &root, "pytorch-run");
    app.view = View::Losses;
    insta::assert_snapshot!(
        "foreign_pytorch_losses_110x30",
        render(&mut app, &store, 110, 30)
    );
}

#[test]
fn appended_history_rows_and_new_logdirs_arrive_through_the_watcher_paths() {
    let root = foreign_root("foreign-live");
    let mut store = store(&root);
    let history = root.join("history.csv");
    let mut f = File::options().append(true).open(&history).unwrap();
    f.write_all(b"4,0.86,0.41,0.78,0.5").unwrap();
    store.refresh_paths(std::slice::from_ref(&history));
    // The row without its newline waits.
    assert_eq!(store.runs[&history].series["loss"].len(), 4);
    f.write_all(b"6\n").unwrap();
    assert!(store.refresh_paths(std::slice::from_ref(&history)));
    let loss = &store.runs[&history].series["val_loss"];
    assert_eq!(loss.steps, vec![0, 1, 2, 3, 4]);
    assert_eq!(loss.last(), Some(0.56));
    // A new logdir appears: a path nobody owns, so the store looks again.
    let restart = place(
        &event_fixture("restart"),
        &root.join("resumed-tf1"),
        "events.out.tfevents.1700000000.fixture.3.0",
        30.0,
    );
    assert!(store.refresh_paths(&[restart]));
    let run = &store.runs[&root.join("resumed-tf1")];
    // Its SessionLog START at step 3 dropped the steps 3..5 logged before it.
    assert_eq!(run.series["loss"].steps, vec![0, 1, 2, 3, 4]);
    assert_eq!(run.series["loss"].values, vec![0.0, 1.0, 2.0, 13.0, 14.0]);
}

/// A `w` x `h` PNG, left half `left`, right half `right`.
fn png(w: u32, h: u32, left: [u8; 3], right: [u8; 3]) -> Vec<u8> {
    use image::ImageEncoder;
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| if i % w < w / 2 { left } else { right })
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn tensorboard_image_summaries_show_in_samples_step_by_step() {
    let root = foreign_root("foreign-images");
    // A PyTorch-style logdir: `add_image` for two tags at three steps, TF2's way for a
    // third tag.
    let logdir = root.join("pt-images");
    std::fs::create_dir_all(&logdir).unwrap();
    let mut w = tfevents::EventWriter::create(&logdir, NOW - 3600.0).unwrap();
    for (i, step) in [10u64, 20, 30].into_iter().enumerate() {
        let shade = 80 * i as u8;
        let wall = NOW - 3600.0 + step as f64;
        w.scalar(wall, step, "loss", 1.0 / step as f64);
        let original = png(16, 8, [shade, 0, 0], [0, 0, 255]);
        w.image(wall, step, "recon/0", (16, 8, 3), &original);
        let recon = png(16, 8, [0, shade, 0], [255, 255, 255]);
        w.image(wall, step, "recon/1", (16, 8, 3), &recon);
        w.event(&tfevents::proto::encode_image_tensor(
            wall,
            step as i64,
            "tf2/image",
            (16, 8),
            &[&recon],
            step == 10,
        ));
    }
    w.flush().unwrap();
    set_age(w.path(), 3000.0);
    let store = store(&root);
    let run = &store.runs[&logdir];
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.samples.len(), 9);
    let mut app = app();
    select(&mut app, &root, "pt-images");
    app.view = View::Samples;
    let screen = render(&mut app, &store, 110, 30);
    assert!(screen.contains("step 30 · recon/0 (latest)"), "{screen}");
    // Drawn as half blocks, as gantry's own samples are.
    assert!(screen.contains('▀'), "{screen}");
    insta::assert_snapshot!("foreign_tb_samples_110x30", screen);
    // Each image fills the width: a tall terminal shows the step's three, by tag.
    let tall = render(&mut app, &store, 60, 80);
    for tag in ["recon/0", "recon/1", "tf2/image"] {
        assert!(
            tall.contains(&format!("step 30 · {tag} (latest)")),
            "{tag}: {tall}"
        );
    }
    // `[` steps back through the steps the images were logged at, down to the first.
    key(&mut app, &store, KeyCode::Char('['));
    let screen = render(&mut app, &store, 110, 30);
    assert!(screen.contains("step 20 · recon/0 ([ ] steps)"), "{screen}");
    key(&mut app, &store, KeyCode::Char('['));
    let screen = render(&mut app, &store, 110, 30);
    assert!(screen.contains("step 10 · recon/0 ([ ] steps)"), "{screen}");
    key(&mut app, &store, KeyCode::Char(']'));
    assert!(render(&mut app, &store, 110, 30).contains("step 20 · recon/0"));
    // The Overview says what was read.
    app.view = View::Overview;
    let overview = render(&mut app, &store, 110, 30);
    assert!(overview.contains("9 image(s) of 3 tag(s)"), "{overview}");
    // tensorboardX's own add_image (the committed fixture): a 4x4 black "sample".
    select(&mut app, &root, "pytorch-run");
    app.view = View::Samples;
    app.samples_back = 0;
    let screen = render(&mut app, &store, 110, 30);
    assert!(screen.contains("step 9 · sample (latest)"), "{screen}");
    // The Keras fixture's images are not PNGs: said with the tag and step, not drawn.
    select(&mut app, &root, "fit/20240101-120000");
    let screen = render(&mut app, &store, 110, 30);
    assert!(
        screen.contains("step 2 · validation/epoch_image (latest)")
            && screen.contains("⚠ validation/epoch_image at step 2:"),
        "{screen}"
    );
    // A CSV history has no images.
    select(&mut app, &root, "history.csv");
    let screen = render(&mut app, &store, 110, 30);
    assert!(
        screen.contains("no images in this run's event files"),
        "{screen}"
    );
}

#[test]
fn a_foreign_runs_images_stay_bounded_and_follow_restarts() {
    use crate::interop::tfevents::reader::KEEP_IMAGE_STEPS;
    let root = root("foreign-images-bounded");
    let logdir = root.join("long-run");
    std::fs::create_dir_all(&logdir).unwrap();
    let mut w = tfevents::EventWriter::create(&logdir, NOW - 100.0).unwrap();
    let img = png(2, 2, [1, 2, 3], [4, 5, 6]);
    for step in 0..200 {
        w.image(NOW - 100.0, step, "recon", (2, 2, 3), &img);
    }
    w.flush().unwrap();
    let mut store = store(&root);
    let epochs = |store: &super::store::RunStore| -> Vec<u32> {
        store.runs[&logdir]
            .samples
            .iter()
            .map(|s| s.epoch)
            .collect()
    };
    assert_eq!(
        epochs(&store),
        (200 - KEEP_IMAGE_STEPS as u32..200).collect::<Vec<_>>()
    );
    // More steps appended: still the newest 64.
    for step in 200..210 {
        w.image(NOW - 90.0, step, "recon", (2, 2, 3), &img);
    }
    w.flush().unwrap();
    assert!(store.refresh_paths(&[w.path().to_path_buf()]));
    assert_eq!(
        epochs(&store),
        (210 - KEEP_IMAGE_STEPS as u32..210).collect::<Vec<_>>()
    );
    // A resumed run restarting at step 205 voids the images from there.
    w.restart(NOW - 80.0, 205);
    w.image(NOW - 80.0, 205, "recon", (2, 2, 3), &img);
    w.flush().unwrap();
    assert!(store.refresh_paths(&[w.path().to_path_buf()]));
    let after = epochs(&store);
    assert_eq!(after.last(), Some(&205));
    assert_eq!(after.len(), KEEP_IMAGE_STEPS - 4);
}
