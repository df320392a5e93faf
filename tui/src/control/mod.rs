//! Acting on runs: starting a runner detached, stopping one, resuming one. These are what
//! the dashboard's `n`, `x` and `r` keys call, and what `gantry train --detach`,
//! `gantry stop` and `gantry resume --detach` run, so a script and the dashboard do the
//! same thing.
//!
//! A detached runner is a child `gantry` process in its own session (`setsid`), with
//! stdin closed and stdout/stderr appended to the run's `train.log`: it survives the
//! dashboard quitting and the SSH connection dropping. The run folder is reserved (with
//! `status.ron` in state `queued`) before the child starts, so a dashboard shows the run
//! at once.

mod detach;
mod signal;
pub mod slurm;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::runfs::lock::RunLock;
use crate::runfs::names;
use crate::runfs::spec::RunSpec;
use crate::runfs::status::{State, Status};
use crate::runfs::{RunFolder, time};

pub use detach::become_detached;
pub use signal::{StopSent, stop};

/// The submitted config kept in a reserved run folder; the detached runner reads it.
pub const CONFIG_FILE: &str = "config.ron";

/// How to launch a run.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    pub runs: PathBuf,
    /// Run folder name; from the time and plugin name when absent. Checked with
    /// [`names::check_run_id`].
    pub name: Option<String>,
    /// Overrides the config's `device`.
    pub device: Option<String>,
    pub plugin_dirs: Vec<PathBuf>,
    pub allow_insecure_plugins: bool,
}

/// Starts a detached runner for `spec` and returns its run folder, already in state
/// `queued`. `config` is where the spec came from (relative data paths are resolved
/// against its folder); the spec is validated first, and nothing is written if it fails.
pub fn launch(config: &Path, spec: &RunSpec, opts: &LaunchOptions) -> Result<RunFolder> {
    spec.validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}", config.display()))?;
    let spec = absolutize(config, spec);
    let folder = reserve(&opts.runs, opts.name.as_deref(), &spec.plugin)?;
    let config_path = folder.dir.join(CONFIG_FILE);
    crate::runfs::write_ron(&config_path, &spec)?;
    if spec.launcher.is_slurm() {
        let mut args = Vec::new();
        push_common(&mut args, opts.device.as_deref(), &opts.plugin_dirs);
        if opts.allow_insecure_plugins {
            args.push("--allow-insecure-plugins".into());
        }
        if let Err(e) = slurm::submit_new(&folder, &opts.runs, &spec, &args) {
            let _ = folder.write_status(&failed_before_start(e.to_string()));
            return Err(e).with_context(|| format!("submitting run {} to Slurm", folder.id()));
        }
        return Ok(folder);
    }
    let mut args: Vec<std::ffi::OsString> = vec![
        "train".into(),
        config_path.clone().into(),
        "--runs".into(),
        opts.runs.clone().into(),
        "--name".into(),
        folder.id().into(),
        "--queued".into(),
        "--quiet".into(),
    ];
    push_common(&mut args, opts.device.as_deref(), &opts.plugin_dirs);
    if opts.allow_insecure_plugins {
        args.push("--allow-insecure-plugins".into());
    }
    if let Err(e) = detach::spawn(&folder, &args) {
        let _ = folder.write_status(&failed_before_start(format!("{e:#}")));
        return Err(e);
    }
    Ok(folder)
}

/// How to resume a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// Train until this many epochs in total (default: the run's own `train.epochs`).
    pub epochs: Option<u32>,
    pub device: Option<String>,
    pub plugin_dirs: Vec<PathBuf>,
    pub allow_insecure_plugins: bool,
}

/// Starts a detached `gantry resume` of the run in `dir`, after checking that it can be
/// resumed (not running, has a checkpoint). Its status turns `queued` at once.
pub fn resume_detached(dir: &Path, opts: &ResumeOptions) -> Result<()> {
    let folder = RunFolder::new(dir);
    check_resumable(&folder)?;
    if slurm::is_slurm_run(dir) {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(epochs) = opts.epochs {
            args.push("--epochs".into());
            args.push(epochs.to_string().into());
        }
        push_common(&mut args, opts.device.as_deref(), &opts.plugin_dirs);
        if opts.allow_insecure_plugins {
            args.push("--allow-insecure-plugins".into());
        }
        slurm::resubmit(&folder, &args)
            .with_context(|| format!("resubmitting {} to Slurm", dir.display()))?;
        return Ok(());
    }
    let mut args: Vec<std::ffi::OsString> = vec!["resume".into(), dir.into(), "--quiet".into()];
    if let Some(epochs) = opts.epochs {
        args.push("--epochs".into());
        args.push(epochs.to_string().into());
    }
    push_common(&mut args, opts.device.as_deref(), &opts.plugin_dirs);
    if opts.allow_insecure_plugins {
        args.push("--allow-insecure-plugins".into());
    }
    // Queued with pid 0 until the runner takes the folder's lock and says running.
    if let Ok(mut status) = folder.read_status() {
        status.state = State::Queued;
        status.pid = 0;
        status.error = None;
        status.heartbeat = time::now();
        folder.write_status(&status)?;
    }
    detach::spawn(&folder, &args)
}

/// Why a run cannot be resumed now, if it cannot: it is running (its lock is held), it
/// has no checkpoint, or its folder is not a run.
pub fn check_resumable(folder: &RunFolder) -> Result<()> {
    if !folder.run_file().exists() {
        bail!(
            "{}: not a run folder that can be resumed (no {})",
            folder.dir.display(),
            crate::runfs::RUN_FILE
        );
    }
    if let Some(holder) = RunLock::holder(&folder.dir)? {
        bail!(
            "{}: the run is still running (pid {holder}); stop it first",
            folder.dir.display()
        );
    }
    if folder.read_checkpoint("last")?.is_none() {
        bail!(
            "{}: no checkpoint to resume from (checkpoints/last is missing): the run ended \
             before its first checkpoint; start it again instead",
            folder.dir.display()
        );
    }
    Ok(())
}

/// Creates the run folder for a launch, in state `queued` (pid 0 until the runner starts).
fn reserve(runs: &Path, name: Option<&str>, plugin: &str) -> Result<RunFolder> {
    let base = match name {
        Some(n) => {
            names::check_run_id(n).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            n.to_string()
        }
        None => default_run_id(plugin),
    };
    let folder = create_unique(runs, &base)?;
    folder.write_status(&Status::new(State::Queued, 0, time::now()))?;
    Ok(folder)
}

/// `YYYYmmdd-HHMMSS-<plugin>` with the plugin name made safe for a folder name (a plugin
/// given as a path contributes its file stem).
pub fn default_run_id(plugin: &str) -> String {
    let stem = Path::new(plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| plugin.to_string());
    let stem = stem.strip_prefix("lib").unwrap_or(&stem).replace('_', "-");
    names::sanitize_run_id(&format!("{}-{stem}", time::stamp(time::now())))
}

/// Creates `runs/<base>`, or `runs/<base>-2`, `-3`... when taken: two runs never share a
/// folder. Creation itself is the test, so two launchers racing get different folders.
pub fn create_unique(runs: &Path, base: &str) -> Result<RunFolder> {
    let mut id = base.to_string();
    for n in 2..10_000 {
        match RunFolder::create(runs, &id) {
            Ok(folder) => return Ok(folder),
            Err(crate::runfs::RunFsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                id = format!("{base}-{n}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("{}: no free run folder name for {base}", runs.display())
}

/// The status of a run whose runner never started.
fn failed_before_start(error: String) -> Status {
    let now = time::now();
    Status {
        ended: Some(now),
        error: Some(error),
        ..Status::new(State::Failed, 0, now)
    }
}

fn push_common(args: &mut Vec<std::ffi::OsString>, device: Option<&str>, dirs: &[PathBuf]) {
    if let Some(device) = device {
        args.push("--device".into());
        args.push(device.into());
    }
    for dir in dirs {
        args.push("--plugins".into());
        args.push(dir.clone().into());
    }
}

/// The spec with relative data paths made absolute against the config's folder, so the
/// copy kept in the run folder means the same thing from anywhere.
pub fn absolutize(config: &Path, spec: &RunSpec) -> RunSpec {
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let abs = |p: &Path| -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else if p.exists() {
            // Relative to the working directory, as the runner itself would find it.
            p.to_path_buf()
        } else {
            base.join(p)
        };
        std::path::absolute(&joined).unwrap_or(joined)
    };
    let mut spec = spec.clone();
    spec.data.root = abs(&spec.data.root);
    spec.data.csv = spec.data.csv.as_deref().map(abs);
    if let Some(s) = spec.data.synthetic.as_mut() {
        s.run = abs(&s.run);
    }
    if spec.plugin.contains('/') {
        spec.plugin = abs(Path::new(&spec.plugin)).to_string_lossy().into_owned();
    }
    spec.python = spec.python.as_deref().map(abs);
    spec
}
