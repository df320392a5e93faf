//! The Slurm job state of runs launched through Slurm, for the runs list and the
//! Overview. A background thread asks Slurm (`squeue`, then `scontrol show job`, through
//! [`crate::control::slurm::job`]) every [`SLURM_POLL`], only about the jobs of runs in
//! the store that can still change, puts what it heard into the store and sends
//! `StoreChanged` when that differs. With no such run it asks nothing; the UI thread
//! never waits on Slurm.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::event::Event;
use super::store::{RunData, RunStore};
use crate::control::slurm::job::{self, JobStatus};
use crate::runfs::launcher::Launcher;
use crate::runfs::time;

/// How often the jobs of visible Slurm runs are asked about.
pub const SLURM_POLL: Duration = Duration::from_secs(5);

/// A run that ended longer ago than this is not asked about: Slurm forgets finished jobs
/// after `MinJobAge` (300 s by default) anyway.
const ENDED_LONG_AGO_SECS: f64 = 600.0;

/// What the dashboard last heard from Slurm about a run's job.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSeen {
    /// The job asked about (a resubmitted run has a new one).
    pub job: String,
    /// Its state; `Ok(None)`: Slurm no longer knows the job. `Err`: asking failed
    /// (Slurm not installed here, slurmctld not answering), the reason.
    pub state: Result<Option<JobStatus>, String>,
}

impl SlurmSeen {
    /// `slurm 1234 PENDING (Resources)`.
    pub fn describe(&self) -> String {
        format!("slurm {}", self.job_text())
    }

    /// `1234 PENDING (Resources)`, as the Overview shows it on its `slurm` line.
    pub fn job_text(&self) -> String {
        match &self.state {
            Ok(Some(status)) => format!("{} {status}", self.job),
            Ok(None) => format!("{} (no longer known to Slurm)", self.job),
            Err(e) => format!("{} ? {e}", self.job),
        }
    }

    /// `[PD]` (squeue's code), as the runs list shows it beside the run's name.
    pub fn short(&self) -> String {
        let code = match &self.state {
            Ok(Some(status)) => status.state.code(),
            Ok(None) => "gone",
            Err(_) => "?",
        };
        format!("[{code}]")
    }
}

/// `Slurm partition gpu · gres gpu:1 · time 02:00:00 · --qos=normal` for the Overview;
/// nothing for a local launcher (the usual case, not worth a line).
pub fn launcher_line(launcher: &Launcher) -> Option<String> {
    let s = launcher.slurm()?;
    let mut parts = vec!["Slurm".to_string()];
    for (name, value) in [
        ("partition", s.partition),
        ("gres", s.gres),
        ("time", s.time),
        ("account", s.account),
        ("mem", s.mem),
    ] {
        if let Some(value) = value {
            parts.push(format!("{name} {value}"));
        }
    }
    if let Some(n) = s.cpus_per_task {
        parts.push(format!("cpus {n}"));
    }
    parts.extend(s.extra.iter().cloned());
    Some(parts.join(" · "))
}

/// The job of `run` to ask Slurm about now, if any: a run with a Slurm job that has not
/// ended, or whose job was not yet seen to end (or was resubmitted), and that did not end
/// long ago.
pub fn job_to_poll(run: &RunData, now: f64) -> Option<String> {
    let status = run.status.as_ref()?;
    let job = status.slurm_job.as_ref()?;
    if !status.state.is_final() {
        return Some(job.clone());
    }
    if status.ended.is_some_and(|e| now - e > ENDED_LONG_AGO_SECS) {
        return None;
    }
    let settled = run.slurm.as_ref().is_some_and(|seen| {
        &seen.job == job
            && match &seen.state {
                Ok(Some(s)) => s.state.is_final(),
                Ok(None) | Err(_) => true,
            }
    });
    (!settled).then(|| job.clone())
}

/// Asks Slurm about one job.
pub fn ask(job_id: &str) -> SlurmSeen {
    SlurmSeen {
        job: job_id.to_string(),
        state: job::query(job_id).map_err(|e| e.to_string()),
    }
}

/// Starts the poller; it ends when the UI is gone.
pub fn spawn_poller(store: Arc<RwLock<RunStore>>, tx: Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("slurm-jobs".into())
        .spawn(move || poll_loop(&store, &tx, ask));
    if let Err(e) = spawned {
        tracing::warn!("Slurm job states: cannot start their thread: {e}");
    }
}

/// One look at every job that needs it, through `ask`; returns whether the store changed.
pub fn poll_once(store: &RwLock<RunStore>, ask: impl Fn(&str) -> SlurmSeen) -> bool {
    let now = time::now();
    let wanted: Vec<(PathBuf, String)> = match store.read() {
        Ok(s) => s
            .runs
            .iter()
            .filter_map(|(dir, run)| job_to_poll(run, now).map(|job| (dir.clone(), job)))
            .collect(),
        Err(_) => return false,
    };
    if wanted.is_empty() {
        return false;
    }
    // Asked without holding the store: a slow Slurm never blocks the watcher or the UI.
    let mut heard: Vec<(PathBuf, SlurmSeen)> = Vec::new();
    for (dir, job) in wanted {
        let seen = match heard.iter().find(|(_, s)| s.job == job) {
            Some((_, s)) => s.clone(),
            None => ask(&job),
        };
        heard.push((dir, seen));
    }
    let Ok(mut s) = store.write() else {
        return false;
    };
    let mut changed = false;
    for (dir, seen) in heard {
        if let Some(run) = s.runs.get_mut(&dir)
            && run.slurm.as_ref() != Some(&seen)
        {
            run.slurm = Some(seen);
            changed = true;
        }
    }
    changed
}

fn poll_loop(store: &RwLock<RunStore>, tx: &Sender<Event>, ask: fn(&str) -> SlurmSeen) {
    loop {
        if poll_once(store, ask) && tx.send(Event::StoreChanged).is_err() {
            return;
        }
        std::thread::sleep(SLURM_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::slurm::JobState;
    use crate::fixtures::{self, FixtureRun};
    use crate::runfs::RunFolder;
    use crate::runfs::status::State;

    fn seen(job: &str, state: JobState) -> SlurmSeen {
        SlurmSeen {
            job: job.into(),
            state: Ok(Some(JobStatus {
                state,
                reason: None,
            })),
        }
    }

    #[test]
    fn only_jobs_that_can_still_change_are_asked_about() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (id, state, job) in [
            ("slurm-live", State::Running, "101"),
            ("slurm-done", State::Finished, "102"),
        ] {
            fixtures::write_run(root, &FixtureRun::new(id, state, 2)).unwrap();
            let folder = RunFolder::new(root.join(id));
            let mut status = folder.read_status().unwrap();
            status.slurm_job = Some(job.into());
            status.ended = status.ended.map(|_| time::now());
            folder.write_status(&status).unwrap();
        }
        fixtures::write_run(root, &FixtureRun::new("local", State::Running, 2)).unwrap();
        let mut store = RunStore::new(vec![root.to_path_buf()]);
        store.rescan();
        let store = RwLock::new(store);
        let asked = std::sync::Mutex::new(Vec::new());
        let ask = |job: &str| {
            asked.lock().unwrap().push(job.to_string());
            seen(job, JobState::Completed)
        };
        assert!(poll_once(&store, ask));
        let mut first = asked.lock().unwrap().clone();
        first.sort();
        assert_eq!(first, ["101", "102"]);
        asked.lock().unwrap().clear();
        // The finished run's job was seen to end: only the live run is asked again, and
        // nothing changed.
        assert!(!poll_once(&store, ask));
        assert_eq!(*asked.lock().unwrap(), ["101"]);
        let s = store.read().unwrap();
        let live = &s.runs[&root.join("slurm-live")];
        assert_eq!(live.slurm.as_ref().unwrap().short(), "[CD]");
        assert!(s.runs[&root.join("local")].slurm.is_none());
    }

    #[test]
    fn the_launcher_line_lists_what_was_asked_for() {
        assert_eq!(launcher_line(&Launcher::Local), None);
        let slurm = Launcher::Slurm {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            time: None,
            account: None,
            cpus_per_task: Some(4),
            mem: None,
            extra: vec!["--qos=normal".into()],
        };
        assert_eq!(
            launcher_line(&slurm).as_deref(),
            Some("Slurm · partition gpu · gres gpu:1 · cpus 4 · --qos=normal")
        );
    }

    #[test]
    fn descriptions_name_the_job_state_and_reason() {
        let pending = SlurmSeen {
            job: "1234".into(),
            state: Ok(Some(JobStatus {
                state: JobState::Pending,
                reason: Some("Resources".into()),
            })),
        };
        assert_eq!(pending.describe(), "slurm 1234 PENDING (Resources)");
        assert_eq!(pending.short(), "[PD]");
        let gone = SlurmSeen {
            job: "9".into(),
            state: Ok(None),
        };
        assert_eq!(gone.describe(), "slurm 9 (no longer known to Slurm)");
        let err = SlurmSeen {
            job: "9".into(),
            state: Err("squeue not found: is Slurm installed on this host?".into()),
        };
        assert_eq!(
            err.describe(),
            "slurm 9 ? squeue not found: is Slurm installed on this host?"
        );
    }
}
