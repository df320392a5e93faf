//! `gantry demo`: the one command a new user runs. Makes synthetic data (cached under the
//! run root), trains the conv-ae plugin on CPU, and shows it: in a terminal, the dashboard
//! opens on the run while it trains; otherwise (or with `--no-ui`) training runs in this
//! process and a summary is printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::data::synth::{self, SynthOptions, SynthTask};
use crate::runfs::status::{State, Status};
use crate::runfs::{RunFolder, time};
use crate::trainer::{self, TrainOptions};
use crate::ui::{self, WatchOptions};

/// The demo's data and schedule: sized to reach test AUROC >= 0.9 within two minutes on
/// two CPU cores with the reference architecture.
const SIZE: u32 = 32;
const TRAIN_IMAGES: usize = 640;
const SEED: u64 = 0;
const EPOCHS: u32 = 6;
const BATCH: u32 = 32;

pub fn run(runs: &Path, plugin_dirs: &[PathBuf], no_ui: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let config = prepare(runs)?;
    let name = format!("demo-{}", time::stamp(time::now()));
    let ui = !no_ui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let (folder, status) = if ui {
        train_under_dashboard(runs, plugin_dirs, &config, &name)?
    } else {
        let outcome = trainer::train(&TrainOptions {
            config,
            runs: runs.to_path_buf(),
            name: Some(name),
            device: Some("cpu".into()),
            plugin_dirs: plugin_dirs.to_vec(),
            stop: super::stop_on_signals()?,
            echo: true,
            ..Default::default()
        })?;
        (outcome.folder, outcome.status)
    };
    print_summary(&folder, &status, started);
    Ok(if status.state == State::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the synthetic data once (a marker file says it is complete) and the config.
fn prepare(runs: &Path) -> Result<PathBuf> {
    let data_root = runs.join(".data");
    let data = data_root.join(format!("synth-{SIZE}px-{TRAIN_IMAGES}-seed{SEED}"));
    let marker = data.join(".complete");
    if marker.exists() {
        eprintln!("demo: using cached synthetic data in {}", data.display());
    } else {
        eprintln!("demo: writing synthetic data to {}", data.display());
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("clearing incomplete {}", data.display()))?;
        }
        synth::write(
            &data,
            &SynthOptions {
                n: TRAIN_IMAGES,
                size: SIZE,
                seed: SEED,
                task: SynthTask::Anomaly,
            },
        )?;
        std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    }
    let data = data
        .canonicalize()
        .with_context(|| format!("resolving {}", data.display()))?;
    let config = data_root.join("demo.ron");
    std::fs::write(&config, config_text(&data))
        .with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

/// Starts the runner as a child process (its log goes to the run's train.log) and opens
/// the dashboard on its run. Quitting the dashboard stops an unfinished run cleanly.
fn train_under_dashboard(
    runs: &Path,
    plugin_dirs: &[PathBuf],
    config: &Path,
    name: &str,
) -> Result<(RunFolder, Status)> {
    let exe = std::env::current_exe().context("locating the gantry executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg(config)
        .arg("--runs")
        .arg(runs)
        .args(["--name", name, "--device", "cpu", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for dir in plugin_dirs {
        cmd.arg("--plugins").arg(dir);
    }
    // A bad config file is said before the run starts.
    let (config, _) = crate::config::load()?;
    let mut child = cmd.spawn().context("starting the runner")?;
    let shown = ui::run(WatchOptions {
        roots: vec![runs.to_path_buf()],
        poll: None,
        select: Some(name.to_string()),
        plugin_dirs: plugin_dirs.to_vec(),
        allow_insecure_plugins: false,
        mouse: config.mouse,
        keymap: ui::keymap::Keymap::from_config(&config.keys)
            .map_err(|(action, why)| anyhow::anyhow!("keys.{action}: {why}"))?,
        theme: config.theme.clone(),
        ..WatchOptions::default()
    });
    if child.try_wait()?.is_none() {
        eprintln!("demo: stopping the run (SIGTERM; it checkpoints and ends as stopped)");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let output = child.wait_with_output().context("waiting for the runner")?;
    shown?;
    let folder = RunFolder::new(runs.join(name));
    match folder.read_status() {
        Ok(status) => Ok((folder, status)),
        Err(e) => {
            // The runner failed before creating its run (a config or plugin error).
            let stderr = String::from_utf8_lossy(&output.stderr);
            anyhow::bail!("the demo run did not start: {}\n{e}", stderr.trim())
        }
    }
}

fn print_summary(folder: &RunFolder, s: &Status, started: Instant) {
    let metric = |tag: &str| {
        s.latest
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, v)| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into())
    };
    println!();
    println!("demo run   {}", folder.dir.display());
    println!("state      {}", s.state.as_str());
    println!("device     {}", s.device.as_deref().unwrap_or("?"));
    println!("epochs     {}/{}  ({} steps)", s.epoch, s.epochs, s.step);
    println!("val/loss   {}", metric("val/loss"));
    println!("test/auroc {}", metric("test/auroc"));
    println!("train      {:.1} img/s (last epoch)", s.images_per_sec);
    println!("wall time  {:.1} s", started.elapsed().as_secs_f64());
    if let Some(e) = &s.error {
        println!("error      {e}");
    }
}

fn config_text(data: &Path) -> String {
    format!(
        r#"// Written by `gantry demo`; `gantry train` accepts it as is.
(
    plugin: "conv-ae",
    params: {{}},
    data: (kind: ImageFolder, root: {root:?}, size: ({SIZE}, {SIZE}), channels: 1, normal_class: "normal"),
    train: (epochs: {EPOCHS}, batch_size: {BATCH}, lr: 0.001, seed: {SEED}),
    device: "cpu",
)
"#,
        root = data.display().to_string()
    )
}
