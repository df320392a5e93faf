//! `scalars.csv`: `wall_time,step,epoch,tag,value`, one line per value, append-only.
//!
//! The writer emits whole lines with one `write` each, so a concurrent reader sees at
//! most one incomplete last line; [`ScalarTail`] ignores it until its newline arrives and
//! re-reads only bytes past its last offset.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::RunFsError;
use super::tail::LineTail;

pub const HEADER: &str = "wall_time,step,epoch,tag,value";

/// One scalar value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarRow {
    pub wall_time: f64,
    pub step: u64,
    pub epoch: u32,
    pub tag: String,
    pub value: f64,
}

impl ScalarRow {
    fn to_line(&self) -> String {
        format!(
            "{:.3},{},{},{},{}\n",
            self.wall_time,
            self.step,
            self.epoch,
            super::csv::field(&self.tag),
            self.value
        )
    }

    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<ScalarRow, String> {
        let fields = super::csv::split(line)?;
        let [wall, step, epoch, tag, value] = fields.as_slice() else {
            return Err(format!("expected 5 fields, found {}", fields.len()));
        };
        let num = |name: &str, s: &str| -> Result<f64, String> {
            s.parse::<f64>()
                .map_err(|_| format!("{name} {s:?} is not a number"))
        };
        Ok(ScalarRow {
            wall_time: num("wall_time", wall)?,
            step: step
                .parse()
                .map_err(|_| format!("step {step:?} is not an integer"))?,
            epoch: epoch
                .parse()
                .map_err(|_| format!("epoch {epoch:?} is not an integer"))?,
            tag: tag.clone(),
            value: num("value", value)?,
        })
    }
}

/// Appends rows to a run's `scalars.csv`.
pub struct ScalarWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ScalarWriter {
    /// Opens for appending, writing the header into a new file.
    pub fn open(path: &Path) -> Result<ScalarWriter, RunFsError> {
        let io = |e| RunFsError::io(path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            file.write_all(format!("{HEADER}\n").as_bytes())
                .map_err(io)?;
        }
        Ok(ScalarWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Queues a row; [`ScalarWriter::flush`] makes it visible.
    pub fn push(&mut self, row: &ScalarRow) -> Result<(), RunFsError> {
        // One buffered write per line; the buffer is flushed on line boundaries only.
        self.out
            .write_all(row.to_line().as_bytes())
            .map_err(|e| RunFsError::io(&self.path, e))
    }

    /// Writes queued rows to the file.
    pub fn flush(&mut self) -> Result<(), RunFsError> {
        self.out.flush().map_err(|e| RunFsError::io(&self.path, e))
    }
}

/// Drops every row whose step is past `step` (resume after a crash), rewriting the file
/// atomically, so curves never show the steps a crash repeated.
pub fn truncate_after(path: &Path, step: u64) -> Result<usize, RunFsError> {
    retain(path, |r| r.step <= step)
}

/// Keeps the header and the complete rows `keep` accepts, rewriting the file atomically;
/// returns how many lines were dropped (torn and unparsable lines are dropped too).
pub fn retain(path: &Path, keep: impl Fn(&ScalarRow) -> bool) -> Result<usize, RunFsError> {
    // Bytes, not a String: one invalid UTF-8 sequence (a write torn inside a character,
    // a damaged block) must cost its own line, not fail the whole resume.
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(RunFsError::io(path, e)),
    };
    let mut kept = Vec::with_capacity(bytes.len());
    let mut dropped = 0;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if !line.ends_with(b"\n") {
            dropped += 1; // a torn last line
            continue;
        }
        let keep_line = i == 0
            || std::str::from_utf8(line)
                .ok()
                .and_then(|l| ScalarRow::parse(l.trim_end_matches(['\n', '\r'])).ok())
                .is_some_and(|r| keep(&r));
        if keep_line {
            kept.extend_from_slice(line);
        } else {
            dropped += 1;
        }
    }
    super::atomic::write(path, &kept)?;
    Ok(dropped)
}

/// Incremental reader of a growing `scalars.csv`.
#[derive(Debug, Default)]
pub struct ScalarTail {
    lines: LineTail,
    header_seen: bool,
    lines_read: usize,
    /// Lines that did not parse, with their line numbers (1-based), kept for the error
    /// badge; reading goes on past them.
    pub bad_lines: Vec<(usize, String)>,
}

impl ScalarTail {
    pub fn new() -> ScalarTail {
        ScalarTail::default()
    }

    /// Reads complete rows appended since the last call. A missing file yields nothing.
    /// When the file was rewritten shorter (resume), `restarted` says the caller must drop
    /// what it holds: the rows returned are the whole file again.
    pub fn read_new(&mut self, path: &Path) -> Result<Vec<ScalarRow>, RunFsError> {
        Ok(self.read(path)?.0)
    }

    /// As [`ScalarTail::read_new`], also saying whether the file restarted.
    pub fn read(&mut self, path: &Path) -> Result<(Vec<ScalarRow>, bool), RunFsError> {
        let read = self.lines.read_lines(path)?;
        if read.restarted {
            self.header_seen = false;
            self.lines_read = 0;
            self.bad_lines.clear();
        }
        let mut rows = Vec::with_capacity(read.lines.len());
        for line in &read.lines {
            self.lines_read += 1;
            if !self.header_seen {
                self.header_seen = true;
                if line.trim() == HEADER {
                    continue;
                }
            }
            if line.trim().is_empty() {
                continue;
            }
            match ScalarRow::parse(line) {
                Ok(row) => rows.push(row),
                Err(e) => self.bad_lines.push((self.lines_read, e)),
            }
        }
        Ok((rows, read.restarted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, tag: &str, value: f64) -> ScalarRow {
        ScalarRow {
            wall_time: 1.0,
            step,
            epoch: 0,
            tag: tag.into(),
            value,
        }
    }

    #[test]
    fn tail_reads_only_complete_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scalars.csv");
        let mut w = ScalarWriter::open(&path).unwrap();
        w.push(&row(1, "train/loss", 0.5)).unwrap();
        w.flush().unwrap();
        let mut tail = ScalarTail::new();
        assert_eq!(
            tail.read_new(&path).unwrap(),
            vec![row(1, "train/loss", 0.5)]
        );
        // A half-written line is held back until its newline arrives.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1.000,2,0,train/lo").unwrap();
        assert!(tail.read_new(&path).unwrap().is_empty());
        f.write_all(b"ss,0.25\n").unwrap();
        assert_eq!(
            tail.read_new(&path).unwrap(),
            vec![row(2, "train/loss", 0.25)]
        );
        assert!(tail.read_new(&path).unwrap().is_empty());
    }

    #[test]
    fn garbage_lines_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scalars.csv");
        std::fs::write(&path, format!("{HEADER}\nnot,a,row\n1,3,0,val/loss,0.1\n")).unwrap();
        let mut tail = ScalarTail::new();
        assert_eq!(tail.read_new(&path).unwrap(), vec![row(3, "val/loss", 0.1)]);
        assert_eq!(tail.bad_lines.len(), 1);
        assert_eq!(tail.bad_lines[0].0, 2);
    }

    #[test]
    fn truncate_after_drops_later_steps_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scalars.csv");
        let mut w = ScalarWriter::open(&path).unwrap();
        for s in 1..=5 {
            w.push(&row(s, "train/loss", s as f64)).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1.0,6,0,train/lo").unwrap();
        assert_eq!(truncate_after(&path, 3).unwrap(), 3);
        let rows = ScalarTail::new().read_new(&path).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn truncate_after_drops_only_the_line_with_invalid_utf8() {
        // Found by tests/hostile_input.rs: one bad byte used to fail the whole rewrite
        // ("stream did not contain valid UTF-8"), and with it the resume.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scalars.csv");
        let mut text = format!("{HEADER}\n1,1,0,loss,0.5\n").into_bytes();
        text.extend(b"1,2,0,lo\xffss,0.4\n1,3,0,loss,0.3\n1,9,0,loss,0.1\n");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(truncate_after(&path, 3).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n1,1,0,loss,0.5\n1,3,0,loss,0.3\n")
        );
    }
}
