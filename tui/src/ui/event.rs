//! One event channel for the dashboard: terminal input, "runs changed" from the watcher,
//! a new plugin list, the host's GPU statistics, and a slow liveness tick. The UI loop
//! blocks on it and draws only after handling an event that changed something: idle means
//! no redraw and no bytes to the terminal.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::plugin_catalog::PluginCatalog;
use super::store::RunStore;
use crate::gpu::GpuStats;
use crate::gpu::nvml::NvmlGpus;

/// File events arriving within this window are handled as one refresh: a training step
/// touches scalars.csv and status.ron together.
const COALESCE: Duration = Duration::from_millis(15);
/// How often runs that should be alive are re-checked (stalled, crashed) when no file
/// event arrives; matches the runner's heartbeat.
const LIVENESS_TICK: Duration = Duration::from_secs(2);
/// How long the input thread waits for a key before looking whether it should pause; the
/// most a pause (to hand the terminal to `$EDITOR`) waits for it.
const INPUT_POLL: Duration = Duration::from_millis(100);
/// How often the host's GPUs are sampled for the Overview.
const GPU_SAMPLE: Duration = Duration::from_secs(2);

/// What wakes the UI loop.
#[derive(Debug)]
pub enum Event {
    Input(crossterm::event::Event),
    /// The store changed; redraw from it.
    StoreChanged,
    /// Time passed with live runs: ages and liveness may read differently.
    Tick,
    /// The plugins on the search path, after a library was described, added, replaced
    /// or removed.
    Plugins(PluginCatalog),
    /// A new look at this host's GPUs (sent only when it differs from the last).
    Gpus(GpuStats),
    /// Reading the terminal failed (closed): quit.
    InputClosed(String),
}

/// Keeps the file watcher alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: Option<Box<dyn Watcher + Send>>,
}

/// Lets the UI thread take the terminal's input away from the input thread, for a child
/// (`$EDITOR`) that reads the terminal itself: two readers would split the keystrokes.
#[derive(Debug, Default)]
pub struct InputGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// The UI asks the input thread to stop reading.
    pause: bool,
    /// The input thread has stopped reading and waits.
    parked: bool,
}

impl InputGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the input thread reading; returns once it has (or after a few polls, if
    /// it is gone).
    pub fn pause(&self) {
        let mut state = self.lock();
        state.pause = true;
        let deadline = Instant::now() + 5 * INPUT_POLL;
        while !state.parked {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lets the input thread read again.
    pub fn resume(&self) {
        self.lock().pause = false;
        self.changed.notify_all();
    }

    /// On the input thread: waits here while paused.
    fn park_if_paused(&self) {
        let mut state = self.lock();
        if !state.pause {
            return;
        }
        state.parked = true;
        self.changed.notify_all();
        while state.pause {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.parked = false;
    }
}

/// Reads terminal input on its own thread; the gate pauses it.
pub fn spawn_input(tx: Sender<Event>) -> Arc<InputGate> {
    let gate = Arc::new(InputGate::default());
    let thread_gate = Arc::clone(&gate);
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                thread_gate.park_if_paused();
                // Polling with a timeout, not a blocking read, so a pause is noticed
                // without a key press.
                let event = match crossterm::event::poll(INPUT_POLL) {
                    Ok(false) => continue,
                    Ok(true) => match crossterm::event::read() {
                        Ok(ev) => Event::Input(ev),
                        Err(e) => Event::InputClosed(e.to_string()),
                    },
                    Err(e) => Event::InputClosed(e.to_string()),
                };
                let closed = matches!(event, Event::InputClosed(_));
                if tx.send(event).is_err() || closed {
                    return;
                }
            }
        })
        .expect("spawn input thread");
    gate
}

/// Samples this host's GPUs through NVML every [`GPU_SAMPLE`] on a thread of its own
/// (opening NVML can take hundreds of milliseconds) and sends what changed. Without NVML
/// it sends the reason once and ends.
pub fn spawn_gpu_sampler(tx: Sender<Event>) {
    let report_failure = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("gpu-stats".into())
        .spawn(move || {
            let gpus = match NvmlGpus::open() {
                Ok(g) => g,
                Err(reason) => {
                    let _ = tx.send(Event::Gpus(GpuStats::Unavailable(reason)));
                    return;
                }
            };
            let mut last = None;
            loop {
                let stats = gpus.sample();
                if last.as_ref() != Some(&stats) {
                    if tx.send(Event::Gpus(stats.clone())).is_err() {
                        return;
                    }
                    last = Some(stats);
                }
                std::thread::sleep(GPU_SAMPLE);
            }
        });
    if let Err(e) = spawned {
        let reason = format!("GPU statistics: cannot start their thread: {e}");
        let _ = report_failure.send(Event::Gpus(GpuStats::Unavailable(reason)));
    }
}

/// Watches the roots, refreshes the store off the UI thread, and sends `StoreChanged` when
/// something visible changed. With inotify (the default) only the run folders named by
/// file events are re-read. With `poll` (NFS, sshfs: no inotify) every run is re-read at
/// that interval; that is cheap because files are tailed from their last offsets. (notify's
/// own PollWatcher compares whole-second mtimes and misses a line appended within the
/// second of the previous change, so it is not used.)
pub fn spawn_watcher(
    roots: &[PathBuf],
    poll: Option<Duration>,
    store: Arc<RwLock<RunStore>>,
    tx: Sender<Event>,
) -> Result<WatchGuard> {
    if let Some(interval) = poll {
        std::thread::Builder::new()
            .name("store-poll".into())
            .spawn(move || poll_loop(interval, &store, &tx))
            .expect("spawn store thread");
        return Ok(WatchGuard { _watcher: None });
    }
    let (paths_tx, paths_rx) = mpsc::channel::<Vec<PathBuf>>();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = paths_tx.send(ev.paths);
        }
    };
    let mut watcher = RecommendedWatcher::new(handler, notify::Config::default())
        .context("starting the file watcher")?;
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
                        if !tick_if_live(&store, &tx) {
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
    Ok(WatchGuard {
        _watcher: Some(Box::new(watcher)),
    })
}

/// Re-reads every run each `interval`; returns when the UI is gone.
fn poll_loop(interval: Duration, store: &RwLock<RunStore>, tx: &Sender<Event>) {
    loop {
        std::thread::sleep(interval);
        let changed = match store.write() {
            Ok(mut s) => s.rescan(),
            Err(_) => return,
        };
        let sent = if changed {
            tx.send(Event::StoreChanged).is_ok()
        } else {
            tick_if_live(store, tx)
        };
        if !sent {
            return;
        }
    }
}

/// Sends a tick when some run is live (its liveness can change with time alone); false
/// when the UI is gone.
fn tick_if_live(store: &RwLock<RunStore>, tx: &Sender<Event>) -> bool {
    let live = store.read().map(|s| s.has_live_runs()).unwrap_or(false);
    !live || tx.send(Event::Tick).is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::fixtures;

    /// A pause returns only once the reader is parked, and resume lets it go on.
    #[test]
    fn input_gate_parks_the_reader() {
        let gate = Arc::new(InputGate::default());
        let reader = Arc::clone(&gate);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for i in 0.. {
                reader.park_if_paused();
                if tx.send(i).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        rx.recv().unwrap();
        gate.pause();
        assert!(gate.lock().parked);
        while rx.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "the reader went on while paused");
        gate.resume();
        assert!(rx.recv_timeout(Duration::from_secs(1)).is_ok());
    }

    /// The sampler reports once it has looked, off the calling thread: here (no NVIDIA
    /// driver) the reason there are no GPU stats.
    #[test]
    fn gpu_sampler_reports_off_the_ui_thread() {
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        spawn_gpu_sampler(tx);
        assert!(started.elapsed() < Duration::from_secs(1), "it blocked");
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Gpus(GpuStats::Unavailable(reason))) => assert!(!reason.is_empty()),
            Ok(Event::Gpus(GpuStats::Devices(d))) => {
                assert!(
                    std::path::Path::new("/proc/driver/nvidia/version").exists(),
                    "{d:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// `--poll` for filesystems without inotify: an appended line still arrives.
    #[test]
    fn polling_watcher_reports_appended_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fixtures::write_standard_root(&root).unwrap();
        let store = Arc::new(RwLock::new(RunStore::new(vec![root.clone()])));
        store.write().unwrap().rescan();
        let (tx, rx) = mpsc::channel();
        let _guard = spawn_watcher(
            std::slice::from_ref(&root),
            Some(Duration::from_millis(100)),
            Arc::clone(&store),
            tx,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("ae-finished/scalars.csv"))
            .unwrap();
        f.write_all(b"1800000000.000,99,7,val/loss,0.125\n")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Event::StoreChanged) => {
                    let s = store.read().unwrap();
                    let run = &s.runs[&root.join("ae-finished")];
                    if run.series["val/loss"].last() == Some(0.125) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => panic!("no change reported within 5 s"),
            }
        }
    }
}
