//! Loading a plugin the way a runner must: from a private copy, never from the file on
//! the search path. A `.so` replaced while a run trains (a rebuild, a `cp` over it) would
//! otherwise change code under the running process, or crash it; with a copy, running
//! runs keep what they started with and the next run gets the new file.
//!
//! The copy lives in a private folder under the temp dir (`gantry-<uid>/plugins`, mode
//! 0700, ours and not a symlink) only while `dlopen` opens it: Linux keeps the mapping
//! after the unlink, so no copies pile up, even after a crash. It is not in the run root:
//! a full or read-only run root must fail on the run's files, with their names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result};
use gantry_plugin_api::host::{LoadError, Plugin};

/// A CUDA build of a plugin that cannot load here: the NVIDIA driver or a CUDA library is
/// missing. Kept typed so the runner can fall back to a CPU build for `--device auto`.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct CudaUnavailable {
    /// The whole message, naming the plugin as the user knows it.
    pub text: String,
    /// `libcuda.so.1`, `libcublas.so.13`, ...
    pub library: String,
    /// The loader's words.
    pub reason: String,
}

/// Loads `path` through a private copy, after the trust check unless `allow_insecure`.
/// Errors name `path`, never the copy.
pub fn load(path: &Path, allow_insecure: bool) -> Result<Plugin> {
    if !allow_insecure && !super::trust::allowed_by_env() {
        super::trust::check(path).map_err(anyhow::Error::msg)?;
    }
    let dir = private_dir()?;
    let copy = unique_copy_path(&dir, path);
    std::fs::copy(path, &copy)
        .with_context(|| format!("copying plugin {} to {}", path.display(), copy.display()))?;
    let loaded = Plugin::load(&copy);
    let _ = std::fs::remove_file(&copy);
    match loaded {
        Ok(plugin) => Ok(plugin.named(path)),
        Err(e) => {
            let text = e
                .to_string()
                .replace(&*copy.to_string_lossy(), &path.to_string_lossy());
            match e {
                LoadError::CudaUnavailable {
                    library, reason, ..
                } => Err(CudaUnavailable {
                    text,
                    library,
                    reason,
                }
                .into()),
                _ => Err(anyhow::anyhow!(text)),
            }
        }
    }
}

/// `$TMPDIR/gantry-<euid>/plugins`, created 0700; refused when another user owns it or
/// it is a symlink (someone could swap the copy between our write and the dlopen).
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::geteuid().as_raw();
    let top = std::env::temp_dir().join(format!("gantry-{uid}"));
    let dir = top.join("plugins");
    for d in [&top, &dir] {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
        let meta =
            std::fs::symlink_metadata(d).with_context(|| format!("reading {}", d.display()))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            anyhow::bail!(
                "{}: not a private folder of this user (a symlink, another owner, or \
                 writable by others); remove it",
                d.display()
            );
        }
    }
    Ok(dir)
}

fn unique_copy_path(dir: &Path, path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}-{}-{n}.so", std::process::id()))
}
