//! `gantry bench train`: training (and evaluation) throughput of a plugin alone, on random
//! data, after a warm-up; one line ending in `img/s`, so any twin (the PyTorch peer in
//! `tests/peers/`) can be timed beside it.
//!
//! `gantry bench decode`: images per second of reading a PNG and shaping it for a batch,
//! on a fixed set of generated files that `tests/peers/decode_pillow.py` times too.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, Result};
use gantry_plugin_api::host::{HostSink, Plugin};
use gantry_plugin_api::{Batch, ImageRef, Level, Setup};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::decode::{self, Shape};
use crate::data::transform::{self, Shaping};
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
    // A Python model: this process needs the bridge's environment from its start.
    let plugin = if plugins::python::is_script(&path) {
        plugins::python::reexec_with_env(&plugins::python::env_for(&path, None))?;
        plugins::python::load(&path, &dirs, false)?
    } else {
        Plugin::load(&path)?
    };
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
    let params = eval_params(&b.params, b.eval, &plugin.info().description.default_params)?;
    let mut instance = plugin.create(&params, "cpu", &setup, &mut sink)?;
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

/// What `gantry bench decode` measures.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchDecode {
    /// Folder of the images: `gray/*.png` and `rgb/*.png`. A kind whose folder is missing
    /// is generated there first (the same files for the same --n).
    #[arg(long, default_value = "target/decode-bench")]
    pub dir: PathBuf,
    /// Images of each kind to generate.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// Threads of the parallel rows (single-thread rows always run); default: every core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Least time spent on each row, in seconds (whole passes over the files).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
}

/// The two kinds of bench image: a gray scan and a BreakHis-sized RGB micrograph.
const KINDS: [BenchKind; 2] = [
    BenchKind {
        name: "gray",
        width: 256,
        height: 256,
        channels: 1,
    },
    BenchKind {
        name: "rgb",
        width: 700,
        height: 460,
        channels: 3,
    },
];

/// Output sides each kind is shaped to: a small model's and ImageNet's.
const SIDES: [u32; 2] = [64, 224];

#[derive(Debug, Clone, Copy)]
struct BenchKind {
    name: &'static str,
    width: u32,
    height: u32,
    channels: u32,
}

pub fn run_decode(b: &BenchDecode) -> Result<ExitCode> {
    let threads = b
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("starting the decode threads")?;
    let mut counts = vec![1];
    if threads > 1 {
        counts.push(threads);
    }
    println!(
        "{:<28} {:>7} {:>10} {:>9}",
        "case", "threads", "images/s", "mean"
    );
    for kind in KINDS {
        let files = bench_files(&b.dir, kind, b.n, &pool)?;
        for side in SIDES {
            let shaping = Shaping::stretch(Shape {
                channels: kind.channels,
                height: side,
                width: side,
            });
            let case = format!(
                "{}-{}x{}-to-{}x{side}x{side}",
                kind.name, kind.width, kind.height, kind.channels
            );
            for &t in &counts {
                let (rate, mean) = time_case(&files, &shaping, t, &pool, b.seconds)?;
                println!("{case:<28} {t:>7} {rate:>10.1} {mean:>9.6}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Images per second of read + shape over whole passes of `files` (after one warm-up
/// pass, so the files are in the page cache as the Python peer's are), and the mean
/// value of the shaped images, which the peer prints too: equal means mean the same work.
fn time_case(
    files: &[PathBuf],
    shaping: &Shaping,
    threads: usize,
    pool: &rayon::ThreadPool,
    seconds: f64,
) -> Result<(f64, f64)> {
    let shaped = |p: &PathBuf| -> Result<Vec<f32>> {
        Ok(transform::shape_image(&decode::read(p)?, shaping))
    };
    // The mean comes from the warm-up pass; timed passes do what a loader does, no more.
    let means = each_file(files, threads, pool, |p| {
        let values = shaped(p)?;
        Ok(values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64)
    })?;
    let (start, mut images) = (Instant::now(), 0);
    while images == 0 || start.elapsed().as_secs_f64() < seconds {
        each_file(files, threads, pool, |p| {
            shaped(p).map(std::hint::black_box)
        })?;
        images += files.len();
    }
    let rate = images as f64 / start.elapsed().as_secs_f64();
    Ok((rate, means.iter().sum::<f64>() / means.len() as f64))
}

/// `f` over every file, on this thread or on the pool's threads.
fn each_file<T: Send>(
    files: &[PathBuf],
    threads: usize,
    pool: &rayon::ThreadPool,
    f: impl Fn(&PathBuf) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if threads == 1 {
        files.iter().map(f).collect()
    } else {
        pool.install(|| files.par_iter().map(f).collect())
    }
}

/// The PNGs of one kind, sorted; generated first if their folder is missing.
fn bench_files(
    dir: &Path,
    kind: BenchKind,
    n: usize,
    pool: &rayon::ThreadPool,
) -> Result<Vec<PathBuf>> {
    let folder = dir.join(kind.name);
    if !folder.exists() {
        eprintln!("writing {n} {} PNGs into {}", kind.name, folder.display());
        // Into a side folder renamed at the end: an interrupted run leaves no half set.
        let partial = dir.join(format!("{}.partial", kind.name));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).with_context(|| partial.display().to_string())?;
        pool.install(|| {
            (0..n)
                .into_par_iter()
                .try_for_each(|i| write_bench_png(&partial, kind, i))
        })?;
        std::fs::rename(&partial, &folder).with_context(|| folder.display().to_string())?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .with_context(|| folder.display().to_string())?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{}: no PNG files", folder.display());
    Ok(files)
}

/// Image `i` of a kind, seeded by both, saved as libpng does by default (zlib level 6,
/// adaptive filters) so neither decoder meets a stream tuned for it.
fn write_bench_png(dir: &Path, kind: BenchKind, i: usize) -> Result<()> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let seed = (kind.channels as u64) << 32 | i as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (kind.width as usize, kind.height as usize);
    let pixels = natural_pixels(w, h, kind.channels as usize, &mut rng);
    let path = dir.join(format!("{i:05}.png"));
    let file = std::fs::File::create(&path).with_context(|| path.display().to_string())?;
    let encoder = PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Level(6),
        FilterType::Adaptive,
    );
    let color = if kind.channels == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::ImageEncoder::write_image(encoder, &pixels, kind.width, kind.height, color)
        .with_context(|| path.display().to_string())
}

/// Interleaved 8-bit pixels that compress like a scan or a micrograph, not like white
/// noise (which no decoder meets and which only measures inflate): smooth structure at
/// every scale plus a little grain. Color is a shared luminance field with slower chroma.
fn natural_pixels(w: usize, h: usize, channels: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let luma = smooth_field(w, h, 128.0, rng);
    let chroma: Vec<Vec<f32>> = (1..channels)
        .map(|_| smooth_field(w, h, 256.0, rng))
        .collect();
    let mut out = Vec::with_capacity(w * h * channels);
    for i in 0..w * h {
        for c in 0..channels {
            let tint = match c {
                0 if channels > 1 => 0.3 * chroma[0][i],
                1 => -0.15 * chroma[0][i] + 0.2 * chroma[1][i],
                2 => -0.3 * chroma[1][i],
                _ => 0.0,
            };
            let grain = (rng.random::<f32>() - 0.5) * (4.0 / 255.0);
            let v = 0.5 + 0.6 * (luma[i] + tint) + grain;
            out.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    out
}

/// Value noise summed over octaves from `coarsest` pixels a cell down to 3, each octave's
/// amplitude proportional to its cell size (the 1/f spectrum of natural images); about
/// [-1, 1].
fn smooth_field(w: usize, h: usize, coarsest: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; w * h];
    let mut cell = coarsest;
    while cell >= 3.0 {
        add_octave(&mut out, w, h, cell, cell / coarsest, rng);
        cell /= 2.0;
    }
    out
}

/// Adds random values on a grid of `cell`-pixel squares, smoothly interpolated.
fn add_octave(out: &mut [f32], w: usize, h: usize, cell: f32, amp: f32, rng: &mut ChaCha8Rng) {
    let gw = (w as f32 / cell) as usize + 2;
    let gh = (h as f32 / cell) as usize + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.random::<f32>() - 0.5).collect();
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    for y in 0..h {
        let fy = y as f32 / cell;
        let (gy, ty) = (fy as usize, smooth(fy.fract()));
        for x in 0..w {
            let fx = x as f32 / cell;
            let (gx, tx) = (fx as usize, smooth(fx.fract()));
            let at = |dx: usize, dy: usize| grid[(gy + dy) * gw + gx + dx];
            let top = at(0, 0) + (at(1, 0) - at(0, 0)) * tx;
            let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * tx;
            out[y * w + x] += amp * (top + (bottom - top) * ty);
        }
    }
}

/// The params an evaluation benchmark runs with: the user's, plus `quality_metrics: false`
/// when the plugin has that switch and the user did not set it, so `--eval` times the
/// forward pass and per-image scores (what it is compared against), not image metrics.
fn eval_params(user: &str, eval: bool, defaults: &str) -> Result<String> {
    const KEY: &str = "quality_metrics";
    if !eval || !defaults.contains(KEY) {
        return Ok(user.to_string());
    }
    let value: ron::Value =
        ron::from_str(user).map_err(|e| anyhow::anyhow!("--params {user:?}: {e}"))?;
    let ron::Value::Map(mut map) = value else {
        anyhow::bail!("--params must be a RON map, e.g. {{\"latent\": 32}}");
    };
    let key = ron::Value::String(KEY.into());
    if map.get(&key).is_none() {
        map.insert(key, ron::Value::Bool(false));
    }
    Ok(ron::to_string(&ron::Value::Map(map))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_bench_turns_quality_metrics_off_unless_asked() {
        let defaults = r#"{"latent": 64, "quality_metrics": true}"#;
        let off = eval_params("{}", true, defaults).unwrap();
        assert!(
            off.contains("quality_metrics") && off.contains("false"),
            "{off}"
        );
        let kept = eval_params(r#"{"quality_metrics": true}"#, true, defaults).unwrap();
        assert!(kept.contains("true"), "{kept}");
        assert_eq!(eval_params("{}", false, defaults).unwrap(), "{}");
        assert_eq!(eval_params("{}", true, r#"{"latent": 64}"#).unwrap(), "{}");
        assert!(eval_params("[1]", true, defaults).is_err());
    }
}
