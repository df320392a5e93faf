//! What the runner collects from one plugin call: scalars, per-sample scores, images and
//! instance facts; plugin log lines go straight to the run's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gantry_plugin_api::host::HostSink;
use gantry_plugin_api::{ImageRef, Level};

/// An emitted image batch, copied.
#[derive(Debug, Clone)]
pub struct EmittedImage {
    pub name: String,
    pub data: Vec<f32>,
    pub shape: [usize; 4],
    pub columns: usize,
}

/// Collects one call's output. Cleared by the caller between calls.
pub struct RunSink {
    pub scalars: Vec<(String, f64)>,
    /// Per-sample values by name, in emission order.
    pub scores: Vec<(String, Vec<f32>)>,
    pub images: Vec<EmittedImage>,
    /// Per-sample vectors by name: (name, row-major values, columns).
    pub vectors: Vec<(String, Vec<f32>, usize)>,
    pub info: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
}

impl RunSink {
    pub fn new(stop: Arc<AtomicBool>) -> RunSink {
        RunSink {
            scalars: Vec::new(),
            scores: Vec::new(),
            images: Vec::new(),
            vectors: Vec::new(),
            info: Vec::new(),
            stop,
        }
    }

    /// Forgets the last call's scalars, scores and images (info is kept).
    pub fn clear(&mut self) {
        self.scalars.clear();
        self.scores.clear();
        self.images.clear();
        self.vectors.clear();
    }
}

impl HostSink for RunSink {
    fn scalar(&mut self, name: &str, value: f64) {
        self.scalars.push((name.to_string(), value));
    }

    fn scores(&mut self, name: &str, values: &[f32]) {
        self.scores.push((name.to_string(), values.to_vec()));
    }

    fn image(&mut self, name: &str, image: ImageRef<'_>) {
        self.images.push(EmittedImage {
            name: name.to_string(),
            data: image.data.to_vec(),
            shape: image.shape,
            columns: image.columns,
        });
    }

    fn vectors(&mut self, name: &str, values: &[f32], _rows: usize, cols: usize) {
        self.vectors.push((name.to_string(), values.to_vec(), cols));
    }

    fn info(&mut self, key: &str, value: &str) {
        tracing::info!(target: "plugin", "{key}: {value}");
        self.info.retain(|(k, _)| k != key);
        self.info.push((key.to_string(), value.to_string()));
    }

    fn log(&mut self, level: Level, text: &str) {
        match level {
            Level::Error => tracing::error!(target: "plugin", "{text}"),
            Level::Warn => tracing::warn!(target: "plugin", "{text}"),
            Level::Info => tracing::info!(target: "plugin", "{text}"),
            Level::Debug => tracing::debug!(target: "plugin", "{text}"),
        }
    }

    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
