//! Checkpoint directories swapped in whole: the plugin saves into a fresh temporary
//! directory, `checkpoint.ron` is added, everything is fsynced, and only then does the
//! directory replace `checkpoints/<which>`. A crash at any point leaves the previous
//! checkpoint (or, between the two renames, `.<which>.old`) intact.

use std::path::Path;

use anyhow::{Context as _, Result};
use gantry_plugin_api::host::PluginInstance;

use super::sink::RunSink;
use crate::runfs::{CheckpointInfo, RunFolder, atomic, write_ron};

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
