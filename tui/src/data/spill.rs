//! The decoded cache's overflow: shaped images that do not fit the in-memory budget are
//! written once to a file of fixed-size records in the run root's cache folder and read
//! back with positional reads, so later epochs of a dataset larger than memory skip
//! decoding too (the kernel's page cache keeps what fits of the file in memory). The file
//! is private to one prefetcher and removed when it is dropped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::DataError;

/// A cache file of `slots` records of `values` f32 each.
pub struct Spill {
    file: File,
    path: PathBuf,
    values: usize,
    written: Vec<bool>,
}

impl Spill {
    /// Creates `dir/name` (and `dir`), sized for `slots` records.
    pub fn create(dir: &Path, name: &str, slots: usize, values: usize) -> Result<Spill, DataError> {
        let io = |path: &Path, e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        Ok(Spill {
            file,
            path,
            values,
            written: vec![false; slots],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn offset(&self, slot: usize) -> u64 {
        (slot * self.values * 4) as u64
    }

    /// Stores record `slot`. A write error (disk full) only means this image is decoded
    /// again next time, so it is reported to the caller to log, not fatal.
    pub fn put(&mut self, slot: usize, values: &[f32]) -> std::io::Result<()> {
        if values.len() != self.values || slot >= self.written.len() {
            return Err(std::io::Error::other(
                "spill record of the wrong size or slot",
            ));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.file.write_all_at(&bytes, self.offset(slot))?;
        self.written[slot] = true;
        Ok(())
    }

    /// Record `slot`, if stored and readable.
    pub fn get(&self, slot: usize) -> Option<Vec<f32>> {
        if !*self.written.get(slot)? {
            return None;
        }
        let mut bytes = vec![0u8; self.values * 4];
        self.file
            .read_exact_at(&mut bytes, self.offset(slot))
            .ok()?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    pub fn contains(&self, slot: usize) -> bool {
        self.written.get(slot).copied().unwrap_or(false)
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_file_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::create(&dir.path().join("cache"), "x.f32", 4, 3).unwrap();
        assert_eq!(spill.get(2), None);
        spill.put(2, &[1.0, -2.5, 3.25]).unwrap();
        spill.put(0, &[0.0, 0.5, 1.0]).unwrap();
        assert_eq!(spill.get(2), Some(vec![1.0, -2.5, 3.25]));
        assert_eq!(spill.get(0), Some(vec![0.0, 0.5, 1.0]));
        assert!(!spill.contains(1));
        assert!(spill.put(1, &[1.0]).is_err(), "wrong record size refused");
        let path = spill.path().to_path_buf();
        assert!(path.exists());
        drop(spill);
        assert!(!path.exists());
    }
}
