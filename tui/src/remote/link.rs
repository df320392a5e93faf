//! The local end of a remote host: runs `ssh HOST gantry agent ...` with the system's
//! OpenSSH client (so `~/.ssh/config`, ProxyJump, ControlMaster, agents and known_hosts
//! apply; `BatchMode` so it never asks for a password), applies the agent's frames to the
//! host's mirror folders, and reconnects with backoff when the connection drops, resuming
//! from what the mirror holds. Each host has its own thread: one slow or dead host never
//! holds up another, or the dashboard.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::address::RemoteRoot;
use super::mirror::{self, Applied, Mirror};
use super::protocol::{self, Outcome, ProtocolError, RemoteAction, ToAgent, ToClient};

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long an action waits for the agent's answer.
const ACT_TIMEOUT: Duration = Duration::from_secs(15);
/// Without a frame for this long (the agent sends heartbeats), the link is dead.
const SILENCE: Duration = Duration::from_secs(35);

/// How to reach hosts: the ssh command and the remote gantry.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The ssh program and leading arguments (`GANTRY_SSH`, default `ssh`).
    pub ssh: Vec<String>,
    /// The gantry to run on the remote host (`--remote-gantry`, default `gantry`).
    pub remote_gantry: String,
}

impl Default for SshOptions {
    fn default() -> Self {
        let ssh = std::env::var("GANTRY_SSH")
            .ok()
            .and_then(|s| shlex::split(&s))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["ssh".into()]);
        SshOptions {
            ssh,
            remote_gantry: "gantry".into(),
        }
    }
}

/// Where a link is, for the dashboard's host badge.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Connecting {
        attempt: u32,
    },
    /// Connected; sending what differs.
    Syncing,
    Live,
    /// Down; the next attempt is at `next`.
    Waiting {
        attempt: u32,
        next: Instant,
        why: String,
    },
}

/// A link's state, shared with the dashboard.
#[derive(Debug)]
pub struct LinkState {
    pub label: String,
    pub phase: Phase,
    /// The agent's own problems (a root that does not exist there).
    pub notices: Vec<String>,
    /// The remote host's name, from the agent's hello.
    pub remote_host: Option<String>,
}

impl LinkState {
    /// The badge text, or `None` while live.
    pub fn badge(&self, now: Instant) -> Option<String> {
        match &self.phase {
            Phase::Live => None,
            Phase::Syncing => Some(format!("{}: syncing", self.label)),
            Phase::Connecting { attempt: 1 } => Some(format!("{}: connecting", self.label)),
            Phase::Connecting { attempt } => {
                Some(format!("{}: reconnecting, attempt {attempt}", self.label))
            }
            Phase::Waiting { attempt, next, why } => {
                let secs = next.saturating_duration_since(now).as_secs_f64().ceil() as u64;
                Some(format!(
                    "{}: {why}; reconnecting, attempt {}, next in {secs} s",
                    self.label,
                    attempt + 1
                ))
            }
        }
    }
}

type Pending = Arc<Mutex<HashMap<u32, mpsc::Sender<Result<Outcome, String>>>>>;

/// A running link: its state, and the way to ask its agent for actions.
pub struct Link {
    pub remote: RemoteRoot,
    /// The mirror folder of each of the link's roots, in the order the agent numbers them.
    pub mirrors: Vec<PathBuf>,
    pub state: Arc<Mutex<LinkState>>,
    writer: Arc<Mutex<Option<mpsc::Sender<ToAgent>>>>,
    pending: Pending,
    next_id: AtomicU64,
    /// Bytes received from ssh, all connections together.
    pub bytes_in: Arc<AtomicU64>,
    /// The mirror's stand-ins for listed files (sample images), and those asked for.
    placeholders: mirror::Placeholders,
    requested: Arc<Mutex<std::collections::HashSet<PathBuf>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Link {
    /// Starts following `remote` (one root; more roots of the same host may share a link
    /// in a later version of the protocol, which already numbers them) into `mirror`,
    /// calling `changed` whenever the badge should be redrawn.
    pub fn spawn(
        remote: RemoteRoot,
        mirror_dir: PathBuf,
        opts: SshOptions,
        changed: Box<dyn Fn() + Send>,
    ) -> std::io::Result<Link> {
        std::fs::create_dir_all(&mirror_dir)?;
        let state = Arc::new(Mutex::new(LinkState {
            label: remote.label(),
            phase: Phase::Connecting { attempt: 1 },
            notices: Vec::new(),
            remote_host: None,
        }));
        let link = Link {
            remote: remote.clone(),
            mirrors: vec![mirror_dir],
            state: Arc::clone(&state),
            writer: Arc::new(Mutex::new(None)),
            pending: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            bytes_in: Arc::new(AtomicU64::new(0)),
            placeholders: Default::default(),
            requested: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let worker = Worker {
            remote,
            mirrors: link.mirrors.clone(),
            opts,
            state,
            writer: Arc::clone(&link.writer),
            pending: Arc::clone(&link.pending),
            bytes_in: Arc::clone(&link.bytes_in),
            placeholders: Arc::clone(&link.placeholders),
            requested: Arc::clone(&link.requested),
            stop: Arc::clone(&link.stop),
            changed,
        };
        std::thread::Builder::new()
            .name(format!("link {}", link.remote.label()))
            .spawn(move || worker.run())?;
        Ok(link)
    }

    /// Whether `path` (under this link's mirror) is a listed file not yet fetched.
    pub fn is_placeholder(&self, path: &std::path::Path) -> bool {
        self.placeholders
            .lock()
            .expect("placeholders")
            .contains(path)
    }

    /// Asks the agent for a listed file, once per connection; it arrives as a change of
    /// the mirror. Nothing happens while the link is down (the next connection lists it
    /// again).
    pub fn fetch(&self, path: &std::path::Path) {
        let Some((root, rel)) =
            self.mirrors.iter().enumerate().find_map(|(i, m)| {
                Some((i as u16, path.strip_prefix(m).ok()?.to_str()?.to_string()))
            })
        else {
            return;
        };
        if !self
            .requested
            .lock()
            .expect("requested")
            .insert(path.to_path_buf())
        {
            return;
        }
        let sender = self.writer.lock().expect("link writer").clone();
        let sent = sender.is_some_and(|s| s.send(ToAgent::Fetch { root, path: rel }).is_ok());
        if !sent {
            self.requested.lock().expect("requested").remove(path);
        }
    }

    /// Asks the agent to carry out `action` on root `root` and waits for its answer.
    pub fn act(&self, root: u16, action: RemoteAction) -> Result<Outcome, String> {
        let label = self.remote.label();
        let sender = self.writer.lock().expect("link writer").clone();
        let Some(sender) = sender else {
            return Err(format!("{label} is not connected; try again once it is"));
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) as u32;
        let (tx, rx) = mpsc::channel();
        self.pending.lock().expect("pending").insert(id, tx);
        if sender.send(ToAgent::Act { id, root, action }).is_err() {
            self.pending.lock().expect("pending").remove(&id);
            return Err(format!("{label}: the connection just dropped; try again"));
        }
        let answer = rx.recv_timeout(ACT_TIMEOUT);
        self.pending.lock().expect("pending").remove(&id);
        match answer {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "{label} did not answer within {} s",
                ACT_TIMEOUT.as_secs()
            )),
        }
    }
}

struct Worker {
    remote: RemoteRoot,
    mirrors: Vec<PathBuf>,
    opts: SshOptions,
    state: Arc<Mutex<LinkState>>,
    writer: Arc<Mutex<Option<mpsc::Sender<ToAgent>>>>,
    pending: Pending,
    bytes_in: Arc<AtomicU64>,
    placeholders: mirror::Placeholders,
    requested: Arc<Mutex<std::collections::HashSet<PathBuf>>>,
    stop: Arc<AtomicBool>,
    changed: Box<dyn Fn() + Send>,
}

/// The ssh command line that starts the agent for `remote`.
pub fn ssh_command(remote: &RemoteRoot, opts: &SshOptions) -> Command {
    let mut cmd = Command::new(&opts.ssh[0]);
    cmd.args(&opts.ssh[1..]);
    cmd.args([
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ConnectTimeout=15",
    ]);
    if let Some(port) = remote.port {
        cmd.args(["-p", &port.to_string()]);
    }
    cmd.arg("--").arg(remote.destination());
    cmd.arg(remote_command(remote, opts));
    cmd
}

/// `ssh HOST gantry ARGS...`, for one-shot commands (`gantry runs ls --runs gpu1:runs`);
/// every argument quoted for the remote shell.
pub fn ssh_run(remote: &RemoteRoot, opts: &SshOptions, args: &[String]) -> Command {
    let mut cmd = Command::new(&opts.ssh[0]);
    cmd.args(&opts.ssh[1..]);
    cmd.args(["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
    if let Some(port) = remote.port {
        cmd.args(["-p", &port.to_string()]);
    }
    let mut line = gantry_word(&opts.remote_gantry);
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg.strip_prefix("~/").unwrap_or(arg)));
    }
    cmd.arg("--").arg(remote.destination()).arg(line);
    cmd
}

/// The remote gantry as a shell word: a plain path is left as typed so the remote shell
/// expands `~` in it; anything else is quoted.
fn gantry_word(gantry: &str) -> String {
    let plain = gantry
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-~+".contains(c));
    if plain {
        gantry.to_string()
    } else {
        quote(gantry)
    }
}

/// The command line the remote shell runs. The root is quoted; `~/` means the home,
/// where ssh starts anyway.
fn remote_command(remote: &RemoteRoot, opts: &SshOptions) -> String {
    let path = remote.path.strip_prefix("~/").unwrap_or(&remote.path);
    let gantry = gantry_word(&opts.remote_gantry);
    format!(
        "{gantry} agent --proto {} --root {}",
        protocol::PROTOCOL,
        quote(path)
    )
}

fn quote(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| "''".into(), |q| q.into_owned())
}

/// How one connection ended.
struct Ended {
    why: String,
    /// It reached the live phase (the backoff starts over).
    was_live: bool,
}

impl Worker {
    fn set(&self, phase: Phase) {
        self.state.lock().expect("link state").phase = phase;
        (self.changed)();
    }

    /// Keeps a message of the agent's (or about it) for the footer; a few at most.
    fn notice(&self, message: &str) {
        let mut state = self.state.lock().expect("link state");
        let message = crate::text::escape_controls(message);
        if state.notices.len() < 5 && !state.notices.contains(&message) {
            state.notices.push(message);
        }
    }

    fn run(self) {
        let mut attempt = 1u32;
        while !self.stop.load(Ordering::Relaxed) {
            self.set(Phase::Connecting { attempt });
            let ended = self.connect();
            *self.writer.lock().expect("link writer") = None;
            self.requested.lock().expect("requested").clear();
            for (_, tx) in self.pending.lock().expect("pending").drain() {
                let _ = tx.send(Err(format!(
                    "{}: the connection dropped",
                    self.remote.label()
                )));
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if ended.was_live {
                attempt = 1;
            }
            let wait = Duration::from_secs(1 << (attempt - 1).min(5)).min(MAX_BACKOFF);
            let next = Instant::now() + wait;
            self.set(Phase::Waiting {
                attempt,
                next,
                why: ended.why,
            });
            // Redraw when the countdown's whole seconds change, not more often: a host
            // that is down for hours costs one frame a second.
            let mut shown = u64::MAX;
            while Instant::now() < next && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(
                    Duration::from_millis(250).min(next.saturating_duration_since(Instant::now())),
                );
                let left = next
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil() as u64;
                if left != shown {
                    shown = left;
                    (self.changed)();
                }
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// One connection, from spawning ssh to its end.
    fn connect(&self) -> Ended {
        let mut cmd = ssh_command(&self.remote, &self.opts);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Ended {
                    why: format!("cannot run {}: {e}", self.opts.ssh[0]),
                    was_live: false,
                };
            }
        };
        let stderr = spawn_stderr_reader(child.stderr.take());
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut reader = BufReader::with_capacity(
            256 * 1024,
            CountingReader {
                inner: stdout,
                count: Arc::clone(&self.bytes_in),
                last: Arc::new(Mutex::new(Instant::now())),
            },
        );
        let last_read = Arc::clone(&reader.get_ref().last);
        let watchdog = spawn_watchdog(child.id(), last_read, Arc::clone(&self.stop));
        let result = self.session(&mut reader, stdin);
        watchdog.store(true, Ordering::Relaxed);
        let (was_live, err) = match result {
            Ok(()) => (true, None),
            Err((was_live, e)) => (was_live, e),
        };
        // After the end of its output ssh exits on its own, with the status that says
        // why; only a connection that is still up (a frame we refused) is killed.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut status = None;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) if err_is_ours(&err) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        if status.is_none() {
            let _ = child.kill();
            status = child.wait().ok();
        }
        let stderr = stderr.join().unwrap_or_default();
        Ended {
            why: describe_end(&self.remote, &self.opts, err, status, &stderr),
            was_live,
        }
    }

    /// Handshake, sync and live frames. `Err((was_live, why))`; `None` for a plain end of
    /// the stream (then ssh's exit and stderr say why).
    fn session(
        &self,
        reader: &mut BufReader<CountingReader>,
        stdin: std::process::ChildStdin,
    ) -> Result<(), (bool, Option<String>)> {
        let hello = protocol::read_hello(reader).map_err(|e| match e {
            ProtocolError::NoHello { .. } => (false, None),
            other => (false, Some(other.to_string())),
        })?;
        self.state.lock().expect("link state").remote_host = Some(hello.host);
        self.set(Phase::Syncing);
        let (tx, rx) = mpsc::channel::<ToAgent>();
        for (i, dir) in self.mirrors.iter().enumerate() {
            let files = mirror::inventory(dir);
            let _ = tx.send(ToAgent::Have {
                root: i as u16,
                files,
            });
        }
        let _ = tx.send(ToAgent::Start);
        std::thread::Builder::new()
            .name("link-writer".into())
            .spawn(move || {
                let mut stdin = std::io::BufWriter::new(stdin);
                for msg in rx {
                    if protocol::write_frame(&mut stdin, &msg).is_err() || stdin.flush().is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| (false, Some(e.to_string())))?;
        let mut mirror =
            Mirror::with_placeholders(self.mirrors.clone(), Arc::clone(&self.placeholders));
        let mut live = false;
        loop {
            let frame = match protocol::read_frame::<ToClient>(reader) {
                Ok(Some(f)) => f,
                Ok(None) => return Err((live, None)),
                Err(e) => return Err((live, Some(format!("dropped: {e}")))),
            };
            match &frame {
                ToClient::Synced => {
                    live = true;
                    *self.writer.lock().expect("link writer") = Some(tx.clone());
                    self.set(Phase::Live);
                }
                ToClient::Notice { message } => self.notice(message),
                ToClient::Reply { id, outcome } => {
                    if let Some(tx) = self.pending.lock().expect("pending").remove(id) {
                        let _ = tx.send(outcome.clone());
                    }
                }
                _ => {}
            }
            let waiting = self.placeholders.lock().expect("placeholders").len();
            let applied = mirror.apply(&frame);
            // An image the Samples view asked for arrived: its name did not change, so
            // the store sees nothing new; the view must be drawn again to read it.
            if self.placeholders.lock().expect("placeholders").len() < waiting {
                (self.changed)();
            }
            match applied {
                Ok(Applied::Changed | Applied::Nothing) => {}
                // A name the mirror will not write: said, and skipped.
                Err(e @ mirror::MirrorError::UnsafePath(_)) => self.notice(&e.to_string()),
                Err(e) => return Err((live, Some(format!("dropped: {e}")))),
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }
}

/// Whether the session ended on our side (a frame refused): ssh is then killed at once.
fn err_is_ours(err: &Option<String>) -> bool {
    err.is_some()
}

/// Why a connection ended, in the user's terms.
fn describe_end(
    remote: &RemoteRoot,
    opts: &SshOptions,
    err: Option<String>,
    status: Option<std::process::ExitStatus>,
    stderr: &str,
) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let last = crate::text::escape_controls(
        stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or(""),
    );
    if let Some(e) = err {
        return e;
    }
    match status.and_then(|s| s.code()) {
        Some(127) => format!(
            "{} not found on {} (--remote-gantry PATH or remote_gantry in the config \
             names it; the remote shell said: {last})",
            opts.remote_gantry, remote.host
        ),
        Some(255) if !last.is_empty() => format!("ssh: {}", last.trim_start_matches("ssh: ")),
        Some(code) if !last.is_empty() => format!("the agent ended ({code}): {last}"),
        Some(code) => format!("the connection closed (exit {code})"),
        None => match status.and_then(|s| s.signal()) {
            Some(sig) => format!("the connection was lost (ssh ended by signal {sig})"),
            None => "the connection was lost".into(),
        },
    }
}

/// Collects ssh's stderr (its own errors, the remote shell's) for the message.
fn spawn_stderr_reader(
    stderr: Option<std::process::ChildStderr>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(stderr) = stderr else {
            return String::new();
        };
        let mut kept = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            kept.push_str(&line);
            kept.push('\n');
            if kept.len() > 8192 {
                let cut = kept.len() - 4096;
                let cut = (cut..kept.len())
                    .find(|i| kept.is_char_boundary(*i))
                    .unwrap_or(0);
                kept.drain(..cut);
            }
        }
        kept
    })
}

/// Kills the ssh process when nothing arrived for [`SILENCE`] (a half-dead TCP connection
/// that ssh itself has not noticed), or when the link is stopped.
fn spawn_watchdog(pid: u32, last: Arc<Mutex<Instant>>, stop: Arc<AtomicBool>) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let thread_done = Arc::clone(&done);
    std::thread::spawn(move || {
        while !thread_done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let quiet = last.lock().map(|t| t.elapsed()).unwrap_or_default();
            if quiet > SILENCE || stop.load(Ordering::Relaxed) {
                if let Ok(pid) = i32::try_from(pid)
                    && let Some(pid) = rustix::process::Pid::from_raw(pid)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                return;
            }
        }
    });
    done
}

/// ssh's stdout, counting bytes and noting when the last ones came.
struct CountingReader {
    inner: std::process::ChildStdout,
    count: Arc<AtomicU64>,
    last: Arc<Mutex<Instant>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Ok(mut t) = self.last.lock() {
            *t = Instant::now();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> RemoteRoot {
        match super::super::address::RootAddress::parse(text).unwrap() {
            super::super::address::RootAddress::Remote(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_ssh_command_is_batch_mode_and_quotes_the_root() {
        let opts = SshOptions {
            ssh: vec!["ssh".into(), "-F".into(), "cfg".into()],
            remote_gantry: "~/bin/gantry".into(),
        };
        let cmd = ssh_command(&root("ssh://ana@gpu1:2222/data/my runs"), &opts);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..2], ["-F", "cfg"]);
        assert!(
            args.windows(2).any(|w| w == ["-o", "BatchMode=yes"]),
            "{args:?}"
        );
        assert!(args.windows(2).any(|w| w == ["-p", "2222"]), "{args:?}");
        let dest = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(args[dest + 1], "ana@gpu1");
        assert_eq!(
            args[dest + 2],
            format!(
                "~/bin/gantry agent --proto {} --root '/data/my runs'",
                protocol::PROTOCOL
            )
        );
        let evil = SshOptions {
            ssh: vec!["ssh".into()],
            remote_gantry: "gantry; rm -rf ~".into(),
        };
        let cmd = ssh_command(&root("gpu1:~/runs"), &evil);
        let last = cmd
            .get_args()
            .last()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            last.starts_with("'gantry; rm -rf ~' agent") && last.ends_with("--root runs"),
            "{last}"
        );
    }

    #[test]
    fn endings_are_told_in_the_users_terms() {
        use std::os::unix::process::ExitStatusExt as _;
        let r = root("gpu1:runs");
        let opts = SshOptions {
            ssh: vec!["ssh".into()],
            remote_gantry: "gantry".into(),
        };
        let code = |c: i32| Some(std::process::ExitStatus::from_raw(c << 8));
        let m = describe_end(
            &r,
            &opts,
            None,
            code(127),
            "bash: line 1: gantry: command not found\n",
        );
        assert!(
            m.contains("gantry not found on gpu1 (--remote-gantry PATH"),
            "{m}"
        );
        let m = describe_end(
            &r,
            &opts,
            None,
            code(255),
            "root@gpu1: Permission denied (publickey).\n",
        );
        assert_eq!(m, "ssh: root@gpu1: Permission denied (publickey).");
        let m = describe_end(
            &r,
            &opts,
            None,
            Some(std::process::ExitStatus::from_raw(9)),
            "",
        );
        assert!(m.contains("signal 9"), "{m}");
        let m = describe_end(&r, &opts, None, code(255), "\x1b[31mevil\n");
        assert!(!m.contains('\x1b'), "{m:?}");
    }

    #[test]
    fn the_badge_counts_down() {
        let now = Instant::now();
        let state = LinkState {
            label: "gpu1".into(),
            phase: Phase::Waiting {
                attempt: 2,
                next: now + Duration::from_secs(4),
                why: "the connection was lost".into(),
            },
            notices: vec![],
            remote_host: None,
        };
        assert_eq!(
            state.badge(now).unwrap(),
            "gpu1: the connection was lost; reconnecting, attempt 3, next in 4 s"
        );
        let live = LinkState {
            phase: Phase::Live,
            ..state
        };
        assert_eq!(live.badge(now), None);
    }
}
