//! gantry plugin: the Python bridge. One cdylib on the ordinary plugin ABI that embeds
//! CPython (pyo3) and drives a model class written in a user's `.py` file.
//!
//! # How the host selects the script
//!
//! The host loads `libgantry_python.so` like any plugin, in a process whose environment
//! names the script; the bridge reads it at `describe()` / `create()` time and loads the
//! script once per process:
//!
//! - `GANTRY_PY_PLUGIN` (required): the path of the user's `.py` file.
//! - `GANTRY_PYTHON` (optional): a virtualenv folder whose packages the script uses; else
//!   `VIRTUAL_ENV` when set; else the embedded interpreter's own site-packages. The
//!   venv's `pyvenv.cfg` (`version_info` or `version`) must name the major.minor this
//!   bridge embeds (`venv /x was made with Python 3.12, this gantry embeds 3.11`); a
//!   missing folder is `no virtualenv at /x (GANTRY_PYTHON)`. Its
//!   `lib/pythonX.Y/site-packages` is added with `site.addsitedir`, ahead of the
//!   interpreter's own (which are dropped when `include-system-site-packages = false`),
//!   and `sys.prefix` / `sys.executable` are set as the venv's own interpreter has them.
//!   The script's folder goes first on `sys.path`, so it can import its sibling modules;
//!   the script is imported as module `_gantry_plugin_<stem>` (importlib,
//!   `spec_from_file_location`). numpy must be importable: the batches are numpy arrays.
//!
//! If the script cannot be loaded (variable unset, file missing, an exception while
//! importing, no `GANTRY_PLUGIN` dict, no class `Model`, a missing required method, numpy
//! not importable), `describe()` fails with one line naming the file
//! (`/x/tiny_ae.py: ModuleNotFoundError: No module named 'torch'`,
//! `/x/m.py: class Model has no method eval`) and `create()` returns the same message.
//!
//! # The Python contract
//!
//! ```python
//! GANTRY_PLUGIN = {
//!     "name": "tiny-ae",            # required: the model's name (Description.name)
//!     "family": "autoencoder",      # required (or "families": [...])
//!     "version": "0.1.0",           # optional (Description.version)
//!     "params": {"latent": 16},     # defaults; the run config overrides any subset
//!     "losses": ["loss"],           # default ["loss"]: scalars train_step returns
//!     "scores": ["mse"],            # default []: per-image scores eval returns, primary first
//!     "metrics": [],                # optional: eval scalars besides the losses
//!     "input": {"channels": [1, 3], "multiple_of": 4, "min_size": 8},  # optional
//!     "summary": "one line",        # optional
//! }
//!
//! class Model:
//!     def __init__(self, params: dict, setup: dict): ...
//!     def train_step(self, images, labels) -> dict: ...    # {"loss": 0.01}
//!     def eval(self, images, labels) -> dict: ...
//!     def save(self, dir: str): ...
//!     def load(self, dir: str): ...
//!     def sample(self, n: int, seed: int) -> dict: ...     # optional
//! ```
//!
//! - `GANTRY_PLUGIN` keys other than those above are refused (a typo would otherwise pass
//!   unnoticed); `channels` may hold 1 and 3, `multiple_of` and `min_size` default to 1.
//! - `params`: the script's defaults with the run's params (a RON map: numbers, bools,
//!   strings, lists, maps; `None`/`()` are `None`) merged over them, as plain Python values.
//!   A key the defaults lack is refused, as Rust plugins refuse unknown fields.
//! - `setup`: `channels`, `height`, `width`, `num_classes`, `seed` (ints), `lr` (float or
//!   `None` for the model's default), `total_steps` (int or `None`), `device` (the run's
//!   `"cpu"`, `"cuda:0"`, `"auto"`...).
//! - `images`: a writable float32 numpy array `(n, c, h, w)`, one copy of the host's batch;
//!   `labels`: a uint32 numpy array of length `n` (length 0 when the host gives none).
//! - `train_step` returns `{name: number}`. `eval` (and `sample`) return a dict with any of
//!   `"scalars"` (`{name: number}`), `"scores"` (`{name: one value per image}`),
//!   `"images"` (`{name: NCHW in [0, 1]}` or `{name: (NCHW, columns)}`; 8 columns by
//!   default; clamped to [0, 1]; forwarded only for the batches the host asks images
//!   for) and `"vectors"` (`{name: (n, d)}`, e.g. `"latent"`). Numbers may be Python or
//!   numpy numbers or one-element tensors; arrays may be numpy arrays, torch tensors (any
//!   device: `.detach().cpu()` is applied) or lists. Shapes are checked (scores `n` long,
//!   images 4-D with 1 or 3 channels, vectors 2-D with `n` rows); a bad one fails the call
//!   with an error naming the key, and nothing of that call is emitted.
//! - `sample(n, seed)` returns the same dict as `eval` (`{"images": {"samples": NCHW}}`);
//!   without the method, sampling is unsupported.
//! - After `__init__`, the bridge reports `device` (the model's `self.device` when it sets
//!   one, else the requested device with `auto` read as `cpu`), `python`
//!   (`3.11.2 (/path/to/venv)`), `numpy`, and `torch` when the script imported torch.
//! - An exception in any method fails the call with `Type: message` on the first line,
//!   then the formatted traceback; the traceback also goes to the run's log as an error.
//!
//! # Interpreter
//!
//! One interpreter per process, started on first use without Python's signal handlers;
//! each call attaches to it (takes the GIL) for its duration. The host opens plugins
//! `RTLD_LOCAL`, which would hide libpython's symbols from C extensions (numpy, torch:
//! "undefined symbol", PyO3/pyo3#4000), so before starting the interpreter the bridge
//! re-opens the libpython it is linked against with `RTLD_NOW | RTLD_GLOBAL |
//! RTLD_NOLOAD`.

use std::path::Path;

use gantry_plugin_api::{
    Batch, Context, Description, Level, Model, PluginError, PluginResult, Setup,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyString};

mod interp;
mod manifest;
mod results;
mod values;
mod venv;

use interp::Script;
use results::Readers;

/// One instance of the script's `Model` class.
pub struct PyModel {
    script: &'static Script,
    /// `None` only while dropping.
    instance: Option<Py<PyAny>>,
}

impl PyModel {
    /// Runs `f` with the GIL held and the instance bound; a Python exception becomes the
    /// call's error (and an error line with its traceback in the log).
    fn with<R>(
        &mut self,
        ctx: &mut Context<'_>,
        method: &str,
        f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>, &Script) -> Result<R, Failure>,
    ) -> PluginResult<R> {
        let script = self.script;
        let instance = self.instance.as_ref().expect("live instance");
        Python::attach(|py| {
            f(py, instance.bind(py), script).map_err(|failure| failure.report(py, ctx, method))
        })
    }
}

/// Why a call failed: the script raised, or the bridge refused what it returned.
enum Failure {
    Raised(PyErr),
    Bridge(String),
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Raised(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Bridge(e)
    }
}

impl Failure {
    fn report(self, py: Python<'_>, ctx: &mut Context<'_>, method: &str) -> PluginError {
        match self {
            Failure::Raised(err) => {
                let (head, traceback) = interp::error_text(py, &err);
                ctx.log(
                    Level::Error,
                    &format!("Model.{method} raised {head}\n{traceback}"),
                );
                PluginError::new(format!("{head}\n{traceback}"))
            }
            Failure::Bridge(message) => PluginError::new(message),
        }
    }
}

/// The batch as numpy arrays: images `(n, c, h, w)` float32 over a bytearray filled from
/// the borrowed slice (the one copy), labels uint32.
fn batch_arrays<'py>(
    py: Python<'py>,
    numpy: &Bound<'py, PyModule>,
    batch: &Batch<'_>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let bytes = PyByteArray::new_with(py, std::mem::size_of_val(batch.images), |buf| {
        for (dst, v) in buf.chunks_exact_mut(4).zip(batch.images) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })?;
    let [n, c, h, w] = batch.shape;
    let images = numpy
        .call_method1("frombuffer", (bytes, "float32"))?
        .call_method1("reshape", ((n, c, h, w),))?;
    let labels = PyByteArray::new_with(py, std::mem::size_of_val(batch.labels), |buf| {
        for (dst, v) in buf.chunks_exact_mut(4).zip(batch.labels) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })?;
    let labels = numpy.call_method1("frombuffer", (labels, "uint32"))?;
    Ok((images, labels))
}

/// `setup` as the dict `__init__` receives.
fn setup_dict<'py>(py: Python<'py>, setup: &Setup, device: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("channels", setup.channels)?;
    d.set_item("height", setup.height)?;
    d.set_item("width", setup.width)?;
    d.set_item("num_classes", setup.num_classes)?;
    d.set_item("seed", setup.seed)?;
    d.set_item("lr", setup.learning_rate)?;
    d.set_item("total_steps", setup.total_steps)?;
    d.set_item("device", device)?;
    Ok(d)
}

/// The device the model says it uses (`self.device`, a str or e.g. a torch.device), else
/// the requested one with `auto` read as `cpu`.
fn used_device(instance: &Bound<'_, PyAny>, requested: &str) -> String {
    match instance.getattr_opt("device") {
        Ok(Some(d)) if !d.is_none() && !d.is_callable() => d.to_string(),
        _ if requested == "auto" || requested.is_empty() => "cpu".into(),
        _ => requested.into(),
    }
}

/// Reports the Python environment: `python`, `numpy`, and `torch` if the script imported it.
fn report_versions(py: Python<'_>, script: &Script, ctx: &mut Context<'_>) {
    ctx.info("python", &script.python);
    let version = |module: &Bound<'_, PyAny>| {
        module
            .getattr("__version__")
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "?".into())
    };
    ctx.info("numpy", &version(script.numpy.bind(py).as_any()));
    let torch = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|m| m.get_item("torch"));
    if let Ok(torch) = torch {
        ctx.info("torch", &version(&torch));
    }
}

impl Model for PyModel {
    fn describe() -> Description {
        match interp::script() {
            Ok(script) => script.description.clone(),
            // resume_unwind skips the panic hook, so the shim reports this exact line
            // (a panic! would get " (at src/lib.rs:N)" appended).
            Err(message) => std::panic::resume_unwind(Box::new(message)),
        }
    }

    fn create(
        params: &str,
        device: &str,
        setup: &Setup,
        ctx: &mut Context<'_>,
    ) -> PluginResult<Self> {
        let script = interp::script().map_err(PluginError::new)?;
        match interp::libpython_promotion() {
            Ok(path) => ctx.log(
                Level::Debug,
                &format!("python: {path} re-opened RTLD_GLOBAL"),
            ),
            Err(why) => ctx.log(Level::Warn, &format!("python: {why}")),
        }
        Python::attach(|py| {
            let built = (|| -> Result<Py<PyAny>, Failure> {
                let params = values::merge_params(script.defaults.bind(py), params)?;
                let setup = setup_dict(py, setup, device)?;
                let instance = script.class.bind(py).call1((params, setup))?;
                ctx.info("device", &used_device(&instance, device));
                Ok(instance.unbind())
            })();
            let instance = built.map_err(|f| f.report(py, ctx, "__init__"))?;
            report_versions(py, script, ctx);
            ctx.info("script", &script.path.display().to_string());
            Ok(PyModel {
                script,
                instance: Some(instance),
            })
        })
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let out = self.with(ctx, "train_step", |py, model, script| {
            let (images, labels) = batch_arrays(py, script.numpy.bind(py), batch)?;
            let helpers = interp::helpers(py)?;
            let result = model.call_method1("train_step", (images, labels))?;
            Ok(Readers { helpers: &helpers }.train(&result)?)
        })?;
        out.emit(ctx, false);
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let out = self.with(ctx, "eval", |py, model, script| {
            let (images, labels) = batch_arrays(py, script.numpy.bind(py), batch)?;
            let helpers = interp::helpers(py)?;
            let result = model.call_method1("eval", (images, labels))?;
            Ok(Readers { helpers: &helpers }.report(&result, "eval", batch.len())?)
        })?;
        out.emit(ctx, batch.want_images);
        Ok(())
    }

    fn sample(&mut self, n: usize, seed: u64, ctx: &mut Context<'_>) -> PluginResult<()> {
        if !self.script.has_sample {
            return Err(PluginError::new("this model does not generate samples"));
        }
        let out = self.with(ctx, "sample", |py, model, _| {
            let helpers = interp::helpers(py)?;
            let result = model.call_method1("sample", (n, seed))?;
            Ok(Readers { helpers: &helpers }.report(&result, "sample", n)?)
        })?;
        out.emit(ctx, true);
        Ok(())
    }

    fn save(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()> {
        self.with(ctx, "save", |py, model, _| {
            model.call_method1("save", (PyString::new(py, &dir.to_string_lossy()),))?;
            Ok(())
        })
    }

    fn load(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()> {
        self.with(ctx, "load", |py, model, _| {
            model.call_method1("load", (PyString::new(py, &dir.to_string_lossy()),))?;
            Ok(())
        })
    }
}

impl Drop for PyModel {
    /// Releases the instance with the GIL held, so its memory (a GPU's too) is freed now.
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            Python::attach(|_| drop(instance));
        }
    }
}

gantry_plugin_api::export_model!(PyModel, name: "python", family: "python");
