//! Keeps the store current from file events, off the UI thread.
//!
//! Two things make this cheap at a lab's scale (10,000 runs):
//! - Only events that mean "changed" count ([`classify`]). inotify also reports opens,
//!   reads and closes of files; the store reading a run is such an event, so treating
//!   every event as a change made each read of a run schedule another read of it, a loop
//!   that kept a core busy with nothing changing on disk.
//! - A change is mapped to its run by a few map look-ups ([`RunStore::refresh_paths`]),
//!   never by comparing it with every run.
//!
//! Each root is watched on its own (non-recursively) and each folder in it recursively,
//! so when the kernel's watch limit (`fs.inotify.max_user_watches`) runs out it is known
//! which folders are not watched: those are re-read every [`POLL_UNWATCHED`], and the
//! status bar says so once. Nothing stops updating.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::event::Event;
use super::store::RunStore;

/// File events arriving within this window are handled as one refresh: a training step
/// touches scalars.csv and status.ron together.
const COALESCE: Duration = Duration::from_millis(15);
/// How often runs that should be alive are re-checked (stalled, crashed) when no file
/// event arrives; matches the runner's heartbeat.
pub const LIVENESS_TICK: Duration = Duration::from_secs(2);
/// Runs of the start-up backlog read per turn of the store loop: small enough that the
/// store's lock is never held long (a change waits at most one chunk).
const BACKLOG_CHUNK: usize = 256;
/// How often the folders that could not be watched are re-read.
pub const POLL_UNWATCHED: Duration = Duration::from_secs(2);

/// What one file event means for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum FsChange {
    /// These paths' contents or names changed.
    Paths(Vec<PathBuf>),
    /// The kernel dropped events (queue overflow): read everything again.
    Rescan,
}

/// Sorts a file event: `None` for the events that change nothing a reader sees (opens,
/// reads, closes after reading, metadata such as access times).
pub fn classify(ev: &notify::Event) -> Option<FsChange> {
    if ev.need_rescan() {
        return Some(FsChange::Rescan);
    }
    let changed = match ev.kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        // A writer closing its file: the data is complete now.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
    };
    changed.then(|| FsChange::Paths(ev.paths.clone()))
}

/// The part of a file watcher the store thread uses; a test puts a limit on it.
pub trait DirWatcher: Send {
    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()>;
    fn unwatch(&mut self, path: &Path) -> notify::Result<()>;
}

impl DirWatcher for RecommendedWatcher {
    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        Watcher::watch(self, path, mode)
    }
    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        Watcher::unwatch(self, path)
    }
}

/// Stops the store thread when dropped.
pub struct WatchGuard {
    stop: Arc<AtomicBool>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Watches the roots with inotify (or polls every run each `poll`, for NFS and sshfs),
/// refreshes the store on its own thread and sends `StoreChanged` when something visible
/// changed. The store should have been scanned once already.
pub fn spawn_watcher(
    roots: &[PathBuf],
    poll: Option<Duration>,
    store: Arc<RwLock<RunStore>>,
    tx: Sender<Event>,
) -> Result<WatchGuard> {
    let (events_tx, events_rx) = mpsc::channel::<FsChange>();
    let watcher: Option<Box<dyn DirWatcher>> = match poll {
        Some(_) => None,
        None => Some(Box::new(inotify(events_tx)?)),
    };
    spawn_with(roots.to_vec(), poll, watcher, events_rx, store, tx)
}

/// The system's watcher, sending only the events that mean a change.
pub fn inotify(events: Sender<FsChange>) -> Result<RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        // A watcher error (the kernel's queue, a vanished folder) is as good as an
        // overflow: read again.
        let change = match res {
            Ok(ev) => classify(&ev),
            Err(_) => Some(FsChange::Rescan),
        };
        if let Some(change) = change {
            let _ = events.send(change);
        }
    };
    RecommendedWatcher::new(handler, notify::Config::default()).context("starting the file watcher")
}

/// [`spawn_watcher`] with its parts given: the test's limited watcher, its own events.
pub fn spawn_with(
    roots: Vec<PathBuf>,
    poll: Option<Duration>,
    watcher: Option<Box<dyn DirWatcher>>,
    events: mpsc::Receiver<FsChange>,
    store: Arc<RwLock<RunStore>>,
    tx: Sender<Event>,
) -> Result<WatchGuard> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let mut loop_state = StoreLoop {
                watches: Watches::new(roots, watcher, poll),
                store,
                tx,
                stop: thread_stop,
            };
            loop_state.run(&events);
        })
        .context("starting the store thread")?;
    Ok(WatchGuard { stop })
}

struct StoreLoop {
    watches: Watches,
    store: Arc<RwLock<RunStore>>,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
}

impl StoreLoop {
    fn run(&mut self, events: &mpsc::Receiver<FsChange>) {
        // Runs the start-up scan read only the summary of, newest first: read in chunks
        // between events, so the screen fills in while staying live. The first chunk (the
        // rows on screen) comes before the watches, which take a while to add at
        // thousands of folders; it is read again once they are in place, so a change
        // made meanwhile is not missed.
        let mut backlog: VecDeque<PathBuf> = self
            .store
            .read()
            .map(|s| s.unloaded().into())
            .unwrap_or_default();
        let first: Vec<PathBuf> = backlog.iter().take(BACKLOG_CHUNK).cloned().collect();
        if self.load_some(&mut backlog) && self.tx.send(Event::StoreChanged).is_err() {
            return;
        }
        self.sync_watches();
        let changed = self
            .store
            .write()
            .map(|mut s| s.refresh_dirs(&first))
            .unwrap_or(false);
        if changed && self.tx.send(Event::StoreChanged).is_err() {
            return;
        }
        let mut next_poll = Instant::now() + self.watches.poll_interval();
        let mut next_tick = Instant::now() + LIVENESS_TICK;
        while !self.stop.load(Ordering::Relaxed) {
            let wake = if backlog.is_empty() {
                next_poll.min(next_tick)
            } else {
                Instant::now()
            };
            let first = match events.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(change) => Some(change),
                Err(RecvTimeoutError::Timeout) => None,
                // No watcher (polling) or it is gone: time alone drives the loop.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(wake.saturating_duration_since(Instant::now()));
                    None
                }
            };
            let mut changed = false;
            if let Some(first) = first {
                changed |= self.handle(first, events);
            }
            if !backlog.is_empty() {
                changed |= self.load_some(&mut backlog);
            }
            let now = Instant::now();
            if now >= next_poll {
                changed |= self.poll();
                next_poll = now + self.watches.poll_interval();
            }
            let sent = if changed {
                next_tick = now + LIVENESS_TICK;
                self.tx.send(Event::StoreChanged).is_ok()
            } else if now >= next_tick {
                next_tick = now + LIVENESS_TICK;
                self.tick_if_live()
            } else {
                true
            };
            if !sent {
                return;
            }
        }
    }

    /// Reads the next [`BACKLOG_CHUNK`] runs of the start-up backlog in full.
    fn load_some(&mut self, backlog: &mut VecDeque<PathBuf>) -> bool {
        let Ok(mut store) = self.store.write() else {
            return false;
        };
        let mut chunk = Vec::with_capacity(BACKLOG_CHUNK);
        while chunk.len() < BACKLOG_CHUNK
            && let Some(dir) = backlog.pop_front()
        {
            // A change may have read it already.
            if store.runs.get(&dir).is_some_and(|r| !r.is_loaded()) {
                chunk.push(dir);
            }
        }
        store.refresh_dirs(&chunk)
    }

    /// One event and those that follow within [`COALESCE`], as one refresh.
    fn handle(&mut self, first: FsChange, events: &mpsc::Receiver<FsChange>) -> bool {
        let mut paths = Vec::new();
        let mut rescan = false;
        let mut take = |change| match change {
            FsChange::Paths(p) => paths.extend(p),
            FsChange::Rescan => rescan = true,
        };
        take(first);
        let deadline = Instant::now() + COALESCE;
        while let Ok(more) = events.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            take(more);
        }
        let before = self.run_count();
        let changed = match self.store.write() {
            Ok(mut s) if rescan => s.rescan(),
            Ok(mut s) => {
                paths.sort();
                paths.dedup();
                s.refresh_paths(&paths)
            }
            Err(_) => return false,
        };
        // A folder came or went under a root: watch the new ones.
        if rescan
            || paths.iter().any(|p| self.watches.is_root_entry(p))
            || before != self.run_count()
        {
            self.sync_watches();
        }
        changed
    }

    /// Re-reads what is not watched: every run when polling, else the folders past the
    /// watch limit (and the roots' listings, for a root that could not be watched).
    fn poll(&mut self) -> bool {
        let Ok(mut store) = self.store.write() else {
            return false;
        };
        if self.watches.polling_everything() {
            return store.rescan();
        }
        let mut changed = false;
        if self.watches.roots_unwatched() {
            changed |= store.rescan_new();
        }
        if !self.watches.polled.is_empty() {
            let dirs: Vec<PathBuf> = store
                .runs
                .keys()
                .filter(|k| self.watches.covers_polled(k))
                .cloned()
                .collect();
            changed |= store.refresh_dirs(&dirs);
        }
        drop(store);
        if changed {
            self.sync_watches();
        }
        changed
    }

    fn sync_watches(&mut self) {
        let note = self.watches.sync();
        if let Ok(mut s) = self.store.write()
            && s.watch_note != note
        {
            s.watch_note = note;
            drop(s);
            let _ = self.tx.send(Event::StoreChanged);
        }
    }

    fn run_count(&self) -> usize {
        self.store.read().map(|s| s.runs.len()).unwrap_or(0)
    }

    /// Sends a tick when some run is live (its liveness can change with time alone);
    /// false when the UI is gone.
    fn tick_if_live(&self) -> bool {
        let live = self
            .store
            .read()
            .map(|s| s.has_live_runs())
            .unwrap_or(false);
        !live || self.tx.send(Event::Tick).is_ok()
    }
}

/// Which folders have a watch, and which are polled instead.
struct Watches {
    roots: Vec<PathBuf>,
    watcher: Option<Box<dyn DirWatcher>>,
    /// `--poll`: no watcher at all, everything re-read at this interval.
    poll: Option<Duration>,
    /// Roots watched (non-recursively: folders created or removed in them).
    roots_watched: BTreeSet<PathBuf>,
    /// Folders directly in a root, watched recursively.
    watched: BTreeSet<PathBuf>,
    /// Folders directly in a root that could not be watched: re-read by polling.
    polled: BTreeSet<PathBuf>,
    /// Why watching stopped (the limit), once it did: no more watches are tried.
    exhausted: Option<String>,
    /// The first other refusal (permissions): that folder alone is polled.
    failure: Option<String>,
}

impl Watches {
    fn new(
        roots: Vec<PathBuf>,
        watcher: Option<Box<dyn DirWatcher>>,
        poll: Option<Duration>,
    ) -> Watches {
        Watches {
            roots,
            watcher,
            poll,
            roots_watched: BTreeSet::new(),
            watched: BTreeSet::new(),
            polled: BTreeSet::new(),
            exhausted: None,
            failure: None,
        }
    }

    fn polling_everything(&self) -> bool {
        self.watcher.is_none()
    }

    fn roots_unwatched(&self) -> bool {
        self.roots.iter().any(|r| !self.roots_watched.contains(r))
    }

    fn poll_interval(&self) -> Duration {
        self.poll.unwrap_or(POLL_UNWATCHED)
    }

    /// Whether `path` is directly in a root (a run folder created or removed).
    fn is_root_entry(&self, path: &Path) -> bool {
        path.parent()
            .is_some_and(|p| self.roots.iter().any(|r| r == p))
    }

    /// Whether a store key (run folder, foreign logdir or CSV) lies in a polled folder.
    fn covers_polled(&self, key: &Path) -> bool {
        self.roots.iter().any(|root| {
            key.strip_prefix(root)
                .ok()
                .and_then(|rel| rel.components().next())
                .is_some_and(|first| self.polled.contains(&root.join(first)))
        })
    }

    /// Watches every root and every folder in them not yet watched, forgets those gone;
    /// returns what the status bar should say about it.
    fn sync(&mut self) -> Option<String> {
        let watcher = self.watcher.as_mut()?;
        let mut present = BTreeSet::new();
        for root in &self.roots {
            if !self.roots_watched.contains(root) && self.exhausted.is_none() && root.is_dir() {
                match watcher.watch(root, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.roots_watched.insert(root.clone());
                    }
                    Err(e) => note_failure(&mut self.exhausted, &mut self.failure, root, &e),
                }
            }
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for entry in entries.filter_map(|e| e.ok()) {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !hidden && is_dir {
                    present.insert(entry.path());
                }
            }
        }
        self.watched.retain(|d| present.contains(d));
        self.polled.retain(|d| present.contains(d));
        for dir in present {
            if self.watched.contains(&dir) || self.polled.contains(&dir) {
                continue;
            }
            if self.exhausted.is_some() {
                self.polled.insert(dir);
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                // Gone between the listing and the watch: the next event says so.
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    note_failure(&mut self.exhausted, &mut self.failure, &dir, &e);
                    // What a half-done recursive watch did add is of no use: poll it all.
                    let _ = watcher.unwatch(&dir);
                    self.polled.insert(dir);
                }
            }
        }
        self.exhausted
            .as_ref()
            .or(self.failure.as_ref())
            .map(|why| {
                format!(
                    "{why}: {} folder(s) re-read every {} s instead",
                    self.polled.len() + self.roots.len() - self.roots_watched.len(),
                    POLL_UNWATCHED.as_secs()
                )
            })
    }
}

fn is_not_found(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Records why a watch failed, naming the limit a user can raise: the limit stops all
/// further watches, anything else only that folder's.
fn note_failure(
    exhausted: &mut Option<String>,
    failure: &mut Option<String>,
    path: &Path,
    e: &notify::Error,
) {
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        if exhausted.is_none() {
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .map(|s| format!(" (fs.inotify.max_user_watches = {})", s.trim()))
                .unwrap_or_default();
            let why = format!("inotify watch limit reached{limit}");
            tracing::warn!("{why}; the folders past it are polled");
            *exhausted = Some(why);
        }
    } else if failure.is_none() {
        let why = format!("cannot watch {}: {e}", path.display());
        tracing::warn!("{why}; it is polled");
        *failure = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use notify::event::{CreateKind, DataChange, MetadataKind};

    use super::*;
    use crate::fixtures;

    fn event(kind: EventKind) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from("/r/a/scalars.csv"))
    }

    /// Opens, reads and read-closes (what the dashboard's own reading causes) are not
    /// changes; writes, creations, removals, renames and overflows are.
    #[test]
    fn only_writes_count_as_changes() {
        let quiet = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Other,
        ];
        for kind in quiet {
            assert_eq!(classify(&event(kind)), None, "{kind:?}");
        }
        let changes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::To)),
            EventKind::Remove(notify::event::RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ];
        for kind in changes {
            assert_eq!(
                classify(&event(kind)),
                Some(FsChange::Paths(vec![PathBuf::from("/r/a/scalars.csv")])),
                "{kind:?}"
            );
        }
        let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(classify(&overflow), Some(FsChange::Rescan));
    }

    fn scanned_store(root: &Path) -> Arc<RwLock<RunStore>> {
        let store = Arc::new(RwLock::new(RunStore::new(vec![root.to_path_buf()])));
        store.write().unwrap().rescan();
        store
    }

    fn append_row(root: &Path, run: &str, value: f64) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(run).join("scalars.csv"))
            .unwrap();
        writeln!(f, "1800000000.000,99,7,val/loss,{value}").unwrap();
    }

    /// Waits until `run`'s last val/loss is `value`; panics after `within`.
    fn wait_for_value(
        rx: &mpsc::Receiver<Event>,
        store: &RwLock<RunStore>,
        key: &Path,
        value: f64,
        within: Duration,
    ) -> Duration {
        let start = Instant::now();
        let deadline = start + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Event::StoreChanged) => {
                    let s = store.read().unwrap();
                    if s.runs[key].series["val/loss"].last() == Some(value) {
                        return start.elapsed();
                    }
                }
                Ok(_) => {}
                Err(_) => panic!("{} not shown within {within:?}", key.display()),
            }
        }
    }

    /// The refresh loop found at 1,000 runs: reading a run's files (as the store itself
    /// does, or `cat`) must not make the store read it again. With every inotify event
    /// taken as a change, each refresh's own opens scheduled the next refresh, forever.
    #[test]
    fn reading_runs_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fixtures::write_standard_root(&root).unwrap();
        let store = scanned_store(&root);
        let (tx, rx) = mpsc::channel();
        let _guard =
            spawn_watcher(std::slice::from_ref(&root), None, Arc::clone(&store), tx).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        while rx.try_recv().is_ok() {}
        let before = store.read().unwrap().refreshes;
        for _ in 0..3 {
            for entry in walk(&root) {
                let _ = std::fs::read(entry);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(400));
        let after = store.read().unwrap().refreshes;
        assert_eq!(after, before, "reading files made the store re-read runs");
        assert!(
            !rx.try_iter().any(|e| matches!(e, Event::StoreChanged)),
            "reading files was reported as a change"
        );
        // A real change still arrives, and re-reads that one run only.
        append_row(&root, "ae-finished", 0.125);
        wait_for_value(
            &rx,
            &store,
            &root.join("ae-finished"),
            0.125,
            Duration::from_secs(5),
        );
        let refreshed = store.read().unwrap().refreshes - after;
        assert!(refreshed <= 2, "one append re-read {refreshed} runs");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    /// A watcher that refuses past `limit` watches, as inotify does at
    /// `fs.inotify.max_user_watches`.
    struct Limited {
        inner: RecommendedWatcher,
        left: usize,
    }

    impl DirWatcher for Limited {
        fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
            if self.left == 0 {
                return Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
            }
            self.left -= 1;
            Watcher::watch(&mut self.inner, path, mode)
        }
        fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
            Watcher::unwatch(&mut self.inner, path)
        }
    }

    /// Past the watch limit the dashboard keeps updating: the folders it could not watch
    /// are polled, and the status bar says so.
    #[test]
    fn watch_limit_falls_back_to_polling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fixtures::write_standard_root(&root).unwrap();
        let store = scanned_store(&root);
        let runs: Vec<PathBuf> = store
            .read()
            .unwrap()
            .runs
            .iter()
            .filter(|(_, r)| r.foreign.is_none() && r.folder.scalars_file().exists())
            .map(|(k, _)| k.clone())
            .collect();
        assert!(runs.len() >= 2, "{runs:?}");
        let (events_tx, events_rx) = mpsc::channel();
        // The root and one folder get a watch; the rest do not.
        let watcher = Limited {
            inner: inotify(events_tx).unwrap(),
            left: 2,
        };
        let (tx, rx) = mpsc::channel();
        let _guard = spawn_with(
            vec![root.clone()],
            None,
            Some(Box::new(watcher)),
            events_rx,
            Arc::clone(&store),
            tx,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let note = loop {
            if let Some(n) = store.read().unwrap().watch_note.clone() {
                break n;
            }
            assert!(Instant::now() < deadline, "no note about the watch limit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(note.contains("inotify watch limit reached"), "{note}");
        assert!(note.contains("re-read every 2 s"), "{note}");
        // Every run's appended line arrives: watched or polled.
        for (i, run) in runs.iter().enumerate() {
            let value = 0.5 + i as f64;
            append_row(&root, &run.file_name().unwrap().to_string_lossy(), value);
            wait_for_value(&rx, &store, run, value, POLL_UNWATCHED * 3);
        }
    }

    /// Start-up at any run count: the first scan lists every run with its status (the
    /// newest runs' records too, for the rows on screen) and reads nothing else; the
    /// store thread then reads every run in full, newest first.
    #[test]
    fn start_up_lists_every_run_at_once_and_reads_the_rest_after() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let n = 300;
        for i in 0..n {
            let mut run = fixtures::FixtureRun::new(
                &format!("run-{i:03}"),
                crate::runfs::status::State::Finished,
                1,
            );
            run.age = 100.0 + i as f64;
            fixtures::write_run(&root, &run).unwrap();
        }
        let store = Arc::new(RwLock::new(RunStore::new(vec![root.clone()])));
        store.write().unwrap().scan_summaries();
        {
            let s = store.read().unwrap();
            assert_eq!(s.runs.len(), n);
            assert!(
                s.runs
                    .values()
                    .all(|r| r.status.is_some() && r.series.is_empty())
            );
            let with_record = s.runs.values().filter(|r| r.record.is_some()).count();
            assert_eq!(with_record, 256, "records read before the first frame");
            // The newest ones: those the list shows first.
            assert!(s.runs[&root.join("run-000")].record.is_some());
            assert!(
                s.runs[&root.join(format!("run-{:03}", n - 1))]
                    .record
                    .is_none()
            );
        }
        let (tx, _rx) = mpsc::channel();
        let _guard =
            spawn_watcher(std::slice::from_ref(&root), None, Arc::clone(&store), tx).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !store.read().unwrap().unloaded().is_empty() {
            assert!(Instant::now() < deadline, "the backlog was not read");
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = store.read().unwrap();
        assert!(
            s.runs
                .values()
                .all(|r| r.record.is_some() && r.series.contains_key("val/loss"))
        );
    }

    /// `--poll` for filesystems without inotify: an appended line still arrives.
    #[test]
    fn polling_watcher_reports_appended_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fixtures::write_standard_root(&root).unwrap();
        let store = scanned_store(&root);
        let (tx, rx) = mpsc::channel();
        let _guard = spawn_watcher(
            std::slice::from_ref(&root),
            Some(Duration::from_millis(100)),
            Arc::clone(&store),
            tx,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(250));
        append_row(&root, "ae-finished", 0.125);
        wait_for_value(
            &rx,
            &store,
            &root.join("ae-finished"),
            0.125,
            Duration::from_secs(5),
        );
    }
}
