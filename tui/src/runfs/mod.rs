//! The run-folder format: one folder per run under a run root, every file readable with
//! `cat` or pandas, each written so a reader never sees a half-written state. This module
//! owns the format: the trainer writes runs and the dashboard reads them only through it.
//!
//! | file | written | content |
//! |---|---|---|
//! | `run.ron` | once, atomically | [`spec::RunRecord`] |
//! | `status.ron` | atomically, on change and every [`status::HEARTBEAT_SECS`] | [`status::Status`] |
//! | `scalars.csv` | append-only | [`scalars::ScalarRow`] lines |
//! | `system.csv` | append-only, every few seconds | [`scalars::ScalarRow`] lines (CPU, memory, GPUs) |
//! | `scores/epoch-NNNN.csv` | once per evaluation | [`scores::ScoreRow`] lines |
//! | `samples/epoch-NNNN-NAME.png` | once per evaluation | image grids |
//! | `checkpoints/{last,best}/` | directory swap | plugin files + `checkpoint.ron` |
//! | `train.log` | append | the runner's log |

pub mod atomic;
pub mod confusion;
pub mod csv;
pub mod embedding;
pub mod launcher;
pub mod lock;
pub mod names;
pub mod samples;
pub mod scalars;
pub mod scores;
pub mod spec;
pub mod status;
pub mod tail;
pub mod time;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use spec::RunRecord;
use status::Status;

/// Errors reading or writing run folders; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum RunFsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl RunFsError {
    pub fn io(path: &Path, source: std::io::Error) -> RunFsError {
        RunFsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub const RUN_FILE: &str = "run.ron";
pub const STATUS_FILE: &str = "status.ron";
pub const SCALARS_FILE: &str = "scalars.csv";
/// System metrics over time (`sys/cpu_percent`, `gpu0/util`...), in scalars.csv's format.
pub const SYSTEM_FILE: &str = "system.csv";
pub const LOG_FILE: &str = "train.log";

/// Paths inside one run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    pub dir: PathBuf,
}

/// What a checkpoint directory's `checkpoint.ron` records besides the plugin's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Optimisation steps completed when it was written.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u32,
    /// The judged metric at that point, if any.
    pub metric: Option<(String, f64)>,
    pub written: f64,
    /// Data-order position: batches of epoch `epoch + 1` already trained (0 after an
    /// evaluation). Each epoch's order is drawn from (seed, epoch), so this and `epoch`
    /// say exactly where training resumes.
    #[serde(default)]
    pub batch: u64,
    /// The best `val/loss` seen so far (what `checkpoints/best` holds).
    #[serde(default)]
    pub best: Option<f64>,
    /// The learning rate in use (lower than the config's after a NaN rollback).
    #[serde(default)]
    pub lr: Option<f64>,
    /// NaN rollbacks done so far.
    #[serde(default)]
    pub rollbacks: u32,
}

impl RunFolder {
    pub fn new(dir: impl Into<PathBuf>) -> RunFolder {
        RunFolder { dir: dir.into() }
    }

    /// Creates a new run folder (and its sub-folders) under `root`; fails if it exists.
    pub fn create(root: &Path, id: &str) -> Result<RunFolder, RunFsError> {
        std::fs::create_dir_all(root).map_err(|e| RunFsError::io(root, e))?;
        let dir = root.join(id);
        std::fs::create_dir(&dir).map_err(|e| RunFsError::io(&dir, e))?;
        let folder = RunFolder { dir };
        for sub in [
            folder.scores_dir(),
            folder.samples_dir(),
            folder.checkpoints_dir(),
        ] {
            std::fs::create_dir_all(&sub).map_err(|e| RunFsError::io(&sub, e))?;
        }
        Ok(folder)
    }

    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn run_file(&self) -> PathBuf {
        self.dir.join(RUN_FILE)
    }
    pub fn status_file(&self) -> PathBuf {
        self.dir.join(STATUS_FILE)
    }
    pub fn scalars_file(&self) -> PathBuf {
        self.dir.join(SCALARS_FILE)
    }
    pub fn system_file(&self) -> PathBuf {
        self.dir.join(SYSTEM_FILE)
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
    pub fn scores_dir(&self) -> PathBuf {
        self.dir.join("scores")
    }
    pub fn samples_dir(&self) -> PathBuf {
        self.dir.join("samples")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    pub fn scores_file(&self, epoch: u32) -> PathBuf {
        self.scores_dir().join(format!("epoch-{epoch:04}.csv"))
    }
    pub fn confusion_dir(&self) -> PathBuf {
        self.dir.join("confusion")
    }
    pub fn confusion_file(&self, epoch: u32, split: &str) -> PathBuf {
        self.confusion_dir()
            .join(format!("epoch-{epoch:04}-{split}.csv"))
    }
    pub fn embedding_file(&self, epoch: u32, split: &str) -> PathBuf {
        self.dir
            .join("embeddings")
            .join(format!("epoch-{epoch:04}-{split}.csv"))
    }
    /// The newest embedding file: the latest epoch, test before val.
    pub fn latest_embedding_file(&self) -> Option<PathBuf> {
        latest_split_file(&self.dir.join("embeddings"))
    }
    /// The newest confusion matrix file: the latest epoch, test before val.
    pub fn latest_confusion_file(&self) -> Option<PathBuf> {
        latest_split_file(&self.confusion_dir())
    }
    /// Writes a classifier's confusion matrix for one split at one evaluation.
    pub fn write_confusion(
        &self,
        epoch: u32,
        split: &str,
        classes: &[String],
        counts: &[Vec<usize>],
    ) -> Result<(), RunFsError> {
        confusion::write(&self.confusion_file(epoch, split), classes, counts)
    }
    pub fn sample_file(&self, epoch: u32, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.samples_dir()
            .join(format!("epoch-{epoch:04}-{safe}.png"))
    }
    /// `checkpoints/last` or `checkpoints/best`.
    pub fn checkpoint_dir(&self, which: &str) -> PathBuf {
        self.checkpoints_dir().join(which)
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<(), RunFsError> {
        write_ron(&self.run_file(), record)
    }

    pub fn read_record(&self) -> Result<RunRecord, RunFsError> {
        read_ron(&self.run_file())
    }

    pub fn write_status(&self, status: &Status) -> Result<(), RunFsError> {
        write_ron(&self.status_file(), status)
    }

    pub fn read_status(&self) -> Result<Status, RunFsError> {
        read_ron(&self.status_file())
    }

    /// Epochs that have a score file, ascending.
    pub fn score_epochs(&self) -> Vec<u32> {
        let mut epochs: Vec<u32> = read_dir_names(&self.scores_dir())
            .iter()
            .filter_map(|n| n.strip_prefix("epoch-")?.strip_suffix(".csv")?.parse().ok())
            .collect();
        epochs.sort_unstable();
        epochs
    }

    /// Sample images, sorted by epoch then name.
    pub fn sample_files(&self) -> Vec<SampleFile> {
        let dir = self.samples_dir();
        let mut files: Vec<SampleFile> = read_dir_names(&dir)
            .into_iter()
            .filter_map(|n| {
                let rest = n.strip_prefix("epoch-")?.strip_suffix(".png")?;
                let (epoch, name) = rest.split_once('-')?;
                Some(SampleFile {
                    epoch: epoch.parse().ok()?,
                    name: name.to_string(),
                    path: dir.join(&n),
                    png: None,
                })
            })
            .collect();
        files.sort_by(|a, b| (a.epoch, &a.name).cmp(&(b.epoch, &b.name)));
        files
    }

    /// Reads `checkpoint.ron` of `checkpoints/<which>`, if that checkpoint exists.
    pub fn read_checkpoint(&self, which: &str) -> Result<Option<CheckpointInfo>, RunFsError> {
        let path = self.checkpoint_dir(which).join("checkpoint.ron");
        if !path.exists() {
            return Ok(None);
        }
        read_ron(&path).map(Some)
    }
}

/// How gantry reads RON: optional fields may be written bare (`lr: 0.001`, not
/// `lr: Some(0.001)`), as people write configs.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// A sample image of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// The epoch; for an image summary of a TensorBoard run, its step (past `u32::MAX`
    /// read as `u32::MAX`).
    pub epoch: u32,
    /// `val-reconstruction`, `test-reconstruction`...; an image summary's tag.
    pub name: String,
    /// The PNG file; for an image held in memory only a key naming it (no such file).
    pub path: PathBuf,
    /// The encoded image itself, for one that lives in no file of its own (an image
    /// summary inside a TensorBoard event file).
    pub png: Option<std::sync::Arc<[u8]>>,
}

/// File names in a folder (none if it is missing), skipping hidden temporaries.
fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Serialises to pretty RON and writes atomically.
pub fn write_ron<T: Serialize>(path: &Path, value: &T) -> Result<(), RunFsError> {
    let text =
        ron::ser::to_string_pretty(value, ron::ser::PrettyConfig::default()).map_err(|e| {
            RunFsError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
    atomic::write(path, format!("{text}\n").as_bytes())
}

/// Largest run-folder text file read whole (RON, score and matrix CSVs). Real ones are
/// kilobytes to a few megabytes; anything bigger is a mistake or an attack, refused
/// before it is held in memory.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Reads a whole text file of a run folder: a regular file only (a FIFO would block, a
/// device never end), at most [`MAX_TEXT_BYTES`], valid UTF-8.
pub fn read_text(path: &Path) -> Result<String, RunFsError> {
    use std::io::Read;
    let io = |e| RunFsError::io(path, e);
    let file = tail::open_regular(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(RunFsError::Invalid {
            path: path.to_path_buf(),
            message: format!("larger than {} MiB; not read", MAX_TEXT_BYTES >> 20),
        });
    }
    String::from_utf8(bytes).map_err(|e| RunFsError::Invalid {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text ({e})"),
    })
}

/// Reads and parses a RON file; errors carry line and column.
pub fn read_ron<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RunFsError> {
    let text = read_text(path)?;
    ron_options()
        .from_str(&text)
        .map_err(|e| RunFsError::Parse {
            path: path.to_path_buf(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })
}

/// One run as a listing shows it: what could be read, and what could not.
#[derive(Debug, Clone)]
pub struct RunListing {
    pub folder: RunFolder,
    pub record: Result<RunRecord, String>,
    pub status: Result<Status, String>,
}

/// Every run folder directly under `root` (folders holding a `run.ron` or `status.ron`),
/// sorted by id. Unreadable files become per-run errors, never a failed listing.
pub fn list_runs(root: &Path) -> Result<Vec<RunListing>, RunFsError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(RunFsError::io(root, e)),
    };
    let mut runs: Vec<RunListing> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && (p.join(RUN_FILE).exists() || p.join(STATUS_FILE).exists()))
        .map(|dir| {
            let folder = RunFolder::new(dir);
            RunListing {
                record: folder.read_record().map_err(|e| e.to_string()),
                status: folder.read_status().map_err(|e| e.to_string()),
                folder,
            }
        })
        .collect();
    runs.sort_by_key(|r| r.folder.id());
    Ok(runs)
}

/// In a folder of `epoch-NNNN-{val,test}.csv` files, the latest epoch's, test before val.
fn latest_split_file(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            let rest = name.strip_prefix("epoch-")?;
            let (epoch, split) = rest.split_once('-')?;
            let rank = match split {
                "test" => 1,
                "val" => 0,
                _ => return None,
            };
            Some(((epoch.parse::<u32>().ok()?, rank), p))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, p)| p)
}
