//! A background thread that assembles batches ahead of the training step, decoding each
//! batch's images in parallel (rayon's pool), so the step never waits on decoding. Shaped
//! images are kept in memory up to a byte budget, so later epochs of a dataset that fits
//! skip decoding altogether; augmentation and normalisation are applied per use.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::pipeline::Pipeline;
use super::spill::Spill;
use super::{DataError, Sample};

/// Batches queued ahead of the consumer.
const DEPTH: usize = 4;

/// One assembled batch, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedBatch {
    /// NCHW values.
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: Vec<u32>,
    /// Indices into the sample list, in batch order.
    pub indices: Vec<usize>,
    /// Samples left out because they did not decode (`skip_bad`): (name, error).
    pub skipped: Vec<(String, String)>,
}

struct Job {
    order: Vec<usize>,
    batch_size: usize,
    /// The epoch, for training passes that augment.
    augment_epoch: Option<u32>,
    out: SyncSender<Result<OwnedBatch, DataError>>,
}

/// Serves batches of one sample list from a worker thread.
pub struct Prefetcher {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the worker. `cache_bytes` bounds the memory kept for shaped images; what
    /// does not fit goes to `spill`, a cache file, if given.
    pub fn new(
        samples: Arc<Vec<Sample>>,
        pipeline: Arc<Pipeline>,
        cache_bytes: usize,
        spill: Option<Spill>,
    ) -> Prefetcher {
        let (jobs, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || Worker::new(samples, pipeline, cache_bytes, spill).serve(rx))
            .expect("spawn prefetch thread");
        Prefetcher {
            jobs: Some(jobs),
            worker: Some(worker),
        }
    }

    /// Queues one pass over `order` (indices into the samples) in batches of
    /// `batch_size`; the last batch may be smaller. With `augment_epoch`, images are
    /// augmented as the pipeline says, seeded by that epoch. Batches arrive on the
    /// receiver, in order; an unreadable image ends the pass with its error unless the
    /// pipeline skips bad images.
    pub fn pass(
        &self,
        order: Vec<usize>,
        batch_size: usize,
        augment_epoch: Option<u32>,
    ) -> Receiver<Result<OwnedBatch, DataError>> {
        let (out, rx) = mpsc::sync_channel(DEPTH);
        let job = Job {
            order,
            batch_size: batch_size.max(1),
            augment_epoch,
            out,
        };
        if let Some(jobs) = &self.jobs {
            // The worker only stops when we drop `jobs`, so this cannot fail while we live.
            let _ = jobs.send(job);
        }
        rx
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

struct Worker {
    samples: Arc<Vec<Sample>>,
    pipeline: Arc<Pipeline>,
    cache: Vec<Option<Arc<Vec<f32>>>>,
    cache_left: usize,
    spill: Option<Spill>,
}

impl Worker {
    fn new(
        samples: Arc<Vec<Sample>>,
        pipeline: Arc<Pipeline>,
        cache_bytes: usize,
        spill: Option<Spill>,
    ) -> Worker {
        Worker {
            cache: vec![None; samples.len()],
            samples,
            pipeline,
            cache_left: cache_bytes,
            spill,
        }
    }

    /// Whether `i` is cached in memory or in the spill file.
    fn cached(&self, i: usize) -> bool {
        self.cache[i].is_some() || self.spill.as_ref().is_some_and(|s| s.contains(i))
    }

    /// Keeps freshly shaped values: in memory while the budget lasts, else in the spill
    /// file (a failed write is logged; the image is simply decoded again next time).
    fn keep(&mut self, i: usize, values: &Arc<Vec<f32>>) {
        let bytes = values.len() * 4;
        if bytes <= self.cache_left {
            self.cache_left -= bytes;
            self.cache[i] = Some(values.clone());
        } else if let Some(spill) = &mut self.spill
            && let Err(e) = spill.put(i, values)
        {
            tracing::warn!("{}: cache write failed: {e}", spill.path().display());
            self.spill = None;
        }
    }

    fn serve(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            for chunk in job.order.chunks(job.batch_size) {
                let batch = self.assemble(chunk, job.augment_epoch);
                let failed = batch.is_err();
                if matches!(&batch, Ok(b) if b.indices.is_empty() && b.skipped.is_empty()) {
                    continue;
                }
                // A dropped receiver means the consumer stopped early: abandon the pass.
                if job.out.send(batch).is_err() || failed {
                    break;
                }
            }
        }
    }

    fn assemble(
        &mut self,
        indices: &[usize],
        augment_epoch: Option<u32>,
    ) -> Result<OwnedBatch, DataError> {
        // Decode what the cache lacks, in parallel, keeping the batch order.
        let pipeline = self.pipeline.clone();
        let samples = self.samples.clone();
        let decoded: Vec<(usize, Result<Vec<f32>, DataError>)> = indices
            .par_iter()
            .filter(|&&i| !self.cached(i))
            .map(|&i| (i, pipeline.shaped(&samples[i])))
            .collect();
        let mut fresh = std::collections::HashMap::new();
        for &i in indices {
            if self.cache[i].is_none()
                && let Some(values) = self.spill.as_ref().and_then(|s| s.get(i))
            {
                fresh.insert(i, Arc::new(values));
            }
        }
        let mut skipped = Vec::new();
        for (i, result) in decoded {
            match result {
                Ok(values) => {
                    let values = Arc::new(values);
                    self.keep(i, &values);
                    fresh.insert(i, values);
                }
                Err(e) if pipeline.skip_bad => {
                    skipped.push((samples[i].name.clone(), e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        let kept: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| self.cache[*i].is_some() || fresh.contains_key(i))
            .collect();
        let shape = pipeline.shape();
        let finished: Vec<Result<Vec<f32>, DataError>> = kept
            .par_iter()
            .map(|&i| {
                let shaped = self.cache[i]
                    .as_ref()
                    .or_else(|| fresh.get(&i))
                    .expect("kept");
                pipeline.finish(shaped, augment_epoch.map(|e| (e, i)))
            })
            .collect();
        let mut images = Vec::with_capacity(shape.len() * kept.len());
        for values in finished {
            images.extend_from_slice(&values?);
        }
        Ok(OwnedBatch {
            images,
            shape: [
                kept.len(),
                shape.channels as usize,
                shape.height as usize,
                shape.width as usize,
            ],
            labels: kept.iter().map(|&i| samples[i].class).collect(),
            indices: kept,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Loader;
    use crate::data::decode::Shape;

    const SHAPE: Shape = Shape {
        channels: 1,
        height: 2,
        width: 2,
    };

    fn plain(shape: Shape) -> Arc<Pipeline> {
        Arc::new(Pipeline::plain(Loader::Files, shape))
    }

    fn write_pngs(dir: &std::path::Path, n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                image::GrayImage::from_pixel(2, 2, image::Luma([i as u8 * 10]))
                    .save(&path)
                    .unwrap();
                Sample::file(path, format!("{i}.png"), (i % 2) as u32)
            })
            .collect()
    }

    #[test]
    fn passes_deliver_batches_in_order_twice() {
        let dir = tempfile::tempdir().unwrap();
        let samples = Arc::new(write_pngs(dir.path(), 5));
        let shape = Shape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let pf = Prefetcher::new(samples, plain(shape), 1 << 20, None);
        for _ in 0..2 {
            let batches: Vec<OwnedBatch> = pf
                .pass(vec![4, 0, 2, 1, 3], 2, None)
                .iter()
                .map(|b| b.unwrap())
                .collect();
            assert_eq!(batches.len(), 3);
            assert_eq!(batches[0].indices, vec![4, 0]);
            assert_eq!(batches[0].labels, vec![0, 0]);
            assert_eq!(batches[2].shape, [1, 1, 2, 2]);
            assert!((batches[0].images[0] - 40.0 / 255.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_broken_image_ends_the_pass_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut samples = write_pngs(dir.path(), 2);
        std::fs::write(&samples[1].path, b"nope").unwrap();
        samples[1].name = "1.png".into();
        let pf = Prefetcher::new(Arc::new(samples), plain(SHAPE), 0, None);
        let results: Vec<_> = pf.pass(vec![0, 1], 1, None).iter().collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("1.png"), "{err}");
    }

    #[test]
    fn skip_bad_leaves_broken_images_out_and_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let samples = write_pngs(dir.path(), 3);
        std::fs::write(&samples[1].path, b"nope").unwrap();
        let pipeline = Pipeline {
            skip_bad: true,
            ..Pipeline::plain(Loader::Files, SHAPE)
        };
        let pf = Prefetcher::new(Arc::new(samples), Arc::new(pipeline), 1 << 20, None);
        let batch = pf.pass(vec![0, 1, 2], 3, None).recv().unwrap().unwrap();
        assert_eq!(batch.indices, vec![0, 2]);
        assert_eq!(batch.shape, [2, 1, 2, 2]);
        assert_eq!(batch.skipped.len(), 1);
        assert_eq!(batch.skipped[0].0, "1.png");
    }

    #[test]
    fn images_past_the_memory_budget_are_served_from_the_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let samples = write_pngs(dir.path(), 4);
        let paths: Vec<_> = samples.iter().map(|s| s.path.clone()).collect();
        // Room in memory for one image of 16 bytes; the other three spill.
        let spill = Spill::create(&dir.path().join("cache"), "train.f32", 4, 4).unwrap();
        let spill_path = spill.path().to_path_buf();
        let pf = Prefetcher::new(Arc::new(samples), plain(SHAPE), 16, Some(spill));
        let first: Vec<OwnedBatch> = pf
            .pass(vec![0, 1, 2, 3], 4, None)
            .iter()
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(std::fs::metadata(&spill_path).unwrap().len(), 4 * 16);
        // With the files gone, a second pass can only come from the caches.
        for p in paths {
            std::fs::remove_file(p).unwrap();
        }
        let second: Vec<OwnedBatch> = pf
            .pass(vec![0, 1, 2, 3], 4, None)
            .iter()
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(first, second);
        drop(pf);
        assert!(
            !spill_path.exists(),
            "the spill file is removed with its prefetcher"
        );
    }
}
