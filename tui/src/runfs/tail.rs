//! Reading a growing text file incrementally: only bytes past the last offset are read,
//! and a last line without its newline is held back until it is complete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::RunFsError;

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
        let mut file = match File::open(path) {
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
