//! The embedded interpreter: started once per process (after making libpython's symbols
//! global), its search path set from the virtualenv, and the user's script loaded once.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use gantry_plugin_api::Description;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use crate::{manifest, venv};

/// Names the user's script (absolute path).
pub const SCRIPT_VAR: &str = "GANTRY_PY_PLUGIN";
/// Names a virtualenv folder; else `VIRTUAL_ENV`; else the interpreter's own packages.
pub const PYTHON_VAR: &str = "GANTRY_PYTHON";

/// Methods class `Model` must have.
pub const REQUIRED_METHODS: &[&str] = &["train_step", "eval", "save", "load"];

const BRIDGE_PY: &str = include_str!("bridge.py");

/// The loaded script, shared by every instance in the process.
pub struct Script {
    pub path: PathBuf,
    pub class: Py<PyAny>,
    /// `GANTRY_PLUGIN["params"]`.
    pub defaults: Py<PyDict>,
    pub numpy: Py<PyModule>,
    pub description: Description,
    pub has_sample: bool,
    /// `3.11.2 (/path/to/venv)`: the version and the environment packages come from.
    pub python: String,
}

/// The script named by `GANTRY_PY_PLUGIN`, loaded on first use. The error is one line that
/// names the file.
pub fn script() -> Result<&'static Script, String> {
    static SCRIPT: OnceLock<Result<Script, String>> = OnceLock::new();
    SCRIPT.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Where libpython was re-opened `RTLD_GLOBAL`, or why not (for the log).
pub fn libpython_promotion() -> &'static Result<String, String> {
    static PROMOTED: OnceLock<Result<String, String>> = OnceLock::new();
    PROMOTED.get_or_init(promote_libpython)
}

/// Starts the interpreter once per process (signal handlers left to the host).
pub fn start_interpreter() {
    static START: Once = Once::new();
    START.call_once(|| {
        let _ = libpython_promotion();
        Python::initialize();
    });
}

/// The first mapped file named `libpython*.so*` in a `/proc/self/maps` text.
pub fn libpython_in_maps(maps: &str) -> Option<&str> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            path.starts_with('/') && name.starts_with("libpython") && name.contains(".so")
        })
}

/// The host opens plugins `RTLD_LOCAL`, so libpython (loaded as this library's
/// dependency) does not serve symbols to later `dlopen`s: C extensions such as numpy's
/// would fail with "undefined symbol: PyExc_...". Re-opening it `RTLD_GLOBAL` fixes that.
fn promote_libpython() -> Result<String, String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let path = libpython_in_maps(&maps)
        .ok_or("no libpython is mapped (statically linked?); C extensions may not import")?;
    let flags =
        libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL | libc::RTLD_NOLOAD;
    // SAFETY: with RTLD_NOLOAD, dlopen only returns a library that is already loaded (this
    // one is mapped: the bridge links it), so no initialiser runs; the call only widens
    // the visibility of its symbols. The handle is leaked so it is never closed.
    let library = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
        .map_err(|e| format!("re-opening {path} RTLD_GLOBAL failed: {e}"))?;
    std::mem::forget(library);
    Ok(path.to_string())
}

/// The bridge's own Python helpers (bridge.py), compiled once.
pub fn helpers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static HELPERS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    HELPERS
        .get_or_try_init(py, || {
            let code = CString::new(BRIDGE_PY).expect("bridge.py has no NUL");
            PyModule::from_code(py, &code, c"gantry_bridge.py", c"_gantry_bridge")
                .map(Bound::unbind)
        })
        .map(|m| m.bind(py).clone())
}

/// `Type: message` and the formatted traceback of an exception.
pub fn error_text(py: Python<'_>, err: &PyErr) -> (String, String) {
    let name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = err.value(py).to_string();
    let head = if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    };
    let traceback = helpers(py)
        .and_then(|h| h.call_method1("format_exception", (err.value(py), err.traceback(py))))
        .and_then(|t| t.extract::<String>())
        .map(|t| t.trim_end().to_string())
        .unwrap_or_else(|_| head.clone());
    (head, traceback)
}

/// Whitespace runs (newlines included) as single spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn load() -> Result<Script, String> {
    let Some(raw) = std::env::var_os(SCRIPT_VAR).filter(|v| !v.is_empty()) else {
        return Err(format!(
            "{SCRIPT_VAR} is not set: it names the .py model the Python bridge runs"
        ));
    };
    let path = std::path::absolute(PathBuf::from(raw)).map_err(|e| e.to_string())?;
    let at = |message: String| format!("{}: {}", path.display(), message);
    match std::fs::metadata(&path) {
        Err(e) => return Err(at(format!("cannot read: {e}"))),
        Ok(m) if !m.is_file() => return Err(at("not a file".into())),
        Ok(_) => {}
    }
    let choice = venv::choose(
        std::env::var_os(PYTHON_VAR),
        std::env::var_os("VIRTUAL_ENV"),
    );
    start_interpreter();
    Python::attach(|py| load_in(py, &path, choice.as_ref())).map_err(at)
}

fn load_in(
    py: Python<'_>,
    path: &Path,
    choice: Option<&venv::VenvChoice>,
) -> Result<Script, String> {
    let head = |e: PyErr| one_line(&error_text(py, &e).0);
    let helpers = helpers(py).map_err(|e| format!("the bridge's helpers failed: {}", head(e)))?;
    let info = py.version_info();
    let embedded = (u32::from(info.major), u32::from(info.minor));
    let venv = choice.map(|c| venv::resolve(c, embedded)).transpose()?;
    let script_dir = path.parent().unwrap_or(Path::new("/"));
    helpers
        .call_method1(
            "setup_paths",
            (
                script_dir.as_os_str(),
                venv.as_ref().map(|v| v.dir.as_os_str()),
                venv.as_ref().map(|v| v.site_packages.as_os_str()),
                venv.as_ref().is_some_and(|v| !v.include_system),
            ),
        )
        .map_err(|e| format!("setting sys.path: {}", head(e)))?;
    let numpy = py.import("numpy").map_err(|e| {
        let place = match (&venv, choice) {
            (Some(v), Some(c)) => format!("the virtualenv {} ({})", v.dir.display(), c.var),
            _ => format!(
                "the embedded Python {}.{} (set {PYTHON_VAR} to a virtualenv that has it)",
                embedded.0, embedded.1
            ),
        };
        format!("numpy is not importable in {place}: {}", head(e))
    })?;
    let module = helpers
        .call_method1("load_script", (path.as_os_str(), module_name(path)))
        .map_err(head)?;
    let manifest = module
        .getattr_opt("GANTRY_PLUGIN")
        .map_err(head)?
        .ok_or("no GANTRY_PLUGIN dict")?;
    let manifest = manifest
        .cast::<PyDict>()
        .map_err(|_| format!("GANTRY_PLUGIN is a {}, not a dict", type_name(&manifest)))?;
    let class = module
        .getattr_opt("Model")
        .map_err(head)?
        .ok_or("no class Model")?;
    if !class.is_instance_of::<PyType>() {
        return Err(format!("Model is a {}, not a class", type_name(&class)));
    }
    let has_method = |name: &str| {
        class
            .getattr_opt(name)
            .ok()
            .flatten()
            .is_some_and(|m| m.is_callable())
    };
    if let Some(missing) = REQUIRED_METHODS.iter().find(|m| !has_method(m)) {
        return Err(format!("class Model has no method {missing}"));
    }
    let has_sample = has_method("sample");
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (description, defaults) = manifest::read(manifest, &file_name)?;
    let sys = py.import("sys").map_err(head)?;
    let version = sys
        .getattr("version")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let version = version.split_whitespace().next().unwrap_or("?").to_string();
    let home = match &venv {
        Some(v) => v.dir.display().to_string(),
        None => sys
            .getattr("prefix")
            .map(|p| p.to_string())
            .unwrap_or_default(),
    };
    Ok(Script {
        path: path.to_path_buf(),
        class: class.unbind(),
        defaults: defaults.unbind(),
        numpy: numpy.unbind(),
        description,
        has_sample,
        python: format!("{version} ({home})"),
    })
}

/// A module name no other import uses: `_gantry_plugin_<stem>`.
fn module_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("_gantry_plugin_{stem}")
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// For unit tests that need numpy: puts the test venv's site-packages (`GANTRY_TEST_VENV`,
/// default `target/py-venv`) on the path; false, with the reason printed, when numpy
/// still does not import.
#[cfg(test)]
pub fn test_numpy(py: Python<'_>) -> bool {
    let venv = std::env::var_os("GANTRY_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-venv"));
    let info = py.version_info();
    let site = venv.join(format!(
        "lib/python{}.{}/site-packages",
        info.major, info.minor
    ));
    let ok = helpers(py)
        .and_then(|h| h.call_method1("setup_paths", (".", None::<&str>, site.as_os_str(), false)))
        .and_then(|_| py.import("numpy"))
        .is_ok();
    if !ok {
        eprintln!(
            "skipped: numpy is not importable from {} (python3 -m venv target/py-venv && \
             target/py-venv/bin/pip install numpy)",
            site.display()
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpython_is_found_in_proc_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000002000-7f0000003000 r--p 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0
7f0000004000-7f0000005000 rw-p 00000000 00:00 0
7f0000006000-7f0000007000 r--p 00000000 08:01 789 /opt/libpython-tools/bin/x";
        assert_eq!(
            libpython_in_maps(maps),
            Some("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")
        );
        assert_eq!(
            libpython_in_maps("7f-7f r--p 0 0:0 0 /lib/libc.so.6\n"),
            None
        );
    }

    #[test]
    fn this_process_has_libpython_and_promotes_it() {
        // The unit-test binary links libpython like the bridge does.
        start_interpreter();
        let promoted = libpython_promotion().as_ref().unwrap();
        assert!(promoted.contains("libpython3."), "{promoted}");
    }

    #[test]
    fn exceptions_read_as_type_message_and_traceback() {
        start_interpreter();
        Python::attach(|py| {
            let err = py
                .run(
                    c"def f():\n    raise ValueError('bad\\nthing')\nf()\n",
                    None,
                    None,
                )
                .unwrap_err();
            let (head, traceback) = error_text(py, &err);
            assert_eq!(head, "ValueError: bad\nthing");
            assert_eq!(one_line(&head), "ValueError: bad thing");
            assert!(
                traceback.starts_with("Traceback (most recent call last):"),
                "{traceback}"
            );
            assert!(traceback.contains("in f"), "{traceback}");
            assert!(traceback.ends_with("ValueError: bad\nthing"), "{traceback}");
        });
    }

    #[test]
    fn module_names_are_identifiers() {
        assert_eq!(
            module_name(Path::new("/x/tiny-ae.v2.py")),
            "_gantry_plugin_tiny_ae_v2"
        );
    }
}
