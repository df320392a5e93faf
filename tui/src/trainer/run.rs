//! One run in progress: the epoch loop, evaluation, checkpoints, NaN rollback. Started
//! fresh or from a checkpoint ([`Position`]); either way the same code trains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use gantry_plugin_api::host::{CallError, PluginInstance};
use gantry_plugin_api::{Batch, Setup};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::checkpoints::{self, Position};
use super::sink::RunSink;
use super::status_board::StatusBoard;
use super::system_metrics::SystemCsv;
use super::{CACHE_BYTES, Prepared};
use crate::data::pipeline::Pipeline;
use crate::data::prefetch::{OwnedBatch, Prefetcher};
use crate::data::spill::Spill;
use crate::interop::scalar_log::ScalarLog;
use crate::metrics::classification::{ClassificationReport, classification_report};
use crate::metrics::pca;
use crate::metrics::ranking::{AnomalyReport, anomaly_report};
use crate::runfs::scalars::{self, ScalarRow};
use crate::runfs::scores::{self, ScoreRow};
use crate::runfs::spec::NanPolicy;
use crate::runfs::status::{Best, SKIPPED_LISTED};
use crate::runfs::{CheckpointInfo, RunFolder, embedding, samples, time};

/// A training or evaluation scalar that is NaN or infinite.
#[derive(Debug, thiserror::Error)]
#[error("{tag} is {value} at step {step} (epoch {epoch})")]
pub struct NonFinite {
    pub tag: String,
    pub value: f64,
    pub step: u64,
    pub epoch: u32,
}

/// How a pass over the training split ended.
enum EpochEnd {
    Done,
    /// Stopped by request after this many batches of the epoch.
    Stopped {
        batches: u64,
    },
}

pub struct Run<'a> {
    p: &'a Prepared,
    folder: &'a RunFolder,
    board: &'a StatusBoard,
    stop: Arc<AtomicBool>,
    instance: PluginInstance,
    sink: RunSink,
    /// scalars.csv, and the TensorBoard event file beside it.
    scalars: ScalarLog,
    /// system.csv, appended to by the system metrics sampler.
    system: SystemCsv,
    loaders: [Prefetcher; 3],
    step: u64,
    best_val: Option<f64>,
    primary_score: Option<String>,
    /// Names of images already reported as skipped.
    skipped: std::collections::HashSet<String>,
    /// The learning rate the instance was created with (lowered by NaN rollbacks).
    lr: Option<f64>,
    rollbacks: u32,
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
    pub fn new(
        p: &'a Prepared,
        folder: &'a RunFolder,
        board: &'a StatusBoard,
        stop: Arc<AtomicBool>,
        cache_dir: &std::path::Path,
    ) -> Result<Run<'a>> {
        let pipeline = Arc::new(Pipeline::new(
            &p.spec.data,
            p.dataset.loader.clone(),
            p.spec.train.seed,
        ));
        let per_image = pipeline.shape().len();
        // Shaped images past the memory budget go to a file in the run root's cache folder.
        let spill = |split: &str, n: usize| {
            let name = format!("{}-{split}.f32", folder.id());
            match Spill::create(cache_dir, &name, n, per_image) {
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
        let mut sink = RunSink::new(Arc::clone(&stop));
        let lr = p.spec.train.lr;
        let instance = create_instance(p, lr, &mut sink)?;
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
            stop,
            instance,
            sink,
            scalars: ScalarLog::open(folder, p.tfevents)?,
            system: SystemCsv::new(folder.system_file()),
            loaders,
            step: 0,
            best_val: None,
            primary_score: p.plugin.info().description.scores.first().cloned(),
            skipped: Default::default(),
            lr,
            rollbacks: 0,
        })
    }

    /// Optimisation steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The run's system.csv, for the sampler to append to.
    pub fn system_csv(&self) -> SystemCsv {
        self.system.clone()
    }

    /// Loads `checkpoints/last` into the instance and takes its step, best value, learning
    /// rate and rollback count; returns where training goes on. Scalars past the
    /// checkpoint are dropped, so curves have neither repeated nor missing steps.
    pub fn restore_last(&mut self) -> Result<Position> {
        let info = self
            .folder
            .read_checkpoint("last")?
            .with_context(|| format!("{}: no checkpoints/last", self.folder.dir.display()))?;
        if info.lr.is_some() && info.lr != self.lr {
            // A rollback lowered it: the instance must be made with the same rate.
            self.lr = info.lr;
            self.instance = create_instance(self.p, self.lr, &mut self.sink)?;
        }
        let dir = self.folder.checkpoint_dir("last");
        self.instance
            .load(&dir, &mut self.sink)
            .with_context(|| format!("loading {}", dir.display()))?;
        self.step = info.step;
        self.best_val = info.best;
        self.rollbacks = info.rollbacks;
        let position = Position::of(&info);
        self.drop_scalars_after(position)?;
        Ok(position)
    }

    /// Rewrites scalars.csv without the rows written after `position` (a crash, a
    /// rollback), then appends to the rewritten file.
    fn drop_scalars_after(&mut self, position: Position) -> Result<()> {
        self.scalars.flush()?;
        let path = self.folder.scalars_file();
        let step = self.step;
        // At the checkpoint's own step, training rows belong to it; evaluation rows only
        // if the checkpoint came after that epoch's evaluation.
        let dropped = scalars::retain(&path, |r| {
            r.step < step
                || (r.step == step
                    && (r.tag.starts_with("train/") || r.epoch <= position.epochs_done))
        })?;
        if dropped > 0 {
            tracing::info!("dropped {dropped} scalar rows written after step {step}");
        }
        self.scalars.reopen_after(step)?;
        // System samples past the step go too (the sampler reads the step under the
        // file's lock, after this update), so system.csv's steps never go back.
        self.board.update(|s| s.step = step);
        let dropped = self.system.retain(|r| r.step <= step)?;
        if dropped > 0 {
            tracing::info!("dropped {dropped} system metric rows written after step {step}");
        }
        Ok(())
    }

    /// Trains from `start` to the last epoch, rolling back on NaN when the config says
    /// so; `Ok(true)` when stopped early by request.
    pub fn all_epochs(&mut self, start: Position) -> Result<bool> {
        let mut from = start;
        loop {
            match self.epochs_from(from) {
                Err(e) if is_non_finite(&e) && self.may_roll_back() => {
                    from = self.roll_back(&format!("{e:#}"))?;
                }
                done => return done,
            }
        }
    }

    fn epochs_from(&mut self, start: Position) -> Result<bool> {
        let mut skip = start.batch;
        for epoch in start.epochs_done + 1..=self.p.spec.train.epochs {
            if let EpochEnd::Stopped { batches } = self.train_epoch(epoch, skip)? {
                let at = Position {
                    epochs_done: epoch - 1,
                    batch: batches,
                };
                self.checkpoint("last", at, None)?;
                return Ok(true);
            }
            skip = 0;
            self.evaluate(epoch)?;
        }
        Ok(false)
    }

    fn may_roll_back(&self) -> bool {
        matches!(self.p.spec.train.on_nan, NanPolicy::Rollback { retries, .. } if self.rollbacks < retries)
    }

    /// Recreates the instance with a lower learning rate and goes back to the last
    /// checkpoint, or to the start when there is none yet.
    fn roll_back(&mut self, what: &str) -> Result<Position> {
        let NanPolicy::Rollback { lr_factor, retries } = self.p.spec.train.on_nan else {
            bail!("no rollback configured");
        };
        self.rollbacks += 1;
        let old = self.lr;
        self.lr = self.lr.map(|lr| lr * lr_factor);
        tracing::warn!(
            "{what}: rolling back ({}/{retries}) with learning rate {:?} (was {:?})",
            self.rollbacks,
            self.lr,
            old
        );
        self.instance = create_instance(self.p, self.lr, &mut self.sink)?;
        let rollbacks = self.rollbacks;
        let lr = self.lr;
        let position = if self.folder.read_checkpoint("last")?.is_some() {
            let at = self.restore_last()?;
            // The checkpoint predates this rollback: keep the new rate and count.
            self.rollbacks = rollbacks;
            if self.lr != lr {
                self.lr = lr;
                self.instance = create_instance(self.p, self.lr, &mut self.sink)?;
                let dir = self.folder.checkpoint_dir("last");
                self.instance.load(&dir, &mut self.sink)?;
            }
            at
        } else {
            self.step = 0;
            self.best_val = None;
            self.drop_scalars_after(Position::START)?;
            Position::START
        };
        self.board.publish(|s| {
            s.step = self.step;
            s.epoch = position.epochs_done;
        });
        Ok(position)
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

    /// One pass over the training split in a seeded order, skipping its first `skip`
    /// batches (a resumed epoch).
    fn train_epoch(&mut self, epoch: u32, skip: u64) -> Result<EpochEnd> {
        let mut order: Vec<usize> = (0..self.p.dataset.train.len()).collect();
        let seed = self.p.spec.train.seed ^ (u64::from(epoch) << 32);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let batch_size = self.p.spec.train.batch_size as usize;
        let skipped_images = (skip as usize * batch_size).min(order.len());
        let order = order.split_off(skipped_images);
        if skip > 0 {
            tracing::info!("epoch {epoch}: resuming after batch {skip}");
        }
        let batches = self.loaders[0].pass(order, batch_size, Some(epoch));
        let started = Instant::now();
        let mut images = 0usize;
        let mut consumed = skip;
        // Time blocked on the prefetcher: the data pipeline's cost to training.
        let mut waited = Duration::ZERO;
        let mut batches = batches.into_iter();
        loop {
            let wait = Instant::now();
            let Some(batch) = batches.next() else { break };
            let blocked = wait.elapsed();
            waited += blocked;
            self.board.add_data_wait(blocked);
            if self.stop.load(Ordering::Relaxed) {
                tracing::info!("stop requested: ending after step {}", self.step);
                return Ok(EpochEnd::Stopped { batches: consumed });
            }
            let batch = batch?;
            consumed += 1;
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
                let tag = format!("train/{name}");
                check_finite(&tag, value, self.step, epoch)?;
                self.push(epoch, tag, value)?;
            }
            self.scalars.flush()?;
            let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let step = self.step;
            self.board.update(|s| {
                s.step = step;
                s.images_per_sec = rate;
            });
            if let Some(every) = self.p.spec.train.checkpoint_every
                && step.is_multiple_of(every)
            {
                let at = Position {
                    epochs_done: epoch - 1,
                    batch: consumed,
                };
                self.checkpoint("last", at, None)?;
            }
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
        Ok(EpochEnd::Done)
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
                check_finite(&tag, *mean, self.step, epoch)?;
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
        if improved {
            self.best_val = val_loss;
        }
        let at = Position {
            epochs_done: epoch,
            batch: 0,
        };
        let metric = val_loss.map(|v| ("val/loss".to_string(), v));
        // `last` first: a crash between the two leaves a resumable run whose `best` is
        // one evaluation old, never the reverse.
        self.checkpoint("last", at, metric.clone())?;
        if improved {
            self.checkpoint("best", at, metric)?;
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

    fn checkpoint(
        &mut self,
        which: &str,
        at: Position,
        metric: Option<(String, f64)>,
    ) -> Result<()> {
        let info = CheckpointInfo {
            step: self.step,
            epoch: at.epochs_done,
            metric,
            written: time::now(),
            batch: at.batch,
            best: self.best_val,
            lr: self.lr,
            rollbacks: self.rollbacks,
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

/// A plugin instance for this run, with learning rate `lr`.
fn create_instance(p: &Prepared, lr: Option<f64>, sink: &mut RunSink) -> Result<PluginInstance> {
    let shape = crate::data::decode::Shape {
        channels: p.spec.data.channels,
        height: p.spec.data.size.0,
        width: p.spec.data.size.1,
    };
    let setup = Setup {
        channels: shape.channels as usize,
        height: shape.height as usize,
        width: shape.width as usize,
        num_classes: p.dataset.classes.len(),
        seed: p.spec.train.seed,
        learning_rate: lr,
        total_steps: Some(p.steps_per_epoch() * u64::from(p.spec.train.epochs)),
    };
    Ok(p.plugin
        .create(&p.spec.params_text(), &p.device, &setup, sink)?)
}

/// Whether a run error is a diverged value: the runner's own check, or the host's
/// (a plugin call that emitted a NaN or infinite scalar).
fn is_non_finite(e: &anyhow::Error) -> bool {
    e.downcast_ref::<NonFinite>().is_some()
        || matches!(
            e.downcast_ref::<CallError>(),
            Some(CallError::NonFinite { .. })
        )
}

/// A NaN or infinite value is an error naming the tag, the step and the epoch.
fn check_finite(tag: &str, value: f64, step: u64, epoch: u32) -> Result<()> {
    if value.is_finite() {
        return Ok(());
    }
    Err(NonFinite {
        tag: tag.to_string(),
        value,
        step,
        epoch,
    }
    .into())
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
