//! `gantry demo`: the one command a new user runs. Makes synthetic data (cached under the
//! run root), trains the conv-ae plugin on CPU, and reports what it reached.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::data::synth::{self, SynthOptions, SynthTask};
use crate::runfs::status::State;
use crate::trainer::{self, TrainOptions};

/// The demo's data and schedule: sized to reach test AUROC >= 0.9 within two minutes on
/// two CPU cores with the reference architecture.
const SIZE: u32 = 32;
const TRAIN_IMAGES: usize = 640;
const SEED: u64 = 0;
const EPOCHS: u32 = 6;
const BATCH: u32 = 32;

pub fn run(runs: &Path, plugin_dirs: &[PathBuf], no_ui: bool) -> Result<ExitCode> {
    let started = Instant::now();
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
    let outcome = trainer::train(&TrainOptions {
        config,
        runs: runs.to_path_buf(),
        name: Some("demo-conv-ae".into()),
        device: Some("cpu".into()),
        plugin_dirs: plugin_dirs.to_vec(),
        stop: super::stop_on_signals()?,
        echo: true,
    })?;
    let s = &outcome.status;
    let metric = |tag: &str| {
        s.latest
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, v)| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into())
    };
    println!();
    println!("demo run   {}", outcome.folder.dir.display());
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
    if !no_ui {
        println!();
        println!("(the live dashboard is not built yet; `gantry runs ls` lists runs meanwhile)");
    }
    Ok(if s.state == State::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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
