//! TensorBoard event files (`events.out.tfevents.*`): TFRecord framing with masked
//! CRC-32C ([`record`]), the few protobuf messages scalars and images need ([`proto`]), a
//! tailing reader of scalars and image summaries ([`reader`]) and a writer ([`writer`]).
//!
//! Written by hand: the crates that read these files (`tfrecord`, `tboard`,
//! `tensorboard-rs`) are unmaintained, build protobuf code with `prost-build` or the
//! `protobuf` 2 runtime, and read whole files without tailing a growing one. The subset
//! gantry needs is small and is tested against files PyPI's tensorboard and tensorboardX
//! wrote (`tui/tests/fixtures/tfevents/`), and PyPI tensorboard's reader is run on what
//! [`writer::EventWriter`] writes.

pub mod proto;
pub mod reader;
pub mod record;
pub mod writer;

use std::path::{Path, PathBuf};

pub use reader::{
    EventFileTail, EventItem, EventRead, ImagePoint, MAX_IMAGE_BYTES, ScalarPoint,
    read_run_scalars, read_scalars,
};
pub use record::{MAX_RECORD_BYTES, RecordTail};
pub use writer::EventWriter;

/// What every event file's name starts with (TensorBoard looks for `tfevents` in it).
pub const FILE_PREFIX: &str = "events.out.tfevents.";
/// The suffix of the files gantry's runner writes.
pub const GANTRY_SUFFIX: &str = ".gantry";

/// Errors reading or writing event files; each names the file, and a damaged record its
/// byte offset.
#[derive(Debug, thiserror::Error)]
pub enum TfEventsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: record at byte {offset}: {message}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        message: String,
    },
}

impl TfEventsError {
    pub fn io(path: &Path, source: std::io::Error) -> TfEventsError {
        TfEventsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn corrupt(path: &Path, offset: u64, message: impl Into<String>) -> TfEventsError {
        TfEventsError::Corrupt {
            path: path.to_path_buf(),
            offset,
            message: message.into(),
        }
    }
}

/// Whether a file name is an event file's (TensorFlow's own test: `tfevents` in the
/// name, here with TensorFlow's prefix, and not a hidden temporary).
pub fn is_event_file_name(name: &str) -> bool {
    name.starts_with(FILE_PREFIX)
}

/// The event files directly in `dir`, in name order (the order TensorBoard reads them:
/// the name carries the creation time). At most `limit` directory entries are looked at,
/// so a folder of a million images costs a bounded listing.
pub fn event_files(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .take(limit)
        .filter_map(|e| e.ok())
        .filter(|e| is_event_file_name(&e.file_name().to_string_lossy()))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The event files gantry's runner wrote in a run folder.
pub fn gantry_event_files(dir: &Path) -> Vec<PathBuf> {
    event_files(dir, usize::MAX)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(GANTRY_SUFFIX))
        .collect()
}
