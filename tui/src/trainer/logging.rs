//! The run's log: every event of the runner and of its plugin goes to `train.log` (and,
//! when asked, to stderr too). Never to a dashboard's screen.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use tracing_subscriber::layer::SubscriberExt;

/// Routes this thread's tracing events to `path` until the guard drops.
pub fn to_run_log(path: &Path, echo: bool) -> Result<tracing::subscriber::DefaultGuard> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let file = Arc::new(Mutex::new(file));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || SharedFile(Arc::clone(&file)));
    let stderr_layer = echo.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .without_time()
    });
    let subscriber = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    Ok(tracing::subscriber::set_default(subscriber))
}

/// A writer handle onto the shared log file; each event is one `write_all`.
struct SharedFile(Arc<Mutex<std::fs::File>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("log lock poisoned"))?;
        f.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
