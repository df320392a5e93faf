//! One event channel for the dashboard: terminal input, "runs changed" from the watcher,
//! and a slow liveness tick. The UI loop blocks on it and draws only after handling an
//! event that changed something: idle means no redraw and no bytes to the terminal.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

use super::store::RunStore;

/// File events arriving within this window are handled as one refresh: a training step
/// touches scalars.csv and status.ron together.
const COALESCE: Duration = Duration::from_millis(15);
/// How often runs that should be alive are re-checked (stalled, crashed) when no file
/// event arrives; matches the runner's heartbeat.
const LIVENESS_TICK: Duration = Duration::from_secs(2);

/// What wakes the UI loop.
#[derive(Debug)]
pub enum Event {
    Input(crossterm::event::Event),
    /// The store changed; redraw from it.
    StoreChanged,
    /// Time passed with live runs: ages and liveness may read differently.
    Tick,
    /// Reading the terminal failed (closed): quit.
    InputClosed(String),
}

/// Keeps the file watcher alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: Box<dyn Watcher + Send>,
}

/// Reads terminal input on its own thread.
pub fn spawn_input(tx: Sender<Event>) {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let event = match crossterm::event::read() {
                    Ok(ev) => Event::Input(ev),
                    Err(e) => Event::InputClosed(e.to_string()),
                };
                let closed = matches!(event, Event::InputClosed(_));
                if tx.send(event).is_err() || closed {
                    return;
                }
            }
        })
        .expect("spawn input thread");
}

/// Watches the roots (inotify, or polling every `poll` for NFS and sshfs), refreshes the
/// store off the UI thread, and sends `StoreChanged` when something visible changed.
pub fn spawn_watcher(
    roots: &[PathBuf],
    poll: Option<Duration>,
    store: Arc<RwLock<RunStore>>,
    tx: Sender<Event>,
) -> Result<WatchGuard> {
    let (paths_tx, paths_rx) = mpsc::channel::<Vec<PathBuf>>();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = paths_tx.send(ev.paths);
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(interval) => Box::new(
            PollWatcher::new(
                handler,
                notify::Config::default().with_poll_interval(interval),
            )
            .context("starting the polling watcher")?,
        ),
        None => Box::new(
            RecommendedWatcher::new(handler, notify::Config::default())
                .context("starting the file watcher")?,
        ),
    };
    for root in roots {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", root.display()))?;
    }
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            loop {
                let mut paths = match paths_rx.recv_timeout(LIVENESS_TICK) {
                    Ok(p) => p,
                    Err(RecvTimeoutError::Timeout) => {
                        let live = store.read().map(|s| s.has_live_runs()).unwrap_or(false);
                        if live && tx.send(Event::Tick).is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let deadline = Instant::now() + COALESCE;
                while let Ok(more) =
                    paths_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    paths.extend(more);
                }
                paths.sort();
                paths.dedup();
                let changed = match store.write() {
                    Ok(mut s) => s.refresh_paths(&paths),
                    Err(_) => return,
                };
                if changed && tx.send(Event::StoreChanged).is_err() {
                    return;
                }
            }
        })
        .expect("spawn store thread");
    Ok(WatchGuard { _watcher: watcher })
}
