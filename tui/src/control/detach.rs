//! Starting a `gantry` child that outlives its parent: own session, no terminal, output
//! appended to the run's `train.log`.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use crate::runfs::RunFolder;

/// The hidden flag a detached child is started with; it calls [`become_detached`].
pub const DETACHED_FLAG: &str = "--detached";

/// Starts `gantry ARGS --detached` with stdin closed and stdout/stderr appended to the
/// run's log. The child is reaped by a background thread while this process lives, and
/// by init after: it never lingers as a zombie.
pub fn spawn(folder: &RunFolder, args: &[OsString]) -> Result<()> {
    let exe = std::env::current_exe().context("finding the gantry executable")?;
    let log_path = folder.log_file();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut child = Command::new(&exe)
        .args(args)
        .arg(DETACHED_FLAG)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    std::thread::Builder::new()
        .name("reap-runner".into())
        .spawn(move || {
            let _ = child.wait();
        })
        .context("starting the reaper thread")?;
    Ok(())
}

/// Called first thing in a detached child: a new session (no controlling terminal, so a
/// dropped SSH connection's SIGHUP never reaches it) and SIGHUP ignored besides.
pub fn become_detached() -> Result<()> {
    // Fails only when already a process-group leader, which a spawned child is not.
    if let Err(e) = rustix::process::setsid() {
        tracing::warn!("setsid: {e}");
    }
    // A registered flag replaces the default action (terminate) with "set the flag".
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup).context("ignoring SIGHUP")?;
    Ok(())
}
