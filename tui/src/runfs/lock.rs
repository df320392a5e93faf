//! One runner per run folder: the runner holds an exclusive `flock` on `<run>/.lock` for
//! its whole life, with its pid written inside. The kernel drops the lock when the
//! process dies, however it dies, so "is it running?" never depends on a stale pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

use super::RunFsError;

pub const LOCK_FILE: &str = ".lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// Takes the lock of the run folder `dir`, writing this process's pid into it. Fails
    /// with a message naming the holder's pid when another process holds it. Retries for
    /// a moment, since a reader's brief probe ([`RunLock::holder`]) also locks.
    pub fn acquire(dir: &Path) -> Result<RunLock, RunFsError> {
        let path = dir.join(LOCK_FILE);
        let io = |e: std::io::Error| RunFsError::io(&path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let mut tries = 0;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let pid = read_pid(&mut file).map_or("?".into(), |p| p.to_string());
                    return Err(RunFsError::Invalid {
                        path: dir.to_path_buf(),
                        message: format!("the run is already being trained (pid {pid})"),
                    });
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    /// The pid of the process holding `dir`'s lock, or `None` when no process holds it.
    pub fn holder(dir: &Path) -> Result<Option<u32>, RunFsError> {
        let path = dir.join(LOCK_FILE);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RunFsError::io(&path, e)),
        };
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = flock(&file, FlockOperation::Unlock);
                Ok(None)
            }
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(Some(read_pid(&mut file).unwrap_or(0))),
            Err(e) => Err(RunFsError::io(&path, e.into())),
        }
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunLock::holder(dir.path()).unwrap(), None);
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(
            RunLock::holder(dir.path()).unwrap(),
            Some(std::process::id())
        );
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("already being trained"), "{err}");
        drop(lock);
        assert_eq!(RunLock::holder(dir.path()).unwrap(), None);
        RunLock::acquire(dir.path()).unwrap();
    }
}
