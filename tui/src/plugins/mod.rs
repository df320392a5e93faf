//! Finding plugins and saying what they are, without loading them into the caller.
//!
//! Search path, in order: `--plugins DIR` flags, `GANTRY_PLUGIN_PATH` (colon-separated),
//! the directory of the `gantry` executable (so `target/release/*.so` is found after a
//! build), then `~/.local/share/gantry/plugins`.
//!
//! Describing a library loads it, and a broken library can crash the loader (a bad
//! initialiser, an ELF that lies). So listings run `gantry plugins describe PATH --json`
//! in a short-lived child process, with a timeout, and a crash is just another refusal.

pub mod trust;

pub mod private_copy;

pub mod for_device;

pub mod python;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gantry_plugin_api::host::Plugin;
use serde::{Deserialize, Serialize};

/// How long one `describe` child may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The plugin search path.
pub fn search_path(flags: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = flags.to_vec();
    if let Some(env) = std::env::var_os("GANTRY_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir);
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/share/gantry/plugins"));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let fresh = !seen.contains(d);
        seen.push(d.clone());
        fresh
    });
    dirs
}

/// Every `*.so`, and every `*.py` declaring `GANTRY_PLUGIN`, directly inside the search
/// path's folders, in search order. The bridge library itself is not a model.
pub fn candidates(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && (p.extension().is_some_and(|e| e == "so") || python::declares_plugin(p))
                    && p.file_name().is_none_or(|n| n != python::BRIDGE_FILE)
            })
            .collect();
        libs.sort();
        out.extend(libs);
    }
    out
}

/// Resolves a run config's `plugin` field: a path (contains `/`, ends in `.so` or `.py`)
/// is taken as is; a name `foo-bar` is the first `libfoo_bar.so` on the search path, else
/// the first `.py` plugin declaring that name.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    if name.contains('/') || name.ends_with(".so") || name.ends_with(".py") {
        let path = PathBuf::from(name);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!("plugin {name}: no such file"))
        };
    }
    let file = format!("lib{}.so", name.replace('-', "_"));
    dirs.iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .or_else(|| python::find_by_name(name, dirs))
        .ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "plugin {name:?}: no {file}, nor a .py declaring that name, on the plugin \
                 search path ({}); build it with `cargo build --release -p {name}` or pass \
                 --plugins DIR",
                searched.join(", ")
            )
        })
}

/// One line of a plugin listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginEntry {
    pub path: PathBuf,
    /// `ok` or `refused`.
    pub status: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub family: Option<String>,
    pub abi: Option<String>,
    pub summary: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The plugin's default hyper-parameters as RON map text (what the dashboard's
    /// new-run form prefills); absent from older `describe` output, hence the default.
    #[serde(default)]
    pub default_params: Option<String>,
}

impl PluginEntry {
    fn refused(path: &Path, reason: String) -> PluginEntry {
        PluginEntry {
            path: path.to_path_buf(),
            status: "refused".into(),
            name: None,
            version: None,
            family: None,
            abi: None,
            summary: None,
            reason: Some(reason),
            default_params: None,
        }
    }
}

/// Loads and describes a plugin in this process (what the `describe` child runs). A `.py`
/// plugin is loaded through the bridge; this process must have its environment
/// ([`python::env_for`]).
pub fn describe_here(path: &Path) -> PluginEntry {
    let loaded = if python::is_script(path) {
        python::load(path, &search_path(&[]), true).map_err(|e| format!("{e:#}"))
    } else {
        Plugin::load(path).map_err(|e| e.to_string())
    };
    match loaded {
        Ok(plugin) => {
            let info = plugin.info();
            PluginEntry {
                path: path.to_path_buf(),
                status: "ok".into(),
                name: Some(info.name.clone()),
                version: Some(info.version.clone()),
                family: Some(info.family.clone()),
                abi: Some(format!("{}.{}", info.abi_major, info.abi_minor)),
                summary: Some(info.description.summary.clone()),
                reason: None,
                default_params: Some(info.description.default_params.clone()),
            }
        }
        Err(e) => PluginEntry::refused(path, e),
    }
}

/// Describes a plugin in a child process (`gantry plugins describe PATH --json`), so a
/// library that crashes or hangs while loading cannot take the caller down.
/// A file or folder writable by other users is refused without being loaded (see
/// [`trust`]) unless `allow_insecure`.
pub fn describe_isolated(gantry: &Path, path: &Path, allow_insecure: bool) -> PluginEntry {
    if !allow_insecure
        && !trust::allowed_by_env()
        && let Err(reason) = trust::check(path)
    {
        return PluginEntry::refused(path, reason);
    }
    let mut cmd = Command::new(gantry);
    if python::is_script(path) {
        cmd.envs(python::env_for(path, None));
    }
    let child = cmd
        .args(["plugins", "describe", "--json"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return PluginEntry::refused(path, format!("cannot start describe: {e}")),
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > DESCRIBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return PluginEntry::refused(
                    path,
                    format!("describe did not finish within {DESCRIBE_TIMEOUT:?}"),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return PluginEntry::refused(path, format!("describe: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    match serde_json::from_str::<PluginEntry>(&out) {
        Ok(entry) => entry,
        Err(_) => {
            use std::os::unix::process::ExitStatusExt;
            let how = match status.signal() {
                Some(sig) => format!("the describe process was killed by signal {sig}"),
                None => format!("the describe process failed ({status})"),
            };
            PluginEntry::refused(path, format!("{}: {how} while loading it", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_by_name_and_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libconv_ae.so");
        std::fs::write(&lib, b"").unwrap();
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(resolve("conv-ae", &dirs).unwrap(), lib);
        assert_eq!(resolve(lib.to_str().unwrap(), &[]).unwrap(), lib);
        let err = resolve("vae", &dirs).unwrap_err();
        assert!(
            err.contains("libvae.so") && err.contains("/nonexistent"),
            "{err}"
        );
    }

    #[test]
    fn search_path_puts_flags_first_and_dedups() {
        let flags = vec![PathBuf::from("/a"), PathBuf::from("/a")];
        let path = search_path(&flags);
        assert_eq!(path[0], PathBuf::from("/a"));
        assert_eq!(
            path.iter()
                .filter(|p| p.as_path() == Path::new("/a"))
                .count(),
            1
        );
    }
}
