//! Running the Slurm client tools (`sbatch`, `squeue`, `scontrol`, `scancel`) with a time
//! limit: a client waits on slurmctld, and a controller that is down or unreachable must
//! cost a bounded wait and a clear error, never a hung dashboard thread or command.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::SlurmError;

/// How often a running tool is checked for having exited.
const POLL: Duration = Duration::from_millis(10);

/// What a tool printed, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub success: bool,
    /// `exit status 1`, `signal 9`...
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// The output when the tool succeeded, else a [`SlurmError::Failed`] quoting its
    /// stderr.
    pub fn ok(self, command: &str) -> Result<ToolOutput, SlurmError> {
        if self.success {
            Ok(self)
        } else {
            Err(SlurmError::Failed {
                command: command.to_string(),
                stderr: stderr_or_stdout(&self),
                status: self.status,
            })
        }
    }
}

/// What a failed tool said: its stderr, else its stdout, else that it said nothing.
fn stderr_or_stdout(out: &ToolOutput) -> String {
    [&out.stderr, &out.stdout]
        .into_iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .unwrap_or("(no output)")
        .to_string()
}

/// Runs `program args` with stdin closed, collecting its output; kills it after
/// `timeout`. A program that is not installed is [`SlurmError::NotInstalled`].
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<ToolOutput, SlurmError> {
    let command = || {
        format!("{program} {}", args.join(" "))
            .trim_end()
            .to_string()
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SlurmError::NotInstalled {
                tool: program.to_string(),
            });
        }
        Err(source) => {
            return Err(SlurmError::Spawn {
                command: command(),
                source,
            });
        }
    };
    // Read both pipes on their own threads: a tool blocked on a full pipe never exits.
    let readers = [
        child.stdout.take().map(|p| read_all(Box::new(p))),
        child.stderr.take().map(|p| read_all(Box::new(p))),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SlurmError::Timeout {
                    command: command(),
                    secs: timeout.as_secs_f64(),
                });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SlurmError::Spawn {
                    command: command(),
                    source,
                });
            }
        }
    };
    let [stdout, stderr] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    Ok(ToolOutput {
        success: status.success(),
        status: describe_status(status),
        stdout,
        stderr,
    })
}

fn read_all(mut pipe: Box<dyn Read + Send>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_status_and_stderr_are_collected() {
        let out = run(
            "sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!out.success);
        assert_eq!(out.status, "exit status 3");
        assert_eq!(out.stdout, "out\n");
        let err = out.ok("sh -c ...").unwrap_err().to_string();
        assert!(
            err.contains("exit status 3") && err.contains("err"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tool_says_slurm_is_not_installed() {
        let err = run("sbatch-not-installed-here", &[], Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sbatch-not-installed-here not found: is Slurm installed on this host?"
        );
    }

    #[test]
    fn a_hung_tool_is_killed_at_its_time_limit() {
        let started = Instant::now();
        let err = run("sleep", &["30"], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, SlurmError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
