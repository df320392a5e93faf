//! Deterministic run folders for tests and benchmarks: written through [`crate::runfs`]
//! exactly as the runner writes them, with fixed times and a host name that is not this
//! machine's (so no pid is checked), so snapshots are stable.

use std::path::Path;

use crate::runfs::scalars::{ScalarRow, ScalarWriter};
use crate::runfs::scores::{self, ScoreRow};
use crate::runfs::spec::{DataKind, DataSpec, PluginRecord, RunRecord, RunSpec, TrainSpec};
use crate::runfs::status::{Best, State, Status};
use crate::runfs::{RunFolder, RunFsError, samples};

/// The "current time" fixtures are written relative to.
pub const NOW: f64 = 1_800_000_000.0;
/// The host fixtures claim to run on.
pub const HOST: &str = "fixture-host";

/// What one fixture run looks like.
#[derive(Debug, Clone)]
pub struct FixtureRun {
    pub id: String,
    pub state: State,
    pub epochs: u32,
    /// Epochs completed (evaluations written).
    pub done: u32,
    pub steps_per_epoch: u64,
    /// Seconds before [`NOW`] the run was created.
    pub age: f64,
    /// Seconds before [`NOW`] of the last heartbeat.
    pub heartbeat_age: f64,
    pub error: Option<String>,
    /// The device status.ron names (`cpu` unless a test says otherwise).
    pub device: String,
    pub peak_gpu_memory_bytes: Option<u64>,
}

impl FixtureRun {
    pub fn new(id: &str, state: State, done: u32) -> FixtureRun {
        FixtureRun {
            id: id.into(),
            state,
            epochs: 6,
            done,
            steps_per_epoch: 10,
            age: 600.0,
            heartbeat_age: 1.0,
            error: None,
            device: "cpu".into(),
            peak_gpu_memory_bytes: None,
        }
    }
}

/// The standard fixture root: a finished, a running, a failed run, a run with a garbage
/// status file, and a run whose name carries an ANSI escape.
pub fn write_standard_root(root: &Path) -> Result<(), RunFsError> {
    let mut finished = FixtureRun::new("ae-finished", State::Finished, 6);
    finished.age = 7200.0;
    write_run(root, &finished)?;
    let mut running = FixtureRun::new("ae-running", State::Running, 3);
    running.age = 300.0;
    write_run(root, &running)?;
    let mut failed = FixtureRun::new("ae-failed", State::Failed, 1);
    failed.error = Some("plugin panicked: index out of bounds (at src/lib.rs:42)".into());
    failed.age = 3600.0;
    write_run(root, &failed)?;
    let mut evil = FixtureRun::new("evil\u{1b}[31mred", State::Finished, 1);
    evil.age = 86_400.0 * 2.0;
    write_run(root, &evil)?;
    let broken = root.join("broken");
    std::fs::create_dir_all(&broken).map_err(|e| RunFsError::io(&broken, e))?;
    std::fs::write(broken.join("status.ron"), "(state: runn")
        .map_err(|e| RunFsError::io(&broken, e))?;
    Ok(())
}

/// A deterministic pseudo-random value in [0, 1) from an index (no RNG state to share).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Writes one run folder.
pub fn write_run(root: &Path, run: &FixtureRun) -> Result<RunFolder, RunFsError> {
    let folder = RunFolder::create(root, &run.id)?;
    let created = NOW - run.age;
    folder.write_record(&RunRecord {
        id: run.id.clone(),
        spec: RunSpec {
            plugin: "conv-ae".into(),
            params: [("latent".to_string(), ron::Value::Number(32.into()))].into(),
            data: DataSpec {
                normal_class: Some("normal".into()),
                ..DataSpec::new(DataKind::ImageFolder, "/data/synth".into(), (32, 32))
            },
            train: TrainSpec {
                epochs: run.epochs,
                batch_size: 32,
                lr: Some(0.001),
                seed: 0,
                checkpoint_every: None,
                on_nan: Default::default(),
            },
            device: "auto".into(),
            launcher: Default::default(),
            python: None,
        },
        plugin: PluginRecord {
            path: "/plugins/libconv_ae.so".into(),
            name: "conv-ae".into(),
            version: "0.1.0".into(),
            family: "autoencoder".into(),
            abi: "1.0".into(),
        },
        git: Some("v0.1.0".into()),
        host: HOST.into(),
        created,
        gantry_version: "0.1.0".into(),
    })?;
    let mut scalars = ScalarWriter::open(&folder.scalars_file())?;
    let mut best: Option<Best> = None;
    let mut latest = Vec::new();
    let steps_done = if run.state == State::Running {
        run.done as u64 * run.steps_per_epoch + run.steps_per_epoch / 2
    } else {
        run.done as u64 * run.steps_per_epoch
    };
    for step in 1..=steps_done {
        let epoch = ((step - 1) / run.steps_per_epoch) as u32 + 1;
        let loss = 0.05 / (1.0 + step as f64 / 8.0) + 0.004 * noise(step);
        scalars.push(&ScalarRow {
            wall_time: created + step as f64,
            step,
            epoch,
            tag: "train/loss".into(),
            value: loss,
        })?;
        if step % run.steps_per_epoch == 0 {
            let val = 0.04 / (1.0 + step as f64 / 10.0) + 0.002 * noise(step + 1000);
            let auroc = 0.7 + 0.25 * (1.0 - (-(epoch as f64) / 2.0).exp());
            for (tag, value) in [
                ("val/loss", val),
                ("test/loss", val * 3.0),
                ("test/auroc", auroc),
            ] {
                scalars.push(&ScalarRow {
                    wall_time: created + step as f64 + 0.5,
                    step,
                    epoch,
                    tag: tag.into(),
                    value,
                })?;
            }
            if best.as_ref().is_none_or(|b| val < b.value) {
                best = Some(Best {
                    tag: "val/loss".into(),
                    value: val,
                    epoch,
                    step,
                });
            }
            latest = vec![
                ("val/loss".to_string(), val),
                ("test/auroc".to_string(), auroc),
            ];
            write_scores(&folder, epoch)?;
            write_sample(&folder, epoch)?;
        }
    }
    scalars.flush()?;
    write_system(&folder, run, created, steps_done)?;
    std::fs::write(
        folder.log_file(),
        format!(
            "2027-01-15T08:00:00Z  INFO gantry::trainer: run {} started\n2027-01-15T08:00:01Z  INFO plugin: device: cpu\n",
            run.id
        ),
    )
    .map_err(|e| RunFsError::io(&folder.log_file(), e))?;
    folder.write_status(&Status {
        state: run.state,
        pid: 4242,
        host: HOST.into(),
        started: Some(created),
        ended: run
            .state
            .is_final()
            .then_some(created + steps_done as f64 + 1.0),
        heartbeat: NOW - run.heartbeat_age,
        epoch: run.done,
        epochs: run.epochs,
        step: steps_done,
        total_steps: run.epochs as u64 * run.steps_per_epoch,
        images_per_sec: 321.5,
        device: Some(run.device.clone()),
        error: run.error.clone(),
        best,
        latest,
        skipped: 0,
        skipped_files: vec![],
        data_wait: 0.0,
        peak_gpu_memory_bytes: run.peak_gpu_memory_bytes,
        slurm_job: None,
    })?;
    Ok(folder)
}

/// Seconds between two rows of a fixture's system.csv.
pub const SYSTEM_EVERY: u64 = 2;

/// system.csv as the runner samples it (one step per second here, so a sample every
/// [`SYSTEM_EVERY`] steps): CPU, memory growing as the cache fills, data wait, and on a
/// `cuda` device GPU 0's utilisation, memory and temperature.
fn write_system(
    folder: &RunFolder,
    run: &FixtureRun,
    created: f64,
    steps_done: u64,
) -> Result<(), RunFsError> {
    let mut w = ScalarWriter::open(&folder.system_file())?;
    let gpu = run.device.starts_with("cuda");
    for step in (SYSTEM_EVERY..=steps_done).step_by(SYSTEM_EVERY as usize) {
        let epoch = ((step - 1) / run.steps_per_epoch) as u32 + 1;
        let t = step as f64;
        let n = |k: u64| noise(step * 31 + k);
        let mut values = vec![
            ("sys/cpu_percent", (180.0 + 40.0 * n(1)).round()),
            (
                "sys/rss_mb",
                (900.0 + 12.0 * t.min(30.0) + 5.0 * n(2)).round(),
            ),
            (
                "sys/data_wait",
                ((0.05 + 0.1 * n(3)) * 1000.0).round() / 1000.0,
            ),
        ];
        if gpu {
            values.extend([
                ("gpu0/util", (85.0 + 10.0 * n(4)).round()),
                ("gpu0/memory_mb", (6000.0 + 20.0 * t.min(20.0)).round()),
                (
                    "gpu0/temp_c",
                    (45.0 + 25.0 * (1.0 - (-t / 20.0).exp())).round(),
                ),
            ]);
        }
        for (tag, value) in values {
            w.push(&ScalarRow {
                wall_time: created + t + 0.25,
                step,
                epoch,
                tag: tag.into(),
                value,
            })?;
        }
    }
    w.flush()
}

/// Scores that separate better with each epoch: normal around 0.01, anomalous higher.
fn write_scores(folder: &RunFolder, epoch: u32) -> Result<(), RunFsError> {
    let mut rows = Vec::new();
    for i in 0..60u64 {
        let anomalous = i % 2 == 1;
        let base = if anomalous {
            0.01 + 0.004 * epoch as f64
        } else {
            0.01
        };
        rows.push(ScoreRow {
            sample: format!(
                "test/{}/{i:05}.png",
                if anomalous { "anomalous" } else { "normal" }
            ),
            label: if anomalous { "anomalous" } else { "normal" }.into(),
            split: "test".into(),
            score: base + 0.012 * noise(i * 7 + epoch as u64),
        });
    }
    scores::write(&folder.scores_file(epoch), &rows)
}

/// A 4-image gradient grid standing in for originals over reconstructions.
fn write_sample(folder: &RunFolder, epoch: u32) -> Result<(), RunFsError> {
    let (n, h, w) = (4usize, 8usize, 8usize);
    let data: Vec<f32> = (0..n * h * w)
        .map(|i| ((i % w) as f32 / w as f32 + (i / (h * w)) as f32 * 0.1).min(1.0))
        .collect();
    samples::write_grid(
        &folder.sample_file(epoch, "test-reconstruction"),
        &data,
        [n, 1, h, w],
        2,
    )
}
