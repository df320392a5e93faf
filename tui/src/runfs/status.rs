//! `status.ron`: the run's state, rewritten atomically on every change and on a heartbeat,
//! so a reader always sees a complete, recent snapshot.

use serde::{Deserialize, Serialize};

/// Lifecycle of a run, as the runner records it. `stalled` and `crashed` are not stored:
/// readers derive them from the heartbeat age and the pid (see [`Status::liveness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Finished,
    Failed,
    Stopped,
}

impl State {
    /// A run in a final state will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, State::Finished | State::Failed | State::Stopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Finished => "finished",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// The best value seen of the metric a run is judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub tag: String,
    pub value: f64,
    pub epoch: u32,
    pub step: u64,
}

/// The content of `status.ron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    pub pid: u32,
    pub host: String,
    /// Unix seconds.
    pub started: Option<f64>,
    pub ended: Option<f64>,
    /// Unix seconds of the last write; the runner rewrites at least every
    /// [`HEARTBEAT_SECS`].
    pub heartbeat: f64,
    /// Epochs completed.
    pub epoch: u32,
    pub epochs: u32,
    /// Optimisation steps completed.
    pub step: u64,
    pub total_steps: u64,
    /// Training throughput over the last epoch (or the current one while it runs).
    pub images_per_sec: f64,
    /// The device the plugin actually chose (`cpu`, `cuda:0`).
    pub device: Option<String>,
    pub error: Option<String>,
    pub best: Option<Best>,
    /// Other metrics' latest values, by tag.
    #[serde(default)]
    pub latest: Vec<(String, f64)>,
    /// Images skipped because they did not decode (`data.skip_bad`): how many, and the
    /// first [`SKIPPED_LISTED`] names with their errors (all are in train.log).
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub skipped_files: Vec<String>,
    /// Fraction of the last epoch's training time spent waiting for the next batch.
    #[serde(default)]
    pub data_wait: f64,
    /// The most GPU memory this run's processes held at once, summed over GPUs, as NVML
    /// saw it at the heartbeats: `None` on CPU, without NVML, or in files from before it.
    #[serde(default)]
    pub peak_gpu_memory_bytes: Option<u64>,
    /// The Slurm job running (or queued to run) this run, for a run whose config has a
    /// Slurm launcher: what `gantry stop` cancels. `None` for a local run.
    #[serde(default)]
    pub slurm_job: Option<String>,
}

/// Skipped images named in status.ron, at most.
pub const SKIPPED_LISTED: usize = 50;

/// How long a launched run may stay `queued` with no runner (pid 0) before it reads as
/// crashed: its runner never started.
pub const QUEUED_START_SECS: f64 = 30.0;

/// Seconds between heartbeats.
pub const HEARTBEAT_SECS: f64 = 2.0;

/// What a reader concludes about a run, beyond its recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// As recorded.
    Recorded(State),
    /// Running, but the heartbeat is older than three intervals.
    Stalled,
    /// Running on this host, but its process is gone.
    Crashed,
    /// Written by another program (a TensorBoard logdir, a Keras CSV history, see
    /// [`crate::interop::foreign`]): all a reader knows is whether its files changed
    /// lately.
    External { live: bool },
}

impl Liveness {
    pub fn label(self) -> &'static str {
        match self {
            Liveness::Recorded(s) => s.as_str(),
            Liveness::Stalled => "stalled",
            Liveness::Crashed => "crashed",
            Liveness::External { live: false } => "external",
            Liveness::External { live: true } => "external · live",
        }
    }
}

impl Status {
    /// A status in `state` for process `pid` on this host, written at `now`, with no
    /// progress yet: what a launcher or a starting runner records first.
    pub fn new(state: State, pid: u32, now: f64) -> Status {
        Status {
            state,
            pid,
            host: hostname(),
            started: None,
            ended: None,
            heartbeat: now,
            epoch: 0,
            epochs: 0,
            step: 0,
            total_steps: 0,
            images_per_sec: 0.0,
            device: None,
            error: None,
            best: None,
            latest: vec![],
            skipped: 0,
            skipped_files: vec![],
            data_wait: 0.0,
            peak_gpu_memory_bytes: None,
            slurm_job: None,
        }
    }

    /// The run's liveness at `now` on host `this_host`.
    pub fn liveness(&self, now: f64, this_host: &str) -> Liveness {
        if self.state.is_final() {
            return Liveness::Recorded(self.state);
        }
        if self.state == State::Queued {
            // A launcher writes `queued` with pid 0; its runner rewrites it with its own
            // pid at once. A runner that died, or never started, is crashed. A Slurm job
            // may wait in the queue for hours: only Slurm can say it will never start (the
            // dashboard asks it, see `control::slurm::job`).
            let gone = if self.pid == 0 {
                self.slurm_job.is_none() && now - self.heartbeat > QUEUED_START_SECS
            } else {
                self.host == this_host && !process_alive(self.pid)
            };
            return if gone {
                Liveness::Crashed
            } else {
                Liveness::Recorded(State::Queued)
            };
        }
        if self.host == this_host && !process_alive(self.pid) {
            return Liveness::Crashed;
        }
        if now - self.heartbeat > 3.0 * HEARTBEAT_SECS {
            return Liveness::Stalled;
        }
        Liveness::Recorded(self.state)
    }
}

/// Whether a process with this pid exists and has not exited (Linux: its /proc entry,
/// not a zombie: a runner whose parent is gone may wait unreaped under a container's
/// init, and a dead runner must read as crashed all the same).
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 3, after the parenthesised command name (which may itself hold spaces).
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: u32, heartbeat: f64) -> Status {
        Status {
            host: "here".into(),
            started: Some(0.0),
            epochs: 1,
            total_steps: 1,
            ..Status::new(State::Running, pid, heartbeat)
        }
    }

    #[test]
    fn liveness_derives_stalled_and_crashed() {
        let me = std::process::id();
        assert_eq!(
            running(me, 100.0).liveness(101.0, "here"),
            Liveness::Recorded(State::Running)
        );
        assert_eq!(
            running(me, 100.0).liveness(107.0, "here"),
            Liveness::Stalled
        );
        assert_eq!(
            running(u32::MAX - 1, 100.0).liveness(101.0, "here"),
            Liveness::Crashed
        );
        let mut queued = running(0, 100.0);
        queued.state = State::Queued;
        assert_eq!(
            queued.liveness(101.0, "here"),
            Liveness::Recorded(State::Queued)
        );
        assert_eq!(queued.liveness(200.0, "here"), Liveness::Crashed);
        // Pending in a Slurm queue: not crashed however long it waits.
        let pending = Status {
            slurm_job: Some("1234".into()),
            ..queued.clone()
        };
        assert_eq!(
            pending.liveness(100_000.0, "here"),
            Liveness::Recorded(State::Queued)
        );
        queued.pid = u32::MAX - 1;
        assert_eq!(queued.liveness(101.0, "here"), Liveness::Crashed);
        // Another host's pid says nothing about this machine.
        assert_eq!(
            running(u32::MAX - 1, 100.0).liveness(101.0, "there"),
            Liveness::Recorded(State::Running)
        );
    }

    #[test]
    fn peak_gpu_memory_round_trips_and_old_files_still_parse() {
        let dir = tempfile::tempdir().unwrap();
        let folder = crate::runfs::RunFolder::new(dir.path());
        let mut status = running(7, 100.0);
        status.device = Some("cuda:0".into());
        status.peak_gpu_memory_bytes = Some(13_207_024_435);
        folder.write_status(&status).unwrap();
        let text = std::fs::read_to_string(folder.status_file()).unwrap();
        assert!(
            text.contains("peak_gpu_memory_bytes: Some(13207024435)"),
            "{text}"
        );
        assert_eq!(folder.read_status().unwrap(), status);
        // A status.ron written before the field existed.
        let old: String = text
            .lines()
            .filter(|l| !l.contains("peak_gpu_memory_bytes"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        std::fs::write(folder.status_file(), old).unwrap();
        assert_eq!(
            folder.read_status().unwrap(),
            Status {
                peak_gpu_memory_bytes: None,
                ..status
            }
        );
    }
}
