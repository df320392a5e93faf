//! `gantry stop`: SIGTERM (the runner finishes its step, checkpoints and ends `stopped`)
//! or, forced, SIGKILL, sent to the process that holds the run folder's lock.

use std::path::Path;

use anyhow::{Result, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::runfs::RunFolder;
use crate::runfs::lock::RunLock;
use crate::runfs::status::hostname;

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSent {
    /// SIGTERM: the run will end `stopped` after its current step.
    Term { pid: u32 },
    /// SIGKILL: the run ends at once; resume starts from its last checkpoint.
    Kill { pid: u32 },
}

/// Signals the runner of the run in `dir`: SIGTERM, or SIGKILL when `force`.
pub fn stop(dir: &Path, force: bool) -> Result<StopSent> {
    let folder = RunFolder::new(dir);
    if let Ok(status) = folder.read_status()
        && status.host != hostname()
    {
        bail!(
            "{}: the run's runner is on host {}; stop it there (this is {})",
            dir.display(),
            status.host,
            hostname()
        );
    }
    let Some(pid) = RunLock::holder(dir)? else {
        bail!("{}: no runner is running for this run", dir.display());
    };
    let Some(target) = Pid::from_raw(pid as i32) else {
        bail!(
            "{}: the lock names pid {pid}, which is not a process",
            dir.display()
        );
    };
    let signal = if force { Signal::KILL } else { Signal::TERM };
    kill_process(target, signal)
        .map_err(|e| anyhow::anyhow!("{}: signalling pid {pid}: {e}", dir.display()))?;
    Ok(if force {
        StopSent::Kill { pid }
    } else {
        StopSent::Term { pid }
    })
}
