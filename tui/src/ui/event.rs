//! One event channel for the dashboard: terminal input, "runs changed" from the watcher,
//! a new plugin list, the host's GPU statistics, and a slow liveness tick. The UI loop
//! blocks on it and draws only after handling an event that changed something: idle means
//! no redraw and no bytes to the terminal.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::plugin_catalog::PluginCatalog;
use crate::gpu::GpuStats;
use crate::gpu::nvml::NvmlGpus;

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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

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
}
