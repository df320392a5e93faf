//! TFRecord framing, the container of TensorBoard event files: each record is
//!
//! ```text
//! u64 LE  length
//! u32 LE  masked CRC-32C of the 8 length bytes
//! [u8]    data (length bytes)
//! u32 LE  masked CRC-32C of the data
//! ```
//!
//! with TensorFlow's mask `((crc >> 15) | (crc << 17)) + 0xa282ead8`. [`RecordTail`] reads
//! the records of a growing file incrementally: only bytes past its offset are read, a
//! record not yet complete waits for the rest, and a complete record that fails its check
//! stops the tail at that offset with an error naming the file and the offset (nothing is
//! skipped silently). Records are handed over one at a time, so memory stays at one record
//! however large the file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::TfEventsError;
use crate::runfs::tail::open_regular;

/// The largest record read. Scalar events are tens of bytes and an image summary a few
/// megabytes; a length past this is a damaged file, refused before anything is allocated.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Length field, its CRC, and the data CRC.
const HEADER: u64 = 12;
const FOOTER: u64 = 4;

static CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TensorFlow's masked CRC-32C: a CRC of data that holds CRCs stays well distributed.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = CASTAGNOLI.checksum(data);
    // (crc >> 15) | (crc << 17)
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one framed record holding `data` to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// What one [`RecordTail::read`] did.
#[derive(Debug, Default)]
pub struct RecordRead {
    /// Complete records handed to the callback.
    pub records: usize,
    /// The file shrank or was replaced, and was read from its start: what the caller
    /// holds from it is stale.
    pub restarted: bool,
    /// A complete record that failed its check: the tail stays at its offset, and says so
    /// on every read until the file is replaced.
    pub stuck: Option<TfEventsError>,
}

/// The incremental reader of one growing record file.
#[derive(Debug, Default)]
pub struct RecordTail {
    offset: u64,
    /// (device, inode) the offset belongs to.
    file: Option<(u64, u64)>,
    /// Where and why reading stopped for good: (offset, message).
    stuck: Option<(u64, String)>,
}

impl RecordTail {
    pub fn new() -> RecordTail {
        RecordTail::default()
    }

    /// Bytes consumed: the end of the last complete record read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the complete records appended since the last call, handing each to `each`
    /// with its offset. A missing file reads as empty.
    pub fn read(
        &mut self,
        path: &Path,
        mut each: impl FnMut(u64, &[u8]),
    ) -> Result<RecordRead, TfEventsError> {
        let io = |e| TfEventsError::io(path, e);
        let file = match open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RecordRead::default()),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let len = meta.len();
        let id = (meta.dev(), meta.ino());
        let replaced = self.file.is_some_and(|old| old != id);
        let restarted =
            (self.offset > 0 || self.stuck.is_some()) && (replaced || len < self.offset);
        if restarted || replaced {
            *self = RecordTail::new();
        }
        self.file = Some(id);
        let mut read = RecordRead {
            restarted,
            ..RecordRead::default()
        };
        if let Some((offset, message)) = &self.stuck {
            read.stuck = Some(TfEventsError::corrupt(path, *offset, message.clone()));
            return Ok(read);
        }
        if len <= self.offset {
            return Ok(read);
        }
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut reader = reader.take(len - self.offset);
        let mut data = Vec::new();
        loop {
            match next_record(&mut reader, len - self.offset, &mut data) {
                Ok(Next::Record(size)) => {
                    each(self.offset, &data);
                    self.offset += size;
                    read.records += 1;
                }
                Ok(Next::Incomplete) => break,
                Err(Bad::Io(e)) => return Err(io(e)),
                Err(Bad::Check(message)) => {
                    read.stuck = Some(TfEventsError::corrupt(path, self.offset, message.clone()));
                    self.stuck = Some((self.offset, message));
                    break;
                }
            }
        }
        Ok(read)
    }
}

enum Next {
    /// A record was read into the buffer; it took this many bytes of the file.
    Record(u64),
    /// The rest of the file is not a whole record yet.
    Incomplete,
}

enum Bad {
    Io(std::io::Error),
    Check(String),
}

/// Reads the record at the reader's position; `left` is how many bytes the file holds
/// from there.
fn next_record(reader: &mut impl Read, left: u64, data: &mut Vec<u8>) -> Result<Next, Bad> {
    if left < HEADER {
        return Ok(Next::Incomplete);
    }
    let mut header = [0u8; HEADER as usize];
    reader.read_exact(&mut header).map_err(Bad::Io)?;
    let (len_bytes, crc_bytes) = header.split_at(8);
    let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
    let want = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
    if masked_crc(len_bytes) != want {
        return Err(Bad::Check(format!(
            "length CRC mismatch (not a TFRecord, or damaged): length field {len}"
        )));
    }
    if len > MAX_RECORD_BYTES {
        return Err(Bad::Check(format!(
            "record of {len} bytes, over the {} MiB limit",
            MAX_RECORD_BYTES >> 20
        )));
    }
    if left < HEADER + len + FOOTER {
        return Ok(Next::Incomplete);
    }
    data.clear();
    data.resize(len as usize, 0);
    reader.read_exact(data).map_err(Bad::Io)?;
    let mut footer = [0u8; FOOTER as usize];
    reader.read_exact(&mut footer).map_err(Bad::Io)?;
    if masked_crc(data) != u32::from_le_bytes(footer) {
        return Err(Bad::Check(format!("data CRC mismatch ({len} bytes)")));
    }
    Ok(Next::Record(HEADER + len + FOOTER))
}

/// Truncates a file after its last complete record when what follows is an incomplete
/// record (a writer that crashed in mid-record); returns the bytes cut. A file with a
/// damaged record is left as it is: cutting there would drop the intact records after it.
pub fn cut_torn_tail(path: &Path) -> Result<u64, TfEventsError> {
    let mut tail = RecordTail::new();
    let read = tail.read(path, |_, _| {})?;
    if let Some(e) = read.stuck {
        return Err(e);
    }
    let keep = tail.offset();
    let io = |e| TfEventsError::io(path, e);
    let file = File::options().write(true).open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > keep {
        file.set_len(keep).map_err(io)?;
    }
    Ok(len.saturating_sub(keep))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn records(tail: &mut RecordTail, path: &Path) -> (Vec<(u64, Vec<u8>)>, RecordRead) {
        let mut out = Vec::new();
        let read = tail.read(path, |o, d| out.push((o, d.to_vec()))).unwrap();
        (out, read)
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // CRC-32C("123456789") is 0xe3069283 (the catalogue's check value); masked by
        // hand, ((crc >> 15) | (crc << 17)) + 0xa282ead8, that is 0xc78ab0e5.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        // An empty record as tensorflow's RecordWriter frames it.
        let mut out = Vec::new();
        frame(b"", &mut out);
        assert_eq!(&out[..8], &[0; 8]);
        assert_eq!(out.len(), 16);
    }

    #[test]
    fn partial_records_wait_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut bytes = Vec::new();
        frame(b"first", &mut bytes);
        frame(b"second record", &mut bytes);
        let split = bytes.len() - 5;
        std::fs::write(&path, &bytes[..split]).unwrap();
        let mut tail = RecordTail::new();
        let (got, read) = records(&mut tail, &path);
        assert_eq!(got, vec![(0, b"first".to_vec())]);
        assert!(read.stuck.is_none());
        // Only the header of the second one, then nothing more: still waiting.
        assert!(records(&mut tail, &path).0.is_empty());
        let mut f = File::options().append(true).open(&path).unwrap();
        f.write_all(&bytes[split..]).unwrap();
        let (got, _) = records(&mut tail, &path);
        assert_eq!(got, vec![(21, b"second record".to_vec())]);
        assert_eq!(tail.offset(), bytes.len() as u64);
    }

    #[test]
    fn a_bad_crc_stops_the_tail_with_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut bytes = Vec::new();
        frame(b"good", &mut bytes);
        let bad_at = bytes.len();
        frame(b"flipped", &mut bytes);
        frame(b"after", &mut bytes);
        bytes[bad_at + 13] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut tail = RecordTail::new();
        let (got, read) = records(&mut tail, &path);
        assert_eq!(got.len(), 1);
        let err = read.stuck.unwrap().to_string();
        assert!(
            err.contains("events")
                && err.contains(&format!("byte {bad_at}"))
                && err.contains("data CRC"),
            "{err}"
        );
        // It says so again, and skips nothing.
        let (got, read) = records(&mut tail, &path);
        assert!(got.is_empty());
        assert!(read.stuck.is_some());
        // A rewritten file is read from the start.
        let mut fresh = Vec::new();
        frame(b"new", &mut fresh);
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, &fresh).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let (got, read) = records(&mut tail, &path);
        assert!(read.restarted && read.stuck.is_none());
        assert_eq!(got, vec![(0, b"new".to_vec())]);
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let len = (u64::MAX / 2).to_le_bytes();
        let mut bytes = len.to_vec();
        bytes.extend_from_slice(&masked_crc(&len).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (_, read) = records(&mut RecordTail::new(), &path);
        let err = read.stuck.unwrap().to_string();
        assert!(
            err.contains("over the 64 MiB limit") && err.contains("byte 0"),
            "{err}"
        );
    }

    #[test]
    fn torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut bytes = Vec::new();
        frame(b"kept", &mut bytes);
        let keep = bytes.len() as u64;
        frame(b"torn by a crash", &mut bytes);
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(cut_torn_tail(&path).unwrap(), 16 + 15 - 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), keep);
    }
}
