//! The runner (`gantry train CONFIG.ron`): loads one plugin, trains it on a dataset,
//! evaluates every epoch and writes one run folder through [`crate::runfs`].
//!
//! It owns the training loop and nothing else: data comes from [`crate::data`], plugins
//! from [`crate::plugins`], metrics from [`crate::metrics`]. A plugin failure (error,
//! panic, NaN) ends the run in state `failed` with the reason in `status.ron`; SIGTERM
//! ends it in `stopped` after the current step and a checkpoint.

mod checkpoints;
mod logging;
mod sink;
mod status_board;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use gantry_plugin_api::host::{Plugin, PluginInstance};
use gantry_plugin_api::{Batch, Setup};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::pipeline::Pipeline;
use crate::data::prefetch::{OwnedBatch, Prefetcher};
use crate::data::spill::Spill;
use crate::data::{Dataset, source};
use crate::metrics::classification::{ClassificationReport, classification_report};
use crate::metrics::pca;
use crate::metrics::ranking::{AnomalyReport, anomaly_report};
use crate::plugins;
use crate::runfs::scalars::{ScalarRow, ScalarWriter};
use crate::runfs::scores::{self, ScoreRow};
use crate::runfs::spec::{PluginRecord, RunRecord, RunSpec};
use crate::runfs::status::{Best, SKIPPED_LISTED, State, Status, hostname};
use crate::runfs::{CheckpointInfo, RunFolder, embedding, samples, time};
use sink::RunSink;
use status_board::StatusBoard;

/// Shaped images kept in memory per split, at most; the rest go to a cache file.
const CACHE_BYTES: usize = 1 << 30;

/// How `gantry train` was asked to run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub config: PathBuf,
    pub runs: PathBuf,
    /// Run folder name; generated from the time and plugin when absent.
    pub name: Option<String>,
    /// Overrides the config's `device`.
    pub device: Option<String>,
    pub plugin_dirs: Vec<PathBuf>,
    /// Set (by a signal handler) to stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Also print the log to stderr.
    pub echo: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub folder: RunFolder,
    pub status: Status,
}

/// Everything checked before a run folder is created: a config, plugin or dataset error
/// fails here, with nothing written.
struct Prepared {
    spec: RunSpec,
    plugin: Plugin,
    dataset: Dataset,
    device: String,
    /// What `data.synthetic` added, for the run's log.
    synthetic_note: Option<String>,
}

fn prepare(opts: &TrainOptions) -> Result<Prepared> {
    let spec = RunSpec::load(&opts.config)?;
    let dirs = plugins::search_path(&opts.plugin_dirs);
    let plugin_path = plugins::resolve(&spec.plugin, &dirs).map_err(anyhow::Error::msg)?;
    let plugin = Plugin::load(&plugin_path)?;
    let input = &plugin.info().description.input;
    let (h, w) = spec.data.size;
    if !input.channels.contains(&spec.data.channels) {
        bail!(
            "{}: data.channels is {}, but plugin {} accepts {:?}",
            opts.config.display(),
            spec.data.channels,
            plugin.info().name,
            input.channels
        );
    }
    let m = input.multiple_of.max(1);
    if h % m != 0 || w % m != 0 || h < input.min_size || w < input.min_size {
        bail!(
            "{}: data.size ({h}, {w}) does not suit plugin {}: height and width must be \
             multiples of {m} and at least {}",
            opts.config.display(),
            plugin.info().name,
            input.min_size
        );
    }
    let mut dataset = open_dataset(&opts.config, &spec)?;
    let mut synthetic_note = None;
    if let Some(synth) = &spec.data.synthetic {
        let run = resolve_relative(&opts.config, &synth.run);
        let added = synthetic::augment(&mut dataset, synth, &run, &dirs)?;
        synthetic_note = Some(format!(
            "data.synthetic: {added} generated images from {} added to train",
            run.display()
        ));
    }
    let device = opts.device.clone().unwrap_or_else(|| spec.device.clone());
    Ok(Prepared {
        spec,
        plugin,
        dataset,
        device,
        synthetic_note,
    })
}

/// Opens the dataset of `spec`, with relative paths taken relative to the config file.
pub fn open_dataset(config: &Path, spec: &RunSpec) -> Result<Dataset> {
    let mut data = spec.data.clone();
    data.root = resolve_relative(config, &data.root);
    data.csv = data.csv.map(|csv| resolve_relative(config, &csv));
    Ok(source::open(&data, spec.train.seed)?)
}

/// A relative dataset root is taken relative to the config file's folder, so a config
/// and its data can move together.
fn resolve_relative(config: &Path, root: &Path) -> PathBuf {
    if root.is_absolute() || root.exists() {
        return root.to_path_buf();
    }
    config
        .parent()
        .map(|dir| dir.join(root))
        .filter(|p| p.exists())
        .unwrap_or_else(|| root.to_path_buf())
}

/// Runs `gantry train`. Errors before the run folder exists are returned; errors during
/// training end the run in state `failed` and come back in the outcome's status.
pub fn train(opts: &TrainOptions) -> Result<TrainOutcome> {
    let prepared = prepare(opts)?;
    let folder = create_folder(opts, &prepared)?;
    let _log = logging::to_run_log(&folder.log_file(), opts.echo)?;
    let steps_per_epoch = prepared
        .dataset
        .train
        .len()
        .div_ceil(prepared.spec.train.batch_size as usize) as u64;
    let board = StatusBoard::start(
        folder.clone(),
        Status {
            state: State::Running,
            pid: std::process::id(),
            host: hostname(),
            started: Some(time::now()),
            ended: None,
            heartbeat: time::now(),
            epoch: 0,
            epochs: prepared.spec.train.epochs,
            step: 0,
            total_steps: steps_per_epoch * prepared.spec.train.epochs as u64,
            images_per_sec: 0.0,
            device: None,
            error: None,
            best: None,
            latest: vec![],
            skipped: 0,
            skipped_files: vec![],
            data_wait: 0.0,
        },
    );
    tracing::info!(
        "run {} started: plugin {} ({}), {} train / {} val / {} test images, classes {:?}",
        folder.id(),
        prepared.plugin.info().name,
        prepared.plugin.path().display(),
        prepared.dataset.train.len(),
        prepared.dataset.val.len(),
        prepared.dataset.test.len(),
        prepared.dataset.classes
    );
    if let Some(note) = &prepared.synthetic_note {
        tracing::info!("{note}");
    }
    let mut run = Run::new(&prepared, &folder, &board, opts)?;
    let result = run.all_epochs();
    let final_state = match &result {
        Ok(true) => State::Stopped,
        Ok(false) => State::Finished,
        Err(_) => State::Failed,
    };
    if let Err(e) = &result {
        tracing::error!("run failed: {e:#}");
    } else {
        tracing::info!("run {}", final_state.as_str());
    }
    board.publish(|s| {
        s.state = final_state;
        s.ended = Some(time::now());
        s.error = result.as_ref().err().map(|e| format!("{e:#}"));
    });
    Ok(TrainOutcome {
        status: board.snapshot(),
        folder,
    })
}

fn create_folder(opts: &TrainOptions, p: &Prepared) -> Result<RunFolder> {
    let base = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", time::stamp(time::now()), p.plugin.info().name));
    // A taken name gets a numeric suffix rather than mixing two runs in one folder.
    let mut id = base.clone();
    let mut n = 1;
    while opts.runs.join(&id).exists() {
        n += 1;
        id = format!("{base}-{n}");
    }
    let folder = RunFolder::create(&opts.runs, &id)?;
    let info = p.plugin.info();
    folder.write_record(&RunRecord {
        id: id.clone(),
        spec: p.spec.clone(),
        plugin: PluginRecord {
            path: info.path.clone(),
            name: info.name.clone(),
            version: info.version.clone(),
            family: info.family.clone(),
            abi: format!("{}.{}", info.abi_major, info.abi_minor),
        },
        git: git_describe(),
        host: hostname(),
        created: time::now(),
        gantry_version: env!("CARGO_PKG_VERSION").into(),
    })?;
    Ok(folder)
}

fn git_describe() -> Option<String> {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One run in progress.
struct Run<'a> {
    p: &'a Prepared,
    folder: &'a RunFolder,
    board: &'a StatusBoard,
    stop: Arc<AtomicBool>,
    instance: PluginInstance,
    sink: RunSink,
    scalars: ScalarWriter,
    loaders: [Prefetcher; 3],
    step: u64,
    best_val: Option<f64>,
    primary_score: Option<String>,
    /// Names of images already reported as skipped.
    skipped: std::collections::HashSet<String>,
}

/// Which split a pass evaluates.
#[derive(Clone, Copy)]
enum Split {
    Val = 1,
    Test = 2,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// What one evaluation pass produced.
struct EvalResult {
    /// Batch-size-weighted means of the emitted scalars.
    means: Vec<(String, f64)>,
    /// Primary score per sample, with the sample's index.
    scores: Vec<(usize, f64)>,
    /// Class probabilities per sample (scores `p/0` .. `p/{K-1}`), with the sample's index,
    /// when the plugin emits one per class.
    class_probs: Vec<(usize, Vec<f64>)>,
    /// The per-sample `latent` vectors (ABI 1.1 `emit_vectors`), with the sample's index.
    latents: Vec<(usize, Vec<f32>)>,
}

impl<'a> Run<'a> {
    fn new(
        p: &'a Prepared,
        folder: &'a RunFolder,
        board: &'a StatusBoard,
        opts: &TrainOptions,
    ) -> Result<Run<'a>> {
        let (h, w) = p.spec.data.size;
        let pipeline = Arc::new(Pipeline::new(
            &p.spec.data,
            p.dataset.loader.clone(),
            p.spec.train.seed,
        ));
        let shape = pipeline.shape();
        // Shaped images past the memory budget go to a file in the run root's cache folder.
        let cache_dir = opts.runs.join(".cache");
        let per_image = shape.len();
        let spill = |split: &str, n: usize| {
            let name = format!("{}-{split}.f32", folder.id());
            match Spill::create(&cache_dir, &name, n, per_image) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("no disk cache for {split} (decoding every epoch): {e}");
                    None
                }
            }
        };
        let splits = [
            ("train", &p.dataset.train),
            ("val", &p.dataset.val),
            ("test", &p.dataset.test),
        ];
        let loaders = splits.map(|(name, samples)| {
            // Only a split that can outgrow the budget needs a spill file.
            let spill = (samples.len() * per_image * 4 > CACHE_BYTES)
                .then(|| spill(name, samples.len()))
                .flatten();
            Prefetcher::new(
                Arc::new(samples.clone()),
                pipeline.clone(),
                CACHE_BYTES,
                spill,
            )
        });
        let steps_per_epoch = p
            .dataset
            .train
            .len()
            .div_ceil(p.spec.train.batch_size as usize);
        let setup = Setup {
            channels: shape.channels as usize,
            height: h as usize,
            width: w as usize,
            num_classes: p.dataset.classes.len(),
            seed: p.spec.train.seed,
            learning_rate: p.spec.train.lr,
            total_steps: Some((steps_per_epoch * p.spec.train.epochs as usize) as u64),
        };
        let mut sink = RunSink::new(Arc::clone(&opts.stop));
        let instance = p
            .plugin
            .create(&p.spec.params_text(), &p.device, &setup, &mut sink)?;
        let device = sink
            .info
            .iter()
            .find(|(k, _)| k == "device")
            .map(|(_, v)| v.clone());
        board.publish(|s| s.device = device);
        Ok(Run {
            p,
            folder,
            board,
            stop: Arc::clone(&opts.stop),
            instance,
            sink,
            scalars: ScalarWriter::open(&folder.scalars_file())?,
            loaders,
            step: 0,
            best_val: None,
            primary_score: p.plugin.info().description.scores.first().cloned(),
            skipped: Default::default(),
        })
    }

    /// Trains every epoch; `Ok(true)` when stopped early by request.
    fn all_epochs(&mut self) -> Result<bool> {
        for epoch in 1..=self.p.spec.train.epochs {
            let stopped = self.train_epoch(epoch)?;
            if stopped {
                self.checkpoint("last", epoch - 1, None)?;
                return Ok(true);
            }
            self.evaluate(epoch)?;
        }
        Ok(false)
    }

    fn push(&mut self, epoch: u32, tag: String, value: f64) -> Result<()> {
        self.scalars.push(&ScalarRow {
            wall_time: time::now(),
            step: self.step,
            epoch,
            tag,
            value,
        })?;
        Ok(())
    }

    /// Logs images a batch skipped (`data.skip_bad`) and counts them in status.ron. Each
    /// is reported once: a skipped image is never cached, so it fails again every epoch.
    fn note_skipped(&mut self, skipped: &[(String, String)]) {
        let fresh: Vec<&(String, String)> = skipped
            .iter()
            .filter(|(name, _)| self.skipped.insert(name.clone()))
            .collect();
        if fresh.is_empty() {
            return;
        }
        for (_, error) in &fresh {
            tracing::warn!("skipped (data.skip_bad): {error}");
        }
        let names: Vec<String> = fresh.iter().map(|(n, _)| n.clone()).collect();
        self.board.publish(|s| {
            s.skipped += names.len() as u64;
            for name in names {
                if s.skipped_files.len() < SKIPPED_LISTED {
                    s.skipped_files.push(name);
                }
            }
        });
    }

    /// One pass over the training split in a seeded order; `Ok(true)` if stopped.
    fn train_epoch(&mut self, epoch: u32) -> Result<bool> {
        let mut order: Vec<usize> = (0..self.p.dataset.train.len()).collect();
        let seed = self.p.spec.train.seed ^ (u64::from(epoch) << 32);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let batches =
            self.loaders[0].pass(order, self.p.spec.train.batch_size as usize, Some(epoch));
        let started = Instant::now();
        let mut images = 0usize;
        // Time blocked on the prefetcher: the data pipeline's cost to training.
        let mut waited = Duration::ZERO;
        let mut batches = batches.into_iter();
        loop {
            let wait = Instant::now();
            let Some(batch) = batches.next() else { break };
            waited += wait.elapsed();
            if self.stop.load(Ordering::Relaxed) {
                tracing::info!("stop requested: ending after step {}", self.step);
                return Ok(true);
            }
            let batch = batch?;
            self.note_skipped(&batch.skipped);
            if batch.indices.is_empty() {
                continue;
            }
            self.sink.clear();
            self.instance
                .train_step(&view(&batch, false), &mut self.sink)
                .with_context(|| format!("epoch {epoch}, step {}", self.step + 1))?;
            self.step += 1;
            images += batch.shape[0];
            let emitted = std::mem::take(&mut self.sink.scalars);
            for (name, value) in emitted {
                self.push(epoch, format!("train/{name}"), value)?;
            }
            self.scalars.flush()?;
            let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let step = self.step;
            self.board.update(|s| {
                s.step = step;
                s.images_per_sec = rate;
            });
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let wait_fraction = waited.as_secs_f64() / elapsed;
        tracing::info!(
            "epoch {epoch}: trained {images} images in {elapsed:.1}s ({:.1} img/s), \
             waiting on data {:.1}% of the time",
            images as f64 / elapsed,
            100.0 * wait_fraction
        );
        self.board.update(|s| s.data_wait = wait_fraction);
        Ok(false)
    }

    /// Evaluates val and test, writes scalars, scores, samples and checkpoints.
    fn evaluate(&mut self, epoch: u32) -> Result<()> {
        let mut rows: Vec<ScoreRow> = Vec::new();
        let mut latest: Vec<(String, f64)> = Vec::new();
        let mut val_loss = None;
        for split in [Split::Val, Split::Test] {
            let samples = match split {
                Split::Val => &self.p.dataset.val,
                Split::Test => &self.p.dataset.test,
            };
            if samples.is_empty() {
                continue;
            }
            let result = self.eval_split(split, epoch)?;
            for (name, mean) in &result.means {
                let tag = format!("{}/{name}", split.name());
                self.push(epoch, tag.clone(), *mean)?;
                latest.push((tag, *mean));
                if matches!(split, Split::Val) && name == "loss" {
                    val_loss = Some(*mean);
                }
            }
            let ds = &self.p.dataset;
            for &(i, score) in &result.scores {
                rows.push(ScoreRow {
                    sample: samples[i].name.clone(),
                    label: ds.classes[samples[i].class as usize].clone(),
                    split: split.name().into(),
                    score,
                });
            }
            let mut derived: Vec<(String, f64)> = Vec::new();
            if matches!(split, Split::Test) && ds.normal.is_some() {
                let (values, positive): (Vec<f64>, Vec<bool>) = result
                    .scores
                    .iter()
                    .map(|&(i, s)| (s, ds.is_anomalous(samples[i].class)))
                    .unzip();
                if let Some(r) = anomaly_report(&values, &positive) {
                    derived.extend(anomaly_scalars(&r));
                }
            }
            if !result.class_probs.is_empty() {
                let (probs, labels): (Vec<Vec<f64>>, Vec<u32>) = result
                    .class_probs
                    .iter()
                    .map(|(i, p)| (p.clone(), samples[*i].class))
                    .unzip();
                let report = classification_report(&probs, &labels, ds.classes.len());
                derived.extend(classification_scalars(&report, &ds.classes));
                self.folder
                    .write_confusion(epoch, split.name(), &ds.classes, &report.confusion)?;
            }
            if let Some(xy) = pca::project2(
                &result
                    .latents
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>(),
            ) {
                let points: Vec<embedding::Point> = result
                    .latents
                    .iter()
                    .zip(xy)
                    .map(|((i, _), (x, y))| embedding::Point {
                        sample: samples[*i].name.clone(),
                        label: ds.classes[samples[*i].class as usize].clone(),
                        x,
                        y,
                    })
                    .collect();
                embedding::write(&self.folder.embedding_file(epoch, split.name()), &points)?;
            }
            for (name, value) in derived {
                let tag = format!("{}/{name}", split.name());
                self.push(epoch, tag.clone(), value)?;
                if !name.contains('/') {
                    latest.push((tag, value));
                }
            }
        }
        self.scalars.flush()?;
        if !rows.is_empty() {
            scores::write(&self.folder.scores_file(epoch), &rows)?;
        }
        let improved = match (val_loss, self.best_val) {
            (Some(v), Some(best)) => v < best,
            (Some(_), None) => true,
            _ => false,
        };
        self.checkpoint("last", epoch, val_loss.map(|v| ("val/loss".to_string(), v)))?;
        if improved {
            self.best_val = val_loss;
            self.checkpoint("best", epoch, val_loss.map(|v| ("val/loss".to_string(), v)))?;
        }
        let step = self.step;
        let summary: Vec<String> = latest.iter().map(|(t, v)| format!("{t} {v:.5}")).collect();
        tracing::info!(
            "epoch {epoch}/{}: {}",
            self.p.spec.train.epochs,
            summary.join(", ")
        );
        self.board.publish(|s| {
            s.epoch = epoch;
            s.latest = latest;
            if improved && let Some(v) = val_loss {
                s.best = Some(Best {
                    tag: "val/loss".into(),
                    value: v,
                    epoch,
                    step,
                });
            }
        });
        Ok(())
    }

    fn eval_split(&mut self, split: Split, epoch: u32) -> Result<EvalResult> {
        let n = match split {
            Split::Val => self.p.dataset.val.len(),
            Split::Test => self.p.dataset.test.len(),
        };
        let batches = self.loaders[split as usize].pass(
            (0..n).collect(),
            self.p.spec.train.batch_size as usize,
            None,
        );
        let mut sums: Vec<(String, f64, usize)> = Vec::new();
        let mut scores = Vec::with_capacity(n);
        let mut class_probs: Vec<(usize, Vec<f64>)> = Vec::new();
        let mut latents: Vec<(usize, Vec<f32>)> = Vec::new();
        let classes = self.p.dataset.classes.len();
        let mut first = true;
        for batch in batches {
            let batch = batch?;
            self.note_skipped(&batch.skipped);
            if batch.indices.is_empty() {
                continue;
            }
            self.sink.clear();
            self.instance
                .eval(&view(&batch, first), &mut self.sink)
                .with_context(|| format!("evaluating {} at epoch {epoch}", split.name()))?;
            let size = batch.shape[0];
            for (name, value) in &self.sink.scalars {
                match sums.iter_mut().find(|(n, _, _)| n == name) {
                    Some(entry) => {
                        entry.1 += value * size as f64;
                        entry.2 += size;
                    }
                    None => sums.push((name.clone(), value * size as f64, size)),
                }
            }
            if self.primary_score.is_none() {
                self.primary_score = self.sink.scores.first().map(|(n, _)| n.clone());
            }
            if let Some(primary) = &self.primary_score
                && let Some((_, values)) = self.sink.scores.iter().find(|(n, _)| n == primary)
            {
                if values.len() != size {
                    bail!(
                        "{}: eval emitted {} {primary} scores for a batch of {size}",
                        self.p.plugin.path().display(),
                        values.len()
                    );
                }
                scores.extend(
                    batch
                        .indices
                        .iter()
                        .zip(values)
                        .map(|(&i, &v)| (i, v as f64)),
                );
            }
            if let Some((_, values, cols)) = self.sink.vectors.iter().find(|v| v.0 == "latent")
                && *cols > 0
                && values.len() == size * cols
            {
                for (row, &i) in batch.indices.iter().enumerate() {
                    latents.push((i, values[row * cols..(row + 1) * cols].to_vec()));
                }
            }
            if let Some(per_class) = class_columns(&self.sink.scores, classes, size) {
                for (row, &i) in batch.indices.iter().enumerate() {
                    class_probs.push((i, per_class.iter().map(|c| c[row] as f64).collect()));
                }
            }
            for image in &self.sink.images {
                let name = format!("{}-{}", split.name(), image.name);
                samples::write_grid(
                    &self.folder.sample_file(epoch, &name),
                    &image.data,
                    image.shape,
                    image.columns,
                )?;
            }
            first = false;
        }
        Ok(EvalResult {
            means: sums
                .into_iter()
                .map(|(name, sum, count)| (name, sum / count.max(1) as f64))
                .collect(),
            scores,
            class_probs,
            latents,
        })
    }

    fn checkpoint(&mut self, which: &str, epoch: u32, metric: Option<(String, f64)>) -> Result<()> {
        let info = CheckpointInfo {
            step: self.step,
            epoch,
            metric,
            written: time::now(),
        };
        checkpoints::write(
            self.folder,
            which,
            &mut self.instance,
            &mut self.sink,
            &info,
        )
        .with_context(|| format!("writing checkpoint {which}"))
    }
}

fn view(batch: &OwnedBatch, want_images: bool) -> Batch<'_> {
    Batch {
        images: &batch.images,
        shape: batch.shape,
        labels: &batch.labels,
        want_images,
    }
}

/// The per-class probability columns `p/0` .. `p/{K-1}`, when a plugin emitted all of them
/// with one value per image.
fn class_columns(
    scores: &[(String, Vec<f32>)],
    classes: usize,
    size: usize,
) -> Option<Vec<&[f32]>> {
    if classes < 2 {
        return None;
    }
    (0..classes)
        .map(|k| {
            let name = format!("p/{k}");
            scores
                .iter()
                .find(|(n, v)| *n == name && v.len() == size)
                .map(|(_, v)| v.as_slice())
        })
        .collect()
}

/// Scalars of an anomaly score's ranking on the test split (prefixed with the split).
fn anomaly_scalars(r: &AnomalyReport) -> Vec<(String, f64)> {
    vec![
        ("auroc".into(), r.auroc),
        ("auprc".into(), r.auprc),
        ("best_f1".into(), r.best_f1.f1),
        ("best_f1/threshold".into(), r.best_f1.threshold),
        ("best_f1/precision".into(), r.best_f1.precision),
        ("best_f1/recall".into(), r.best_f1.recall),
        ("youden/threshold".into(), r.youden.threshold),
        ("youden/tpr".into(), r.youden.recall),
        ("youden/fpr".into(), r.youden.fpr),
    ]
}

/// Scalars of a classification report: headline numbers, then per class.
fn classification_scalars(r: &ClassificationReport, classes: &[String]) -> Vec<(String, f64)> {
    let mut out = vec![
        ("accuracy".to_string(), r.accuracy),
        ("macro_f1".to_string(), r.macro_f1),
    ];
    if let Some(a) = r.macro_auroc_ovr {
        out.push(("auroc_ovr".into(), a));
    }
    for (k, class) in classes.iter().enumerate() {
        out.push((format!("precision/{class}"), r.precision[k]));
        out.push((format!("recall/{class}"), r.recall[k]));
        out.push((format!("f1/{class}"), r.f1[k]));
    }
    out
}
