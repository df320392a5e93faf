//! The host side of the boundary (feature `host`): open a plugin library, check its header
//! before calling anything, and drive instances through a safe API.
//!
//! A library is opened with `RTLD_NOW | RTLD_LOCAL` (unresolved symbols fail at load, not
//! at the first call; its symbols never leak into later plugins) and is never unloaded:
//! Rust thread-local destructors registered by the plugin's std make `dlclose` unsound.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::abi::{
    self, ABI_MAJOR, BatchView, EntryFn, GANTRY_MAGIC, HostCallbacks, Instance, MIN_HEADER_SIZE,
    MIN_VTABLE_SIZE, PluginHeader, PluginVTable, Status, StrView, TensorView, size_u32,
};
use crate::model::{Batch, Description, ImageRef, Level, Setup};

mod elf_check;

/// Why a library was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: not a loadable shared library: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error(
        "{path}: not a gantry plugin: the library exports no `{}` symbol",
        abi::ENTRY_SYMBOL
    )]
    MissingEntry { path: PathBuf },
    #[error(
        "{path}: built for plugin ABI major {found}, but this gantry speaks major {expected}; \
         rebuild the plugin against gantry-plugin-api {expected}.x"
    )]
    AbiMajor {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{path}: the entry symbol returned a null header")]
    NullHeader { path: PathBuf },
    #[error("{path}: bad magic {found:#018x} (expected {GANTRY_MAGIC:#018x}): not a gantry header")]
    BadMagic { path: PathBuf, found: u64 },
    #[error(
        "{path}: its {what} is {found} bytes, smaller than the {min} bytes ABI {ABI_MAJOR}.0 requires"
    )]
    TooSmall {
        path: PathBuf,
        what: &'static str,
        found: u32,
        min: u32,
    },
    #[error("{path}: its vtable has no `{function}` function")]
    MissingFunction {
        path: PathBuf,
        function: &'static str,
    },
    #[error(
        "{path}: built with panic=abort, so a panic in the model would abort gantry instead of \
         failing the run; rebuild with panic = \"unwind\""
    )]
    PanicAbort { path: PathBuf },
    #[error("{path}: describe() failed: {reason}")]
    Describe { path: PathBuf, reason: String },
    /// A CUDA build of a plugin links the NVIDIA driver and the CUDA libraries, so it
    /// cannot even be opened where they are missing.
    #[error("{path}: {}", cuda_unavailable_message(library, reason))]
    CudaUnavailable {
        path: PathBuf,
        /// The library the loader could not find (`libcuda.so.1`, `libcublas.so.13`, ..).
        library: String,
        reason: String,
    },
}

/// The CUDA libraries a CUDA build of a plugin links (through candle and cudarc), by
/// soname prefix; the driver's first.
const CUDA_LIBRARIES: &[&str] = &[
    "libcuda.so",
    "libnvrtc",
    "libcublasLt.so",
    "libcublas.so",
    "libcurand.so",
    "libcudart.so",
    "libcudnn",
];

/// The CUDA library a `dlopen` failure names as missing, if any: glibc reports a missing
/// dependency as `libcuda.so.1: cannot open shared object file: ...`.
pub fn missing_cuda_library(dl_error: &str) -> Option<String> {
    let (name, _) = dl_error.split_once(": cannot open shared object file")?;
    let name = name.rsplit(['/', ' ']).next().unwrap_or(name);
    CUDA_LIBRARIES
        .iter()
        .any(|prefix| name.starts_with(prefix))
        .then(|| name.to_string())
}

/// Whether a missing library is the driver's (rather than the CUDA toolkit's).
pub fn is_driver_library(library: &str) -> bool {
    library.starts_with("libcuda.so")
}

fn cuda_unavailable_message(library: &str, reason: &str) -> String {
    if is_driver_library(library) {
        format!(
            "a CUDA build of the plugin, but no NVIDIA driver was found ({reason}); install \
             the NVIDIA driver (R580 or newer for CUDA 13) or use a CPU build of the plugin"
        )
    } else {
        format!(
            "a CUDA build of the plugin, but the CUDA library {library} was not found \
             ({reason}); put the CUDA 13 libraries' folder on LD_LIBRARY_PATH or use a CPU \
             build of the plugin"
        )
    }
}

impl LoadError {
    /// A short machine-readable name for the refusal (used in JSON output and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::Unreadable { .. } => "unreadable",
            LoadError::NotALibrary { .. } => "not-a-library",
            LoadError::MissingEntry { .. } => "missing-entry",
            LoadError::AbiMajor { .. } => "abi-major",
            LoadError::NullHeader { .. } => "null-header",
            LoadError::BadMagic { .. } => "bad-magic",
            LoadError::TooSmall { .. } => "too-small",
            LoadError::MissingFunction { .. } => "missing-function",
            LoadError::PanicAbort { .. } => "panic-abort",
            LoadError::Describe { .. } => "describe-failed",
            LoadError::CudaUnavailable { .. } => "cuda-unavailable",
        }
    }
}

/// Why a call on an instance failed. Every variant names the plugin file and the call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{plugin}: {call} failed: {message}")]
    Failed {
        plugin: PathBuf,
        call: &'static str,
        message: String,
    },
    #[error("{plugin}: {call} panicked: {message} (the instance is now poisoned)")]
    Panicked {
        plugin: PathBuf,
        call: &'static str,
        message: String,
    },
    #[error("{plugin}: {call} refused: the instance was poisoned by an earlier panic")]
    Poisoned { plugin: PathBuf, call: &'static str },
    #[error("{plugin}: {call} rejected its arguments: {message}")]
    BadArgument {
        plugin: PathBuf,
        call: &'static str,
        message: String,
    },
    #[error("{plugin}: {call} is not supported: {message}")]
    Unsupported {
        plugin: PathBuf,
        call: &'static str,
        message: String,
    },
    #[error("{plugin}: {call} reported a non-finite {name} = {value}: the model diverged")]
    NonFinite {
        plugin: PathBuf,
        call: &'static str,
        name: String,
        value: f64,
    },
    #[error("{plugin}: {call} returned unknown status {status}")]
    UnknownStatus {
        plugin: PathBuf,
        call: &'static str,
        status: u32,
    },
}

/// What the host receives during a call. Implementations copy what they keep.
pub trait HostSink {
    fn scalar(&mut self, name: &str, value: f64);
    fn scores(&mut self, name: &str, values: &[f32]);
    fn image(&mut self, name: &str, image: ImageRef<'_>);
    fn info(&mut self, key: &str, value: &str);
    fn log(&mut self, level: Level, text: &str);
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Per-sample vectors (ABI 1.1): `rows x cols`, row-major. Ignored unless overridden.
    fn vectors(&mut self, _name: &str, _values: &[f32], _rows: usize, _cols: usize) {}
}

/// Facts from a plugin's header and description.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub family: String,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub rustc_version: String,
    pub candle_version: String,
    pub description: Description,
}

/// A loaded, checked plugin library. Cheap to clone; the library stays mapped for the rest
/// of the process.
#[derive(Debug, Clone)]
pub struct Plugin {
    info: PluginInfo,
    vtable: &'static PluginVTable,
}

// SAFETY: the vtable is immutable static data in a library that is never unloaded, and
// every function in it is safe to call from any thread (instances are the thread-bound
// part, and `PluginInstance` is not `Send`).
unsafe impl Send for Plugin {}
// SAFETY: as above.
unsafe impl Sync for Plugin {}

impl Plugin {
    /// Opens, checks and describes a plugin library.
    pub fn load(path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        let path = path.as_ref().to_path_buf();
        if let Err(e) = std::fs::metadata(&path) {
            return Err(LoadError::Unreadable {
                path,
                reason: e.to_string(),
            });
        }
        if let Err(reason) = elf_check::check(&path) {
            return Err(LoadError::NotALibrary { path, reason });
        }
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        // SAFETY: loading a library runs its initialisers. That is the risk of any plugin
        // system; gantry only loads plugins in the runner and in short-lived `describe`
        // processes, never in the dashboard.
        let library =
            unsafe { libloading::os::unix::Library::open(Some(&path), flags) }.map_err(|e| {
                // libloading's Display is only "dlopen failed"; dlerror's text is the
                // source.
                let full = match std::error::Error::source(&e) {
                    Some(desc) => desc.to_string(),
                    None => e.to_string(),
                };
                match missing_cuda_library(&full) {
                    Some(library) => LoadError::CudaUnavailable {
                        path: path.clone(),
                        library,
                        reason: dl_error_after_path(&full, &path),
                    },
                    None => LoadError::NotALibrary {
                        path: path.clone(),
                        reason: short_dl_error(&full),
                    },
                }
            })?;
        // Never unload: see the module doc.
        let library: &'static libloading::os::unix::Library = Box::leak(Box::new(library));

        let entry_name = format!("{}\0", abi::ENTRY_SYMBOL);
        // SAFETY: the symbol, if present, has the documented `EntryFn` type: the name is
        // reserved for it by the ABI. It stays valid because the library is never closed.
        let entry: Option<EntryFn> = unsafe { library.get::<EntryFn>(entry_name.as_bytes()) }
            .ok()
            .map(|s| *s);
        let Some(entry) = entry else {
            return Err(match other_major(library) {
                Some(found) => LoadError::AbiMajor {
                    path,
                    found,
                    expected: ABI_MAJOR,
                },
                None => LoadError::MissingEntry { path },
            });
        };
        // SAFETY: calling the entry symbol is the ABI's first step; it only returns a
        // pointer to static data.
        let header_ptr = unsafe { entry() };
        // SAFETY: non-null header pointers point to a static header whose leading fields
        // (magic, major, minor, header_size) exist in every ABI version.
        let header = unsafe { check_header(&path, header_ptr) }?;
        // SAFETY: check_header validated the vtable pointer and its declared size.
        let vtable = unsafe { check_vtable(&path, header) }?;
        if header.panic_unwind != 1 {
            return Err(LoadError::PanicAbort { path });
        }
        let description = describe(&path, vtable)?;
        // SAFETY: header strings point to the plugin's static data (never unloaded).
        let text = |v: StrView| unsafe { v.to_str_lossy() }.into_owned();
        // A bridge (the Python one) names the model it drives in its description; that is
        // the plugin the user knows, not the bridge's header.
        let bridged = description.name.is_some();
        let info = PluginInfo {
            name: description
                .name
                .clone()
                .unwrap_or_else(|| text(header.name)),
            version: description
                .version
                .clone()
                .unwrap_or_else(|| text(header.version)),
            family: match description.families.first() {
                Some(f) if bridged => f.clone(),
                _ => text(header.family),
            },
            abi_major: header.abi_major,
            abi_minor: header.abi_minor,
            rustc_version: text(header.rustc_version),
            candle_version: text(header.candle_version),
            description,
            path,
        };
        Ok(Plugin { info, vtable })
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The same plugin, named by `path` in its info and in every later error: for a host
    /// that opened a private copy of the file the user knows.
    pub fn named(mut self, path: impl Into<PathBuf>) -> Plugin {
        self.info.path = path.into();
        self
    }

    pub fn path(&self) -> &Path {
        &self.info.path
    }

    /// Creates an instance. `params` is a RON map of hyper-parameters.
    pub fn create(
        &self,
        params: &str,
        device: &str,
        setup: &Setup,
        sink: &mut dyn HostSink,
    ) -> Result<PluginInstance, CallError> {
        let create = self.vtable.create.expect("checked at load");
        let setup = setup.to_view();
        let mut raw: *mut Instance = std::ptr::null_mut();
        let status = with_callbacks(sink, |host| {
            // SAFETY: views and callbacks live for the call; `raw` is writable.
            unsafe {
                create(
                    StrView::new(params),
                    StrView::new(device),
                    &setup,
                    host,
                    &mut raw,
                )
            }
        });
        self.check("create", status)?;
        if raw.is_null() {
            return Err(CallError::Failed {
                plugin: self.info.path.clone(),
                call: "create",
                message: "returned Ok but no instance".into(),
            });
        }
        Ok(PluginInstance {
            plugin: self.clone(),
            raw,
            _not_send: PhantomData,
        })
    }

    fn check(&self, call: &'static str, outcome: CallOutcome) -> Result<(), CallError> {
        let plugin = self.info.path.clone();
        let message = outcome
            .error
            .unwrap_or_else(|| "(the plugin gave no reason)".into());
        if let Some((name, value)) = outcome.non_finite {
            return Err(CallError::NonFinite {
                plugin,
                call,
                name,
                value,
            });
        }
        match Status::from_raw(outcome.status) {
            Some(Status::Ok) => Ok(()),
            Some(Status::Error) => Err(CallError::Failed {
                plugin,
                call,
                message,
            }),
            Some(Status::Panic) => Err(CallError::Panicked {
                plugin,
                call,
                message: message.trim_start_matches("plugin panicked: ").to_string(),
            }),
            Some(Status::Poisoned) => Err(CallError::Poisoned { plugin, call }),
            Some(Status::BadArgument) => Err(CallError::BadArgument {
                plugin,
                call,
                message,
            }),
            Some(Status::Unsupported) => Err(CallError::Unsupported {
                plugin,
                call,
                message,
            }),
            None => Err(CallError::UnknownStatus {
                plugin,
                call,
                status: outcome.status,
            }),
        }
    }
}

/// A live model instance. Driven from the thread that created it (not `Send`): candle's
/// CUDA streams are per thread.
pub struct PluginInstance {
    plugin: Plugin,
    raw: *mut Instance,
    _not_send: PhantomData<*mut ()>,
}

impl PluginInstance {
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// One optimisation step.
    pub fn train_step(
        &mut self,
        batch: &Batch<'_>,
        sink: &mut dyn HostSink,
    ) -> Result<(), CallError> {
        let f = self.plugin.vtable.train_step.expect("checked at load");
        self.batch_call("train_step", f, batch, sink)
    }

    /// Evaluation of one batch.
    pub fn eval(&mut self, batch: &Batch<'_>, sink: &mut dyn HostSink) -> Result<(), CallError> {
        let f = self.plugin.vtable.eval.expect("checked at load");
        self.batch_call("eval", f, batch, sink)
    }

    /// Generates `n` images from `seed`.
    pub fn sample(&mut self, n: u32, seed: u64, sink: &mut dyn HostSink) -> Result<(), CallError> {
        let f = self.plugin.vtable.sample.expect("checked at load");
        let raw = self.raw;
        // SAFETY: `raw` is live (destroyed only in Drop); callbacks live for the call.
        let outcome = with_callbacks(sink, |host| unsafe { f(raw, n, seed, host) });
        self.plugin.check("sample", outcome)
    }

    /// Writes weights and optimiser state into `dir`.
    pub fn save(&mut self, dir: &Path, sink: &mut dyn HostSink) -> Result<(), CallError> {
        let f = self.plugin.vtable.save.expect("checked at load");
        self.dir_call("save", f, dir, sink)
    }

    /// Restores what `save` wrote.
    pub fn load(&mut self, dir: &Path, sink: &mut dyn HostSink) -> Result<(), CallError> {
        let f = self.plugin.vtable.load.expect("checked at load");
        self.dir_call("load", f, dir, sink)
    }

    fn dir_call(
        &mut self,
        call: &'static str,
        f: unsafe extern "C" fn(*mut Instance, StrView, *const HostCallbacks) -> u32,
        dir: &Path,
        sink: &mut dyn HostSink,
    ) -> Result<(), CallError> {
        let dir = dir.to_string_lossy();
        let raw = self.raw;
        // SAFETY: `raw` is live; the view and callbacks live for the call.
        let outcome = with_callbacks(sink, |host| unsafe { f(raw, StrView::new(&dir), host) });
        self.plugin.check(call, outcome)
    }

    fn batch_call(
        &mut self,
        call: &'static str,
        f: unsafe extern "C" fn(*mut Instance, *const BatchView, *const HostCallbacks) -> u32,
        batch: &Batch<'_>,
        sink: &mut dyn HostSink,
    ) -> Result<(), CallError> {
        let view = BatchView {
            size: size_u32::<BatchView>(),
            flags: if batch.want_images {
                abi::BATCH_WANT_IMAGES
            } else {
                0
            },
            images: TensorView {
                data: batch.images.as_ptr(),
                len: batch.images.len(),
                shape: batch.shape.map(|d| d as u32),
            },
            labels: if batch.labels.is_empty() {
                std::ptr::null()
            } else {
                batch.labels.as_ptr()
            },
            labels_len: batch.labels.len(),
        };
        let raw = self.raw;
        // SAFETY: `raw` is live; the batch buffers and callbacks live for the call.
        let outcome = with_callbacks(sink, |host| unsafe { f(raw, &view, host) });
        self.plugin.check(call, outcome)
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        let destroy = self.plugin.vtable.destroy.expect("checked at load");
        // SAFETY: `raw` came from `create` and is destroyed exactly once, here.
        unsafe { destroy(self.raw) }
    }
}

/// What one plugin call produced besides its status.
struct CallOutcome {
    status: u32,
    error: Option<String>,
    non_finite: Option<(String, f64)>,
}

/// The `ctx` behind the callbacks of one call.
struct CallState<'s> {
    sink: &'s mut dyn HostSink,
    error: Option<String>,
    non_finite: Option<(String, f64)>,
}

/// Builds the callback table for one call, runs it, and collects what it reported.
fn with_callbacks(
    sink: &mut dyn HostSink,
    call: impl FnOnce(*const HostCallbacks) -> u32,
) -> CallOutcome {
    let mut state = CallState {
        sink,
        error: None,
        non_finite: None,
    };
    let host = HostCallbacks {
        size: size_u32::<HostCallbacks>(),
        ctx: &mut state as *mut CallState<'_> as *mut c_void,
        emit_scalar: cb_scalar,
        emit_scores: cb_scores,
        emit_image: cb_image,
        emit_info: cb_info,
        log: cb_log,
        set_error: cb_set_error,
        should_stop: cb_should_stop,
        emit_vectors: cb_vectors,
    };
    let status = call(&host);
    CallOutcome {
        status,
        error: state.error,
        non_finite: state.non_finite,
    }
}

/// Runs a callback body on the call's state. A panic in host code must not unwind into the
/// plugin's frames (that would abort), so it is caught and recorded as the call's error.
///
/// # Safety
/// `ctx` must be the `CallState` pointer `with_callbacks` put in the table, during its call.
unsafe fn on_state(ctx: *mut c_void, f: impl FnOnce(&mut CallState<'_>)) {
    // SAFETY: per the function's contract, `ctx` is a live, exclusively used CallState.
    let state = unsafe { &mut *(ctx as *mut CallState<'_>) };
    if catch_unwind(AssertUnwindSafe(|| f(&mut *state))).is_err() {
        state.error = Some("the host panicked inside a callback".into());
    }
}

unsafe extern "C" fn cb_scalar(ctx: *mut c_void, name: StrView, value: f64) {
    // SAFETY: ctx per `on_state`; the view is valid for this callback.
    unsafe {
        on_state(ctx, |s| {
            let name = name.to_str_lossy();
            if !value.is_finite() {
                s.non_finite.get_or_insert((name.into_owned(), value));
            } else {
                s.sink.scalar(&name, value);
            }
        })
    }
}

unsafe extern "C" fn cb_scores(ctx: *mut c_void, name: StrView, values: *const f32, len: usize) {
    // SAFETY: ctx per `on_state`; the plugin guarantees `len` readable values.
    unsafe {
        on_state(ctx, |s| {
            let values = if values.is_null() || len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(values, len)
            };
            s.sink.scores(&name.to_str_lossy(), values);
        })
    }
}

unsafe extern "C" fn cb_vectors(
    ctx: *mut c_void,
    name: StrView,
    values: *const f32,
    rows: usize,
    cols: usize,
) {
    // SAFETY: ctx per `on_state`; the plugin guarantees `rows * cols` readable values.
    unsafe {
        on_state(ctx, |s| {
            let Some(len) = rows.checked_mul(cols) else {
                s.error = Some(format!(
                    "emit_vectors({}): size overflows",
                    name.to_str_lossy()
                ));
                return;
            };
            let values = if values.is_null() || len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(values, len)
            };
            s.sink.vectors(&name.to_str_lossy(), values, rows, cols);
        })
    }
}

unsafe extern "C" fn cb_image(ctx: *mut c_void, name: StrView, image: TensorView, columns: u32) {
    // SAFETY: ctx per `on_state`; the plugin guarantees `image.len` readable values.
    unsafe {
        on_state(ctx, |s| {
            let shape = image.shape.map(|d| d as usize);
            if image.data.is_null() || image.len != shape.iter().product::<usize>() {
                s.error = Some(format!(
                    "emit_image({}): {} values for shape {shape:?}",
                    name.to_str_lossy(),
                    image.len
                ));
                return;
            }
            let data = std::slice::from_raw_parts(image.data, image.len);
            s.sink.image(
                &name.to_str_lossy(),
                ImageRef {
                    data,
                    shape,
                    columns: columns.max(1) as usize,
                },
            );
        })
    }
}

unsafe extern "C" fn cb_info(ctx: *mut c_void, key: StrView, value: StrView) {
    // SAFETY: ctx per `on_state`; views valid for this callback.
    unsafe {
        on_state(ctx, |s| {
            s.sink.info(&key.to_str_lossy(), &value.to_str_lossy())
        })
    }
}

unsafe extern "C" fn cb_log(ctx: *mut c_void, level: u32, text: StrView) {
    // SAFETY: ctx per `on_state`; the view is valid for this callback.
    unsafe {
        on_state(ctx, |s| {
            s.sink.log(Level::from_raw(level), &text.to_str_lossy())
        })
    }
}

unsafe extern "C" fn cb_set_error(ctx: *mut c_void, text: StrView) {
    // SAFETY: ctx per `on_state`; the view is valid for this callback.
    unsafe { on_state(ctx, |s| s.error = Some(text.to_str_lossy().into_owned())) }
}

unsafe extern "C" fn cb_should_stop(ctx: *mut c_void) -> u8 {
    let mut stop = false;
    // SAFETY: ctx per `on_state`.
    unsafe { on_state(ctx, |s| stop = s.sink.should_stop()) };
    stop as u8
}

/// Reads and checks a header: magic first, then the major, then sizes.
///
/// # Safety
/// `ptr` must be null or point to readable memory at least as large as the leading
/// fields of [`PluginHeader`], static for the process.
unsafe fn check_header(
    path: &Path,
    ptr: *const PluginHeader,
) -> Result<&'static PluginHeader, LoadError> {
    let path = path.to_path_buf();
    if ptr.is_null() {
        return Err(LoadError::NullHeader { path });
    }
    // SAFETY: the leading u64 exists in every header version.
    let magic = unsafe { std::ptr::addr_of!((*ptr).magic).read_unaligned() };
    if magic != GANTRY_MAGIC {
        return Err(LoadError::BadMagic { path, found: magic });
    }
    // SAFETY: major, minor and header_size follow the magic in every version.
    let (major, header_size) = unsafe {
        (
            std::ptr::addr_of!((*ptr).abi_major).read_unaligned(),
            std::ptr::addr_of!((*ptr).header_size).read_unaligned(),
        )
    };
    if major != ABI_MAJOR {
        return Err(LoadError::AbiMajor {
            path,
            found: major,
            expected: ABI_MAJOR,
        });
    }
    if header_size < MIN_HEADER_SIZE {
        return Err(LoadError::TooSmall {
            path,
            what: "header",
            found: header_size,
            min: MIN_HEADER_SIZE,
        });
    }
    // SAFETY: the plugin declares a header at least as large as this version's.
    Ok(unsafe { &*ptr })
}

/// Reads and checks the vtable: its declared size, then each function this host calls.
///
/// # Safety
/// `header.vtable` must be null or point to static memory of at least the declared size.
unsafe fn check_vtable(
    path: &Path,
    header: &PluginHeader,
) -> Result<&'static PluginVTable, LoadError> {
    let path = path.to_path_buf();
    if header.vtable.is_null() {
        return Err(LoadError::MissingFunction {
            path,
            function: "vtable",
        });
    }
    // SAFETY: `size` is the vtable's first field in every version.
    let size = unsafe { std::ptr::addr_of!((*header.vtable).size).read_unaligned() };
    if size < MIN_VTABLE_SIZE || header.vtable_size < MIN_VTABLE_SIZE {
        return Err(LoadError::TooSmall {
            path,
            what: "vtable",
            found: size.min(header.vtable_size),
            min: MIN_VTABLE_SIZE,
        });
    }
    // SAFETY: the vtable is at least this version's size and static.
    let vtable: &'static PluginVTable = unsafe { &*header.vtable };
    let required: [(&'static str, bool); 8] = [
        ("describe", vtable.describe.is_some()),
        ("create", vtable.create.is_some()),
        ("train_step", vtable.train_step.is_some()),
        ("eval", vtable.eval.is_some()),
        ("sample", vtable.sample.is_some()),
        ("save", vtable.save.is_some()),
        ("load", vtable.load.is_some()),
        ("destroy", vtable.destroy.is_some()),
    ];
    if let Some((function, _)) = required.iter().find(|(_, present)| !present) {
        return Err(LoadError::MissingFunction { path, function });
    }
    Ok(vtable)
}

fn describe(path: &Path, vtable: &PluginVTable) -> Result<Description, LoadError> {
    let describe = vtable.describe.expect("checked");
    let mut out = StrView::empty();
    // SAFETY: `out` is writable; describe writes a view of static text.
    let status = unsafe { describe(&mut out) };
    // SAFETY: the view points to the plugin's static text (never unloaded).
    let text = unsafe { out.to_str_lossy() };
    if Status::from_raw(status) != Some(Status::Ok) {
        return Err(LoadError::Describe {
            path: path.to_path_buf(),
            reason: text.into_owned(),
        });
    }
    ron::from_str::<Description>(&text).map_err(|e| LoadError::Describe {
        path: path.to_path_buf(),
        reason: format!("description is not valid: {e}"),
    })
}

/// Looks for the entry symbol of another ABI major, to name it in the refusal.
fn other_major(library: &libloading::os::unix::Library) -> Option<u32> {
    (0..=64u32).filter(|m| *m != ABI_MAJOR).find(|major| {
        let name = format!("{}{major}\0", abi::ENTRY_SYMBOL_PREFIX);
        // SAFETY: only the symbol's presence is checked; it is never called.
        unsafe { library.get::<*const c_void>(name.as_bytes()) }.is_ok()
    })
}

/// dlerror messages repeat the path; keep the part after it.
/// A `dlopen` message without the plugin's own path in front (errors name it already).
fn dl_error_after_path(message: &str, path: &Path) -> String {
    let path = path.to_string_lossy();
    message
        .split_once(&format!("{path}: "))
        .map(|(_, tail)| tail.to_string())
        .unwrap_or_else(|| message.to_string())
}

fn short_dl_error(message: &str) -> String {
    message
        .rsplit_once(": ")
        .map(|(_, tail)| tail.to_string())
        .unwrap_or_else(|| message.to_string())
}

#[cfg(test)]
mod cuda_load_error_tests {
    use super::*;

    #[test]
    fn a_missing_driver_or_cuda_library_is_recognised_in_dlopen_messages() {
        let msg = "/tmp/gantry-0/plugins/libconv_ae.so.1: libcuda.so.1: cannot open shared \
                   object file: No such file or directory";
        assert_eq!(missing_cuda_library(msg).as_deref(), Some("libcuda.so.1"));
        let msg = "x.so: libcublasLt.so.13: cannot open shared object file: No such file";
        assert_eq!(
            missing_cuda_library(msg).as_deref(),
            Some("libcublasLt.so.13")
        );
        assert_eq!(
            missing_cuda_library("x.so: libnvrtc.so.13: cannot open shared object file").as_deref(),
            Some("libnvrtc.so.13")
        );
        assert_eq!(
            missing_cuda_library("x.so: libfoo.so.2: cannot open shared object file"),
            None
        );
        assert_eq!(missing_cuda_library("x.so: invalid ELF header"), None);
    }

    #[test]
    fn the_messages_say_what_is_missing_and_what_to_do() {
        let driver = LoadError::CudaUnavailable {
            path: "/p/libconv_ae.so".into(),
            library: "libcuda.so.1".into(),
            reason: "libcuda.so.1: cannot open shared object file".into(),
        };
        let text = driver.to_string();
        assert!(text.starts_with("/p/libconv_ae.so: a CUDA build"), "{text}");
        assert!(text.contains("no NVIDIA driver was found"), "{text}");
        assert!(text.contains("CPU build"), "{text}");
        assert_eq!(driver.kind(), "cuda-unavailable");
        let toolkit = LoadError::CudaUnavailable {
            path: "/p/libconv_ae.so".into(),
            library: "libcublas.so.13".into(),
            reason: "libcublas.so.13: cannot open shared object file".into(),
        };
        assert!(toolkit.to_string().contains("LD_LIBRARY_PATH"), "{toolkit}");
        assert_eq!(
            dl_error_after_path("/a/b.so: libcuda.so.1: cannot open", Path::new("/a/b.so")),
            "libcuda.so.1: cannot open"
        );
    }
}
