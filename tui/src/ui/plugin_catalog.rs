//! The plugins on the search path, as the Plugins view and the new-run form see them, kept
//! current by a background thread: it describes every `*.so` (each in a child process,
//! which may take seconds, so never on the UI thread), watches the plugin folders
//! (non-recursively) and re-describes only the files whose size, mtime or inode changed.
//! Each new state of the list goes to the UI loop as [`Event::Plugins`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::event::Event;
use crate::plugins::{self, PluginEntry};

/// A copy into a plugin folder arrives as several events (create, writes, close); the list
/// is refreshed once this long has passed without another.
const QUIET: Duration = Duration::from_millis(120);
/// ...but no later than this after the first, so a file written slowly still shows.
const SETTLE_MAX: Duration = Duration::from_millis(600);

/// What the dashboard knows of the plugins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginCatalog {
    /// The search path, in order.
    pub dirs: Vec<PathBuf>,
    /// Folders of the search path that do not exist.
    pub missing: Vec<PathBuf>,
    /// Every `*.so` found, in search order.
    pub rows: Vec<PluginRow>,
    /// Whether every row has been described at least once.
    pub scanned: bool,
    /// Why a folder could not be watched (changes there show only on the next rescan).
    pub watch_errors: Vec<String>,
}

/// One library on the search path.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRow {
    pub path: PathBuf,
    /// `None` while it is being described.
    pub entry: Option<PluginEntry>,
}

impl PluginCatalog {
    /// The plugins that described themselves and can be used for a run.
    pub fn usable(&self) -> impl Iterator<Item = &PluginEntry> {
        self.rows
            .iter()
            .filter_map(|r| r.entry.as_ref())
            .filter(|e| e.status == "ok")
    }
}

/// Describes one library; the real one runs `gantry plugins describe` in a child.
pub type Describe = Box<dyn Fn(&Path) -> PluginEntry + Send>;

/// Keeps the folder watcher alive; dropping it stops watching.
pub struct PluginWatch {
    _watcher: Option<RecommendedWatcher>,
}

/// Starts describing and watching `dirs`; every change of the list is sent on `tx`.
pub fn spawn(dirs: Vec<PathBuf>, describe: Describe, tx: Sender<Event>) -> PluginWatch {
    let (fs_tx, fs_rx) = mpsc::channel::<()>();
    let mut catalog = PluginCatalog {
        dirs: dirs.clone(),
        ..PluginCatalog::default()
    };
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && (ev.need_rescan() || ev.paths.iter().any(|p| is_library(p)))
        {
            let _ = fs_tx.send(());
        }
    };
    let watcher = match RecommendedWatcher::new(handler, notify::Config::default()) {
        Ok(mut w) => {
            for dir in dirs.iter().filter(|d| d.is_dir()) {
                if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
                    catalog
                        .watch_errors
                        .push(format!("watching {}: {e}", dir.display()));
                }
            }
            Some(w)
        }
        Err(e) => {
            catalog
                .watch_errors
                .push(format!("no file watcher for plugin folders: {e}"));
            None
        }
    };
    std::thread::Builder::new()
        .name("plugins".into())
        .spawn(move || {
            let mut cache = HashMap::new();
            loop {
                if !rescan(&mut catalog, &mut cache, &describe, &tx) {
                    return;
                }
                if fs_rx.recv().is_err() {
                    return;
                }
                let first = Instant::now();
                while first.elapsed() < SETTLE_MAX {
                    match fs_rx.recv_timeout(QUIET) {
                        Ok(()) => {}
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        })
        .expect("spawn plugins thread");
    PluginWatch { _watcher: watcher }
}

/// A file whose change may change the list: a library, or a Python file (that may
/// declare `GANTRY_PLUGIN`, or stop declaring it).
fn is_library(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "so" || e == "py")
}

/// What tells a replaced library from the one described before.
type Stamp = (Option<SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

/// Brings the catalog up to date with the folders, describing new and changed libraries
/// one by one and sending the list after each; false when the UI is gone.
fn rescan(
    catalog: &mut PluginCatalog,
    cache: &mut HashMap<PathBuf, (Stamp, PluginEntry)>,
    describe: &Describe,
    tx: &Sender<Event>,
) -> bool {
    let found: Vec<(PathBuf, Option<Stamp>)> = plugins::candidates(&catalog.dirs)
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect();
    cache.retain(|p, _| found.iter().any(|(f, _)| f == p));
    let missing: Vec<PathBuf> = catalog
        .dirs
        .iter()
        .filter(|d| !d.is_dir())
        .cloned()
        .collect();
    let fresh = |path: &PathBuf, s: &Option<Stamp>| {
        cache
            .get(path)
            .filter(|(old, _)| Some(old) == s.as_ref())
            .map(|(_, e)| e.clone())
    };
    let rows: Vec<PluginRow> = found
        .iter()
        .map(|(path, s)| PluginRow {
            path: path.clone(),
            entry: fresh(path, s),
        })
        .collect();
    if catalog.scanned && rows == catalog.rows && missing == catalog.missing {
        return true;
    }
    catalog.rows = rows;
    catalog.missing = missing;
    catalog.scanned = false;
    if tx.send(Event::Plugins(catalog.clone())).is_err() {
        return false;
    }
    for (i, (path, s)) in found.iter().enumerate() {
        if catalog.rows[i].entry.is_some() {
            continue;
        }
        let entry = describe(path);
        if let Some(s) = s {
            cache.insert(path.clone(), (*s, entry.clone()));
        }
        catalog.rows[i].entry = Some(entry);
        if catalog.rows.iter().all(|r| r.entry.is_some()) {
            catalog.scanned = true;
        }
        if tx.send(Event::Plugins(catalog.clone())).is_err() {
            return false;
        }
    }
    if !catalog.scanned {
        catalog.scanned = true;
        return tx.send(Event::Plugins(catalog.clone())).is_ok();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_describe(path: &Path) -> PluginEntry {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        PluginEntry {
            path: path.to_path_buf(),
            status: if text.starts_with("ok") {
                "ok"
            } else {
                "refused"
            }
            .into(),
            name: Some(text.trim().to_string()),
            version: Some("0.1.0".into()),
            family: Some("autoencoder".into()),
            abi: Some("1.0".into()),
            summary: None,
            reason: (!text.starts_with("ok")).then(|| "not a plugin".to_string()),
            default_params: Some("{}".into()),
        }
    }

    /// Waits for a catalog that satisfies `done`, returning it and how long it took.
    fn wait_for(
        rx: &mpsc::Receiver<Event>,
        done: impl Fn(&PluginCatalog) -> bool,
    ) -> (PluginCatalog, Duration) {
        let start = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Event::Plugins(c)) if done(&c) => return (c, start.elapsed()),
                Ok(_) => {}
                Err(_) => panic!("no matching plugin list within 5 s"),
            }
        }
    }

    #[test]
    fn a_library_copied_in_shows_within_a_second_and_a_removed_one_goes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("liba.so"), "ok a").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a library").unwrap();
        let (tx, rx) = mpsc::channel();
        let _watch = spawn(
            vec![dir.path().to_path_buf(), dir.path().join("missing")],
            Box::new(fake_describe),
            tx,
        );
        let (first, _) = wait_for(&rx, |c| c.scanned);
        assert_eq!(first.rows.len(), 1);
        assert_eq!(first.usable().count(), 1);

        // Written elsewhere and copied in, as `cp` or `install` would.
        let staged = tempfile::tempdir().unwrap();
        std::fs::write(staged.path().join("libb.so"), "broken").unwrap();
        std::fs::copy(staged.path().join("libb.so"), dir.path().join("libb.so")).unwrap();
        let (added, took) = wait_for(&rx, |c| c.scanned && c.rows.len() == 2);
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let b = added.rows[1].entry.as_ref().unwrap();
        assert_eq!(
            (b.status.as_str(), b.reason.as_deref()),
            ("refused", Some("not a plugin"))
        );

        // Replaced in place: described again.
        std::fs::write(dir.path().join("libb.so"), "ok b, fixed").unwrap();
        let (fixed, _) = wait_for(&rx, |c| c.scanned && c.usable().count() == 2);
        assert_eq!(
            fixed.rows[1].entry.as_ref().unwrap().name.as_deref(),
            Some("ok b, fixed")
        );

        std::fs::remove_file(dir.path().join("liba.so")).unwrap();
        let (gone, _) = wait_for(&rx, |c| c.scanned && c.rows.len() == 1);
        assert!(gone.rows[0].path.ends_with("libb.so"));
    }
}
