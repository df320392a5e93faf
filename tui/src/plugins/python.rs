//! Python models as plugins: a `.py` file that declares `GANTRY_PLUGIN` in a plugin folder
//! is a plugin like a `.so`. It runs through one bridge library on the same C ABI
//! (`plugins/python`, `libgantry_python.so`), which embeds CPython; only the bridge links
//! libpython, never this host.
//!
//! The bridge learns which script to drive from its process's environment
//! ([`SCRIPT_ENV`], and [`VENV_ENV`] for the virtualenv), read when it describes itself.
//! Setting environment variables in a running process is unsafe, so a process that is to
//! load a script gets them from the start: `describe` children are spawned with them, and
//! `gantry train`/`resume` for a `.py` plugin re-execute themselves with them
//! ([`reexec_with_env`]) before doing anything else.

use std::path::{Path, PathBuf};

/// The script the bridge drives (absolute path).
pub const SCRIPT_ENV: &str = "GANTRY_PY_PLUGIN";
/// The virtualenv whose site-packages the script imports from (else `VIRTUAL_ENV`).
pub const VENV_ENV: &str = "GANTRY_PYTHON";
/// The bridge library's file name on the plugin search path.
pub const BRIDGE_FILE: &str = "libgantry_python.so";
/// How much of a `.py` file is read looking for `GANTRY_PLUGIN`.
const HEAD_BYTES: u64 = 64 * 1024;

/// Whether `path` names a Python file.
pub fn is_script(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// The text of `GANTRY_PLUGIN = {...}` in the file's head, when it declares one at the
/// top level. Read without running Python: listing a folder must not execute code.
fn declaration(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = crate::runfs::tail::open_regular(path).ok()?;
    let mut head = Vec::new();
    file.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let start = text.lines().position(|line| {
        line.strip_prefix("GANTRY_PLUGIN")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })?;
    // The dict may span lines: up to the line where its braces balance.
    let mut depth = 0i32;
    let mut out = String::new();
    for line in text.lines().skip(start) {
        out.push_str(line);
        out.push('\n');
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth <= 0 {
            break;
        }
    }
    Some(out)
}

/// Whether the file declares itself a gantry plugin.
pub fn declares_plugin(path: &Path) -> bool {
    is_script(path) && declaration(path).is_some()
}

/// The `"name"` its `GANTRY_PLUGIN` declares, read statically (for `plugin: "tiny-ae"`).
pub fn declared_name(path: &Path) -> Option<String> {
    let text = declaration(path)?;
    let at = text.find("\"name\"").or_else(|| text.find("'name'"))?;
    let rest = text[at + 6..].trim_start().strip_prefix(':')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

/// The first `.py` plugin on the search path declaring `name`.
pub fn find_by_name(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    super::candidates(dirs)
        .into_iter()
        .filter(|p| is_script(p))
        .find(|p| declared_name(p).as_deref() == Some(name))
}

/// The bridge library on the search path.
pub fn bridge(dirs: &[PathBuf]) -> Result<PathBuf, String> {
    dirs.iter()
        .map(|d| d.join(BRIDGE_FILE))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "Python plugins need the bridge {BRIDGE_FILE}, which is not on the plugin \
                 search path ({}); build it with `cargo build --release -p gantry-python`",
                searched.join(", ")
            )
        })
}

/// The environment a process loading `script` needs: the script, and the virtualenv
/// (`python` from the run config, else the caller's `VIRTUAL_ENV`).
pub fn env_for(script: &Path, venv: Option<&Path>) -> Vec<(&'static str, PathBuf)> {
    let script = std::path::absolute(script).unwrap_or_else(|_| script.to_path_buf());
    let mut env = vec![(SCRIPT_ENV, script)];
    if let Some(venv) = venv {
        let venv = std::path::absolute(venv).unwrap_or_else(|_| venv.to_path_buf());
        env.push((VENV_ENV, venv));
    }
    env
}

/// Whether this process already has `env` (so the bridge will drive that script).
fn has_env(env: &[(&'static str, PathBuf)]) -> bool {
    env.iter()
        .all(|(k, v)| std::env::var_os(k).is_some_and(|now| now == v.as_os_str()))
}

/// Replaces this process with itself, same arguments, plus `env`, unless it has `env`
/// already (then it returns at once). Returns only on failure to exec.
pub fn reexec_with_env(env: &[(&'static str, PathBuf)]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    if has_env(env) {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    Err(anyhow::anyhow!(
        "re-running {} for the Python plugin: {err}",
        exe.display()
    ))
}

/// Loads `script` through the bridge: the trust check applies to the script and its
/// folder (where it imports from), then the bridge loads from a private copy. This
/// process must have been started with [`env_for`] the script.
pub fn load(
    script: &Path,
    dirs: &[PathBuf],
    allow_insecure: bool,
) -> anyhow::Result<gantry_plugin_api::host::Plugin> {
    if !allow_insecure && !super::trust::allowed_by_env() {
        super::trust::check(script).map_err(anyhow::Error::msg)?;
    }
    let env = env_for(script, None);
    anyhow::ensure!(
        has_env(&env[..1]),
        "{}: this process was not started for this Python plugin ({SCRIPT_ENV} is {:?})",
        script.display(),
        std::env::var_os(SCRIPT_ENV).unwrap_or_default()
    );
    // The script's own folder first: a folder holding scripts and the bridge works
    // wherever it is, whether or not it was named on this process's search path (a
    // `describe` child is started with the script alone).
    let mut search: Vec<PathBuf> = script.parent().map(Path::to_path_buf).into_iter().collect();
    search.extend(dirs.iter().cloned());
    let bridge = bridge(&search).map_err(anyhow::Error::msg)?;
    let plugin = super::private_copy::load(&bridge, allow_insecure)?;
    Ok(plugin.named(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_script_declares_itself_and_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let one_line = script(
            dir.path(),
            "tiny.py",
            "import numpy as np\nGANTRY_PLUGIN = {\"name\": \"tiny-ae\", \"family\": \"autoencoder\"}\n",
        );
        let spread = script(
            dir.path(),
            "spread.py",
            "\"\"\"Doc.\"\"\"\nGANTRY_PLUGIN = {\n    'family': 'classifier',\n    'name': 'my-cnn',\n}\nclass Model: pass\n",
        );
        let plain = script(dir.path(), "helper.py", "def f():\n    GANTRY_PLUGIN = 1\n");
        assert!(declares_plugin(&one_line) && declares_plugin(&spread));
        assert!(
            !declares_plugin(&plain),
            "indented names are not declarations"
        );
        assert_eq!(declared_name(&one_line).as_deref(), Some("tiny-ae"));
        assert_eq!(declared_name(&spread).as_deref(), Some("my-cnn"));
        let dirs = vec![dir.path().to_path_buf()];
        assert_eq!(find_by_name("my-cnn", &dirs), Some(spread));
        assert_eq!(find_by_name("nothing", &dirs), None);
    }

    #[test]
    fn a_missing_bridge_says_how_to_build_it() {
        let err = bridge(&[PathBuf::from("/nonexistent")]).unwrap_err();
        assert!(
            err.contains(BRIDGE_FILE) && err.contains("-p gantry-python"),
            "{err}"
        );
    }

    #[test]
    fn the_env_names_the_script_absolutely() {
        let env = env_for(Path::new("models/tiny.py"), Some(Path::new("/opt/venv")));
        assert_eq!(env[0].0, SCRIPT_ENV);
        assert!(env[0].1.is_absolute() && env[0].1.ends_with("models/tiny.py"));
        assert_eq!(env[1], (VENV_ENV, PathBuf::from("/opt/venv")));
    }
}
