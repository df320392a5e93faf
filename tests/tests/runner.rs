//! The runner end to end, through the real `gantry` binary and the real conv-ae plugin:
//! synthetic data in, a complete run folder out; stopping, killing and failing runs leave
//! readable state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gantry_e2e::{
    fixture, foreign_library, gantry, gantry_bin, gantry_with_env, plugin_dir, small_config,
};

fn synth_data() -> &'static Path {
    gantry_e2e::shared_synth(160, 16, 3)
}

struct Trained {
    _dir: tempfile::TempDir,
    run: PathBuf,
    runs: PathBuf,
    stderr: String,
}

/// One finished training run, shared by the assertions below.
fn trained() -> &'static Trained {
    static RUN: OnceLock<Trained> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg.ron");
        std::fs::write(&cfg, small_config(synth_data(), 4)).unwrap();
        let runs = dir.path().join("runs");
        let (code, _, stderr) = gantry(&[
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
            "--name",
            "small",
            "--plugins",
            plugin_dir().to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "train failed: {stderr}");
        Trained {
            run: runs.join("small"),
            runs,
            _dir: dir,
            stderr,
        }
    })
}

fn scalars(run: &Path) -> Vec<(u64, u32, String, f64)> {
    gantry_e2e::scalar_rows(run)
}

#[test]
fn train_writes_a_complete_run_folder() {
    let t = trained();
    for file in ["run.ron", "status.ron", "scalars.csv", "train.log"] {
        assert!(t.run.join(file).is_file(), "{file} missing");
    }
    let status = std::fs::read_to_string(t.run.join("status.ron")).unwrap();
    assert!(status.contains("state: finished"), "{status}");
    assert!(status.contains("device: Some(\"cpu\")"), "{status}");
    let record = std::fs::read_to_string(t.run.join("run.ron")).unwrap();
    assert!(record.contains("name: \"conv-ae\""), "{record}");
    for epoch in 1..=4 {
        let scores = t.run.join(format!("scores/epoch-{epoch:04}.csv"));
        let text = std::fs::read_to_string(&scores).unwrap();
        assert!(text.starts_with("sample,label,split,score\n"));
        assert!(text.contains(",anomalous,test,") && text.contains(",normal,val,"));
        for split in ["val", "test"] {
            let png = t.run.join(format!(
                "samples/epoch-{epoch:04}-{split}-reconstruction.png"
            ));
            let img = image_size(&png);
            // Originals over reconstructions: two rows of 16-pixel tiles.
            assert_eq!(img.1, 16 * 2 + 2, "{}", png.display());
        }
    }
    for which in ["last", "best"] {
        let dir = t.run.join("checkpoints").join(which);
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "checkpoint.ron",
        ] {
            assert!(dir.join(file).is_file(), "{which}/{file} missing");
        }
    }
    let log = std::fs::read_to_string(t.run.join("train.log")).unwrap();
    assert!(log.contains("epoch 4/4"), "{log}");
    assert!(t.stderr.contains("epoch 4/4"), "progress echoed to stderr");
}

/// Width and height from a PNG's IHDR chunk.
fn image_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn conv_ae_learns_and_separates_anomalies() {
    let rows = scalars(&trained().run);
    let train: Vec<f64> = rows
        .iter()
        .filter(|r| r.2 == "train/loss")
        .map(|r| r.3)
        .collect();
    // 160 train images in batches of 16: 10 steps per epoch, one row per step.
    assert_eq!(train.len(), 4 * 10);
    let first: f64 = train[..3].iter().sum::<f64>() / 3.0;
    let last: f64 = train[train.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        last < first * 0.8,
        "train loss did not fall: {first} -> {last}"
    );
    let auroc: Vec<f64> = rows
        .iter()
        .filter(|r| r.2 == "test/auroc")
        .map(|r| r.3)
        .collect();
    assert_eq!(auroc.len(), 4, "one AUROC per epoch");
    assert!(*auroc.last().unwrap() > 0.8, "AUROC {auroc:?}");
    // Steps are strictly increasing for train/loss: no duplicates, none missing.
    let steps: Vec<u64> = rows
        .iter()
        .filter(|r| r.2 == "train/loss")
        .map(|r| r.0)
        .collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
}

#[test]
fn runs_ls_reports_the_finished_run() {
    let t = trained();
    let (code, out, err) = gantry(&["runs", "ls", "--json", "--runs", t.runs.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let run = &runs[0];
    assert_eq!(run["id"], "small");
    assert_eq!(run["plugin"], "conv-ae");
    assert_eq!(run["state"], "finished");
    assert_eq!(run["epoch"], 4);
    assert_eq!(run["best"][0], "val/loss");
    let (code, out, _) = gantry(&["runs", "ls", "--runs", t.runs.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("small") && out.contains("finished"), "{out}");
}

/// (tag, step, value as f32): TensorBoard's charts hold f32.
type TagStepValue = (String, u64, f32);

/// The rows a run's event files hold (restarts applied), and those of its scalars.csv.
fn event_and_csv_rows(run: &Path) -> (Vec<TagStepValue>, Vec<TagStepValue>) {
    let events = gantry::interop::tfevents::read_run_scalars(run)
        .unwrap()
        .into_iter()
        .map(|p| (p.tag, p.step as u64, p.value as f32))
        .collect();
    let csv = scalars(run)
        .into_iter()
        .map(|(step, _, tag, value)| (tag, step, value as f32))
        .collect();
    (events, csv)
}

#[test]
fn train_writes_a_tensorboard_event_file_with_the_scalars_csv_holds() {
    let t = trained();
    let files = gantry::interop::tfevents::gantry_event_files(&t.run);
    assert_eq!(files.len(), 1, "{files:?}");
    let (events, csv) = event_and_csv_rows(&t.run);
    assert!(!csv.is_empty());
    assert_eq!(events, csv);
    // TensorBoard's own reader, when CI installed it (.ci/python-tools).
    let Some(python) = std::env::var_os("GANTRY_TB_PYTHON") else {
        eprintln!("TensorBoard's reader skipped: GANTRY_TB_PYTHON is not set");
        return;
    };
    let script =
        gantry_e2e::workspace_root().join("tui/tests/fixtures/tfevents/read_with_tensorboard.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&t.run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs: Vec<TagStepValue> = json
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(tag, points)| {
            points.as_array().unwrap().iter().map(move |p| {
                (
                    tag.clone(),
                    p[0].as_u64().unwrap(),
                    p[1].as_f64().unwrap() as f32,
                )
            })
        })
        .collect();
    let mut ours = csv;
    ours.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    theirs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(
        theirs, ours,
        "TensorBoard's EventAccumulator read otherwise"
    );
}

#[test]
fn no_tfevents_writes_no_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, small_config(synth_data(), 1)).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, stderr) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "quiet",
        "--no-tfevents",
        "-q",
        "--plugins",
        plugin_dir().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(runs.join("quiet/scalars.csv").is_file());
    assert!(gantry::interop::tfevents::event_files(&runs.join("quiet"), 100).is_empty());
}

fn spawn_train(cfg: &Path, runs: &Path, name: &str) -> Child {
    Command::new(gantry_bin())
        .args([
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
            "--name",
            name,
        ])
        .args(["--plugins", plugin_dir().to_str().unwrap(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run's status shows a completed step.
fn wait_for_progress(run: &Path) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(run.join("scalars.csv")).unwrap_or_default();
        if text.lines().count() > 2 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress in {}",
            run.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_runner_leaves_parseable_status_and_shows_as_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, small_config(synth_data(), 200)).unwrap();
    let runs = dir.path().join("runs");
    let mut child = spawn_train(&cfg, &runs, "killed");
    wait_for_progress(&runs.join("killed"));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let text = std::fs::read_to_string(runs.join("killed/status.ron")).unwrap();
    assert!(text.contains("state: running"), "{text}");
    let (code, out, err) = gantry(&["runs", "ls", "--json", "--runs", runs.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["state"], "crashed", "{out}");
    assert!(listed[0]["error"].is_null(), "status.ron parsed: {out}");
}

#[test]
fn sigterm_stops_after_the_step_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, small_config(synth_data(), 200)).unwrap();
    let runs = dir.path().join("runs");
    let child = spawn_train(&cfg, &runs, "stopped");
    wait_for_progress(&runs.join("stopped"));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(runs.join("stopped/status.ron")).unwrap();
    assert!(text.contains("state: stopped"), "{text}");
    assert!(
        runs.join("stopped/checkpoints/last/model.safetensors")
            .is_file()
    );
}

#[test]
fn bad_config_is_named_with_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    let text = small_config(synth_data(), 1).replace("seed: 1", "seed: 1, epoch: 2");
    std::fs::write(&cfg, text).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{}:5:", cfg.display())), "{err}");
    assert!(err.contains("epoch"), "{err}");
    assert!(!runs.exists(), "no run folder for a config error");
}

#[test]
fn diverging_plugin_fails_the_run_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    let text = small_config(synth_data(), 1)
        .replace(
            "\"conv-ae\"",
            &format!("{:?}", fixture("ok").display().to_string()),
        )
        .replace(
            "{\"channels\": [8, 16], \"latent\": 16}",
            "{\"mode\": \"nan\"}",
        );
    std::fs::write(&cfg, text).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "nan",
        "-q",
    ]);
    assert_eq!(code, 1, "{err}");
    let status = std::fs::read_to_string(runs.join("nan/status.ron")).unwrap();
    assert!(status.contains("state: failed"), "{status}");
    assert!(status.contains("non-finite loss"), "{status}");
    assert!(err.contains("non-finite loss"), "{err}");
}

#[test]
fn plugins_ls_lists_good_and_refused_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        plugin_dir().join("libconv_ae.so"),
        plugins.join("libconv_ae.so"),
    )
    .unwrap();
    let foreign = foreign_library(dir.path());
    std::fs::copy(&foreign, plugins.join("libforeign.so")).unwrap();
    let bytes = std::fs::read(plugins.join("libconv_ae.so")).unwrap();
    std::fs::write(plugins.join("libtruncated.so"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(plugins.join("libtext.so"), "not a library").unwrap();
    let (code, out, err) = gantry_with_env(
        &[
            "plugins",
            "ls",
            "--json",
            "--plugins",
            plugins.to_str().unwrap(),
        ],
        &[("GANTRY_PLUGIN_PATH", Path::new("")), ("HOME", dir.path())],
    );
    assert_eq!(code, 0, "{err}");
    let entries: serde_json::Value = serde_json::from_str(&out).unwrap();
    let find = |file: &str| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not listed: {out}"))
            .clone()
    };
    let good = find("libconv_ae.so");
    assert_eq!(good["status"], "ok");
    assert_eq!(good["name"], "conv-ae");
    assert_eq!(good["family"], "autoencoder");
    for (file, reason) in [
        ("libforeign.so", "no `gantry_plugin_entry_v1` symbol"),
        ("libtruncated.so", "truncated"),
        ("libtext.so", "not an ELF file"),
    ] {
        let e = find(file);
        assert_eq!(e["status"], "refused", "{file}");
        let why = e["reason"].as_str().unwrap();
        assert!(why.contains(reason), "{file}: {why}");
    }
}
