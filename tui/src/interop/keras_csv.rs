//! Keras `CSVLogger` histories (and any CSV shaped like them): a header with an `epoch`
//! column and one numeric column per metric (`loss`, `accuracy`, `val_loss`, ...), one row
//! per epoch, appended as training goes. Read incrementally with [`LineTail`]: a last
//! line without its newline waits. The separator is `,` (Keras' default), or `;` or tab
//! when the header uses it. Cells that are empty or `NA` (what CSVLogger writes for a
//! metric missing that epoch) or not numbers are left out; a row with a bad epoch or the
//! wrong number of fields is counted in [`KerasCsvTail::bad_lines`].

use std::io::Read;
use std::path::Path;

use crate::runfs::RunFsError;
use crate::runfs::tail::{LineTail, open_regular};

/// The column that makes a CSV a history.
pub const EPOCH_COLUMN: &str = "epoch";

/// How much of a file is read to look at its header.
const HEADER_BYTES: u64 = 64 << 10;

/// A history's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub separator: char,
    pub epoch: usize,
    pub columns: Vec<String>,
}

impl Header {
    /// Parses a header line; `None` unless it has an `epoch` column.
    pub fn parse(line: &str) -> Option<Header> {
        let line = line.trim_start_matches('\u{feff}');
        [',', ';', '\t'].into_iter().find_map(|separator| {
            let columns: Vec<String> = split(line, separator)
                .ok()?
                .into_iter()
                .map(|c| c.trim().to_string())
                .collect();
            let epoch = columns.iter().position(|c| c == EPOCH_COLUMN)?;
            Some(Header {
                separator,
                epoch,
                columns,
            })
        })
    }
}

fn split(line: &str, separator: char) -> Result<Vec<String>, String> {
    if separator == ',' {
        crate::runfs::csv::split(line)
    } else {
        Ok(line.split(separator).map(str::to_string).collect())
    }
}

/// The header of a CSV file, if it is a history (its first line has an `epoch` column).
/// Reads at most 64 KiB; anything unreadable is not a history.
pub fn read_header(path: &Path) -> Option<Header> {
    let file = open_regular(path).ok()?;
    let mut head = Vec::new();
    file.take(HEADER_BYTES).read_to_end(&mut head).ok()?;
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    Header::parse(line.trim_end_matches('\r'))
}

/// One epoch's row: its metric values by column name.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub epoch: u64,
    pub values: Vec<(String, f64)>,
}

/// What one read produced.
#[derive(Debug, Default)]
pub struct HistoryRead {
    pub rows: Vec<EpochRow>,
    /// The file was rewritten (a new training into the same file) and read again from
    /// its start: drop what was read before.
    pub restarted: bool,
    /// The file's first line has no `epoch` column: it is not a history (said on every
    /// read until the file is rewritten).
    pub refused: Option<RunFsError>,
}

/// Incremental reader of a growing history.
#[derive(Debug, Default)]
pub struct KerasCsvTail {
    lines: LineTail,
    header: Option<Header>,
    lines_read: usize,
    /// The first line had no `epoch` column: the file is not a history (until rewritten).
    refused: bool,
    /// Rows that did not parse: (line number, reason), the first few; `bad_count` counts
    /// them all.
    pub bad_lines: Vec<(usize, String)>,
    pub bad_count: usize,
}

const BAD_KEPT: usize = 8;

impl KerasCsvTail {
    pub fn new() -> KerasCsvTail {
        KerasCsvTail::default()
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Rows appended since the last call. A file whose first line has no `epoch` column
    /// is refused, with an error naming it; reading it fails only on I/O.
    pub fn read(&mut self, path: &Path) -> Result<HistoryRead, RunFsError> {
        let read = self.lines.read_lines(path)?;
        if read.restarted {
            self.header = None;
            self.refused = false;
            self.lines_read = 0;
            self.bad_lines.clear();
            self.bad_count = 0;
        }
        let not_history = || RunFsError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            message: format!("no `{EPOCH_COLUMN}` column in the header"),
        };
        if self.refused {
            return Ok(HistoryRead {
                rows: Vec::new(),
                restarted: read.restarted,
                refused: Some(not_history()),
            });
        }
        let mut rows = Vec::new();
        for line in &read.lines {
            self.lines_read += 1;
            let line = line.trim_end_matches('\r');
            let Some(header) = &self.header else {
                match Header::parse(line) {
                    Some(h) => self.header = Some(h),
                    None => {
                        self.refused = true;
                        return Ok(HistoryRead {
                            rows,
                            restarted: read.restarted,
                            refused: Some(not_history()),
                        });
                    }
                }
                continue;
            };
            if line.trim().is_empty() {
                continue;
            }
            match parse_row(header, line) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    self.bad_count += 1;
                    if self.bad_lines.len() < BAD_KEPT {
                        self.bad_lines.push((self.lines_read, e));
                    }
                }
            }
        }
        Ok(HistoryRead {
            rows,
            restarted: read.restarted,
            refused: None,
        })
    }
}

fn parse_row(header: &Header, line: &str) -> Result<EpochRow, String> {
    let fields = split(line, header.separator)?;
    if fields.len() != header.columns.len() {
        return Err(format!(
            "{} fields, the header has {}",
            fields.len(),
            header.columns.len()
        ));
    }
    let epoch_text = fields[header.epoch].trim();
    let epoch = epoch_text
        .parse::<u64>()
        .ok()
        .or_else(|| {
            let f: f64 = epoch_text.parse().ok()?;
            (f >= 0.0 && f.fract() == 0.0 && f < 1e18).then_some(f as u64)
        })
        .ok_or_else(|| format!("epoch {epoch_text:?} is not a whole number"))?;
    let values = header
        .columns
        .iter()
        .zip(&fields)
        .enumerate()
        .filter(|(i, (name, _))| *i != header.epoch && !name.is_empty())
        .filter_map(|(_, (name, cell))| {
            let cell = cell.trim();
            if cell.is_empty() || cell == "NA" {
                return None;
            }
            cell.parse::<f64>().ok().map(|v| (name.clone(), v))
        })
        .collect();
    Ok(EpochRow { epoch, values })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_a_csvlogger_history_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        std::fs::write(
            &path,
            "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,0.9,0.4,1.0\n1,0.6,0.7,NA,0.8\n2,0.7",
        )
        .unwrap();
        let mut tail = KerasCsvTail::new();
        let read = tail.read(&path).unwrap();
        assert_eq!(read.rows.len(), 2);
        assert_eq!(read.rows[1].epoch, 1);
        assert_eq!(
            read.rows[1].values,
            vec![
                ("accuracy".to_string(), 0.6),
                ("loss".to_string(), 0.7),
                ("val_loss".to_string(), 0.8)
            ]
        );
        let mut f = std::fs::File::options().append(true).open(&path).unwrap();
        f.write_all(b",0.5,0.6,0.7\n").unwrap();
        let read = tail.read(&path).unwrap();
        assert_eq!(read.rows.len(), 1);
        assert_eq!(read.rows[0].epoch, 2);
        assert_eq!(read.rows[0].values.len(), 4);
    }

    #[test]
    fn headers_bad_rows_and_separators() {
        assert_eq!(Header::parse("loss,acc"), None);
        let h = Header::parse("\u{feff}epoch;loss").unwrap();
        assert_eq!((h.separator, h.epoch), (';', 0));
        let h = Header::parse("step\tepoch\tloss").unwrap();
        assert_eq!((h.separator, h.epoch), ('\t', 1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, "loss,epoch\n0.5,x\n0.4,1,9\n0.3,2.0\n").unwrap();
        let mut tail = KerasCsvTail::new();
        let read = tail.read(&path).unwrap();
        assert_eq!(
            read.rows,
            vec![EpochRow {
                epoch: 2,
                values: vec![("loss".into(), 0.3)]
            }]
        );
        assert_eq!(tail.bad_count, 2);
        assert_eq!(tail.bad_lines[0].0, 2);
        let other = dir.path().join("labels.csv");
        std::fs::write(&other, "file,label\na.png,1\n").unwrap();
        assert!(read_header(&other).is_none());
        let err = KerasCsvTail::new().read(&other).unwrap().refused.unwrap();
        let err = err.to_string();
        assert!(
            err.contains("labels.csv:1") && err.contains("epoch"),
            "{err}"
        );
    }
}
