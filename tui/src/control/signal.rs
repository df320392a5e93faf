//! `gantry stop`: SIGTERM (the runner finishes its step, checkpoints and ends `stopped`)
//! or, forced, SIGKILL, sent to the process that holds the run folder's lock; for a run in
//! a Slurm job, `scancel` of that job, which has Slurm signal the runner.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::runfs::RunFolder;
use crate::runfs::lock::RunLock;
use crate::runfs::status::hostname;

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopSent {
    /// SIGTERM: the run will end `stopped` after its current step.
    Term { pid: u32 },
    /// SIGKILL: the run ends at once; resume starts from its last checkpoint.
    Kill { pid: u32 },
    /// `scancel` of the run's Slurm job (`force`: `--signal=KILL`); Slurm sends the
    /// runner SIGTERM (or SIGKILL).
    Scancel { job: u64, force: bool },
}

/// Signals the runner of the run in `dir`: SIGTERM, or SIGKILL when `force`.
pub fn stop(dir: &Path, force: bool) -> Result<StopSent> {
    let folder = RunFolder::new(dir);
    if let Some(job) = super::slurm::active_job(&folder) {
        let Ok(number) = job.parse::<u64>() else {
            bail!(
                "{}: status.ron names Slurm job {job:?}, not a job number",
                dir.display()
            );
        };
        super::slurm::cancel(&folder, &job, force)
            .with_context(|| format!("stopping {}", dir.display()))?;
        return Ok(StopSent::Scancel { job: number, force });
    }
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
