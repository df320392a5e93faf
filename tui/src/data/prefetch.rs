//! A background thread that decodes and assembles batches ahead of the training step, so
//! the step never waits on decoding. Decoded images are kept in memory up to a byte budget,
//! so later epochs of a dataset that fits skip decoding altogether.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::decode::{self, Shape};
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
}

struct Job {
    order: Vec<usize>,
    batch_size: usize,
    out: SyncSender<Result<OwnedBatch, DataError>>,
}

/// Serves batches of one sample list from a worker thread.
pub struct Prefetcher {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the worker. `cache_bytes` bounds the memory kept for decoded images.
    pub fn new(samples: Arc<Vec<Sample>>, shape: Shape, cache_bytes: usize) -> Prefetcher {
        let (jobs, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || Worker::new(samples, shape, cache_bytes).serve(rx))
            .expect("spawn prefetch thread");
        Prefetcher {
            jobs: Some(jobs),
            worker: Some(worker),
        }
    }

    /// Queues one pass over `order` (indices into the samples) in batches of
    /// `batch_size`; the last batch may be smaller. Batches arrive on the receiver, in
    /// order; an unreadable image ends the pass with its error.
    pub fn pass(
        &self,
        order: Vec<usize>,
        batch_size: usize,
    ) -> Receiver<Result<OwnedBatch, DataError>> {
        let (out, rx) = mpsc::sync_channel(DEPTH);
        let job = Job {
            order,
            batch_size: batch_size.max(1),
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
    shape: Shape,
    cache: Vec<Option<Vec<f32>>>,
    cache_left: usize,
}

impl Worker {
    fn new(samples: Arc<Vec<Sample>>, shape: Shape, cache_bytes: usize) -> Worker {
        Worker {
            cache: vec![None; samples.len()],
            samples,
            shape,
            cache_left: cache_bytes,
        }
    }

    fn serve(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            for chunk in job.order.chunks(job.batch_size) {
                let batch = self.assemble(chunk);
                let failed = batch.is_err();
                // A dropped receiver means the consumer stopped early: abandon the pass.
                if job.out.send(batch).is_err() || failed {
                    break;
                }
            }
        }
    }

    fn assemble(&mut self, indices: &[usize]) -> Result<OwnedBatch, DataError> {
        let per = self.shape.len();
        let mut images = Vec::with_capacity(per * indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            match &self.cache[i] {
                Some(values) => images.extend_from_slice(values),
                None => {
                    let values = decode::decode(&self.samples[i].path, self.shape)?;
                    images.extend_from_slice(&values);
                    let bytes = values.len() * 4;
                    if bytes <= self.cache_left {
                        self.cache_left -= bytes;
                        self.cache[i] = Some(values);
                    }
                }
            }
            labels.push(self.samples[i].class);
        }
        Ok(OwnedBatch {
            images,
            shape: [
                indices.len(),
                self.shape.channels as usize,
                self.shape.height as usize,
                self.shape.width as usize,
            ],
            labels,
            indices: indices.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pngs(dir: &std::path::Path, n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                image::GrayImage::from_pixel(2, 2, image::Luma([i as u8 * 10]))
                    .save(&path)
                    .unwrap();
                Sample {
                    name: format!("{i}.png"),
                    path,
                    class: (i % 2) as u32,
                }
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
        let pf = Prefetcher::new(samples, shape, 1 << 20);
        for _ in 0..2 {
            let batches: Vec<OwnedBatch> = pf
                .pass(vec![4, 0, 2, 1, 3], 2)
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
        let pf = Prefetcher::new(
            Arc::new(samples),
            Shape {
                channels: 1,
                height: 2,
                width: 2,
            },
            0,
        );
        let results: Vec<_> = pf.pass(vec![0, 1], 1).iter().collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("1.png"), "{err}");
    }
}
