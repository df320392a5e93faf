//! Runs as Slurm batch jobs, for a run config with `launcher: Slurm(..)`: the run folder is
//! reserved here as for a detached launch (state `queued`), [`script`] writes
//! `slurm.sbatch` into it, and `sbatch --parsable` submits it; the job id goes into
//! `status.ron` (`slurm_job`). On the node the script runs `gantry train --queued` (or
//! `gantry resume --local` once there is a checkpoint) in that same folder, so the run
//! root must be on a filesystem the nodes share. Stop is `scancel` (Slurm sends SIGTERM,
//! which the runner handles as always), resume submits the script again, and [`job`]
//! reads a job's state for the dashboard.
//!
//! A job is submitted held (`--hold`), its id recorded, then released: its runner never
//! starts before `status.ron` names its job, so the two never race on that file.
//!
//! This module only runs the Slurm client tools; it never talks to slurmctld itself and
//! never signals processes. Missing tools, a controller that does not answer and refusals
//! come back as [`SlurmError`]s quoting what the tool said.

pub mod job;
pub mod script;
mod tool;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runfs::launcher::Launcher;
use crate::runfs::spec::RunSpec;
use crate::runfs::status::State;
use crate::runfs::{RunFolder, RunFsError, time};

pub use job::{JobState, JobStatus};
pub use script::SCRIPT_FILE;

/// How long `sbatch`, `scontrol release` or `scancel` may take.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong talking to Slurm; each names the command or the run.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{tool} not found: is Slurm installed on this host?")]
    NotInstalled { tool: String },
    #[error("{command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{command}: no answer within {secs} s (is slurmctld running and reachable?)")]
    Timeout { command: String, secs: f64 },
    #[error("{command}: unexpected output {output:?}")]
    Unexpected { command: String, output: String },
    #[error("{what} is not UTF-8, which an sbatch script cannot hold")]
    NotUtf8 { what: String },
    #[error("{dir}: {message}")]
    Refused { dir: PathBuf, message: String },
    #[error(transparent)]
    RunFs(#[from] RunFsError),
}

/// The launcher a run was started with: its `run.ron`'s, else (the runner has not
/// written run.ron yet) its submitted `config.ron`'s; `None` when neither reads.
pub fn launcher_of(folder: &RunFolder) -> Option<Launcher> {
    if let Ok(record) = folder.read_record() {
        return Some(record.spec.launcher);
    }
    RunSpec::load(&folder.dir.join(super::CONFIG_FILE))
        .ok()
        .map(|spec| spec.launcher)
}

/// Whether the run in `dir` is launched through Slurm.
pub fn is_slurm_run(dir: &Path) -> bool {
    launcher_of(&RunFolder::new(dir)).is_some_and(|l| l.is_slurm())
}

/// The Slurm job of a run that has not ended: what `gantry stop` cancels.
pub fn active_job(folder: &RunFolder) -> Option<String> {
    let status = folder.read_status().ok()?;
    if status.state.is_final() {
        return None;
    }
    status.slurm_job
}

/// The job a runner records in `status.ron`: for a run with a Slurm launcher, the job it
/// runs in (`SLURM_JOB_ID`, so a script resubmitted by hand records its new job);
/// nothing for a local run, or a Slurm run resumed outside Slurm (`resume --local`).
pub fn runner_job(launcher: &Launcher) -> Option<String> {
    if !launcher.is_slurm() {
        return None;
    }
    std::env::var("SLURM_JOB_ID")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Writes `slurm.sbatch` into a freshly reserved run folder (state `queued`, its
/// `config.ron` written) and submits it. Returns the job id, also recorded in
/// `status.ron`. `runner_args` (`--device`, `--plugins`...) go to the runner.
pub fn submit_new(
    folder: &RunFolder,
    runs: &Path,
    spec: &RunSpec,
    runner_args: &[OsString],
) -> Result<String, SlurmError> {
    let Some(slurm) = spec.launcher.slurm() else {
        return Err(SlurmError::Refused {
            dir: folder.dir.clone(),
            message: "the run's launcher is not Slurm".into(),
        });
    };
    let folder = absolute_folder(folder)?;
    let runs = absolute(runs)?;
    let gantry = std::env::current_exe().map_err(|source| SlurmError::Spawn {
        command: "finding the gantry executable".into(),
        source,
    })?;
    let text = script::render(&script::ScriptPlan {
        folder: &folder,
        runs: &runs,
        gantry: &gantry,
        slurm,
        runner_args,
    })?;
    let path = folder.dir.join(SCRIPT_FILE);
    crate::runfs::atomic::write(&path, text.as_bytes())?;
    submit(&folder, &path, &[])
}

/// Submits a stopped, failed or crashed Slurm run's `slurm.sbatch` again (rewritten from
/// `run.ron` if it was deleted); on the node it goes on from `checkpoints/last`.
/// `resume_args` (`--epochs`, `--device`...) go to `gantry resume` there. Refused while
/// the run's previous job is still queued or running.
pub fn resubmit(folder: &RunFolder, resume_args: &[OsString]) -> Result<String, SlurmError> {
    let folder = absolute_folder(folder)?;
    let status = folder.read_status().ok();
    if let Some(old) = status.as_ref().and_then(|s| s.slurm_job.as_deref())
        && let Some(state) = job::query(old)?
        && !state.state.is_final()
    {
        let message = if state.state == JobState::Completing {
            format!("its Slurm job {old} is still ending ({state}); try again in a moment")
        } else {
            format!("its Slurm job {old} is still {state}; stop it first")
        };
        return Err(SlurmError::Refused {
            dir: folder.dir.clone(),
            message,
        });
    }
    let path = folder.dir.join(SCRIPT_FILE);
    if !path.exists() {
        let record = folder.read_record()?;
        let runs = folder
            .dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let gantry = std::env::current_exe().map_err(|source| SlurmError::Spawn {
            command: "finding the gantry executable".into(),
            source,
        })?;
        let Some(slurm) = record.spec.launcher.slurm() else {
            return Err(SlurmError::Refused {
                dir: folder.dir.clone(),
                message: "the run's launcher is not Slurm".into(),
            });
        };
        let text = script::render(&script::ScriptPlan {
            folder: &folder,
            runs: &runs,
            gantry: &gantry,
            slurm,
            runner_args: &[],
        })?;
        crate::runfs::atomic::write(&path, text.as_bytes())?;
    }
    submit(&folder, &path, resume_args)
}

/// `sbatch --parsable --hold SCRIPT ARGS`, then the job id into `status.ron` (state
/// `queued`, pid 0 until the runner starts), then `scontrol release`.
fn submit(folder: &RunFolder, script: &Path, args: &[OsString]) -> Result<String, SlurmError> {
    let script_arg = script.to_str().ok_or_else(|| SlurmError::NotUtf8 {
        what: format!("path {}", script.display()),
    })?;
    let mut argv = vec!["--parsable", "--hold", script_arg];
    for a in args {
        argv.push(a.to_str().ok_or_else(|| SlurmError::NotUtf8 {
            what: format!("argument {a:?}"),
        })?);
    }
    let command = format!("sbatch {}", script.display());
    let out = tool::run("sbatch", &argv, SUBMIT_TIMEOUT)?.ok(&command)?;
    let job = parse_job_id(&out.stdout).ok_or_else(|| SlurmError::Unexpected {
        command: command.clone(),
        output: out.stdout.clone(),
    })?;
    let recorded = (|| {
        let mut status = folder.read_status()?;
        status.state = State::Queued;
        status.pid = 0;
        status.error = None;
        status.ended = None;
        status.heartbeat = time::now();
        status.slurm_job = Some(job.clone());
        folder.write_status(&status)
    })();
    let released = recorded.map_err(SlurmError::from).and_then(|()| {
        tool::run("scontrol", &["release", &job], SUBMIT_TIMEOUT)?
            .ok(&format!("scontrol release {job}"))
            .map(drop)
    });
    if let Err(e) = released {
        // A held job nobody will release: take it out of the queue.
        let _ = tool::run("scancel", &[&job], SUBMIT_TIMEOUT);
        return Err(e);
    }
    Ok(job)
}

/// `sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// Cancels the run's job: `scancel JOB` (Slurm sends SIGTERM, then SIGKILL after its
/// KillWait; the runner checkpoints and ends `stopped` on the SIGTERM), or with `force`
/// `scancel --full --signal=KILL JOB`. A job cancelled before its runner started leaves
/// the run `stopped` here, since no runner will.
pub fn cancel(folder: &RunFolder, job: &str, force: bool) -> Result<(), SlurmError> {
    let args: &[&str] = if force {
        &["--full", "--signal=KILL", job]
    } else {
        &[job]
    };
    tool::run("scancel", args, SUBMIT_TIMEOUT)?.ok(&format!("scancel {}", args.join(" ")))?;
    if let Ok(mut status) = folder.read_status()
        && status.state == State::Queued
        && status.pid == 0
        && crate::runfs::lock::RunLock::holder(&folder.dir)?.is_none()
    {
        let now = time::now();
        status.state = State::Stopped;
        status.ended = Some(now);
        status.heartbeat = now;
        status.error = Some(format!("Slurm job {job} cancelled before it started"));
        folder.write_status(&status)?;
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, SlurmError> {
    std::path::absolute(path).map_err(|source| SlurmError::Spawn {
        command: format!("making {} absolute", path.display()),
        source,
    })
}

fn absolute_folder(folder: &RunFolder) -> Result<RunFolder, SlurmError> {
    Ok(RunFolder::new(absolute(&folder.dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfs::status::Status;

    #[test]
    fn parsable_output_gives_the_job_id() {
        assert_eq!(parse_job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("1234;cluster\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("Submitted batch job 1\n"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn only_a_slurm_runner_inside_a_job_records_one() {
        // SLURM_JOB_ID is whatever this test process inherited; a local launcher ignores it.
        assert_eq!(runner_job(&Launcher::Local), None);
    }

    #[test]
    fn the_active_job_is_that_of_an_unfinished_run() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path());
        assert_eq!(active_job(&folder), None);
        let mut status = Status {
            slurm_job: Some("77".into()),
            ..Status::new(State::Queued, 0, 1.0)
        };
        folder.write_status(&status).unwrap();
        assert_eq!(active_job(&folder).as_deref(), Some("77"));
        status.state = State::Finished;
        folder.write_status(&status).unwrap();
        assert_eq!(active_job(&folder), None);
    }
}
