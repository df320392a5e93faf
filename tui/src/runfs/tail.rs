//! Reading a growing text file incrementally: only bytes past the last offset are read,
//! and a last line without its newline is held back until it is complete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::RunFsError;

/// Opens `path` for reading if it is a regular file, and only then. Run folders and
/// datasets are written by others: a FIFO planted as `scalars.csv` would block `open`
/// until some writer came (a hung tailer), and a link to a device such as `/dev/zero`
/// would be read forever. The open never blocks (`O_NONBLOCK`, which regular files
/// ignore), and anything but a regular file is refused as `InvalidInput`.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("is {what}, not a regular file"),
    ))
}

/// Complete lines appended to a file since the last read.
#[derive(Debug, Default)]
pub struct LineTail {
    offset: u64,
    partial: Vec<u8>,
    /// (device, inode) of the file the offset belongs to. A file replaced by rename (as
    /// `scalars::truncate_after` does on resume) and regrown past the old offset before
    /// the next read would otherwise be read from the middle of a line.
    file: Option<(u64, u64)>,
}

impl LineTail {
    pub fn new() -> LineTail {
        LineTail::default()
    }

    /// Bytes consumed so far (complete lines plus a held-back partial line).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// New complete lines (without newlines). A missing file yields none. `restarted` is
    /// set when the file shrank or was replaced by another file (rewritten, e.g. on
    /// resume) and was read from the start.
    pub fn read_lines(&mut self, path: &Path) -> Result<TailRead, RunFsError> {
        let mut file = match open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TailRead::default()),
            Err(e) => return Err(RunFsError::io(path, e)),
        };
        let io = |e| RunFsError::io(path, e);
        let meta = file.metadata().map_err(io)?;
        let len = meta.len();
        let id = (meta.dev(), meta.ino());
        let replaced = self.offset > 0 && self.file.is_some_and(|old| old != id);
        let restarted = len < self.offset || replaced;
        if restarted {
            *self = LineTail::new();
        }
        self.file = Some(id);
        if len == self.offset {
            return Ok(TailRead {
                lines: vec![],
                restarted,
            });
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut bytes = std::mem::take(&mut self.partial);
        let before = bytes.len();
        file.take(len - self.offset)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        self.offset += (bytes.len() - before) as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        let lines = String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect();
        Ok(TailRead { lines, restarted })
    }
}

/// What one read produced.
#[derive(Debug, Default, PartialEq)]
pub struct TailRead {
    pub lines: Vec<String>,
    pub restarted: bool,
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn holds_back_partial_lines_and_restarts_on_shrink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut tail = LineTail::new();
        assert_eq!(tail.read_lines(&path).unwrap(), TailRead::default());
        std::fs::write(&path, "one\ntw").unwrap();
        assert_eq!(tail.read_lines(&path).unwrap().lines, vec!["one"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\n").unwrap();
        assert_eq!(tail.read_lines(&path).unwrap().lines, vec!["two"]);
        std::fs::write(&path, "new\n").unwrap();
        let read = tail.read_lines(&path).unwrap();
        assert!(read.restarted);
        assert_eq!(read.lines, vec!["new"]);
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        // Found by review for tests/hostile_input.rs: `File::open` of a FIFO blocks until a
        // writer opens it, and `/dev/zero` never ends.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("scalars.csv");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = LineTail::new().read_lines(&fifo).unwrap_err().to_string();
        assert!(
            err.contains("scalars.csv") && err.contains("a FIFO"),
            "{err}"
        );
        let zero = dir.path().join("train.log");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = LineTail::new().read_lines(&zero).unwrap_err().to_string();
        assert!(err.contains("a device, not a regular file"), "{err}");
        let err = LineTail::new()
            .read_lines(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a folder"), "{err}");
    }

    #[test]
    fn restarts_on_a_replaced_file_that_grew_past_the_offset() {
        // Found by tests/hostile_input.rs: resume rewrites the file by rename, and the
        // runner may append past the old length before the next read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut tail = LineTail::new();
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(tail.read_lines(&path).unwrap().lines, vec!["first"]);
        let tmp = dir.path().join(".log.tmp");
        std::fs::write(&tmp, "kept\nappended after resume\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let read = tail.read_lines(&path).unwrap();
        assert!(read.restarted);
        assert_eq!(read.lines, vec!["kept", "appended after resume"]);
    }
}
