//! Checkpoint directories swapped in whole: the plugin saves into a fresh temporary
//! directory, `checkpoint.ron` is added, everything is fsynced, and only then does the
//! directory replace `checkpoints/<which>`. A crash at any point leaves the previous
//! checkpoint (or, between the two renames, `.<which>.old`) intact.

use std::path::Path;

use anyhow::{Context as _, Result};
use gantry_plugin_api::host::PluginInstance;

use super::sink::RunSink;
use crate::runfs::{CheckpointInfo, RunFolder, atomic, write_ron};

/// Where training stands in the data: epochs completed, and batches of the next epoch
/// already trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub epochs_done: u32,
    pub batch: u64,
}

impl Position {
    pub const START: Position = Position {
        epochs_done: 0,
        batch: 0,
    };

    pub fn of(info: &CheckpointInfo) -> Position {
        Position {
            epochs_done: info.epoch,
            batch: info.batch,
        }
    }
}

/// Repairs what a crash during [`write`] can leave: a checkpoint moved aside
/// (`.<which>.old`) but not yet replaced is put back; half-written temporaries go. Also
/// removes the run folder's stale atomic-write temporaries. Returns what it did.
pub fn recover(folder: &RunFolder) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let root = folder.checkpoints_dir();
    for which in ["last", "best"] {
        let target = folder.checkpoint_dir(which);
        let old = root.join(format!(".{which}.old"));
        if old.exists() {
            if target.exists() {
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing {}", old.display()))?;
            } else {
                std::fs::rename(&old, &target)
                    .with_context(|| format!("restoring {}", target.display()))?;
                done.push(format!(
                    "restored checkpoints/{which} from its moved-aside copy"
                ));
            }
        }
    }
    for dir in [&root, &folder.dir] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with('.') && name.contains(".tmp-")) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if removed.is_ok() {
                done.push(format!("removed the interrupted write {}", path.display()));
            }
        }
    }
    Ok(done)
}

/// Writes `checkpoints/<which>` from the instance's current state.
pub fn write(
    folder: &RunFolder,
    which: &str,
    instance: &mut PluginInstance,
    sink: &mut RunSink,
    info: &CheckpointInfo,
) -> Result<()> {
    let root = folder.checkpoints_dir();
    let target = folder.checkpoint_dir(which);
    let tmp = root.join(format!(".{which}.tmp-{}", std::process::id()));
    let old = root.join(format!(".{which}.old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    instance.save(&tmp, sink)?;
    write_ron(&tmp.join("checkpoint.ron"), info)?;
    sync_files(&tmp)?;
    if target.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        std::fs::rename(&target, &old).with_context(|| format!("moving {}", target.display()))?;
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("moving {}", tmp.display()))?;
    atomic::sync_dir(&root);
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

fn sync_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", path.display()))?;
        }
    }
    atomic::sync_dir(dir);
    Ok(())
}
