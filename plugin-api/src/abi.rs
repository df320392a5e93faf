//! The C-layout types that cross the boundary between the host and a plugin.
//!
//! Only plain data crosses: integers, `f32`/`f64`, raw pointers to borrowed memory and
//! `extern "C"` function pointers. No Rust-layout type, no candle type and no third-party
//! type appears here, so a plugin built by another rustc or against another candle works.
//!
//! Versioning rules (see README "Writing a plugin"):
//! - The entry symbol's name carries [`ABI_MAJOR`]; a major bump renames it.
//! - Structs are append-only. Each struct that may grow carries its own size as its first
//!   field (or, for the header, a size field), and a reader never touches a field past the
//!   size its peer declared.
//! - Additions are optional function pointers (`Option<..>`, null when absent).
//!
//! Ownership: every pointer handed across a call is borrowed for the duration of that call
//! only. Whoever allocates frees: the host copies what a callback gives it before the
//! callback returns; the plugin frees its instance in `destroy`.

use std::ffi::c_void;

/// First field of [`PluginHeader`]: the bytes `GANTRYPL` read as a little-endian u64.
pub const GANTRY_MAGIC: u64 = u64::from_le_bytes(*b"GANTRYPL");
/// Incompatible changes bump this, and rename [`ENTRY_SYMBOL`].
pub const ABI_MAJOR: u32 = 1;
/// Compatible, append-only additions bump this.
pub const ABI_MINOR: u32 = 1;
/// The one symbol the host looks up. Its name carries the major version.
pub const ENTRY_SYMBOL: &str = "gantry_plugin_entry_v1";
/// Prefix of the entry symbol of every major version, used to tell a user which major
/// an incompatible plugin was built for.
pub const ENTRY_SYMBOL_PREFIX: &str = "gantry_plugin_entry_v";

/// Status returned by every plugin call. Crosses as a plain `u32` (an unknown value from a
/// newer plugin must not be undefined behaviour); see [`Status::from_raw`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The model returned an error; its message was passed to `set_error`.
    Error = 1,
    /// The model panicked; the message was passed to `log` and `set_error`. The instance
    /// is poisoned: every later call on it returns [`Status::Poisoned`].
    Panic = 2,
    /// The instance panicked earlier and refuses further work.
    Poisoned = 3,
    /// The host passed an invalid argument (null pointer, inconsistent shape, bad UTF-8).
    BadArgument = 4,
    /// The plugin does not support this call (e.g. `sample` on a classifier).
    Unsupported = 5,
}

impl Status {
    /// Reads a status from the wire; `None` for a value this side does not know.
    pub fn from_raw(raw: u32) -> Option<Status> {
        Some(match raw {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Panic,
            3 => Status::Poisoned,
            4 => Status::BadArgument,
            5 => Status::Unsupported,
            _ => return None,
        })
    }
}

/// A borrowed UTF-8 string: pointer and length, no terminating NUL required.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrView {
    pub ptr: *const u8,
    pub len: usize,
}

impl StrView {
    /// A view of a string; valid as long as `s` is.
    pub const fn new(s: &str) -> StrView {
        StrView {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The empty view (null pointer, zero length).
    pub const fn empty() -> StrView {
        StrView {
            ptr: std::ptr::null(),
            len: 0,
        }
    }

    /// Reads the view back as a `&str`, replacing invalid UTF-8.
    ///
    /// # Safety
    /// `ptr` must be null (with `len == 0`) or point to `len` readable bytes that stay
    /// valid and unmodified for the returned lifetime.
    pub unsafe fn to_str_lossy<'a>(self) -> std::borrow::Cow<'a, str> {
        if self.ptr.is_null() || self.len == 0 {
            return std::borrow::Cow::Borrowed("");
        }
        // SAFETY: the caller guarantees ptr/len describe live, readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        String::from_utf8_lossy(bytes)
    }

    /// Reads the view as UTF-8, failing on invalid bytes.
    ///
    /// # Safety
    /// As [`StrView::to_str_lossy`].
    pub unsafe fn to_str<'a>(self) -> Result<&'a str, std::str::Utf8Error> {
        if self.ptr.is_null() || self.len == 0 {
            return Ok("");
        }
        // SAFETY: the caller guarantees ptr/len describe live, readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes)
    }
}

/// A borrowed, dense f32 tensor in NCHW order. `len == n*c*h*w`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorView {
    pub data: *const f32,
    pub len: usize,
    /// `[n, c, h, w]`
    pub shape: [u32; 4],
}

/// Flag in [`BatchView::flags`]: the host wants images (reconstructions, grids) emitted
/// for this batch. Without it a plugin emits none, so evaluation does not copy images
/// nobody will look at.
pub const BATCH_WANT_IMAGES: u32 = 1;

/// One batch of input, borrowed for the duration of a `train_step` or `eval` call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BatchView {
    /// `size_of::<BatchView>()` as the host knows it.
    pub size: u32,
    /// Bit set of `BATCH_*` flags.
    pub flags: u32,
    /// Images, NCHW, values in [0, 1] unless the data config normalises otherwise.
    pub images: TensorView,
    /// One class index per image, or null with `labels_len == 0` for unlabelled data.
    pub labels: *const u32,
    pub labels_len: usize,
}

/// What the host knows about the training job when it creates an instance: the input
/// shape, the number of classes, the seed and the optimiser settings of the run.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SetupView {
    /// `size_of::<SetupView>()` as the host knows it.
    pub size: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    /// Classes in the dataset (1 for one-class anomaly training).
    pub num_classes: u32,
    /// Seeds weight initialisation and any sampling inside the model.
    pub seed: u64,
    /// Learning rate from the run config; 0 means "the model's default".
    pub learning_rate: f64,
    /// Optimisation steps the run plans in total (for schedules and warm-ups); 0 = unknown.
    pub total_steps: u64,
}

/// Log levels for [`HostCallbacks::log`].
pub mod level {
    pub const ERROR: u32 = 1;
    pub const WARN: u32 = 2;
    pub const INFO: u32 = 3;
    pub const DEBUG: u32 = 4;
}

/// Functions the host gives the plugin on every call. `ctx` is the host's, passed back
/// unchanged; it and every pointer argument are valid for the duration of the plugin call
/// that received this struct only. Each callback copies what it is given before returning.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostCallbacks {
    /// `size_of::<HostCallbacks>()` as the host knows it: a plugin built against a newer
    /// minor checks this before calling a field appended after it.
    pub size: u32,
    pub ctx: *mut c_void,
    /// A named scalar (a loss, a metric) for this call. Must be finite.
    pub emit_scalar: unsafe extern "C" fn(ctx: *mut c_void, name: StrView, value: f64),
    /// Per-sample values (anomaly scores, class probabilities), in batch order.
    pub emit_scores:
        unsafe extern "C" fn(ctx: *mut c_void, name: StrView, values: *const f32, len: usize),
    /// An image batch, NCHW f32 in [0, 1], to be tiled into a grid `columns` wide.
    pub emit_image:
        unsafe extern "C" fn(ctx: *mut c_void, name: StrView, image: TensorView, columns: u32),
    /// A fact about the instance (`device`, `parameters`...) shown in status and logs.
    pub emit_info: unsafe extern "C" fn(ctx: *mut c_void, key: StrView, value: StrView),
    /// A log line at one of the [`level`] values.
    pub log: unsafe extern "C" fn(ctx: *mut c_void, level: u32, text: StrView),
    /// The reason the current call is about to return a non-`Ok` status.
    pub set_error: unsafe extern "C" fn(ctx: *mut c_void, text: StrView),
    /// Non-zero when the host asks the plugin to stop long work early (SIGTERM).
    pub should_stop: unsafe extern "C" fn(ctx: *mut c_void) -> u8,
    /// Since ABI 1.1: per-sample vectors (latent codes), row-major `rows x cols`, one row
    /// per image in batch order. A plugin calls it only when `size` covers this field
    /// (a 1.0 host's struct ends before it); [`crate::Context::vectors`] does the check.
    pub emit_vectors: unsafe extern "C" fn(
        ctx: *mut c_void,
        name: StrView,
        values: *const f32,
        rows: usize,
        cols: usize,
    ),
}

/// Opaque model instance, created by `create` and freed exactly once by `destroy`.
#[repr(C)]
pub struct Instance {
    _private: [u8; 0],
}

/// The plugin's functions. Every pointer may be null in a malformed plugin; the host
/// checks the ones it needs before the first call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginVTable {
    /// `size_of::<PluginVTable>()` as the plugin knows it.
    pub size: u32,
    /// Writes a view of the plugin's description (RON text of [`crate::Description`]) to
    /// `out`. The text is owned by the plugin and lives as long as the process.
    pub describe: Option<unsafe extern "C" fn(out: *mut StrView) -> u32>,
    /// Creates an instance from hyper-parameters (RON map text), a device spec (`cpu`,
    /// `cuda:N`, `auto`) and the run's setup; writes it to `out` on success.
    pub create: Option<
        unsafe extern "C" fn(
            params: StrView,
            device: StrView,
            setup: *const SetupView,
            host: *const HostCallbacks,
            out: *mut *mut Instance,
        ) -> u32,
    >,
    /// One optimisation step on a batch; emits losses with `emit_scalar`.
    pub train_step: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            batch: *const BatchView,
            host: *const HostCallbacks,
        ) -> u32,
    >,
    /// Evaluates a batch without learning; emits losses, per-sample scores, images.
    pub eval: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            batch: *const BatchView,
            host: *const HostCallbacks,
        ) -> u32,
    >,
    /// Generates `n` samples from `seed`; emits them with `emit_image`.
    pub sample: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            n: u32,
            seed: u64,
            host: *const HostCallbacks,
        ) -> u32,
    >,
    /// Writes the instance's weights and optimiser state into an existing directory.
    pub save: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            dir: StrView,
            host: *const HostCallbacks,
        ) -> u32,
    >,
    /// Restores what `save` wrote.
    pub load: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            dir: StrView,
            host: *const HostCallbacks,
        ) -> u32,
    >,
    /// Frees the instance. Called exactly once; never fails.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut Instance)>,
}

/// What the entry symbol returns: a static header, read by the host before anything else.
#[repr(C)]
#[derive(Debug)]
pub struct PluginHeader {
    /// Always [`GANTRY_MAGIC`].
    pub magic: u64,
    pub abi_major: u32,
    pub abi_minor: u32,
    /// Sizes of the structs as the plugin was compiled against them.
    pub header_size: u32,
    pub vtable_size: u32,
    pub host_callbacks_size: u32,
    pub batch_view_size: u32,
    pub setup_view_size: u32,
    /// 1 when the plugin was built with `panic = "unwind"` (its shims can catch panics).
    pub panic_unwind: u32,
    pub name: StrView,
    pub version: StrView,
    pub family: StrView,
    /// Diagnostics only.
    pub rustc_version: StrView,
    pub candle_version: StrView,
    pub vtable: *const PluginVTable,
}

// SAFETY: a header is immutable static data; its pointers point to immutable statics
// (string literals and the vtable), so sharing it between threads is sound.
unsafe impl Sync for PluginHeader {}

/// The entry symbol's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginHeader;

/// Size of a struct as a `u32` for the header's size fields.
pub const fn size_u32<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// The smallest vtable a host of this major accepts: everything up to `destroy`.
pub const MIN_VTABLE_SIZE: u32 = size_u32::<PluginVTable>();
/// The smallest header a host of this major reads.
pub const MIN_HEADER_SIZE: u32 = size_u32::<PluginHeader>();
