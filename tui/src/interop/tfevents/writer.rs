//! [`EventWriter`]: an event file as PyTorch's SummaryWriter writes one, so TensorBoard
//! (and anything that reads TensorBoard logdirs) shows gantry's scalars. The file is named
//! as TensorFlow names them, `events.out.tfevents.<unix secs>.<host>.<pid>.gantry`, starts
//! with an event carrying `file_version: "brain.Event:2"`, and holds one event per scalar
//! (`simple_value`, the tag unchanged). Events are queued and written by [`flush`] in one
//! `write`, so a concurrent reader sees whole records, or a last one it waits on.
//!
//! [`flush`]: EventWriter::flush

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::frame;
use super::{FILE_PREFIX, GANTRY_SUFFIX, TfEventsError, proto};

/// What the first event of a file says: the format TensorBoard expects.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Appends events to one new event file.
pub struct EventWriter {
    path: PathBuf,
    file: File,
    queued: Vec<u8>,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<secs>.<host>.<pid>.gantry` in `dir` (never an
    /// existing file) and writes its first event.
    pub fn create(dir: &Path, wall_time: f64) -> Result<EventWriter, TfEventsError> {
        let name = file_name(
            wall_time,
            &crate::runfs::status::hostname(),
            std::process::id(),
        );
        let path = dir.join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TfEventsError::io(&path, e))?;
        let mut writer = EventWriter {
            path,
            file,
            queued: Vec::new(),
        };
        frame(
            &proto::encode_file_version(wall_time, FILE_VERSION),
            &mut writer.queued,
        );
        writer.flush()?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one scalar (as an f32 `simple_value`, what TensorBoard's scalar charts
    /// hold). Steps past `i64::MAX` are written as `i64::MAX`.
    pub fn scalar(&mut self, wall_time: f64, step: u64, tag: &str, value: f64) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        frame(
            &proto::encode_scalar(wall_time, step, tag, value as f32),
            &mut self.queued,
        );
    }

    /// Queues one encoded image (a PNG of `width` x `height`, `colorspace` 1 grey, 3 RGB,
    /// 4 RGBA) as a `Summary.Image`, as PyTorch's `add_image` writes it.
    pub fn image(
        &mut self,
        wall_time: f64,
        step: u64,
        tag: &str,
        (width, height, colorspace): (u32, u32, u32),
        png: &[u8],
    ) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let image = proto::SummaryImage {
            height,
            width,
            colorspace,
            encoded: png,
        };
        frame(
            &proto::encode_image(wall_time, step, tag, &image),
            &mut self.queued,
        );
    }

    /// Queues an already encoded `Event` (a test's hand-made one, a TF2-style summary).
    pub fn event(&mut self, event: &[u8]) {
        frame(event, &mut self.queued);
    }

    /// Queues a `SessionLog START` at `step`: TensorBoard drops what this run logged at
    /// and after `step` before it (a resume or a rollback rewriting those steps).
    pub fn restart(&mut self, wall_time: f64, step: u64) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        frame(
            &proto::encode_session_start(wall_time, step),
            &mut self.queued,
        );
    }

    /// Writes what was queued.
    pub fn flush(&mut self) -> Result<(), TfEventsError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.queued)
            .map_err(|e| TfEventsError::io(&self.path, e))?;
        self.queued.clear();
        Ok(())
    }
}

/// `events.out.tfevents.<secs>.<host>.<pid>.gantry`; the host reduced to characters safe
/// in a file name.
pub fn file_name(wall_time: f64, host: &str, pid: u32) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let secs = wall_time.max(0.0) as u64;
    format!("{FILE_PREFIX}{secs}.{host}.{pid}{GANTRY_SUFFIX}")
}
