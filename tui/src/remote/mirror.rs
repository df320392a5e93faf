//! The client's copy of a remote root: a plain run root in the user's cache folder, which
//! the dashboard watches and reads like any local root. The agent's frames are applied to
//! it here; what it holds is also where a reconnect resumes from ([`inventory`]).
//!
//! Every path comes from the remote side and is checked by
//! [`protocol::safe_relative`] before it touches the disk; a frame that breaks the rules
//! (an append at the wrong offset, an unknown file) is an error that drops the link, and
//! the next connection resynchronises from what is on disk.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::protocol::{self, HaveFile, PART_SUFFIX, ToClient};

/// The largest file the mirror accepts.
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// A frame the mirror cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("the agent named an unsafe path {0:?}")]
    UnsafePath(String),
    #[error("the agent named root {0}, which this link did not ask for")]
    UnknownRoot(u16),
    #[error("the agent used file number {0} before opening it")]
    UnknownFile(u32),
    #[error("{path}: the agent appended at byte {offset}, the mirror holds {have}")]
    Offset {
        path: PathBuf,
        offset: u64,
        have: u64,
    },
    #[error("{path}: the agent sent a file of {total} bytes, over the {MAX_FILE}-byte limit")]
    TooLarge { path: PathBuf, total: u64 },
    #[error("{path}: a part at byte {offset} does not follow the {have} bytes received")]
    OutOfOrder {
        path: PathBuf,
        offset: u64,
        have: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MirrorError + '_ {
    move |source| MirrorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the client holds under `dir`, for [`ToAgent::Have`](super::protocol::ToAgent).
/// Leftover partial files (a link that dropped mid-file) are deleted.
pub fn inventory(dir: &Path) -> Vec<HaveFile> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(top: &Path, dir: &Path, out: &mut Vec<HaveFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(top, &path, out);
        } else if kind.is_file() {
            if path.to_string_lossy().ends_with(PART_SUFFIX) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(top) else {
                continue;
            };
            let Some(rel) = rel.to_str() else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            let Ok(tail_hash) = protocol::file_tail_hash(&path, meta.len()) else {
                continue;
            };
            out.push(HaveFile {
                path: rel.to_string(),
                size: meta.len(),
                tail_hash,
            });
        }
    }
}

/// The mirror's stand-ins for listed files, shared with the dashboard (which asks for
/// them when it shows them).
pub type Placeholders = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>;

/// A file being received whole.
struct Part {
    tmp: PathBuf,
    file: std::fs::File,
    have: u64,
}

/// Applies frames to the mirror folders of one link's roots.
pub struct Mirror {
    roots: Vec<PathBuf>,
    /// Files the agent listed but has not sent: empty stand-ins on disk until fetched.
    placeholders: Placeholders,
    files: HashMap<u32, PathBuf>,
    /// Files opened under a path the mirror refuses: their frames are dropped.
    refused: std::collections::HashSet<u32>,
    parts: HashMap<u32, Part>,
}

/// What a frame did, for the link's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A file's content changed (appended, or a whole file completed).
    Changed,
    /// Nothing visible yet (an open, a part of a file).
    Nothing,
}

impl Mirror {
    pub fn new(roots: Vec<PathBuf>) -> Mirror {
        Mirror::with_placeholders(roots, Placeholders::default())
    }

    /// A mirror that records its stand-ins in `placeholders`.
    pub fn with_placeholders(roots: Vec<PathBuf>, placeholders: Placeholders) -> Mirror {
        Mirror {
            roots,
            placeholders,
            files: HashMap::new(),
            refused: Default::default(),
            parts: HashMap::new(),
        }
    }

    fn path(&self, file: u32) -> Result<&PathBuf, MirrorError> {
        self.files.get(&file).ok_or(MirrorError::UnknownFile(file))
    }

    /// Applies one frame. A file under an unsafe path is refused once
    /// ([`MirrorError::UnsafePath`]) and its later frames are dropped: one bad name never
    /// costs the rest of the host.
    pub fn apply(&mut self, frame: &ToClient) -> Result<Applied, MirrorError> {
        let file = match frame {
            ToClient::Put { file, .. }
            | ToClient::Append { file, .. }
            | ToClient::Remove { file }
            | ToClient::Listed { file, .. } => Some(*file),
            _ => None,
        };
        if file.is_some_and(|f| self.refused.contains(&f)) {
            return Ok(Applied::Nothing);
        }
        match frame {
            ToClient::Open { file, root, path } => {
                let top = self
                    .roots
                    .get(usize::from(*root))
                    .ok_or(MirrorError::UnknownRoot(*root))?;
                self.parts.remove(file);
                let Some(rel) = protocol::safe_relative(path) else {
                    self.files.remove(file);
                    self.refused.insert(*file);
                    return Err(MirrorError::UnsafePath(path.clone()));
                };
                self.refused.remove(file);
                self.files.insert(*file, top.join(rel));
                Ok(Applied::Nothing)
            }
            ToClient::Put {
                file,
                total,
                offset,
                mtime,
                bytes,
            } => self.put(*file, *total, *offset, *mtime, bytes),
            ToClient::Append {
                file,
                offset,
                bytes,
            } => {
                let path = self.path(*file)?.clone();
                let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if have != *offset {
                    return Err(MirrorError::Offset {
                        path,
                        offset: *offset,
                        have,
                    });
                }
                if have + bytes.len() as u64 > MAX_FILE {
                    return Err(MirrorError::TooLarge {
                        path,
                        total: have + bytes.len() as u64,
                    });
                }
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.write_all(bytes).map_err(io_err(&path))?;
                Ok(Applied::Changed)
            }
            ToClient::Remove { file } => {
                let path = self.path(*file)?.clone();
                self.parts.remove(file);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
                self.placeholders
                    .lock()
                    .expect("placeholders")
                    .remove(&path);
                self.prune(&path);
                Ok(Applied::Changed)
            }
            ToClient::Listed { file, mtime, .. } => {
                let path = self.path(*file)?.clone();
                self.parts.remove(file);
                let tmp = part_path(&path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
                }
                let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
                set_mtime(&f, *mtime);
                drop(f);
                std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
                self.placeholders.lock().expect("placeholders").insert(path);
                Ok(Applied::Changed)
            }
            ToClient::Synced
            | ToClient::Heartbeat
            | ToClient::Notice { .. }
            | ToClient::Reply { .. } => Ok(Applied::Nothing),
        }
    }

    fn put(
        &mut self,
        file: u32,
        total: u64,
        offset: u64,
        mtime: f64,
        bytes: &[u8],
    ) -> Result<Applied, MirrorError> {
        let path = self.path(file)?.clone();
        if total > MAX_FILE {
            return Err(MirrorError::TooLarge { path, total });
        }
        if offset == 0 {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let tmp = part_path(&path);
            let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            self.parts.insert(
                file,
                Part {
                    tmp,
                    file: f,
                    have: 0,
                },
            );
        }
        let part = self.parts.get_mut(&file).ok_or(MirrorError::OutOfOrder {
            path: path.clone(),
            offset,
            have: 0,
        })?;
        if part.have != offset || offset + bytes.len() as u64 > total {
            let have = part.have;
            self.parts.remove(&file);
            return Err(MirrorError::OutOfOrder { path, offset, have });
        }
        part.file.write_all(bytes).map_err(io_err(&part.tmp))?;
        part.have += bytes.len() as u64;
        if part.have < total {
            return Ok(Applied::Nothing);
        }
        let part = self.parts.remove(&file).expect("part present");
        set_mtime(&part.file, mtime);
        drop(part.file);
        std::fs::rename(&part.tmp, &path).map_err(io_err(&path))?;
        self.placeholders
            .lock()
            .expect("placeholders")
            .remove(&path);
        Ok(Applied::Changed)
    }

    /// Removes the folders a removal left empty, up to the root.
    fn prune(&self, path: &Path) {
        let Some(top) = self.roots.iter().find(|r| path.starts_with(r)) else {
            return;
        };
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == top || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// Where a file is written before it is renamed into place.
fn part_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}{PART_SUFFIX}"))
}

/// Gives a file the remote side's modification time; any f64 may arrive, and one that is
/// not a time leaves the write's own.
fn set_mtime(file: &std::fs::File, mtime: f64) {
    if let Some(when) = std::time::Duration::try_from_secs_f64(mtime)
        .ok()
        .and_then(|d| std::time::UNIX_EPOCH.checked_add(d))
    {
        let _ = file.set_modified(when);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(m: &mut Mirror, file: u32, path: &str) {
        m.apply(&ToClient::Open {
            file,
            root: 0,
            path: path.into(),
        })
        .unwrap();
    }

    #[test]
    fn files_arrive_whole_and_grow_by_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mirror::new(vec![dir.path().to_path_buf()]);
        open(&mut m, 1, "run-1/status.ron");
        let put = |offset: u64, bytes: &[u8]| ToClient::Put {
            file: 1,
            total: 6,
            offset,
            mtime: 1.0e9,
            bytes: bytes.to_vec(),
        };
        assert_eq!(m.apply(&put(0, b"abc")).unwrap(), Applied::Nothing);
        assert!(
            !dir.path().join("run-1/status.ron").exists(),
            "half a file is never visible"
        );
        assert_eq!(m.apply(&put(3, b"def")).unwrap(), Applied::Changed);
        let target = dir.path().join("run-1/status.ron");
        assert_eq!(std::fs::read(&target).unwrap(), b"abcdef");
        let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000)
        );
        m.apply(&ToClient::Append {
            file: 1,
            offset: 6,
            bytes: b"gh".to_vec(),
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abcdefgh");
        let have = inventory(dir.path());
        assert_eq!(have.len(), 1);
        assert_eq!(
            (have[0].path.as_str(), have[0].size),
            ("run-1/status.ron", 8)
        );
        assert_eq!(have[0].tail_hash, protocol::tail_hash(b"abcdefgh"));
        m.apply(&ToClient::Remove { file: 1 }).unwrap();
        assert!(!dir.path().join("run-1").exists(), "emptied folders go too");
    }

    #[test]
    fn rule_breaking_frames_are_errors_and_touch_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("mirror");
        let mut m = Mirror::new(vec![inside.clone()]);
        let e = m
            .apply(&ToClient::Open {
                file: 1,
                root: 0,
                path: "../escape".into(),
            })
            .unwrap_err();
        assert!(matches!(e, MirrorError::UnsafePath(_)), "{e}");
        assert!(matches!(
            m.apply(&ToClient::Open {
                file: 1,
                root: 5,
                path: "a".into()
            }),
            Err(MirrorError::UnknownRoot(5))
        ));
        assert!(matches!(
            m.apply(&ToClient::Remove { file: 9 }),
            Err(MirrorError::UnknownFile(9))
        ));
        open(&mut m, 2, "r/scalars.csv");
        let e = m
            .apply(&ToClient::Append {
                file: 2,
                offset: 10,
                bytes: b"x".to_vec(),
            })
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("appended at byte 10, the mirror holds 0"),
            "{e}"
        );
        let e = m
            .apply(&ToClient::Put {
                file: 2,
                total: MAX_FILE + 1,
                offset: 0,
                mtime: 0.0,
                bytes: vec![],
            })
            .unwrap_err();
        assert!(matches!(e, MirrorError::TooLarge { .. }), "{e}");
        let e = m
            .apply(&ToClient::Put {
                file: 2,
                total: 4,
                offset: 2,
                mtime: 0.0,
                bytes: b"ab".to_vec(),
            })
            .unwrap_err();
        assert!(matches!(e, MirrorError::OutOfOrder { .. }), "{e}");
        let beside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "mirror")
            .collect();
        assert!(
            beside.is_empty(),
            "nothing written beside the mirror: {beside:?}"
        );
    }

    #[test]
    fn an_interrupted_file_is_dropped_from_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mirror::new(vec![dir.path().to_path_buf()]);
        open(&mut m, 1, "r/big.bin");
        m.apply(&ToClient::Put {
            file: 1,
            total: 10,
            offset: 0,
            mtime: 0.0,
            bytes: b"12345".to_vec(),
        })
        .unwrap();
        drop(m);
        assert!(inventory(dir.path()).is_empty());
        assert!(
            std::fs::read_dir(dir.path().join("r"))
                .unwrap()
                .next()
                .is_none(),
            "the part file is cleaned up"
        );
    }
}
