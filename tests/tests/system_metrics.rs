//! System metrics end to end: a real `gantry train` (conv-ae on synthetic data, sampling
//! every 0.2 s) writes `system.csv` in scalars.csv's format, read back with the reader the
//! dashboard uses; `gantry resume` appends to it, without the rows a crashed runner wrote
//! past its checkpoint.

use std::path::{Path, PathBuf};

use gantry::runfs::scalars::{HEADER, ScalarRow, ScalarTail};
use gantry_e2e::{gantry_with_env, plugin_dir, small_config};

fn synth_data() -> &'static Path {
    gantry_e2e::shared_synth(160, 16, 3)
}

const FAST: [(&str, &str); 1] = [("GANTRY_SYSTEM_INTERVAL", "0.2")];

fn run_gantry(args: &[&str]) -> (i32, String) {
    let env: Vec<(&str, &Path)> = FAST.iter().map(|(k, v)| (*k, Path::new(*v))).collect();
    let (code, _, err) = gantry_with_env(args, &env);
    (code, err)
}

/// Every row of system.csv, through scalars.csv's reader: a bad line fails the test.
fn system_rows(run: &Path) -> Vec<ScalarRow> {
    let path = run.join("system.csv");
    let text = std::fs::read_to_string(&path).expect("system.csv");
    assert!(text.starts_with(&format!("{HEADER}\n")), "{text}");
    assert!(text.ends_with('\n'), "a torn last line");
    let mut tail = ScalarTail::new();
    let rows = tail.read_new(&path).unwrap();
    assert!(tail.bad_lines.is_empty(), "{:?}", tail.bad_lines);
    assert_eq!(rows.len(), text.lines().count() - 1);
    rows
}

fn values<'a>(rows: &'a [ScalarRow], tag: &str) -> Vec<&'a ScalarRow> {
    rows.iter().filter(|r| r.tag == tag).collect()
}

fn train(dir: &Path, epochs: u32) -> PathBuf {
    let cfg = dir.join("cfg.ron");
    std::fs::write(&cfg, small_config(synth_data(), epochs)).unwrap();
    let runs = dir.join("runs");
    let (code, err) = run_gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "sys",
        "--plugins",
        plugin_dir().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "train failed: {err}");
    runs.join("sys")
}

/// Epochs of the first runner (10 steps each).
const EPOCHS: u32 = 16;

#[test]
fn training_writes_system_metrics_over_time() {
    let dir = tempfile::tempdir().unwrap();
    // About a second of training: several samples.
    let run = train(dir.path(), EPOCHS);
    let rows = system_rows(&run);
    for tag in ["sys/cpu_percent", "sys/rss_mb", "sys/data_wait"] {
        assert!(!values(&rows, tag).is_empty(), "no {tag} rows: {rows:?}");
    }
    // A CPU run reports no GPU, and nothing else than what it samples.
    assert!(rows.iter().all(|r| r.tag.starts_with("sys/")), "{rows:?}");
    for r in values(&rows, "sys/rss_mb") {
        assert!((1.0..100_000.0).contains(&r.value), "RSS {} MB", r.value);
    }
    for r in values(&rows, "sys/cpu_percent") {
        assert!(r.value >= 0.0 && r.value.is_finite(), "CPU {}%", r.value);
    }
    for r in values(&rows, "sys/data_wait") {
        assert!((0.0..=1.0).contains(&r.value), "data wait {}", r.value);
    }
    // Tagged with the trainer's position: steps and times only grow, within the run.
    assert!(rows.windows(2).all(|w| w[0].step <= w[1].step), "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0].wall_time <= w[1].wall_time));
    let last_step = gantry_e2e::scalar_rows(&run)
        .iter()
        .map(|r| r.0)
        .max()
        .unwrap();
    assert!(rows.iter().all(|r| r.step <= last_step));
    assert!(
        rows.iter().all(|r| (1..=EPOCHS).contains(&r.epoch)),
        "{rows:?}"
    );
    // One sample every 0.2 s while training, and one when the run ends.
    let status = gantry::runfs::RunFolder::new(&run).read_status().unwrap();
    let lasted = status.ended.unwrap() - status.started.unwrap();
    let samples = values(&rows, "sys/cpu_percent").len();
    assert!(
        samples as f64 >= (lasted / 0.2).floor() - 3.0,
        "{samples} samples in {lasted:.2} s: {rows:?}"
    );

    // A runner that crashed after its checkpoint left a row at a later step: resuming
    // drops it and appends the resumed runner's samples.
    let stray = format!(
        "{:.3},{},{EPOCHS},sys/rss_mb,1.0\n",
        rows[0].wall_time,
        last_step + 5
    );
    let mut text = std::fs::read_to_string(run.join("system.csv")).unwrap();
    text.push_str(&stray);
    std::fs::write(run.join("system.csv"), text).unwrap();
    let before = rows.len();
    let (code, err) = run_gantry(&[
        "resume",
        run.to_str().unwrap(),
        "--epochs",
        &(EPOCHS + 2).to_string(),
        "--plugins",
        plugin_dir().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "resume failed: {err}");
    let rows = system_rows(&run);
    assert!(rows.len() > before, "the resumed runner appended nothing");
    assert!(
        !rows.iter().any(|r| r.step > last_step && r.epoch == EPOCHS),
        "the stray row survived"
    );
    assert!(rows.windows(2).all(|w| w[0].step <= w[1].step), "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.epoch > EPOCHS && r.step > last_step && r.tag == "sys/cpu_percent"),
        "{rows:?}"
    );
}
