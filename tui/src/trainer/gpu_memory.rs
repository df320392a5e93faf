//! The run's peak GPU memory: on a CUDA run, a thread asks NVML at the heartbeat cadence
//! how much GPU memory this process holds (summed over the GPUs it uses) and keeps the
//! largest value in `status.ron`. Without NVML it says so once in the run's log and stops;
//! it never slows, fails or floods the run.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::status_board::StatusUpdater;
use crate::gpu::nvml::NvmlGpus;
use crate::runfs::status::HEARTBEAT_SECS;

/// The sampling thread; dropping this stops it (after the NVML call in progress).
pub struct GpuMemoryWatch {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GpuMemoryWatch {
    /// Starts watching this process when `device` (the one the plugin chose) is a CUDA
    /// device; `None` for any other.
    pub fn start(device: Option<&str>, status: StatusUpdater) -> Option<GpuMemoryWatch> {
        if !device.is_some_and(|d| d.starts_with("cuda")) {
            return None;
        }
        let pid = std::process::id();
        let open = move || NvmlGpus::open().map(|gpus| move || gpus.process_memory(pid));
        Some(GpuMemoryWatch::spawn(
            status,
            Duration::from_secs_f64(HEARTBEAT_SECS),
            open,
        ))
    }

    /// Runs `open` (which may be slow: NVML loads a library and talks to the driver) and
    /// then its sampler every `period` on a thread of its own, logging to this thread's
    /// log (the runner's log is this thread's default subscriber, not a global one).
    fn spawn<O, S>(status: StatusUpdater, period: Duration, open: O) -> GpuMemoryWatch
    where
        O: FnOnce() -> Result<S, String> + Send + 'static,
        S: FnMut() -> Result<Option<u64>, String>,
    {
        let (stop, stopped) = mpsc::channel();
        let log = tracing::dispatcher::get_default(|d| d.clone());
        let thread = std::thread::Builder::new()
            .name("gpu-memory".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&log, || {
                    watch(&stopped, period, &status, open);
                })
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("peak GPU memory not recorded: cannot start its thread: {e}");
                None
            }
        };
        GpuMemoryWatch {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for GpuMemoryWatch {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch<O, S>(stopped: &Receiver<()>, period: Duration, status: &StatusUpdater, open: O)
where
    O: FnOnce() -> Result<S, String>,
    S: FnMut() -> Result<Option<u64>, String>,
{
    let mut sample = match open() {
        Ok(s) => s,
        Err(reason) => {
            tracing::info!("peak GPU memory not recorded: {reason}");
            return;
        }
    };
    let mut warned = false;
    loop {
        match sample() {
            Ok(Some(bytes)) => status.update(|s| {
                // A resumed run keeps the peak of its earlier runners.
                s.peak_gpu_memory_bytes = Some(s.peak_gpu_memory_bytes.unwrap_or(0).max(bytes));
            }),
            Ok(None) => {}
            Err(e) if !warned => {
                warned = true;
                tracing::warn!("cannot read this run's GPU memory (said once): {e}");
            }
            Err(_) => {}
        }
        if let Err(RecvTimeoutError::Disconnected) | Ok(()) = stopped.recv_timeout(period) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::runfs::RunFolder;
    use crate::runfs::status::{State, Status};
    use crate::trainer::status_board::StatusBoard;

    /// Collects log lines written through a tracing subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn board(dir: &std::path::Path, peak: Option<u64>) -> StatusBoard {
        let status = Status {
            peak_gpu_memory_bytes: peak,
            ..Status::new(State::Running, std::process::id(), 0.0)
        };
        StatusBoard::start(RunFolder::new(dir), status)
    }

    fn logging() -> (Captured, tracing::subscriber::DefaultGuard) {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    fn text(log: &Captured) -> String {
        String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned()
    }

    /// The largest sample is kept, an earlier (resumed) peak is not lowered, gaps and
    /// errors change nothing, and a repeated error is logged once, in the run's log.
    #[test]
    fn keeps_the_peak_and_logs_a_failing_query_once() {
        let dir = tempfile::tempdir().unwrap();
        let board = board(dir.path(), Some(3));
        let (log, _guard) = logging();
        let answers: Vec<Result<Option<u64>, String>> = vec![
            Ok(Some(2)),
            Err("GPU 0: lost".into()),
            Ok(None),
            Ok(Some(9)),
            Err("GPU 0: lost".into()),
            Ok(Some(5)),
        ];
        let (done_tx, done_rx) = mpsc::channel();
        let watch = GpuMemoryWatch::spawn(board.updater(), Duration::from_millis(1), move || {
            let mut answers = answers.into_iter();
            Ok(move || match answers.next() {
                Some(a) => a,
                None => {
                    let _ = done_tx.send(());
                    Ok(None)
                }
            })
        });
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        drop(watch);
        assert_eq!(board.snapshot().peak_gpu_memory_bytes, Some(9));
        let text = text(&log);
        assert_eq!(text.matches("GPU 0: lost").count(), 1, "{text}");
    }

    /// Without NVML: one line in the log, the peak stays unknown, the thread ends.
    #[test]
    fn without_nvml_the_peak_stays_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let board = board(dir.path(), None);
        let (log, _guard) = logging();
        let watch = GpuMemoryWatch::spawn(board.updater(), Duration::from_millis(1), || {
            Err::<fn() -> Result<Option<u64>, String>, _>(
                "NVML not available: libnvidia-ml.so.1 not found".to_string(),
            )
        });
        drop(watch);
        assert_eq!(board.snapshot().peak_gpu_memory_bytes, None);
        let text = text(&log);
        assert_eq!(
            text.matches("peak GPU memory not recorded").count(),
            1,
            "{text}"
        );
        // The real one, on this machine without a driver: no thread for a CPU run, and
        // a CUDA run's watch ends without a peak and without panicking.
        assert!(GpuMemoryWatch::start(Some("cpu"), board.updater()).is_none());
        assert!(GpuMemoryWatch::start(None, board.updater()).is_none());
        if !std::path::Path::new("/proc/driver/nvidia/version").exists() {
            drop(GpuMemoryWatch::start(Some("cuda:0"), board.updater()));
            assert_eq!(board.snapshot().peak_gpu_memory_bytes, None);
        }
    }
}
