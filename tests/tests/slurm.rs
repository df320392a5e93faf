//! The Slurm launcher against a real Slurm (`.ci/slurm-up`: munged, slurmctld and slurmd
//! as a one-node cluster with partition `debug`): a short run submitted with
//! `gantry train` goes to COMPLETED and finishes with its checkpoint and scalars; a long
//! one is cancelled with `gantry stop` (job CANCELLED, run stopped, not crashed) and
//! resubmitted with `gantry resume` (a new job); a job held back in the queue stays a
//! queued run until `gantry stop` cancels it. Skipped unless `GANTRY_SLURM=1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry::control::slurm::job::{self, JobState, JobStatus};
use gantry::runfs::RunFolder;
use gantry::runfs::status::{Liveness, State, Status, hostname};
use gantry_e2e::{gantry, plugin_dir, scalar_rows, small_config};

/// Longest a job may take to be scheduled and train 2 epochs of 96 tiny images.
const FINISH: Duration = Duration::from_secs(300);
/// Longest a cancelled job may take to end (KillWait is 30 s in .ci/slurm-up).
const CANCEL: Duration = Duration::from_secs(120);

fn enabled(test: &str) -> bool {
    let on = std::env::var("GANTRY_SLURM").is_ok_and(|v| v == "1");
    if !on {
        eprintln!(
            "{test}: skipped: set GANTRY_SLURM=1 with a Slurm cluster up \
             (eval \"$(.ci/slurm-up)\" starts a one-node one)"
        );
    }
    on
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// small_config with `epochs` and a Slurm launcher on partition `debug`, plus `extra`.
fn write_config(dir: &Path, epochs: u32, extra: &str) -> PathBuf {
    let data = gantry_e2e::shared_synth(96, 16, 5);
    let launcher = format!(
        "device: \"cpu\",\n    launcher: Slurm(partition: Some(\"debug\"), \
         time: Some(\"00:20:00\"), extra: [{extra}]),"
    );
    let text = small_config(data, epochs).replace("device: \"cpu\",", &launcher);
    assert!(text.contains("launcher: Slurm"), "{text}");
    let cfg = dir.join(format!("cfg-{epochs}.ron"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `gantry train CFG` (a Slurm launcher submits): the run folder and its job id.
fn submit(cfg: &Path, runs: &Path, name: &str) -> (PathBuf, String) {
    let plugins = plugin_dir();
    let (code, out, err) = gantry(&[
        "train",
        s(cfg),
        "--runs",
        s(runs),
        "--name",
        name,
        "--plugins",
        s(&plugins),
    ]);
    assert_eq!(code, 0, "gantry train (Slurm) failed: {err}");
    let run = PathBuf::from(out.trim());
    assert_eq!(run, runs.join(name), "stdout is the run folder: {out}");
    let job = status(&run)
        .slurm_job
        .expect("status.ron records the Slurm job");
    assert!(err.contains(&format!("Slurm job {job}")), "{err}");
    (run, job)
}

fn status(run: &Path) -> Status {
    RunFolder::new(run).read_status().unwrap()
}

fn job_state(job_id: &str) -> Option<JobStatus> {
    job::query(job_id).unwrap_or_else(|e| panic!("asking Slurm about job {job_id}: {e}"))
}

/// Polls `ok` every 200 ms until it holds; fails with `what` and `context()` after `limit`.
fn wait_until(
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a failure message shows of a run: its status, log tail and Slurm output.
fn describe(run: &Path, job_id: &str) -> String {
    let tail = |p: PathBuf| {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    format!(
        "job {job_id}: {:?}\nstatus.ron: {:?}\ntrain.log:\n{}\nslurm-{job_id}.out:\n{}",
        job::query(job_id),
        RunFolder::new(run).read_status(),
        tail(run.join("train.log")),
        tail(run.join(format!("slurm-{job_id}.out")))
    )
}

fn now() -> f64 {
    gantry::runfs::time::now()
}

#[test]
fn a_short_run_is_submitted_and_followed_to_completed() {
    if !enabled("a_short_run_is_submitted_and_followed_to_completed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 2, "");
    let runs = dir.path().join("runs");
    let (run, job_id) = submit(&cfg, &runs, "short");

    let script = std::fs::read_to_string(run.join("slurm.sbatch")).unwrap();
    for line in [
        "#SBATCH --job-name=gantry-short",
        "#SBATCH --partition=debug",
        "#SBATCH --time=00:20:00",
        &format!("#SBATCH --output={}/slurm-%j.out", s(&run)),
    ] {
        assert!(script.contains(line), "{line} missing from:\n{script}");
    }

    wait_until(
        "the job to be COMPLETED and the run finished",
        FINISH,
        || {
            job_state(&job_id).is_some_and(|j| j.state == JobState::Completed)
                && status(&run).state == State::Finished
        },
        || describe(&run, &job_id),
    );
    let done = status(&run);
    assert_eq!(done.slurm_job.as_deref(), Some(job_id.as_str()));
    assert_eq!(done.epoch, 2);
    assert_eq!(done.host, hostname());
    assert!(done.error.is_none(), "{:?}", done.error);
    assert!(
        RunFolder::new(&run)
            .read_checkpoint("last")
            .unwrap()
            .is_some_and(|c| c.epoch == 2),
        "checkpoints/last after 2 epochs"
    );
    let rows = scalar_rows(&run);
    assert!(
        rows.iter().any(|r| r.1 == 2 && r.2 == "val/loss"),
        "{rows:?}"
    );
    assert!(run.join(format!("slurm-{job_id}.out")).exists());
    // `gantry stop` on a finished run cancels nothing.
    let (code, _, err) = gantry(&["stop", s(&run)]);
    assert_ne!(code, 0);
    assert!(err.contains("no runner is running"), "{err}");
}

#[test]
fn a_long_run_is_cancelled_by_stop_and_resubmitted_by_resume() {
    if !enabled("a_long_run_is_cancelled_by_stop_and_resubmitted_by_resume") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 200, "");
    let runs = dir.path().join("runs");
    let (run, job_id) = submit(&cfg, &runs, "long");
    let folder = RunFolder::new(&run);

    // Running, with a checkpoint to stop at and resume from.
    wait_until(
        "the runner to train its first epoch",
        FINISH,
        || {
            status(&run).state == State::Running
                && folder.read_checkpoint("last").ok().flatten().is_some()
        },
        || describe(&run, &job_id),
    );
    assert_eq!(job_state(&job_id).map(|j| j.state), Some(JobState::Running));
    let (code, _, err) = gantry(&["stop", s(&run)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("Slurm job {job_id}")), "{err}");
    wait_until(
        "the job to be CANCELLED and the run stopped",
        CANCEL,
        || {
            job_state(&job_id).is_some_and(|j| j.state == JobState::Cancelled)
                && status(&run).state == State::Stopped
        },
        || describe(&run, &job_id),
    );
    let stopped = status(&run);
    assert_eq!(
        stopped.liveness(now(), &hostname()),
        Liveness::Recorded(State::Stopped),
        "stopped, not crashed"
    );
    let epochs_before = stopped.epoch;

    // Resume resubmits: a new job, recorded, that goes on from the checkpoint.
    let (code, _, err) = gantry(&["resume", s(&run)]);
    assert_eq!(code, 0, "{err}");
    let job2 = status(&run).slurm_job.expect("the new job is recorded");
    assert_ne!(job2, job_id);
    assert!(err.contains(&format!("Slurm job {job2}")), "{err}");
    wait_until(
        "the resubmitted runner to train on",
        FINISH,
        || {
            let st = status(&run);
            st.state == State::Running && st.epoch > epochs_before
        },
        || describe(&run, &job2),
    );
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("resuming from checkpoints/last"), "{log}");
    let (code, _, err) = gantry(&["stop", s(&run)]);
    assert_eq!(code, 0, "{err}");
    wait_until(
        "the second job to be CANCELLED and the run stopped",
        CANCEL,
        || {
            job_state(&job2).is_some_and(|j| j.state == JobState::Cancelled)
                && status(&run).state == State::Stopped
        },
        || describe(&run, &job2),
    );
    // No step was trained twice across the two jobs.
    let steps: Vec<u64> = scalar_rows(&run)
        .into_iter()
        .filter(|r| r.2 == "train/loss")
        .map(|r| r.0)
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
}

#[test]
fn a_job_waiting_in_the_queue_stays_queued_until_stop_cancels_it() {
    if !enabled("a_job_waiting_in_the_queue_stays_queued_until_stop_cancels_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Eligible only in an hour: PENDING (BeginTime) for the whole test.
    let cfg = write_config(dir.path(), 2, "\"--begin=now+3600\"");
    let runs = dir.path().join("runs");
    let (run, job_id) = submit(&cfg, &runs, "waiting");
    wait_until(
        "the job to be PENDING (BeginTime)",
        CANCEL,
        || job_state(&job_id).is_some_and(|j| j.state == JobState::Pending && j.reason.is_some()),
        || describe(&run, &job_id),
    );
    let pending = job_state(&job_id).unwrap();
    assert_eq!(pending.to_string(), "PENDING (BeginTime)");
    let queued = status(&run);
    assert_eq!((queued.state, queued.pid), (State::Queued, 0));
    // Long past the 30 s a local runner gets to start, it still reads queued.
    assert_eq!(
        queued.liveness(now() + 3600.0, &hostname()),
        Liveness::Recorded(State::Queued)
    );
    let (code, _, err) = gantry(&["stop", s(&run)]);
    assert_eq!(code, 0, "{err}");
    wait_until(
        "the job to be CANCELLED",
        CANCEL,
        || job_state(&job_id).is_some_and(|j| j.state == JobState::Cancelled),
        || describe(&run, &job_id),
    );
    let stopped = status(&run);
    assert_eq!(stopped.state, State::Stopped);
    assert!(
        stopped
            .error
            .as_deref()
            .is_some_and(|e| e.contains("before it started")),
        "{stopped:?}"
    );
}
