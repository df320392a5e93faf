//! Runs other programs wrote, side by side with gantry's: a PyTorch-style TensorBoard
//! logdir (tensorboardX's file), a Keras TensorBoard logdir (train/ and validation/), and
//! a Keras CSVLogger history that is still growing. Fixture event files are those PyPI's
//! tensorboardX and tensorboard wrote (`tui/tests/fixtures/tfevents/`).

use std::fs::{File, FileTimes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::app::View;
use super::tests::{app, render, root, select, store};
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
