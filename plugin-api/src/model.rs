//! The safe side a plugin author sees: the [`Model`] trait, the [`Batch`] it receives and
//! the [`Context`] it reports through. Nothing here is `unsafe` to use; the shims in
//! [`crate::shim`] translate between this and the C types in [`crate::abi`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::abi::{self, HostCallbacks, StrView, TensorView};

/// What a plugin is, as `describe` reports it (serialised as RON across the ABI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// One-line summary shown in the plugins pane.
    pub summary: String,
    /// Model families this plugin provides (`autoencoder`, `vae`, `gan`, `classifier`).
    pub families: Vec<String>,
    /// Default hyper-parameters as a RON map; `create` accepts any subset of its keys.
    pub default_params: String,
    /// Scalar names `train_step` emits (`loss`, `d_loss`...), without split prefix.
    pub losses: Vec<String>,
    /// Scalar names `eval` emits besides the losses (`psnr`...).
    pub metrics: Vec<String>,
    /// Per-sample score names `eval` emits; the first is the primary one.
    pub scores: Vec<String>,
    /// Input shapes the model accepts.
    pub input: InputConstraints,
    /// The model's own name when one library serves several models (the Python bridge
    /// reports the script's); `None` for a Rust plugin, whose header names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The model's own version, as `name`; `None` for a Rust plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Input shapes a model accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConstraints {
    /// Accepted channel counts (1 = gray, 3 = RGB).
    pub channels: Vec<u32>,
    /// Height and width must be multiples of this (2^depth for a pooling encoder).
    pub multiple_of: u32,
    /// Smallest accepted height and width.
    pub min_size: u32,
}

/// Error a model returns. Converts from anything that displays (candle errors, strings),
/// so `?` works in model code; its message reaches the host's `set_error`.
#[derive(Debug)]
pub struct PluginError {
    message: String,
}

impl PluginError {
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

// No `Display` for PluginError on purpose: it keeps this blanket conversion coherent (the
// same trick as anyhow::Error).
impl<E: std::fmt::Display> From<E> for PluginError {
    fn from(e: E) -> Self {
        PluginError {
            message: e.to_string(),
        }
    }
}

pub type PluginResult<T> = Result<T, PluginError>;

/// A borrowed batch of images, NCHW f32, with optional labels.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub images: &'a [f32],
    /// `[n, c, h, w]`
    pub shape: [usize; 4],
    /// One label per image, or empty.
    pub labels: &'a [u32],
    /// The host wants images emitted for this batch (see [`abi::BATCH_WANT_IMAGES`]).
    pub want_images: bool,
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
}

/// What the host knows about the training job when it creates an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setup {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Classes in the dataset (1 for one-class anomaly training).
    pub num_classes: usize,
    /// Seeds weight initialisation and any sampling inside the model.
    pub seed: u64,
    /// Learning rate from the run config, `None` for the model's default.
    pub learning_rate: Option<f64>,
    /// Optimisation steps the run plans in total, `None` when unknown.
    pub total_steps: Option<u64>,
}

impl Setup {
    /// The C view of this setup.
    pub fn to_view(&self) -> abi::SetupView {
        abi::SetupView {
            size: abi::size_u32::<abi::SetupView>(),
            channels: self.channels as u32,
            height: self.height as u32,
            width: self.width as u32,
            num_classes: self.num_classes as u32,
            seed: self.seed,
            learning_rate: self.learning_rate.unwrap_or(0.0),
            total_steps: self.total_steps.unwrap_or(0),
        }
    }

    /// Reads a C view back.
    pub fn from_view(v: &abi::SetupView) -> Setup {
        Setup {
            channels: v.channels as usize,
            height: v.height as usize,
            width: v.width as usize,
            num_classes: v.num_classes as usize,
            seed: v.seed,
            learning_rate: (v.learning_rate > 0.0).then_some(v.learning_rate),
            total_steps: (v.total_steps > 0).then_some(v.total_steps),
        }
    }
}

/// A borrowed image batch for [`Context::image`].
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// NCHW f32 values in [0, 1].
    pub data: &'a [f32],
    pub shape: [usize; 4],
    /// Grid width when the host tiles the batch.
    pub columns: usize,
}

/// Log levels for [`Context::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn to_raw(self) -> u32 {
        match self {
            Level::Error => abi::level::ERROR,
            Level::Warn => abi::level::WARN,
            Level::Info => abi::level::INFO,
            Level::Debug => abi::level::DEBUG,
        }
    }

    pub fn from_raw(raw: u32) -> Level {
        match raw {
            abi::level::ERROR => Level::Error,
            abi::level::WARN => Level::Warn,
            abi::level::DEBUG => Level::Debug,
            _ => Level::Info,
        }
    }
}

/// The host's side of one call, as a model sees it. Everything given to it is copied by the
/// host before the method returns.
pub struct Context<'a> {
    host: &'a HostCallbacks,
}

impl<'a> Context<'a> {
    /// Wraps host callbacks. Only the shims construct contexts.
    pub(crate) fn new(host: &'a HostCallbacks) -> Self {
        Context { host }
    }

    /// Reports a named scalar (a loss, a metric). Non-finite values fail the call on the
    /// host side, so report a NaN loss only to surface a diverged model.
    pub fn scalar(&mut self, name: &str, value: f64) {
        // SAFETY: host callbacks are valid for the duration of the plugin call that owns
        // this context; the views point to live borrowed data.
        unsafe { (self.host.emit_scalar)(self.host.ctx, StrView::new(name), value) }
    }

    /// Reports per-sample values in batch order.
    pub fn scores(&mut self, name: &str, values: &[f32]) {
        // SAFETY: as in `scalar`; `values` outlives the callback, which copies it.
        unsafe {
            (self.host.emit_scores)(
                self.host.ctx,
                StrView::new(name),
                values.as_ptr(),
                values.len(),
            )
        }
    }

    /// Reports per-sample vectors (latent codes): `values` holds one row of `cols` values
    /// per image, in batch order. Returns false, sending nothing, when the host predates
    /// ABI 1.1 (its callbacks end before `emit_vectors`) or `values` is not whole rows.
    pub fn vectors(&mut self, name: &str, values: &[f32], cols: usize) -> bool {
        let needed =
            std::mem::offset_of!(HostCallbacks, emit_vectors) + std::mem::size_of::<usize>();
        if (self.host.size as usize) < needed || cols == 0 || !values.len().is_multiple_of(cols) {
            return false;
        }
        // SAFETY: `size` says the host's struct includes `emit_vectors`, so the field is
        // initialised; otherwise as in `scalar`; `values` outlives the callback.
        unsafe {
            (self.host.emit_vectors)(
                self.host.ctx,
                StrView::new(name),
                values.as_ptr(),
                values.len() / cols,
                cols,
            )
        }
        true
    }

    /// Reports an image batch to be tiled into a grid.
    pub fn image(&mut self, name: &str, image: ImageRef<'_>) {
        let view = TensorView {
            data: image.data.as_ptr(),
            len: image.data.len(),
            shape: image.shape.map(|d| d as u32),
        };
        // SAFETY: as in `scalar`; `image.data` outlives the callback, which copies it.
        unsafe {
            (self.host.emit_image)(
                self.host.ctx,
                StrView::new(name),
                view,
                image.columns as u32,
            )
        }
    }

    /// Reports a fact about the instance (`device`, `parameters`).
    pub fn info(&mut self, key: &str, value: &str) {
        // SAFETY: as in `scalar`.
        unsafe { (self.host.emit_info)(self.host.ctx, StrView::new(key), StrView::new(value)) }
    }

    /// Writes a line to the run's log.
    pub fn log(&mut self, level: Level, text: &str) {
        // SAFETY: as in `scalar`.
        unsafe { (self.host.log)(self.host.ctx, level.to_raw(), StrView::new(text)) }
    }

    /// True when the host asked the plugin to stop (e.g. SIGTERM to the runner).
    pub fn should_stop(&mut self) -> bool {
        // SAFETY: as in `scalar`.
        unsafe { (self.host.should_stop)(self.host.ctx) != 0 }
    }
}

/// A model plugin. Implement this, then `export_model!(YourModel, ...)`: no unsafe code.
///
/// An instance is driven from one host thread at a time. A panic in any method is caught at
/// the boundary, reported, and poisons the instance.
pub trait Model: Sized + 'static {
    /// What the plugin is. Called once per process; the result is cached.
    fn describe() -> Description;

    /// Creates an instance from a RON map of hyper-parameters (any subset of
    /// `default_params`) on a device (`cpu`, `cuda:N`, `auto`) for the run's `setup`.
    /// Should report the device it actually chose with `ctx.info("device", ..)`.
    fn create(
        params: &str,
        device: &str,
        setup: &Setup,
        ctx: &mut Context<'_>,
    ) -> PluginResult<Self>;

    /// One optimisation step; report losses with `ctx.scalar`.
    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()>;

    /// Evaluation without learning: losses, per-sample scores, and images when
    /// `batch.want_images`.
    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()>;

    /// Generates `n` images from `seed`. Models that cannot sample keep this default.
    fn sample(&mut self, n: usize, seed: u64, ctx: &mut Context<'_>) -> PluginResult<()> {
        let _ = (n, seed, ctx);
        Err(PluginError::new("this model does not generate samples"))
    }

    /// Writes weights and optimiser state into `dir` (which exists and is empty).
    fn save(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()>;

    /// Restores what `save` wrote.
    fn load(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()>;
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;

    use super::*;

    /// What the fake host saw: (rows, cols, first value).
    #[derive(Default)]
    struct Seen(Option<(usize, usize, f32)>);

    unsafe extern "C" fn scalar(_: *mut c_void, _: StrView, _: f64) {}
    unsafe extern "C" fn scores(_: *mut c_void, _: StrView, _: *const f32, _: usize) {}
    unsafe extern "C" fn image(_: *mut c_void, _: StrView, _: TensorView, _: u32) {}
    unsafe extern "C" fn info(_: *mut c_void, _: StrView, _: StrView) {}
    unsafe extern "C" fn log(_: *mut c_void, _: u32, _: StrView) {}
    unsafe extern "C" fn set_error(_: *mut c_void, _: StrView) {}
    unsafe extern "C" fn should_stop(_: *mut c_void) -> u8 {
        0
    }
    unsafe extern "C" fn vectors(
        ctx: *mut c_void,
        _: StrView,
        v: *const f32,
        rows: usize,
        cols: usize,
    ) {
        // SAFETY: the test passes a live `Seen` as ctx and at least one value.
        unsafe { (*(ctx as *mut Seen)).0 = Some((rows, cols, *v)) }
    }

    fn callbacks(seen: &mut Seen, size: usize) -> HostCallbacks {
        HostCallbacks {
            size: size as u32,
            ctx: seen as *mut Seen as *mut c_void,
            emit_scalar: scalar,
            emit_scores: scores,
            emit_image: image,
            emit_info: info,
            log,
            set_error,
            should_stop,
            emit_vectors: vectors,
        }
    }

    #[test]
    fn vectors_reach_a_1_1_host_and_are_withheld_from_a_1_0_host() {
        let data = [0.5f32, 1.0, 2.0, 3.0, 4.0, 5.0];
        let mut seen = Seen::default();
        let host = callbacks(&mut seen, std::mem::size_of::<HostCallbacks>());
        assert!(Context::new(&host).vectors("latent", &data, 3));
        assert_eq!(seen.0, Some((2, 3, 0.5)));

        // A 1.0 host's struct ends where `emit_vectors` begins.
        let mut seen = Seen::default();
        let old = callbacks(&mut seen, std::mem::offset_of!(HostCallbacks, emit_vectors));
        assert!(!Context::new(&old).vectors("latent", &data, 3));
        assert_eq!(seen.0, None);

        // Not whole rows: refused.
        let mut seen = Seen::default();
        let host = callbacks(&mut seen, std::mem::size_of::<HostCallbacks>());
        assert!(!Context::new(&host).vectors("latent", &data, 4));
        assert_eq!(seen.0, None);
    }
}
