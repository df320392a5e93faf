//! The runner (`gantry train CONFIG.ron`, `gantry resume RUN_DIR`): loads one plugin,
//! trains it on a dataset, evaluates every epoch and writes one run folder through
//! [`crate::runfs`].
//!
//! It owns the training loop and nothing else: data comes from [`crate::data`], plugins
//! from [`crate::plugins`], metrics from [`crate::metrics`]. A plugin failure (error,
//! panic, NaN) ends the run in state `failed` with the reason in `status.ron`; SIGTERM
//! ends it in `stopped` after the current step and a checkpoint. A runner holds the run
//! folder's lock ([`crate::runfs::lock`]) for its whole life, so two runners never write
//! one folder.

mod checkpoints;
mod gpu_memory;
mod logging;
mod run;
mod sink;
mod status_board;
mod synthetic;
mod system_metrics;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result, bail};
use gantry_plugin_api::host::Plugin;

use crate::data::{Dataset, source};
use crate::plugins;
use crate::runfs::lock::RunLock;
use crate::runfs::names;
use crate::runfs::spec::{PluginRecord, RunRecord, RunSpec};
use crate::runfs::status::{State, Status, hostname};
use crate::runfs::{RunFolder, time};
use gpu_memory::GpuMemoryWatch;
use run::Run;
use status_board::StatusBoard;
use system_metrics::SystemSampler;

pub use run::NonFinite;

/// Shaped images kept in memory per split, at most; the rest go to a cache file.
const CACHE_BYTES: usize = 1 << 30;

/// How `gantry train` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub config: PathBuf,
    pub runs: PathBuf,
    /// Run folder name; generated from the time and plugin when absent.
    pub name: Option<String>,
    /// Overrides the config's `device`.
    pub device: Option<String>,
    pub plugin_dirs: Vec<PathBuf>,
    /// Set (by a signal handler) to stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Also print the log to stderr.
    pub echo: bool,
    /// The folder `runs/<name>` was reserved by a launcher (`gantry train --detach`, the
    /// dashboard) in state `queued`: train into it, and record a failure to start there.
    pub queued: bool,
    /// Load plugins even when their file or folder is writable by other users.
    pub allow_insecure_plugins: bool,
    /// `--no-tfevents`: write no TensorBoard event file next to scalars.csv.
    pub no_tfevents: bool,
}

/// How `gantry resume` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    pub dir: PathBuf,
    /// Train until this many epochs in total (default: the run's `train.epochs`).
    pub epochs: Option<u32>,
    pub device: Option<String>,
    pub plugin_dirs: Vec<PathBuf>,
    pub stop: Arc<AtomicBool>,
    pub echo: bool,
    pub allow_insecure_plugins: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub folder: RunFolder,
    pub status: Status,
}

/// Everything checked before training starts: a config, plugin or dataset error fails
/// here, before a fresh run folder is created.
struct Prepared {
    spec: RunSpec,
    plugin: Plugin,
    /// The plugin file on the search path (the runner loaded a private copy of it).
    plugin_path: PathBuf,
    dataset: Dataset,
    device: String,
    /// What `data.synthetic` added, for the run's log.
    synthetic_note: Option<String>,
    /// Why another build of the plugin than the one named was loaded (CUDA unavailable).
    device_note: Option<String>,
    /// Also write a TensorBoard event file next to scalars.csv.
    tfevents: bool,
}

impl Prepared {
    fn steps_per_epoch(&self) -> u64 {
        self.dataset
            .train
            .len()
            .div_ceil(self.spec.train.batch_size as usize) as u64
    }
}

/// Where the plugin comes from and how it may be loaded.
struct PluginSource<'a> {
    dirs: &'a [PathBuf],
    device: Option<&'a str>,
    allow_insecure: bool,
}

/// Loads the plugin (a private copy) and the dataset and checks they suit each other.
/// `config` names the file in errors; relative data paths are resolved against it.
fn prepare(config: &Path, spec: RunSpec, src: &PluginSource<'_>) -> Result<Prepared> {
    let dirs = plugins::search_path(src.dirs);
    let plugin_path = plugins::resolve(&spec.plugin, &dirs).map_err(anyhow::Error::msg)?;
    let device = src
        .device
        .map(str::to_string)
        .unwrap_or_else(|| spec.device.clone());
    let plugins::for_device::Loaded {
        plugin,
        path: plugin_path,
        note: device_note,
    } = plugins::for_device::load(&plugin_path, &dirs, &device, src.allow_insecure)?;
    let input = &plugin.info().description.input;
    let (h, w) = spec.data.size;
    if !input.channels.contains(&spec.data.channels) {
        bail!(
            "{}: data.channels is {}, but plugin {} accepts {:?}",
            config.display(),
            spec.data.channels,
            plugin.info().name,
            input.channels
        );
    }
    let m = input.multiple_of.max(1);
    if h % m != 0 || w % m != 0 || h < input.min_size || w < input.min_size {
        bail!(
            "{}: data.size ({h}, {w}) does not suit plugin {}: height and width must be \
             multiples of {m} and at least {}",
            config.display(),
            plugin.info().name,
            input.min_size
        );
    }
    let mut dataset = open_dataset(config, &spec)?;
    let mut synthetic_note = None;
    if let Some(synth) = &spec.data.synthetic {
        let run = resolve_relative(config, &synth.run);
        let added = synthetic::augment(&mut dataset, synth, &run, &dirs)?;
        synthetic_note = Some(format!(
            "data.synthetic: {added} generated images from {} added to train",
            run.display()
        ));
    }
    Ok(Prepared {
        spec,
        plugin,
        plugin_path,
        dataset,
        device,
        synthetic_note,
        device_note,
        tfevents: true,
    })
}

/// Opens the dataset of `spec`, with relative paths taken relative to the config file.
pub fn open_dataset(config: &Path, spec: &RunSpec) -> Result<Dataset> {
    let mut data = spec.data.clone();
    data.root = resolve_relative(config, &data.root);
    data.csv = data.csv.map(|csv| resolve_relative(config, &csv));
    Ok(source::open(&data, spec.train.seed)?)
}

/// A relative dataset root is taken relative to the config file's folder, so a config
/// and its data can move together.
fn resolve_relative(config: &Path, root: &Path) -> PathBuf {
    if root.is_absolute() || root.exists() {
        return root.to_path_buf();
    }
    config
        .parent()
        .map(|dir| dir.join(root))
        .filter(|p| p.exists())
        .unwrap_or_else(|| root.to_path_buf())
}

/// Runs `gantry train`. Errors before the run folder exists are returned (nothing is
/// written); errors during training end the run in state `failed` and come back in the
/// outcome's status. With `queued`, the reserved folder records a failure to start too.
pub fn train(opts: &TrainOptions) -> Result<TrainOutcome> {
    let cache = opts.runs.join(".cache");
    let src = PluginSource {
        dirs: &opts.plugin_dirs,
        device: opts.device.as_deref(),
        allow_insecure: opts.allow_insecure_plugins,
    };
    if opts.queued {
        return train_queued(opts, &src);
    }
    let spec = RunSpec::load(&opts.config)?;
    let mut prepared = prepare(&opts.config, spec, &src)?;
    prepared.tfevents = !opts.no_tfevents;
    let base = match &opts.name {
        Some(name) => {
            names::check_run_id(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            name.clone()
        }
        None => crate::control::default_run_id(&prepared.plugin.info().name),
    };
    let folder = crate::control::create_unique(&opts.runs, &base)?;
    let lock = RunLock::acquire(&folder.dir)?;
    let _log = logging::to_run_log(&folder.log_file(), opts.echo)?;
    write_record(&folder, &opts.config, &prepared)?;
    drive(&prepared, &folder, lock, opts.stop.clone(), &cache, None)
}

/// `train` into a folder a launcher reserved.
fn train_queued(opts: &TrainOptions, src: &PluginSource<'_>) -> Result<TrainOutcome> {
    let Some(name) = &opts.name else {
        bail!("--queued needs --name: the reserved run folder");
    };
    names::check_run_id(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let folder = RunFolder::new(opts.runs.join(name));
    names::check_no_symlink_escape(&opts.runs, &folder.dir).map_err(anyhow::Error::msg)?;
    let lock = RunLock::acquire(&folder.dir)?;
    let _log = logging::to_run_log(&folder.log_file(), opts.echo)?;
    let mut status = folder
        .read_status()
        .unwrap_or_else(|_| starting_status(0, 0));
    status.pid = std::process::id();
    // A launcher on another host (a Slurm login node) reserved the folder.
    status.host = hostname();
    status.heartbeat = time::now();
    folder.write_status(&status)?;
    let prepared = RunSpec::load(&opts.config)
        .map_err(anyhow::Error::from)
        .and_then(|spec| prepare(&opts.config, spec, src))
        .map(|p| Prepared {
            tfevents: !opts.no_tfevents,
            ..p
        })
        .and_then(|p| write_record(&folder, &opts.config, &p).map(|()| p));
    match prepared {
        Ok(p) => drive(
            &p,
            &folder,
            lock,
            opts.stop.clone(),
            &opts.runs.join(".cache"),
            None,
        ),
        Err(e) => Ok(failed_to_start(folder, status, &e)),
    }
}

/// Runs `gantry resume`: takes the run folder's lock, repairs what a crash left, restores
/// `checkpoints/last` (weights, optimiser, noise, step, data position) and trains on,
/// appending to the same folder.
pub fn resume(opts: &ResumeOptions) -> Result<TrainOutcome> {
    let folder = RunFolder::new(&opts.dir);
    let root = opts
        .dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    names::check_no_symlink_escape(root, &opts.dir).map_err(anyhow::Error::msg)?;
    let lock = RunLock::acquire(&folder.dir)?;
    let _log = logging::to_run_log(&folder.log_file(), opts.echo)?;
    let mut previous = folder.read_status().ok();
    let result = (|| {
        for note in checkpoints::recover(&folder)? {
            tracing::warn!("{note}");
        }
        let record = folder.read_record()?;
        let info = folder.read_checkpoint("last")?.with_context(|| {
            format!("{}: no checkpoints/last to resume from", opts.dir.display())
        })?;
        let mut spec = record.spec;
        if let Some(epochs) = opts.epochs {
            if epochs < info.epoch {
                bail!(
                    "--epochs {epochs}: the run has already trained {} epochs",
                    info.epoch
                );
            }
            spec.train.epochs = epochs;
        } else if let Some(target) = previous.as_ref().map(|s| s.epochs) {
            // An earlier `resume --epochs N` extended the run; a later resume keeps that.
            spec.train.epochs = spec.train.epochs.max(target);
        }
        let src = PluginSource {
            dirs: &opts.plugin_dirs,
            device: opts.device.as_deref(),
            allow_insecure: opts.allow_insecure_plugins,
        };
        tracing::info!(
            "resuming from checkpoints/last: step {}, {} epochs done, batch {} of the next",
            info.step,
            info.epoch,
            info.batch
        );
        prepare(&folder.run_file(), spec, &src)
    })();
    let prepared = match result {
        // Event files go on if the run wrote them: each runner process starts its own.
        Ok(p) => Prepared {
            tfevents: crate::interop::scalar_log::has_event_files(&folder),
            ..p
        },
        Err(e) => {
            let status = previous.take().unwrap_or_else(|| starting_status(0, 0));
            return Ok(failed_to_start(folder, status, &e));
        }
    };
    drive(
        &prepared,
        &folder,
        lock,
        opts.stop.clone(),
        &root.join(".cache"),
        previous,
    )
}

/// Ends a run that could not start (or restart) in state `failed`, with the reason.
fn failed_to_start(folder: RunFolder, mut status: Status, error: &anyhow::Error) -> TrainOutcome {
    tracing::error!("run failed to start: {error:#}");
    status.state = State::Failed;
    status.pid = std::process::id();
    status.ended = Some(time::now());
    status.heartbeat = time::now();
    status.error = Some(format!("{error:#}"));
    if let Err(e) = folder.write_status(&status) {
        tracing::error!("cannot write status: {e}");
    }
    TrainOutcome { folder, status }
}

/// A fresh running status.
fn starting_status(epochs: u32, total_steps: u64) -> Status {
    let now = time::now();
    Status {
        started: Some(now),
        epochs,
        total_steps,
        ..Status::new(State::Running, std::process::id(), now)
    }
}

/// Trains a prepared run in its (locked) folder, from the start or, when `resumed` holds
/// the previous status, from `checkpoints/last`.
fn drive(
    prepared: &Prepared,
    folder: &RunFolder,
    _lock: RunLock,
    stop: Arc<AtomicBool>,
    cache: &Path,
    resumed: Option<Status>,
) -> Result<TrainOutcome> {
    let epochs = prepared.spec.train.epochs;
    let total_steps = prepared.steps_per_epoch() * u64::from(epochs);
    let mut status = starting_status(epochs, total_steps);
    status.slurm_job = crate::control::slurm::runner_job(&prepared.spec.launcher);
    if let Some(old) = &resumed {
        // What the run already achieved stays on display while it catches up.
        status.started = old.started.or(status.started);
        status.best = old.best.clone();
        status.latest = old.latest.clone();
        status.skipped = old.skipped;
        status.skipped_files = old.skipped_files.clone();
        status.epoch = old.epoch;
        status.step = old.step;
        status.peak_gpu_memory_bytes = old.peak_gpu_memory_bytes;
    }
    let board = StatusBoard::start(folder.clone(), status);
    tracing::info!(
        "run {} {}: plugin {} ({}), {} train / {} val / {} test images, classes {:?}",
        folder.id(),
        if resumed.is_some() {
            "resumed"
        } else {
            "started"
        },
        prepared.plugin.info().name,
        prepared.plugin_path.display(),
        prepared.dataset.train.len(),
        prepared.dataset.val.len(),
        prepared.dataset.test.len(),
        prepared.dataset.classes
    );
    if let Some(note) = &prepared.synthetic_note {
        tracing::info!("{note}");
    }
    if let Some(note) = &prepared.device_note {
        tracing::warn!("{note}");
    }
    let result = (|| {
        let mut run = Run::new(prepared, folder, &board, stop, cache)?;
        // Stops (dropped) before the final status below is written.
        let _gpu_memory =
            GpuMemoryWatch::start(board.snapshot().device.as_deref(), board.updater());
        let start = if resumed.is_some() {
            let at = run.restore_last()?;
            let step = run.step();
            board.publish(|s| {
                s.epoch = at.epochs_done;
                s.step = step;
            });
            at
        } else {
            checkpoints::Position::START
        };
        // Started at the step training goes on from, so system.csv's steps only grow.
        let (period, note) = system_metrics::interval();
        if let Some(note) = note {
            tracing::warn!("{note}");
        }
        let _system = SystemSampler::start(
            run.system_csv(),
            board.updater(),
            board.snapshot().device,
            period,
        );
        run.all_epochs(start)
    })();
    let final_state = match &result {
        Ok(true) => State::Stopped,
        Ok(false) => State::Finished,
        Err(_) => State::Failed,
    };
    if let Err(e) = &result {
        tracing::error!("run failed: {e:#}");
    } else {
        tracing::info!("run {}", final_state.as_str());
    }
    board.publish(|s| {
        s.state = final_state;
        s.ended = Some(time::now());
        s.error = result.as_ref().err().map(|e| format!("{e:#}"));
    });
    Ok(TrainOutcome {
        status: board.snapshot(),
        folder: folder.clone(),
    })
}

/// Writes `run.ron`: the spec with data paths made absolute (so `resume` and clones work
/// from any directory) and the plugin that trains it.
fn write_record(folder: &RunFolder, config: &Path, p: &Prepared) -> Result<()> {
    let info = p.plugin.info();
    let mut spec = crate::control::absolutize(config, &p.spec);
    // What was asked for, `--device` included: a resume asks for the same, and the
    // dashboard shows it beside the device actually used.
    spec.device = p.device.clone();
    folder.write_record(&RunRecord {
        id: folder.id(),
        spec,
        plugin: PluginRecord {
            path: p.plugin_path.clone(),
            name: info.name.clone(),
            version: info.version.clone(),
            family: info.family.clone(),
            abi: format!("{}.{}", info.abi_major, info.abi_minor),
        },
        git: git_describe(),
        host: hostname(),
        created: time::now(),
        gantry_version: env!("CARGO_PKG_VERSION").into(),
    })?;
    Ok(())
}

fn git_describe() -> Option<String> {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
