//! `gantry agent`: the remote end of a link, started by the dashboard over ssh. It watches
//! its roots with the same watcher as the dashboard (inotify, polling past its limits),
//! sends the client what its mirror lacks, then every change as it happens, and carries
//! out the actions the client asks for on this host (runners it starts are detached and
//! outlive the connection). It ends when its stdin closes: the link is gone.
//!
//! A root's files travel as they are, except what a dashboard never reads: hidden files
//! (atomic writes' temporaries), `checkpoints/` folders, symbolic links, and files over
//! the mirror's size limit (a [`ToClient::Notice`] says so once).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};

use super::mirror::MAX_FILE;
use super::protocol::{self, CHUNK, HaveFile, Outcome, RemoteAction, ToAgent, ToClient};
use crate::ui::watch::{self, FsChange};

/// A quiet link sends a heartbeat this often (a few bytes), so both ends notice a dead one.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Changes arriving within this window travel together.
const COALESCE: Duration = Duration::from_millis(10);
/// Every file is looked at again this often, whatever the watcher said (a missed event
/// costs at most this long).
const FULL_SCAN: Duration = Duration::from_secs(30);
/// Polling interval where the watcher cannot watch.
const POLL: Duration = Duration::from_secs(2);
/// How deep under a root files are looked for (TensorBoard logdirs nest).
const MAX_DEPTH: usize = 8;

/// What the client holds of one file, as the agent last sent it.
struct Sent {
    id: u32,
    size: u64,
    ino: u64,
    mtime: SystemTime,
    /// [`protocol::tail_hash`] of what the client holds: a file that grew is appended
    /// to only if its first `size` bytes are still those. The same inode is not enough:
    /// a file replaced by rename twice can get its old inode number back.
    tail: u64,
}

enum Input {
    Client(ToAgent),
    ClientGone(Option<String>),
    Fs(FsChange),
}

/// The agent's state: its roots and what the client holds.
struct Agent<W: Write> {
    roots: Vec<PathBuf>,
    out: BufWriter<W>,
    next_id: u32,
    sent: HashMap<(u16, String), Sent>,
    /// What the client said it had, consumed at the first scan.
    have: HashMap<(u16, String), HaveFile>,
    /// Files already reported as too large.
    noticed: HashSet<(u16, String)>,
    /// Lazy files the client asked for: sent, and kept up to date, like the rest.
    fetched: HashSet<(u16, String)>,
    last_write: Instant,
}

/// Runs the agent on stdin and stdout until the client goes.
pub fn run(roots: Vec<PathBuf>, client_proto: u32) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{}",
        protocol::hello_line(&crate::runfs::status::hostname())
    )?;
    out.flush()?;
    anyhow::ensure!(
        client_proto == protocol::PROTOCOL,
        "the client speaks protocol {client_proto}, this agent speaks {} (gantry {})",
        protocol::PROTOCOL,
        env!("CARGO_PKG_VERSION")
    );
    let mut resolved = Vec::new();
    for root in roots {
        let abs = std::path::absolute(&root)
            .with_context(|| format!("resolving run root {}", root.display()))?;
        resolved.push(abs);
    }
    let (tx, rx) = mpsc::channel();
    let stdin_tx = tx.clone();
    std::thread::Builder::new()
        .name("agent-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                match protocol::read_frame::<ToAgent>(&mut stdin) {
                    Ok(Some(msg)) => {
                        if stdin_tx.send(Input::Client(msg)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = stdin_tx.send(Input::ClientGone(None));
                        return;
                    }
                    Err(e) => {
                        let _ = stdin_tx.send(Input::ClientGone(Some(e.to_string())));
                        return;
                    }
                }
            }
        })?;
    serve(resolved, out, tx, rx)
}

fn serve<W: Write>(
    roots: Vec<PathBuf>,
    out: W,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
) -> Result<()> {
    let mut agent = Agent {
        roots,
        out: BufWriter::with_capacity(256 * 1024, out),
        next_id: 0,
        sent: HashMap::new(),
        have: HashMap::new(),
        noticed: HashSet::new(),
        fetched: HashSet::new(),
        last_write: Instant::now(),
    };
    // What the client has, up to Start.
    loop {
        match rx.recv() {
            Ok(Input::Client(ToAgent::Have { root, files })) => {
                for f in files {
                    agent.have.insert((root, f.path.clone()), f);
                }
            }
            Ok(Input::Client(ToAgent::Start)) => break,
            Ok(Input::Client(ToAgent::Act { id, .. })) => {
                agent.send(&ToClient::Reply {
                    id,
                    outcome: Err("the agent has not started yet".into()),
                })?;
            }
            // Nothing has been listed yet.
            Ok(Input::Client(ToAgent::Fetch { .. })) => {}
            Ok(Input::ClientGone(why)) => return client_gone(why),
            Ok(Input::Fs(_)) => {}
            Err(_) => return Ok(()),
        }
    }
    let (fs_tx, fs_rx) = mpsc::channel::<FsChange>();
    let watching = start_watcher(&agent.roots, fs_tx);
    let forward = tx.clone();
    std::thread::Builder::new()
        .name("agent-fs".into())
        .spawn(move || {
            for change in fs_rx {
                if forward.send(Input::Fs(change)).is_err() {
                    return;
                }
            }
        })?;
    for root in 0..agent.roots.len() {
        if !agent.roots[root].is_dir() {
            let message = format!(
                "{}: no such folder on this host (yet)",
                agent.roots[root].display()
            );
            agent.send(&ToClient::Notice { message })?;
        }
    }
    agent.scan_all()?;
    // Files the client has that this host does not.
    let gone: Vec<(u16, String)> = agent.have.drain().map(|(k, _)| k).collect();
    for (root, path) in gone {
        let id = agent.open(root, &path)?;
        agent.send(&ToClient::Remove { file: id })?;
    }
    agent.send(&ToClient::Synced)?;
    agent.flush()?;
    let poll = if watching.is_some() { FULL_SCAN } else { POLL };
    let mut last_full = Instant::now();
    loop {
        let wait = HEARTBEAT.min(poll.saturating_sub(last_full.elapsed()));
        match rx.recv_timeout(wait) {
            Ok(Input::Client(msg)) => agent.client(msg)?,
            Ok(Input::ClientGone(why)) => return client_gone(why),
            Ok(Input::Fs(FsChange::Rescan)) => {
                agent.scan_all()?;
                last_full = Instant::now();
            }
            Ok(Input::Fs(FsChange::Paths(paths))) => {
                let mut dirty = BTreeSet::new();
                agent.mark(&paths, &mut dirty);
                let until = Instant::now() + COALESCE;
                let mut rescan = false;
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(left) {
                        Ok(Input::Fs(FsChange::Paths(p))) => agent.mark(&p, &mut dirty),
                        Ok(Input::Fs(FsChange::Rescan)) => rescan = true,
                        Ok(Input::Client(msg)) => agent.client(msg)?,
                        Ok(Input::ClientGone(why)) => return client_gone(why),
                        Err(_) => break,
                    }
                }
                if rescan {
                    agent.scan_all()?;
                } else {
                    for (root, top) in dirty {
                        agent.scan_entry(root, &top)?;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if last_full.elapsed() >= poll {
                    agent.scan_all()?;
                    last_full = Instant::now();
                }
                if agent.last_write.elapsed() >= HEARTBEAT {
                    agent.send(&ToClient::Heartbeat)?;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        agent.flush()?;
    }
}

fn client_gone(why: Option<String>) -> Result<()> {
    match why {
        None => Ok(()),
        Some(e) => anyhow::bail!("the client's frames stopped: {e}"),
    }
}

/// Watches each root recursively; `None` where the system's watcher cannot (the agent
/// polls instead).
fn start_watcher(
    roots: &[PathBuf],
    tx: mpsc::Sender<FsChange>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = watch::inotify(tx).ok()?;
    for root in roots {
        let _ = std::fs::create_dir_all(root);
        if watcher
            .watch(root, notify::RecursiveMode::Recursive)
            .is_err()
        {
            return None;
        }
    }
    Some(watcher)
}

/// Whether the agent leaves this entry out.
fn skipped(name: &str, is_dir: bool) -> bool {
    name.starts_with('.') || (is_dir && name == "checkpoints")
}

fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    meta.ino()
}

impl<W: Write> Agent<W> {
    /// A request of the client's once the agent has started.
    fn client(&mut self, msg: ToAgent) -> Result<()> {
        match msg {
            ToAgent::Act { id, root, action } => {
                let outcome = self.act(root, action);
                self.send(&ToClient::Reply { id, outcome })
            }
            ToAgent::Fetch { root, path } => self.fetch(root, &path),
            ToAgent::Have { .. } | ToAgent::Start => Ok(()),
        }
    }

    /// Sends a listed file whole, now and whenever it changes.
    fn fetch(&mut self, root: u16, path: &str) -> Result<()> {
        let Some(base) = self.roots.get(usize::from(root)).cloned() else {
            return Ok(());
        };
        if protocol::safe_relative(path).is_none() || !protocol::is_lazy(path) {
            return Ok(());
        }
        let key = (root, path.to_string());
        self.fetched.insert(key.clone());
        self.sent.remove(&key);
        let full = base.join(path);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_file() => self.sync_file(root, path, &full, &meta),
            _ => Ok(()),
        }
    }

    fn send(&mut self, msg: &ToClient) -> Result<()> {
        protocol::write_frame(&mut self.out, msg).context("writing to the client")?;
        self.last_write = Instant::now();
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing to the client")
    }

    /// The id of `path`, opening it on the client first if new.
    fn open(&mut self, root: u16, path: &str) -> Result<u32> {
        if let Some(s) = self.sent.get(&(root, path.to_string())) {
            return Ok(s.id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ToClient::Open {
            file: id,
            root,
            path: path.to_string(),
        })?;
        Ok(id)
    }

    /// Which (root, top-level entry) each changed path is under.
    fn mark(&self, paths: &[PathBuf], dirty: &mut BTreeSet<(u16, String)>) {
        for path in paths {
            for (i, root) in self.roots.iter().enumerate() {
                if let Ok(rel) = path.strip_prefix(root) {
                    if let Some(first) = rel.components().next() {
                        dirty.insert((i as u16, first.as_os_str().to_string_lossy().into_owned()));
                    } else {
                        // The root itself: its listing changed; look at everything.
                        dirty.insert((i as u16, String::new()));
                    }
                }
            }
        }
    }

    fn scan_all(&mut self) -> Result<()> {
        for root in 0..self.roots.len() {
            self.scan_entry(root as u16, "")?;
        }
        Ok(())
    }

    /// Sends what changed under `top` (a root's entry; `""` for the whole root).
    fn scan_entry(&mut self, root: u16, top: &str) -> Result<()> {
        let base = self.roots[usize::from(root)].clone();
        let start = if top.is_empty() {
            base.clone()
        } else {
            base.join(top)
        };
        let mut found = Vec::new();
        if !top.is_empty() && skipped(top, start.is_dir()) {
            return Ok(());
        }
        match std::fs::symlink_metadata(&start) {
            Ok(m) if m.is_file() => found.push((top.to_string(), m)),
            Ok(m) if m.is_dir() => collect(&base, &start, 0, &mut found),
            _ => {}
        }
        // What the runs list shows first: every run's run.ron and status.ron, then the
        // rest (1,000 runs are listed before their scores and samples arrive); within a
        // run, run.ron first, so the client never sees a run without its record.
        found.sort_by_key(|(p, _)| {
            let path = Path::new(p);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let summary =
                path.components().count() == 2 && (name == "run.ron" || name == "status.ron");
            (
                !summary,
                path.parent().map(Path::to_path_buf),
                name != "run.ron",
                p.clone(),
            )
        });
        let mut seen = HashSet::new();
        for (rel, meta) in found {
            seen.insert(rel.clone());
            self.sync_file(root, &rel, &base.join(&rel), &meta)?;
        }
        // Gone since the last look.
        let prefix = if top.is_empty() {
            String::new()
        } else {
            format!("{top}/")
        };
        let gone: Vec<String> = self
            .sent
            .keys()
            .filter(|(r, p)| *r == root && (top.is_empty() || p == top || p.starts_with(&prefix)))
            .filter(|(_, p)| !seen.contains(p))
            .map(|(_, p)| p.clone())
            .collect();
        for path in gone {
            if let Some(s) = self.sent.remove(&(root, path)) {
                self.send(&ToClient::Remove { file: s.id })?;
            }
        }
        Ok(())
    }

    fn sync_file(
        &mut self,
        root: u16,
        rel: &str,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<()> {
        let key = (root, rel.to_string());
        let size = meta.len();
        let ino = inode(meta);
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if size > MAX_FILE {
            if self.noticed.insert(key) {
                let message = format!(
                    "{}: {size} bytes, over the {MAX_FILE}-byte limit of a mirrored file; not sent",
                    path.display()
                );
                self.send(&ToClient::Notice { message })?;
            }
            return Ok(());
        }
        if protocol::is_lazy(rel) && !self.fetched.contains(&key) {
            return self.list(root, rel, key, path, (size, ino, mtime));
        }
        let from = match self.sent.get(&key) {
            Some(s) if s.ino == ino && s.size == size && s.mtime == mtime => return Ok(()),
            Some(s)
                if s.ino == ino
                    && s.size < size
                    && protocol::file_tail_hash(path, s.size).ok() == Some(s.tail) =>
            {
                Some(s.size)
            }
            Some(_) => None,
            None => match self.have.remove(&key) {
                Some(h)
                    if h.size <= size
                        && protocol::file_tail_hash(path, h.size).ok() == Some(h.tail_hash) =>
                {
                    Some(h.size)
                }
                _ => None,
            },
        };
        let id = self.open(root, rel)?;
        let sent = match from {
            Some(offset) => self.append(id, path, offset, size)?,
            None => self.put(id, path, size, mtime)?,
        };
        if let Some((size, tail)) = sent {
            self.sent.insert(
                key,
                Sent {
                    id,
                    size,
                    ino,
                    mtime,
                    tail,
                },
            );
        }
        Ok(())
    }

    /// Announces a lazy file (its size and time, not its bytes), unless the client holds
    /// it whole already (fetched over an earlier connection).
    fn list(
        &mut self,
        root: u16,
        rel: &str,
        key: (u16, String),
        path: &Path,
        (size, ino, mtime): (u64, u64, SystemTime),
    ) -> Result<()> {
        let held = self.have.remove(&key).filter(|h| {
            h.size == size
                && size > 0
                && protocol::file_tail_hash(path, size).ok() == Some(h.tail_hash)
        });
        let unchanged = self
            .sent
            .get(&key)
            .is_some_and(|s| s.ino == ino && s.size == size && s.mtime == mtime);
        if held.is_none() && unchanged {
            return Ok(());
        }
        let id = self.open(root, rel)?;
        let tail = match held {
            Some(h) => {
                self.fetched.insert(key.clone());
                h.tail_hash
            }
            None => {
                let secs = mtime
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                self.send(&ToClient::Listed {
                    file: id,
                    total: size,
                    mtime: secs,
                })?;
                // The client holds an empty stand-in: never appended to (lazy files
                // are sent whole once fetched).
                protocol::tail_hash(b"")
            }
        };
        self.sent.insert(
            key,
            Sent {
                id,
                size,
                ino,
                mtime,
                tail,
            },
        );
        Ok(())
    }

    /// Sends bytes `offset..size` as appends; the size reached and its tail hash, `None`
    /// if unreadable.
    fn append(
        &mut self,
        id: u32,
        path: &Path,
        offset: u64,
        size: u64,
    ) -> Result<Option<(u64, u64)>> {
        let Ok(mut file) = std::fs::File::open(path) else {
            return Ok(None);
        };
        if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
            return Ok(None);
        }
        let mut at = offset;
        let mut buf = vec![0u8; CHUNK];
        while at < size {
            let want = ((size - at) as usize).min(CHUNK);
            let n = match file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.send(&ToClient::Append {
                file: id,
                offset: at,
                bytes: buf[..n].to_vec(),
            })?;
            at += n as u64;
        }
        Ok(protocol::file_tail_hash(path, at)
            .ok()
            .map(|tail| (at, tail)))
    }

    /// Sends the whole file in chunks; the size sent and its tail hash, `None` if
    /// unreadable.
    fn put(
        &mut self,
        id: u32,
        path: &Path,
        size: u64,
        mtime: SystemTime,
    ) -> Result<Option<(u64, u64)>> {
        let Ok(data) = std::fs::File::open(path).and_then(|f| {
            let mut data = Vec::with_capacity(size as usize);
            f.take(size).read_to_end(&mut data)?;
            Ok(data)
        }) else {
            return Ok(None);
        };
        let total = data.len() as u64;
        let mtime = mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if data.is_empty() {
            self.send(&ToClient::Put {
                file: id,
                total: 0,
                offset: 0,
                mtime,
                bytes: Vec::new(),
            })?;
        }
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            self.send(&ToClient::Put {
                file: id,
                total,
                offset: (i * CHUNK) as u64,
                mtime,
                bytes: chunk.to_vec(),
            })?;
        }
        Ok(Some((total, protocol::tail_hash(&data))))
    }

    /// Carries out an action on a run of root `root`; only folders directly under the
    /// root are ever touched.
    fn act(&mut self, root: u16, action: RemoteAction) -> Result<Outcome, String> {
        let base = self
            .roots
            .get(usize::from(root))
            .ok_or_else(|| format!("no root {root} on this agent"))?
            .clone();
        let run_dir = |run: &str| -> Result<PathBuf, String> {
            crate::runfs::names::check_run_id(run).map_err(|e| format!("run {run:?}: {e}"))?;
            let dir = base.join(run);
            if !dir.is_dir() {
                return Err(format!("{}: no such run on this host", dir.display()));
            }
            Ok(dir)
        };
        match action {
            RemoteAction::Stop { run, force } => {
                let dir = run_dir(&run)?;
                crate::control::stop(&dir, force)
                    .map(Outcome::Stopped)
                    .map_err(|e| format!("{e:#}"))
            }
            RemoteAction::Resume { run } => {
                let dir = run_dir(&run)?;
                crate::control::resume_detached(&dir, &crate::control::ResumeOptions::default())
                    .map(|()| Outcome::Resumed)
                    .map_err(|e| format!("{e:#}"))
            }
            RemoteAction::Launch { config, name } => {
                // The config counts as written in the root: relative data paths are the
                // remote host's, from there.
                let at = base.join("new-run.ron");
                let spec =
                    crate::runfs::spec::RunSpec::parse(&at, &config).map_err(|e| e.to_string())?;
                let opts = crate::control::LaunchOptions {
                    runs: base.clone(),
                    name,
                    device: None,
                    plugin_dirs: Vec::new(),
                    allow_insecure_plugins: false,
                };
                crate::control::launch(&at, &spec, &opts)
                    .map(|folder| Outcome::Launched { run: folder.id() })
                    .map_err(|e| format!("{e:#}"))
            }
        }
    }
}

/// The files under `dir` (relative to `base`), depth-first, leaving out what the agent
/// never sends.
fn collect(base: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, std::fs::Metadata)>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if kind.is_symlink() || skipped(name, kind.is_dir()) {
            continue;
        }
        let path = entry.path();
        if kind.is_dir() {
            collect(base, &path, depth + 1, out);
        } else if kind.is_file() {
            let (Ok(rel), Ok(meta)) = (path.strip_prefix(base), entry.metadata()) else {
                continue;
            };
            if let Some(rel) = rel.to_str() {
                out.push((rel.to_string(), meta));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::mirror::{self, Mirror};

    /// An agent serving `remote` in a thread; frames come back on the returned reader.
    struct Harness {
        to_agent: mpsc::Sender<Input>,
        wire: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        read: usize,
        _thread: std::thread::JoinHandle<Result<()>>,
    }

    #[derive(Clone)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Harness {
        fn start(remote: &Path, have: Vec<HaveFile>) -> Harness {
            let (tx, rx) = mpsc::channel();
            let wire = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let out = Shared(wire.clone());
            let roots = vec![remote.to_path_buf()];
            let thread_tx = tx.clone();
            let thread = std::thread::spawn(move || serve(roots, out, thread_tx, rx));
            tx.send(Input::Client(ToAgent::Have {
                root: 0,
                files: have,
            }))
            .unwrap();
            tx.send(Input::Client(ToAgent::Start)).unwrap();
            Harness {
                to_agent: tx,
                wire,
                read: 0,
                _thread: thread,
            }
        }

        /// Frames until `until` matches one (applied to `mirror` on the way).
        fn pump(
            &mut self,
            mirror: &mut Mirror,
            until: impl Fn(&ToClient) -> bool,
        ) -> Vec<ToClient> {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut got = Vec::new();
            loop {
                let bytes = self.wire.lock().unwrap()[self.read..].to_vec();
                let mut cursor = std::io::Cursor::new(&bytes[..]);
                let mut used = 0;
                while let Ok(Some(frame)) = protocol::read_frame::<ToClient>(&mut cursor) {
                    used = cursor.position() as usize;
                    mirror.apply(&frame).unwrap();
                    let done = until(&frame);
                    got.push(frame);
                    if done {
                        self.read += used;
                        return got;
                    }
                }
                self.read += used;
                assert!(Instant::now() < deadline, "no matching frame; got {got:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut found = Vec::new();
        collect(dir, dir, 0, &mut found);
        for (rel, _) in found {
            out.push((rel.clone(), std::fs::read(dir.join(&rel)).unwrap()));
        }
        out.sort();
        out
    }

    #[test]
    fn a_mirror_follows_the_remote_root_and_resumes_from_its_offsets() {
        let remote = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let run = remote.path().join("run-1");
        std::fs::create_dir_all(run.join("checkpoints/last")).unwrap();
        std::fs::write(run.join("run.ron"), "(record)").unwrap();
        std::fs::write(run.join("scalars.csv"), "step,epoch,wall_time,tag,value\n").unwrap();
        std::fs::write(run.join("checkpoints/last/model.safetensors"), "weights").unwrap();
        std::fs::write(run.join(".status.ron.tmp-1-0"), "half").unwrap();
        let mut mirror = Mirror::new(vec![local.path().to_path_buf()]);
        let mut h = Harness::start(remote.path(), mirror::inventory(local.path()));
        h.pump(&mut mirror, |f| *f == ToClient::Synced);
        let want: Vec<_> = files(remote.path())
            .into_iter()
            .filter(|(p, _)| !p.contains("checkpoints"))
            .collect();
        assert_eq!(
            files(local.path()),
            want,
            "checkpoints and temporaries stay behind"
        );

        // Live: a row appended travels as an append of just that row.
        let row = "1,0,1.5,train/loss,0.25\n";
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run.join("scalars.csv"))
            .unwrap();
        f.write_all(row.as_bytes()).unwrap();
        drop(f);
        let got = h.pump(&mut mirror, |f| matches!(f, ToClient::Append { .. }));
        assert!(
            got.iter()
                .any(|f| matches!(f, ToClient::Append { bytes, .. } if bytes == row.as_bytes())),
            "{got:?}"
        );
        h.to_agent.send(Input::ClientGone(None)).unwrap();

        // Disconnected: more rows, a new file, a removed one.
        std::fs::OpenOptions::new()
            .append(true)
            .open(run.join("scalars.csv"))
            .unwrap()
            .write_all(b"2,0,2.5,train/loss,0.2\n")
            .unwrap();
        std::fs::write(run.join("status.ron"), "(state: running)").unwrap();
        std::fs::remove_file(run.join("run.ron")).unwrap();
        let mut mirror = Mirror::new(vec![local.path().to_path_buf()]);
        let mut h = Harness::start(remote.path(), mirror::inventory(local.path()));
        let got = h.pump(&mut mirror, |f| *f == ToClient::Synced);
        let appended: Vec<&Vec<u8>> = got
            .iter()
            .filter_map(|f| match f {
                ToClient::Append { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect();
        assert_eq!(
            appended,
            vec![&b"2,0,2.5,train/loss,0.2\n".to_vec()],
            "only the missing row travels: {got:?}"
        );
        let want: Vec<_> = files(remote.path())
            .into_iter()
            .filter(|(p, _)| !p.contains("checkpoints"))
            .collect();
        assert_eq!(files(local.path()), want);
    }

    #[test]
    fn a_file_rewritten_longer_in_place_is_sent_whole_not_appended() {
        // What a rename over the file does when the kernel hands back an inode number:
        // same inode, longer, different first bytes.
        let remote = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(remote.path().join("r")).unwrap();
        let status = remote.path().join("r/status.ron");
        std::fs::write(&status, "(state: running, step: 9)").unwrap();
        let mut mirror = Mirror::new(vec![local.path().to_path_buf()]);
        let mut h = Harness::start(remote.path(), mirror::inventory(local.path()));
        h.pump(&mut mirror, |f| *f == ToClient::Synced);
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&status)
            .unwrap()
            .write_all(b"(state: stopped, step: 10)")
            .unwrap();
        let got = h.pump(&mut mirror, |f| {
            matches!(f, ToClient::Put { .. } | ToClient::Append { .. })
        });
        assert!(matches!(got.last(), Some(ToClient::Put { .. })), "{got:?}");
        assert_eq!(
            std::fs::read(local.path().join("r/status.ron")).unwrap(),
            b"(state: stopped, step: 10)"
        );
        h.to_agent.send(Input::ClientGone(None)).unwrap();
    }

    #[test]
    fn sample_images_are_listed_and_sent_when_asked_for() {
        let remote = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let samples = remote.path().join("run-1/samples");
        std::fs::create_dir_all(&samples).unwrap();
        std::fs::write(remote.path().join("run-1/run.ron"), "(record)").unwrap();
        std::fs::write(samples.join("epoch-0001-recon.png"), b"png bytes").unwrap();
        let placeholders = crate::remote::mirror::Placeholders::default();
        let mut mirror =
            Mirror::with_placeholders(vec![local.path().to_path_buf()], placeholders.clone());
        let mut h = Harness::start(remote.path(), mirror::inventory(local.path()));
        let got = h.pump(&mut mirror, |f| *f == ToClient::Synced);
        assert!(
            got.iter()
                .any(|f| matches!(f, ToClient::Listed { total: 9, .. })),
            "{got:?}"
        );
        let shown = local.path().join("run-1/samples/epoch-0001-recon.png");
        assert_eq!(
            std::fs::read(&shown).unwrap(),
            b"",
            "a stand-in until asked for"
        );
        assert!(placeholders.lock().unwrap().contains(&shown));

        h.to_agent
            .send(Input::Client(ToAgent::Fetch {
                root: 0,
                path: "run-1/samples/epoch-0001-recon.png".into(),
            }))
            .unwrap();
        h.pump(&mut mirror, |f| matches!(f, ToClient::Put { .. }));
        assert_eq!(std::fs::read(&shown).unwrap(), b"png bytes");
        assert!(placeholders.lock().unwrap().is_empty());
        h.to_agent.send(Input::ClientGone(None)).unwrap();

        // Reconnected: what was fetched is not listed again, nor sent again.
        let mut mirror = Mirror::new(vec![local.path().to_path_buf()]);
        let mut h = Harness::start(remote.path(), mirror::inventory(local.path()));
        let got = h.pump(&mut mirror, |f| *f == ToClient::Synced);
        assert!(
            !got.iter()
                .any(|f| matches!(f, ToClient::Listed { .. } | ToClient::Put { .. })),
            "{got:?}"
        );
        assert_eq!(std::fs::read(&shown).unwrap(), b"png bytes");
        h.to_agent.send(Input::ClientGone(None)).unwrap();
    }

    #[test]
    fn actions_stay_inside_the_roots() {
        let remote = tempfile::tempdir().unwrap();
        let mut agent = Agent {
            roots: vec![remote.path().to_path_buf()],
            out: BufWriter::new(Vec::new()),
            next_id: 0,
            sent: HashMap::new(),
            have: HashMap::new(),
            noticed: HashSet::new(),
            fetched: HashSet::new(),
            last_write: Instant::now(),
        };
        for run in ["../etc", "/tmp", "a/b", ""] {
            let e = agent
                .act(
                    0,
                    RemoteAction::Stop {
                        run: run.into(),
                        force: false,
                    },
                )
                .unwrap_err();
            assert!(e.contains(&format!("{run:?}")), "{e}");
        }
        let e = agent
            .act(0, RemoteAction::Resume { run: "nope".into() })
            .unwrap_err();
        assert!(e.contains("no such run"), "{e}");
        assert!(
            agent
                .act(3, RemoteAction::Resume { run: "x".into() })
                .unwrap_err()
                .contains("no root 3")
        );
    }
}
