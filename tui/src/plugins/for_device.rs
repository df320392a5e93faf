//! Loading a plugin for the device a run asks for.
//!
//! A plugin built with `--features cuda` links the NVIDIA driver (`libcuda.so.1`) and the
//! CUDA libraries (candle links them; cudarc cannot load them lazily in that mode), so on a
//! machine without them it cannot even be opened. What happens then depends on the device:
//!
//! - `cuda`, `cuda:N`: the run fails at once with "CUDA requested, but no NVIDIA driver was
//!   found: ..." (or the CUDA library that is missing), naming the plugin file;
//! - `auto` and `cpu`: the next file of the same name on the plugin search path that does
//!   load (a CPU build) is used, and the run's log says so; with none, the error says how
//!   to get one.
//!
//! Where the driver is present, a CUDA build opens and chooses its device itself
//! (`gantry_kit::device`): `auto` falls back to the CPU there when no GPU answers.

use std::path::{Path, PathBuf};

use anyhow::Result;
use gantry_plugin_api::host::{Plugin, is_driver_library};

use super::private_copy::{self, CudaUnavailable};

/// A loaded plugin, the file it came from, and what the run's log should say about the
/// choice (a fallback to a CPU build).
pub struct Loaded {
    pub plugin: Plugin,
    pub path: PathBuf,
    pub note: Option<String>,
}

/// Whether a device spec insists on CUDA (`cuda`, `cuda:N`), as opposed to `auto`/`cpu`.
pub fn wants_cuda(device: &str) -> bool {
    let d = device.trim();
    d == "cuda" || d.starts_with("cuda:")
}

/// Loads `path` (through a private copy) for `device`, falling back to a CPU build of the
/// same file name on `dirs` when `path` is a CUDA build that cannot load here and the
/// device allows the CPU.
pub fn load(path: &Path, dirs: &[PathBuf], device: &str, allow_insecure: bool) -> Result<Loaded> {
    // A Python model: its device is the script's business (`setup["device"]`).
    if super::python::is_script(path) {
        return Ok(Loaded {
            plugin: super::python::load(path, dirs, allow_insecure)?,
            path: path.to_path_buf(),
            note: None,
        });
    }
    let err = match private_copy::load(path, allow_insecure) {
        Ok(plugin) => {
            return Ok(Loaded {
                plugin,
                path: path.to_path_buf(),
                note: None,
            });
        }
        Err(e) => e,
    };
    let Some(cuda) = err.downcast_ref::<CudaUnavailable>() else {
        return Err(err);
    };
    let missing = if is_driver_library(&cuda.library) {
        "no NVIDIA driver was found".to_string()
    } else {
        format!("the CUDA library {} was not found", cuda.library)
    };
    if wants_cuda(device) {
        anyhow::bail!(
            "CUDA requested ({}), but {missing}: {} ({} is a CUDA build of the plugin)",
            device.trim(),
            cuda.reason,
            path.display()
        );
    }
    let mut tried = Vec::new();
    for other in other_builds(path, dirs) {
        match private_copy::load(&other, allow_insecure) {
            Ok(plugin) => {
                let note = format!(
                    "device {}: {} is a CUDA build and {missing} ({}); using {} instead",
                    device.trim(),
                    path.display(),
                    cuda.reason,
                    other.display()
                );
                return Ok(Loaded {
                    plugin,
                    path: other,
                    note: Some(note),
                });
            }
            Err(e) => tried.push(format!("{e:#}")),
        }
    }
    let also = if tried.is_empty() {
        String::new()
    } else {
        format!(
            "; other builds on the plugin path failed too: {}",
            tried.join("; ")
        )
    };
    anyhow::bail!(
        "device {}: {} is a CUDA build of the plugin, but {missing} ({}), and no CPU build \
         of {} is on the plugin path; build one (cargo build --release, without \
         --features cuda) or pass --plugins DIR{also}",
        device.trim(),
        path.display(),
        cuda.reason,
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    )
}

/// The other files on the search path with `path`'s file name, in search order.
fn other_builds(path: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let Some(name) = path.file_name() else {
        return Vec::new();
    };
    let same_file = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    super::candidates(dirs)
        .into_iter()
        .filter(|c| c.file_name() == Some(name) && !same_file(c, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cuda_and_cuda_n_insist_on_cuda() {
        for d in ["cuda", "cuda:0", " cuda:3 "] {
            assert!(wants_cuda(d), "{d}");
        }
        for d in ["auto", "cpu", "", "cudaa"] {
            assert!(!wants_cuda(d), "{d}");
        }
    }

    #[test]
    fn other_builds_are_same_named_files_elsewhere_on_the_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::write(dir.join("libconv_ae.so"), b"").unwrap();
            std::fs::write(dir.join("libvae.so"), b"").unwrap();
        }
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let found = other_builds(&a.path().join("libconv_ae.so"), &dirs);
        assert_eq!(found, vec![b.path().join("libconv_ae.so")]);
    }
}
