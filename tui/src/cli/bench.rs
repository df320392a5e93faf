//! `gantry bench train`: training (and evaluation) throughput of a plugin alone, on random
//! data, after a warm-up; one line ending in `img/s`, so any twin (the PyTorch peer in
//! `tests/peers/`) can be timed beside it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, Result};
use gantry_plugin_api::host::{HostSink, Plugin};
use gantry_plugin_api::{Batch, ImageRef, Level, Setup};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plugins;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchTrain {
    /// Plugin name or path.
    #[arg(long, default_value = "conv-ae")]
    pub plugin: String,
    /// Image height and width.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Image channels (1 gray, 3 RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Worker threads of the plugin's thread pool (RAYON_NUM_THREADS); default: all.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Time evaluation (forward + per-image scores) instead of training.
    #[arg(long)]
    pub eval: bool,
    /// Plugin hyper-parameters (RON map).
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[arg(long = "plugins")]
    pub plugin_dirs: Vec<PathBuf>,
}

/// The process's peak resident memory (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Discards everything a plugin reports: only time matters here.
struct Discard;

impl HostSink for Discard {
    fn scalar(&mut self, _: &str, _: f64) {}
    fn scores(&mut self, _: &str, _: &[f32]) {}
    fn image(&mut self, _: &str, _: ImageRef<'_>) {}
    fn info(&mut self, _: &str, _: &str) {}
    fn log(&mut self, _: Level, _: &str) {}
}

pub fn run(b: &BenchTrain) -> Result<ExitCode> {
    // The thread count must be in the environment before the plugin's pool starts, and
    // changing our own environment is unsafe in a threaded process: re-run with it set.
    if let Some(t) = b.threads
        && std::env::var("RAYON_NUM_THREADS").ok() != Some(t.to_string())
    {
        let exe = std::env::current_exe().context("locating the gantry executable")?;
        let status = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("RAYON_NUM_THREADS", t.to_string())
            .status()
            .context("re-running with RAYON_NUM_THREADS")?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let dirs = plugins::search_path(&b.plugin_dirs);
    let path = plugins::resolve(&b.plugin, &dirs).map_err(anyhow::Error::msg)?;
    let plugin = Plugin::load(&path)?;
    let setup = Setup {
        channels: b.channels,
        height: b.size,
        width: b.size,
        num_classes: 1,
        seed: 0,
        learning_rate: None,
        total_steps: None,
    };
    let mut sink = Discard;
    let mut instance = plugin.create(&b.params, "cpu", &setup, &mut sink)?;
    // Random data, not zeros: the same work a real batch costs. A few batches rotate so
    // caches see realistic traffic.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let per = b.channels * b.size * b.size;
    let batches: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..b.batch * per).map(|_| rng.random::<f32>()).collect())
        .collect();
    let shape = [b.batch, b.channels, b.size, b.size];
    let mut step = |i: usize| -> Result<()> {
        let batch = Batch {
            images: &batches[i % batches.len()],
            shape,
            labels: &[],
            want_images: false,
        };
        if b.eval {
            instance.eval(&batch, &mut sink)?;
        } else {
            instance.train_step(&batch, &mut sink)?;
        }
        Ok(())
    };
    for i in 0..b.warmup {
        step(i)?;
    }
    let start = Instant::now();
    for i in 0..b.steps {
        step(i)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (b.steps * b.batch) as f64 / secs;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "gantry {} {} {}x{}x{} batch {} threads {threads}: peak RSS {:.0} MB, {:.1} ms/step, {rate:.1} img/s",
        plugin.info().name,
        if b.eval { "eval" } else { "train" },
        b.channels,
        b.size,
        b.size,
        b.batch,
        peak_rss_mb(),
        secs * 1e3 / b.steps as f64,
    );
    Ok(ExitCode::SUCCESS)
}
