//! Procedural "tissue" dataset: the demo's and the tests' source of images.
//!
//! This module owns the deterministic generator of grayscale microscopy-like
//! images used to exercise the anomaly-detection autoencoder without shipping
//! any real data:
//!
//! - **normal** images are a smooth, low-variance mid-gray background (a few
//!   octaves of seeded value noise) sprinkled with 5-20 small, darker,
//!   soft-edged elliptical "nuclei";
//! - **anomalous** images are drawn from the same distribution and then get
//!   one to three large, high-contrast, irregular "lesions" (a disc whose
//!   radius is modulated by a few angular harmonics).
//!
//! Every image is a pure function of `(seed, split, class, index, size)`, so
//! images can be rendered independently, in parallel and in any order.
//! [`write`] lays them out as an ImageFolder tree of 8-bit PNGs.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which kind of dataset [`write`] lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthTask {
    /// Train/val hold only normal images; test holds normal and anomalous.
    Anomaly,
    /// Every split holds both classes in equal numbers.
    Classify,
}

/// Options for [`write`].
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of images in the train split (all normal for
    /// [`SynthTask::Anomaly`], split evenly between classes for
    /// [`SynthTask::Classify`]).
    pub n: usize,
    /// Width and height of every image, in pixels (8..=1024).
    pub size: u32,
    /// Master seed; the whole dataset is a pure function of it.
    pub seed: u64,
    /// Which layout to write.
    pub task: SynthTask,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            n: 600,
            size: 64,
            seed: 0,
            task: SynthTask::Anomaly,
        }
    }
}

/// What [`write`] produced: one `(split, class, count)` entry per folder, in
/// the order the folders are listed in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// `(split, class, number of images)` per written folder.
    pub counts: Vec<(String, String, usize)>,
}

/// Failures of [`write`].
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Creating a directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory being created.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encoding or writing a PNG failed.
    #[error("{path}: {source}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },
    /// An option is out of range; the message names the option.
    #[error("invalid option: {0}")]
    Invalid(String),
}

const MIN_SIZE: u32 = 8;
const MAX_SIZE: u32 = 1024;

// ---------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------

/// SplitMix64 finaliser: a cheap bijective mixer, so nearby inputs (index 0,
/// 1, 2...) still give unrelated RNG seeds.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the split name: stable across platforms and Rust versions,
/// unlike `std::hash`.
fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// One RNG per image, derived from everything that identifies the image.
fn image_rng(seed: u64, split: &str, anomalous: bool, index: usize) -> ChaCha8Rng {
    let mut h = mix64(seed);
    h = mix64(h ^ hash_str(split));
    h = mix64(h ^ u64::from(anomalous));
    h = mix64(h ^ index as u64);
    ChaCha8Rng::seed_from_u64(h)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// A square single-channel canvas; coordinates passed to the drawing helpers
/// are normalised to `[0, 1]` so the look does not depend on `size`.
struct Canvas {
    size: usize,
    px: Vec<f32>,
}

impl Canvas {
    fn new(size: u32) -> Self {
        let size = size as usize;
        Self {
            size,
            px: vec![0.0; size * size],
        }
    }

    /// Pixel-index range covering normalised `[c - r, c + r]`, clipped.
    fn span(&self, c: f32, r: f32) -> std::ops::Range<usize> {
        let s = self.size as f32;
        let lo = ((c - r) * s - 1.0).floor().max(0.0) as usize;
        let hi = ((c + r) * s + 1.0).ceil().clamp(0.0, s) as usize;
        lo.min(hi)..hi
    }

    /// Normalised coordinate of a pixel centre.
    fn coord(&self, i: usize) -> f32 {
        (i as f32 + 0.5) / self.size as f32
    }

    /// Adds `f(x, y)` to every pixel in the box around `(cx, cy)` with
    /// half-extent `r`; shapes only touch their bounding box, which keeps
    /// rendering cheap.
    fn add_in_box(&mut self, cx: f32, cy: f32, r: f32, f: impl Fn(f32, f32) -> f32) {
        for py in self.span(cy, r) {
            let y = self.coord(py);
            for px in self.span(cx, r) {
                let x = self.coord(px);
                self.px[py * self.size + px] += f(x, y);
            }
        }
    }
}

/// Cubic smoothstep: soft, C1-continuous edges avoid aliasing and look like
/// out-of-focus tissue boundaries.
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// One octave of value noise: random values on a `cells`-wide lattice,
/// smoothly interpolated.
struct ValueNoise {
    cells: usize,
    lattice: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut ChaCha8Rng, cells: usize) -> Self {
        let n = (cells + 1) * (cells + 1);
        let lattice = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Self { cells, lattice }
    }

    /// Noise in `[-1, 1]` at normalised `(x, y)`.
    fn at(&self, x: f32, y: f32) -> f32 {
        let gx = (x * self.cells as f32).clamp(0.0, self.cells as f32 - 1e-4);
        let gy = (y * self.cells as f32).clamp(0.0, self.cells as f32 - 1e-4);
        let (ix, iy) = (gx as usize, gy as usize);
        let (tx, ty) = (
            smoothstep(0.0, 1.0, gx.fract()),
            smoothstep(0.0, 1.0, gy.fract()),
        );
        let w = self.cells + 1;
        let v = |dx: usize, dy: usize| self.lattice[(iy + dy) * w + ix + dx];
        let top = v(0, 0) + (v(1, 0) - v(0, 0)) * tx;
        let bottom = v(0, 1) + (v(1, 1) - v(0, 1)) * tx;
        top + (bottom - top) * ty
    }
}

/// Mid-gray background with gentle, low-frequency variation. The amplitudes
/// are deliberately small so an autoencoder learns the texture quickly and
/// normal reconstruction error stays low.
fn paint_background(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let brightness = rng.random_range(0.48..0.62);
    let octaves = [(3, 0.06), (6, 0.03), (12, 0.012)];
    let layers: Vec<(ValueNoise, f32)> = octaves
        .iter()
        .map(|&(cells, amp)| (ValueNoise::new(rng, cells), amp))
        .collect();
    for py in 0..canvas.size {
        let y = canvas.coord(py);
        for px in 0..canvas.size {
            let x = canvas.coord(px);
            let texture: f32 = layers.iter().map(|(n, amp)| n.at(x, y) * amp).sum();
            canvas.px[py * canvas.size + px] = brightness + texture;
        }
    }
}

/// 5-20 small dark elliptical nuclei with soft rims, anywhere in the image.
fn paint_cells(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(5..=20);
    for _ in 0..count {
        let (cx, cy) = (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0));
        let a = rng.random_range(0.026..0.05_f32);
        let b = a * rng.random_range(0.55..1.0);
        let theta = rng.random_range(0.0..TAU);
        let darkness = rng.random_range(0.12..0.24);
        let (sin, cos) = theta.sin_cos();
        canvas.add_in_box(cx, cy, a, |x, y| {
            let (dx, dy) = (x - cx, y - cy);
            let u = (dx * cos + dy * sin) / a;
            let v = (-dx * sin + dy * cos) / b;
            let r = (u * u + v * v).sqrt();
            -darkness * (1.0 - smoothstep(0.6, 1.0, r))
        });
    }
}

/// An irregular blob: a disc whose radius is modulated by a few harmonics of
/// the polar angle, so lesions are lumpy rather than round like cells.
struct Lesion {
    cx: f32,
    cy: f32,
    radius: f32,
    harmonics: Vec<(f32, f32, f32)>, // (order, amplitude, phase)
    shift: f32,
}

impl Lesion {
    fn sample(rng: &mut ChaCha8Rng) -> Self {
        // Diameter 15-35% of the image width, as the brief for the dataset asks.
        let radius = rng.random_range(0.075..0.175);
        let harmonics = (0..3)
            .map(|_| {
                let order = rng.random_range(2..=5) as f32;
                (
                    order,
                    rng.random_range(0.04..0.12),
                    rng.random_range(0.0..TAU),
                )
            })
            .collect();
        // Both polarities, so a detector cannot just look for dark spots.
        let magnitude = rng.random_range(0.35..0.6);
        let shift = if rng.random_bool(0.5) {
            magnitude
        } else {
            -magnitude
        };
        Self {
            cx: rng.random_range(0.2..0.8),
            cy: rng.random_range(0.2..0.8),
            radius,
            harmonics,
            shift,
        }
    }

    /// Outer bound of the modulated radius, for the drawing box.
    fn extent(&self) -> f32 {
        let bump: f32 = self.harmonics.iter().map(|h| h.1).sum();
        self.radius * (1.0 + bump) * 1.2
    }

    /// Intensity added at normalised `(x, y)`.
    fn at(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let angle = dy.atan2(dx);
        let wobble: f32 = self
            .harmonics
            .iter()
            .map(|&(k, amp, phase)| amp * (k * angle + phase).cos())
            .sum();
        let edge = self.radius * (1.0 + wobble);
        let dist = (dx * dx + dy * dy).sqrt();
        let soft = 0.22 * self.radius;
        self.shift * (1.0 - smoothstep(edge - soft, edge + soft, dist))
    }
}

/// One to three lesions, added on top of the normal content.
fn paint_lesions(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(1..=3);
    for _ in 0..count {
        let lesion = Lesion::sample(rng);
        canvas.add_in_box(lesion.cx, lesion.cy, lesion.extent(), |x, y| {
            lesion.at(x, y)
        });
    }
}

/// Renders one image as row-major f32 values in [0,1], size*size.
///
/// The result depends only on the arguments: the same call always returns the
/// same pixels, on any thread and in any order. `anomalous` images share the
/// normal distribution and add one to three large lesions.
pub fn render(seed: u64, split: &str, anomalous: bool, index: usize, size: u32) -> Vec<f32> {
    let mut rng = image_rng(seed, split, anomalous, index);
    let mut canvas = Canvas::new(size);
    paint_background(&mut canvas, &mut rng);
    paint_cells(&mut canvas, &mut rng);
    if anomalous {
        paint_lesions(&mut canvas, &mut rng);
    }
    for v in &mut canvas.px {
        *v = v.clamp(0.0, 1.0);
    }
    canvas.px
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// One output folder: `split/class` holding `count` images.
struct Folder {
    split: &'static str,
    class: &'static str,
    count: usize,
}

impl Folder {
    fn anomalous(&self) -> bool {
        self.class == "anomalous"
    }
}

fn validate(opts: &SynthOptions) -> Result<(), SynthError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&opts.size) {
        return Err(SynthError::Invalid(format!(
            "size must be between {MIN_SIZE} and {MAX_SIZE}, got {}",
            opts.size
        )));
    }
    if opts.n == 0 {
        return Err(SynthError::Invalid("n must be at least 1, got 0".into()));
    }
    Ok(())
}

/// The folders each task writes, with their image counts.
fn layout(opts: &SynthOptions) -> Vec<Folder> {
    let folder = |split, class, count: usize| Folder {
        split,
        class,
        count: count.max(1),
    };
    match opts.task {
        SynthTask::Anomaly => {
            let held_out = opts.n / 5;
            vec![
                folder("train", "normal", opts.n),
                folder("val", "normal", held_out),
                folder("test", "normal", held_out),
                folder("test", "anomalous", held_out),
            ]
        }
        SynthTask::Classify => {
            let (train, held_out) = (opts.n / 2, opts.n / 10);
            ["train", "val", "test"]
                .into_iter()
                .flat_map(|split| {
                    let count = if split == "train" { train } else { held_out };
                    [
                        folder(split, "normal", count),
                        folder(split, "anomalous", count),
                    ]
                })
                .collect()
        }
    }
}

/// One image to render and save.
struct Job {
    split: &'static str,
    anomalous: bool,
    index: usize,
    path: PathBuf,
}

fn create_dir(path: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(path).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates the folders and lists every image to write.
fn plan_jobs(out: &Path, folders: &[Folder]) -> Result<Vec<Job>, SynthError> {
    let mut jobs = Vec::new();
    for f in folders {
        let dir = out.join(f.split).join(f.class);
        create_dir(&dir)?;
        jobs.extend((0..f.count).map(|index| Job {
            split: f.split,
            anomalous: f.anomalous(),
            index,
            path: dir.join(format!("{index:05}.png")),
        }));
    }
    Ok(jobs)
}

fn to_u8(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

fn save_job(job: &Job, seed: u64, size: u32) -> Result<(), SynthError> {
    let pixels = to_u8(&render(seed, job.split, job.anomalous, job.index, size));
    let encode_err = |source| SynthError::Encode {
        path: job.path.clone(),
        source,
    };
    image::save_buffer_with_format(
        &job.path,
        &pixels,
        size,
        size,
        image::ExtendedColorType::L8,
        image::ImageFormat::Png,
    )
    .map_err(encode_err)
}

/// Renders and saves `jobs` on all available cores. Images are independent,
/// so a plain chunked split is enough; the first error wins.
fn run_jobs(jobs: &[Job], seed: u64, size: u32) -> Result<(), SynthError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().try_for_each(|j| save_job(j, seed, size))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<()>, SynthError>>()
    })?;
    Ok(())
}

/// Writes an ImageFolder tree of 8-bit grayscale PNGs named NNNNN.png.
///
/// Layout for [`SynthTask::Anomaly`]: `train/normal` (`n`), `val/normal`,
/// `test/normal` and `test/anomalous` (`max(n/5, 1)` each). For
/// [`SynthTask::Classify`]: `normal` and `anomalous` in every split, with
/// `max(n/2, 1)` per class in train and `max(n/10, 1)` per class in val and
/// test. Existing files with the same names are overwritten.
pub fn write(out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    validate(opts)?;
    let folders = layout(opts);
    let jobs = plan_jobs(out, &folders)?;
    run_jobs(&jobs, opts.seed, opts.size)?;
    let counts = folders
        .iter()
        .map(|f| (f.split.to_string(), f.class.to_string(), f.count))
        .collect();
    Ok(SynthSummary { counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_pngs(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count()
    }

    fn median(values: &[f32]) -> f32 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// Fraction of pixels far from the image median: lesions move a large
    /// area by >= 0.35, while cells are small and only moderately dark.
    fn outlier_fraction(img: &[f32]) -> f32 {
        let m = median(img);
        img.iter().filter(|v| (*v - m).abs() > 0.25).count() as f32 / img.len() as f32
    }

    /// Mean absolute deviation from a heavily box-blurred copy: large blobs
    /// survive less blurring than the smooth background does.
    fn blur_residual(img: &[f32], size: usize) -> f32 {
        let r = size as isize / 6;
        let mut total = 0.0;
        for y in 0..size as isize {
            for x in 0..size as isize {
                let (mut sum, mut n) = (0.0, 0.0);
                for yy in (y - r).max(0)..(y + r + 1).min(size as isize) {
                    for xx in (x - r).max(0)..(x + r + 1).min(size as isize) {
                        sum += img[yy as usize * size + xx as usize];
                        n += 1.0;
                    }
                }
                total += (img[y as usize * size + x as usize] - sum / n).abs();
            }
        }
        total / (size * size) as f32
    }

    fn mean_over(anomalous: bool, f: impl Fn(&[f32]) -> f32) -> f32 {
        (0..50)
            .map(|i| f(&render(7, "test", anomalous, i, 64)))
            .sum::<f32>()
            / 50.0
    }

    #[test]
    fn render_is_deterministic_per_identity() {
        let a = render(42, "train", false, 3, 64);
        assert_eq!(a, render(42, "train", false, 3, 64));
        assert_ne!(a, render(43, "train", false, 3, 64), "seed must matter");
        assert_ne!(a, render(42, "val", false, 3, 64), "split must matter");
        assert_ne!(a, render(42, "train", false, 4, 64), "index must matter");
        assert_ne!(a, render(42, "train", true, 3, 64), "class must matter");
    }

    #[test]
    fn render_has_right_length_and_range() {
        for size in [8, 31, 64] {
            for anomalous in [false, true] {
                let img = render(1, "train", anomalous, 0, size);
                assert_eq!(img.len(), (size * size) as usize);
                assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }

    #[test]
    fn normal_images_vary_in_brightness_but_stay_mid_gray() {
        let means: Vec<f32> = (0..20)
            .map(|i| {
                let img = render(5, "train", false, i, 64);
                img.iter().sum::<f32>() / img.len() as f32
            })
            .collect();
        let (lo, hi) = means
            .iter()
            .fold((1.0f32, 0.0f32), |(l, h), &m| (l.min(m), h.max(m)));
        assert!(lo > 0.3 && hi < 0.75, "means out of mid-gray: {lo}..{hi}");
        assert!(
            hi - lo > 0.03,
            "brightness should vary per image: {lo}..{hi}"
        );
    }

    #[test]
    fn anomalous_images_have_many_more_outlier_pixels() {
        let normal = mean_over(false, outlier_fraction);
        let anomalous = mean_over(true, outlier_fraction);
        assert!(normal < 0.01, "normal outlier fraction {normal}");
        assert!(
            anomalous > 0.04 && anomalous > 8.0 * normal,
            "{anomalous} vs {normal}"
        );
    }

    #[test]
    fn anomalous_images_deviate_more_from_their_blur() {
        let normal = mean_over(false, |img| blur_residual(img, 64));
        let anomalous = mean_over(true, |img| blur_residual(img, 64));
        assert!(anomalous > 2.0 * normal, "{anomalous} vs {normal}");
    }

    #[test]
    fn write_anomaly_layout() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            n: 12,
            size: 16,
            ..SynthOptions::default()
        };
        let summary = write(dir.path(), &opts).unwrap();
        let expected = [
            ("train", "normal", 12),
            ("val", "normal", 2),
            ("test", "normal", 2),
            ("test", "anomalous", 2),
        ];
        let want: Vec<_> = expected
            .iter()
            .map(|&(s, c, n)| (s.into(), c.into(), n))
            .collect();
        assert_eq!(summary.counts, want);
        for (split, class, n) in expected {
            assert_eq!(
                count_pngs(&dir.path().join(split).join(class)),
                n,
                "{split}/{class}"
            );
        }
        assert!(!dir.path().join("train/anomalous").exists());
        assert!(!dir.path().join("val/anomalous").exists());
    }

    #[test]
    fn write_classify_layout_with_minimum_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            n: 4,
            size: 8,
            seed: 9,
            task: SynthTask::Classify,
        };
        let summary = write(dir.path(), &opts).unwrap();
        assert_eq!(summary.counts.len(), 6);
        for (split, want) in [("train", 2), ("val", 1), ("test", 1)] {
            for class in ["normal", "anomalous"] {
                assert_eq!(count_pngs(&dir.path().join(split).join(class)), want);
                assert!(summary.counts.contains(&(split.into(), class.into(), want)));
            }
        }
    }

    #[test]
    fn written_png_matches_render() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            n: 5,
            size: 24,
            seed: 3,
            task: SynthTask::Anomaly,
        };
        write(dir.path(), &opts).unwrap();
        let png = image::open(dir.path().join("test/anomalous/00000.png")).unwrap();
        let gray = png.as_luma8().expect("8-bit grayscale");
        assert_eq!(gray.dimensions(), (24, 24));
        assert_eq!(gray.as_raw(), &to_u8(&render(3, "test", true, 0, 24)));
    }

    #[test]
    fn invalid_options_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (opts, name) in [
            (
                SynthOptions {
                    size: 7,
                    ..SynthOptions::default()
                },
                "size",
            ),
            (
                SynthOptions {
                    size: 1025,
                    ..SynthOptions::default()
                },
                "size",
            ),
            (
                SynthOptions {
                    n: 0,
                    ..SynthOptions::default()
                },
                "n ",
            ),
        ] {
            let err = write(dir.path(), &opts).unwrap_err();
            assert!(matches!(err, SynthError::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(name), "{err} should name {name}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn write_default_options() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &SynthOptions::default()).unwrap();
        assert_eq!(count_pngs(&dir.path().join("train/normal")), 600);
    }
}
