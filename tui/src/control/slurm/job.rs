//! A Slurm job's state, as `squeue` reports it while the job is queued or running and
//! `scontrol show job` for `MinJobAge` seconds after it ended (without accounting storage
//! `sacct` knows nothing, so it is not asked). Parsing is separate from asking, and tested
//! on outputs captured from Slurm 22.05.

use std::fmt;
use std::time::Duration;

use super::{SlurmError, tool};
use crate::runfs::status::{HEARTBEAT_SECS, Liveness, Status};

/// How long one `squeue` or `scontrol` may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Slurm's job states (`squeue -o %T`, `scontrol`'s `JobState=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Suspended,
    Completing,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    /// Any other word Slurm prints (`REQUEUED`, `RESIZING`, `STOPPED`...), kept as is.
    Other(String),
}

impl JobState {
    /// Parses a state word, as either tool prints it.
    pub fn parse(word: &str) -> JobState {
        match word.trim() {
            "PENDING" | "PD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" => JobState::Running,
            "SUSPENDED" | "S" => JobState::Suspended,
            "COMPLETING" | "CG" => JobState::Completing,
            "COMPLETED" | "CD" => JobState::Completed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "FAILED" | "F" => JobState::Failed,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            other => JobState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Suspended => "SUSPENDED",
            JobState::Completing => "COMPLETING",
            JobState::Completed => "COMPLETED",
            JobState::Cancelled => "CANCELLED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Other(word) => word,
        }
    }

    /// squeue's compact code (`PD`, `R`, `CG`, `CD`, `CA`, `F`, `TO`, `OOM`...), for the
    /// runs list where a column is narrow; other words as they are.
    pub fn code(&self) -> &str {
        match self {
            JobState::Pending => "PD",
            JobState::Configuring => "CF",
            JobState::Running => "R",
            JobState::Suspended => "S",
            JobState::Completing => "CG",
            JobState::Completed => "CD",
            JobState::Cancelled => "CA",
            JobState::Failed => "F",
            JobState::Timeout => "TO",
            JobState::NodeFail => "NF",
            JobState::Preempted => "PR",
            JobState::BootFail => "BF",
            JobState::Deadline => "DL",
            JobState::OutOfMemory => "OOM",
            JobState::Other(word) => word,
        }
    }

    /// The job has ended and will not run (again) by itself.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Cancelled
                | JobState::Failed
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
                | JobState::OutOfMemory
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's state and why it is in it (`Resources`, `Priority`, `JobHeldUser`...);
/// Slurm's `None` reason is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub state: JobState,
    pub reason: Option<String>,
}

impl fmt::Display for JobStatus {
    /// `PENDING (Resources)`, `RUNNING`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{} ({reason})", self.state),
            None => write!(f, "{}", self.state),
        }
    }
}

fn reason(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text != "None" && text != "(null)").then(|| text.to_string())
}

/// Parses `squeue -h -j ID -o "%T|%r"`: one `STATE|REASON` line, or nothing when squeue
/// no longer lists the job.
pub fn parse_squeue(out: &str) -> Option<JobStatus> {
    let line = out.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (state, why) = line.split_once('|').unwrap_or((line, ""));
    if state.is_empty() {
        return None;
    }
    Some(JobStatus {
        state: JobState::parse(state),
        reason: reason(why),
    })
}

/// Parses `scontrol show job ID` (plain or `-o` one-line form): its `JobState=` and
/// `Reason=` fields. The reason runs to the next field (` Dependency=` in every version
/// seen) so a reason with spaces is kept whole.
pub fn parse_scontrol(out: &str) -> Option<JobStatus> {
    // The first record only (an array job prints one per task).
    let record = out.split("\n\n").next().unwrap_or(out);
    let field = |key: &str| -> Option<&str> {
        let at = record
            .match_indices(key)
            .find(|(i, _)| *i == 0 || record[..*i].ends_with(char::is_whitespace))?
            .0;
        Some(&record[at + key.len()..])
    };
    let state = field("JobState=")?.split_whitespace().next()?;
    let why = field("Reason=").map(|rest| {
        let line = rest.lines().next().unwrap_or("");
        match line.find(" Dependency=") {
            Some(end) => &line[..end],
            None => line.split_whitespace().next().unwrap_or(""),
        }
    });
    Some(JobStatus {
        state: JobState::parse(state),
        reason: why.and_then(reason),
    })
}

/// Whether a tool's error says the job id is unknown (purged after `MinJobAge`, or never
/// existed): `slurm_load_jobs error: Invalid job id specified`.
fn unknown_job(stderr: &str) -> bool {
    stderr.contains("Invalid job id")
}

/// Asks Slurm for a job's state: `squeue`, then `scontrol show job` once squeue no longer
/// lists it. `Ok(None)`: Slurm has forgotten the job.
pub fn query(job: &str) -> Result<Option<JobStatus>, SlurmError> {
    let out = tool::run("squeue", &["-h", "-j", job, "-o", "%T|%r"], QUERY_TIMEOUT)?;
    if out.success
        && let Some(status) = parse_squeue(&out.stdout)
    {
        return Ok(Some(status));
    }
    if !out.success && !unknown_job(&out.stderr) {
        out.ok(&format!("squeue -j {job}"))?;
    }
    let out = tool::run("scontrol", &["show", "job", job], QUERY_TIMEOUT)?;
    if !out.success {
        if unknown_job(&out.stderr) {
            return Ok(None);
        }
        out.ok(&format!("scontrol show job {job}"))?;
        return Ok(None);
    }
    Ok(parse_scontrol(&out.stdout))
}

/// A run's liveness once its Slurm job's state is known: a run still recorded as queued
/// or running whose job has ended is crashed once its runner has gone quiet (a queued run
/// whose job ended never started; a running one stopped writing its heartbeat). A run
/// that stops gracefully inside a cancelled job's grace period is left as recorded.
pub fn liveness_with_job(
    status: &Status,
    liveness: Liveness,
    job: &JobStatus,
    now: f64,
) -> Liveness {
    if status.state.is_final() || !job.state.is_final() {
        return liveness;
    }
    let quiet = status.pid == 0 || now - status.heartbeat > 3.0 * HEARTBEAT_SECS;
    if quiet { Liveness::Crashed } else { liveness }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfs::status::State;

    /// `scontrol show job 2` after `scancel`, captured from Slurm 22.05 (Debian 12).
    const SCONTROL_CANCELLED: &str = "\
JobId=2 JobName=wrap
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901758 Nice=0 Account=(null) QOS=(null)
   JobState=CANCELLED Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15
   RunTime=00:00:01 TimeLimit=UNLIMITED TimeMin=N/A
   Partition=debug AllocNode:Sid=localhost:6349
   NodeList=vm
   StdOut=/dev/null

";

    const SCONTROL_ONE_LINE: &str = "JobId=3 JobName=wrap UserId=root(0) GroupId=root(0) \
MCS_label=N/A Priority=4294901757 Nice=0 Account=(null) QOS=(null) JobState=CANCELLED \
Reason=Resources Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n";

    #[test]
    fn squeue_lines_parse() {
        assert_eq!(
            parse_squeue("PENDING|Resources\n"),
            Some(JobStatus {
                state: JobState::Pending,
                reason: Some("Resources".into())
            })
        );
        assert_eq!(
            parse_squeue("RUNNING|None\n").unwrap().to_string(),
            "RUNNING"
        );
        assert_eq!(
            parse_squeue("PENDING|JobHeldUser\n").unwrap().to_string(),
            "PENDING (JobHeldUser)"
        );
        assert_eq!(
            parse_squeue("COMPLETING|None\n").unwrap().state,
            JobState::Completing
        );
        // A finished job squeue no longer lists: empty output.
        assert_eq!(parse_squeue(""), None);
        assert_eq!(parse_squeue("\n"), None);
        // A reason with spaces and a state squeue may add in a later version.
        let odd = parse_squeue("REQUEUE_HOLD|launch failed requeued held\n").unwrap();
        assert_eq!(odd.state, JobState::Other("REQUEUE_HOLD".into()));
        assert_eq!(odd.reason.as_deref(), Some("launch failed requeued held"));
        assert!(!odd.state.is_final());
    }

    #[test]
    fn scontrol_records_parse() {
        let s = parse_scontrol(SCONTROL_CANCELLED).unwrap();
        assert_eq!(s.state, JobState::Cancelled);
        assert_eq!(s.reason, None);
        assert!(s.state.is_final());
        let s = parse_scontrol(SCONTROL_ONE_LINE).unwrap();
        assert_eq!(s.to_string(), "CANCELLED (Resources)");
        let failed = SCONTROL_CANCELLED.replace(
            "JobState=CANCELLED Reason=None",
            "JobState=FAILED Reason=NonZeroExitCode",
        );
        assert_eq!(
            parse_scontrol(&failed).unwrap().to_string(),
            "FAILED (NonZeroExitCode)"
        );
        let oom = SCONTROL_CANCELLED.replace("JobState=CANCELLED", "JobState=OUT_OF_MEMORY");
        assert_eq!(parse_scontrol(&oom).unwrap().state, JobState::OutOfMemory);
        let timeout = SCONTROL_CANCELLED.replace(
            "JobState=CANCELLED Reason=None",
            "JobState=TIMEOUT Reason=TimeLimit",
        );
        assert_eq!(parse_scontrol(&timeout).unwrap().state, JobState::Timeout);
        let spaced = SCONTROL_CANCELLED.replace(
            "Reason=None Dependency",
            "Reason=launch failed requeued held Dependency",
        );
        assert_eq!(
            parse_scontrol(&spaced).unwrap().reason.as_deref(),
            Some("launch failed requeued held")
        );
        // `JobState=` must be a field of its own, not the tail of another name.
        assert_eq!(parse_scontrol("OldJobState=RUNNING\n"), None);
        assert_eq!(parse_scontrol(""), None);
    }

    #[test]
    fn every_state_word_round_trips() {
        for (word, code) in [
            ("PENDING", "PD"),
            ("RUNNING", "R"),
            ("COMPLETING", "CG"),
            ("COMPLETED", "CD"),
            ("CANCELLED", "CA"),
            ("FAILED", "F"),
            ("TIMEOUT", "TO"),
            ("NODE_FAIL", "NF"),
            ("OUT_OF_MEMORY", "OOM"),
        ] {
            assert_eq!(JobState::parse(word).code(), code);
            assert_eq!(JobState::parse(code).as_str(), word);
        }
        for word in [
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "SUSPENDED",
            "COMPLETING",
            "COMPLETED",
            "CANCELLED",
            "FAILED",
            "TIMEOUT",
            "NODE_FAIL",
            "PREEMPTED",
            "BOOT_FAIL",
            "DEADLINE",
            "OUT_OF_MEMORY",
            "SPECIAL_EXIT",
        ] {
            assert_eq!(JobState::parse(word).as_str(), word);
        }
        assert_eq!(JobState::parse("PD"), JobState::Pending);
    }

    #[test]
    fn an_ended_job_makes_a_quiet_unfinished_run_crashed() {
        let job = |state| JobStatus {
            state,
            reason: None,
        };
        let queued = Status {
            slurm_job: Some("7".into()),
            ..Status::new(State::Queued, 0, 100.0)
        };
        let as_recorded = Liveness::Recorded(State::Queued);
        assert_eq!(
            liveness_with_job(&queued, as_recorded, &job(JobState::Pending), 5000.0),
            as_recorded
        );
        assert_eq!(
            liveness_with_job(&queued, as_recorded, &job(JobState::Cancelled), 101.0),
            Liveness::Crashed
        );
        // Running with a fresh heartbeat: stopping inside the grace period.
        let running = Status {
            slurm_job: Some("7".into()),
            ..Status::new(State::Running, 42, 100.0)
        };
        let live = Liveness::Recorded(State::Running);
        assert_eq!(
            liveness_with_job(&running, live, &job(JobState::Cancelled), 101.0),
            live
        );
        assert_eq!(
            liveness_with_job(&running, live, &job(JobState::Timeout), 200.0),
            Liveness::Crashed
        );
        // A finished run stays finished whatever its job says.
        let done = Status::new(State::Finished, 42, 100.0);
        let finished = Liveness::Recorded(State::Finished);
        assert_eq!(
            liveness_with_job(&done, finished, &job(JobState::Failed), 900.0),
            finished
        );
    }
}
