//! The runner's live status: mutated by the training loop, written to `status.ron` on
//! every state change and by a heartbeat thread every few seconds, always under one lock
//! so writes never interleave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::runfs::status::{HEARTBEAT_SECS, Status};
use crate::runfs::{RunFolder, time};

pub struct StatusBoard {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

struct Shared {
    folder: RunFolder,
    status: Mutex<Status>,
    /// Nanoseconds the training loop has spent blocked on its data, in total (the
    /// system sampler turns its growth into `sys/data_wait`).
    data_waited_ns: AtomicU64,
}

impl Shared {
    fn write(&self, status: &mut Status) {
        status.heartbeat = time::now();
        if let Err(e) = self.folder.write_status(status) {
            tracing::warn!("cannot write status: {e}");
        }
    }
}

impl StatusBoard {
    /// Writes the initial status and starts the heartbeat.
    pub fn start(folder: RunFolder, status: Status) -> StatusBoard {
        let shared = Arc::new(Shared {
            folder,
            status: Mutex::new(status),
            data_waited_ns: AtomicU64::new(0),
        });
        {
            let mut s = shared.status.lock().expect("status lock");
            shared.write(&mut s);
        }
        let (stop, rx) = mpsc::channel::<()>();
        let beat = Arc::clone(&shared);
        let heartbeat = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let period = Duration::from_secs_f64(HEARTBEAT_SECS);
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                    let mut s = beat.status.lock().expect("status lock");
                    beat.write(&mut s);
                }
            })
            .expect("spawn heartbeat thread");
        StatusBoard {
            shared,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }

    /// Changes the status in memory only; the next heartbeat or `publish` writes it.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut s = self.shared.status.lock().expect("status lock");
        f(&mut s);
    }

    /// Changes the status and writes it now.
    pub fn publish(&self, f: impl FnOnce(&mut Status)) {
        let mut s = self.shared.status.lock().expect("status lock");
        f(&mut s);
        self.shared.write(&mut s);
    }

    /// Counts time the training loop spent waiting for a batch.
    pub fn add_data_wait(&self, waited: Duration) {
        let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.shared.data_waited_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Status {
        self.shared.status.lock().expect("status lock").clone()
    }

    /// A handle another thread changes the status through (in memory, like
    /// [`StatusBoard::update`]).
    pub fn updater(&self) -> StatusUpdater {
        StatusUpdater(Arc::clone(&self.shared))
    }
}

/// Changes the status from another thread; the next heartbeat or publish writes it.
#[derive(Clone)]
pub struct StatusUpdater(Arc<Shared>);

impl StatusUpdater {
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut s = self.0.status.lock().expect("status lock");
        f(&mut s);
    }

    /// Reads the status in memory.
    pub fn read<R>(&self, f: impl FnOnce(&Status) -> R) -> R {
        f(&self.0.status.lock().expect("status lock"))
    }

    /// The time the training loop has spent waiting for batches so far.
    pub fn data_waited(&self) -> Duration {
        Duration::from_nanos(self.0.data_waited_ns.load(Ordering::Relaxed))
    }
}

impl Drop for StatusBoard {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}
