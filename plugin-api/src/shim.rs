//! The plugin side of the boundary: `extern "C"` shims, generic over a [`Model`], that
//! [`crate::export_model!`] wires into a static vtable and header.
//!
//! Every shim validates its pointers, catches panics (the plugin is built with
//! `panic = "unwind"`, which the header declares and the host checks), routes the panic
//! message to the host's `log` and `set_error`, and poisons a panicked instance.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Once, OnceLock};

use crate::abi::{
    self, BatchView, GANTRY_MAGIC, HostCallbacks, Instance, PluginHeader, PluginVTable, SetupView,
    Status, StrView, size_u32,
};
use crate::model::{Batch, Context, Level, Model, PluginResult, Setup};

/// An instance as the plugin stores it behind the opaque pointer.
struct Slot<M> {
    model: M,
    /// Set when a call panicked: the model's invariants may be broken, so refuse work.
    poisoned: bool,
}

thread_local! {
    /// The message of the last panic on this thread, recorded by our hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces this plugin's (own copy of std's) panic hook: record the message for the shim
/// to route to the host, and print nothing (the runner's stderr is not the place).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("non-string panic payload");
            let text = match info.location() {
                Some(loc) => format!("{message} (at {}:{})", loc.file(), loc.line()),
                None => message.to_string(),
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
        return text;
    }
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

fn set_error(host: &HostCallbacks, text: &str) {
    // SAFETY: `host` was validated by `host_ref`; the view outlives the call.
    unsafe { (host.set_error)(host.ctx, StrView::new(text)) }
}

/// Checks the host's callback table and borrows it for this call.
///
/// # Safety
/// `host` must be null or point to a `HostCallbacks` valid for the current call.
unsafe fn host_ref<'a>(host: *const HostCallbacks) -> Option<&'a HostCallbacks> {
    if host.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the caller; `size` is the first field, present in
    // every version, so it is read before anything else.
    let size = unsafe { (*host).size };
    if size < size_u32::<HostCallbacks>() {
        // A host older than this plugin's minimum: we would call past its table.
        return None;
    }
    // SAFETY: as above, and the table is at least as large as this version's.
    Some(unsafe { &*host })
}

/// Runs model code with panics caught, turning the outcome into a status.
fn guarded(host: &HostCallbacks, f: impl FnOnce(&mut Context<'_>) -> PluginResult<()>) -> Status {
    install_panic_hook();
    let mut ctx = Context::new(host);
    match catch_unwind(AssertUnwindSafe(|| f(&mut ctx))) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => {
            set_error(host, e.message());
            Status::Error
        }
        Err(payload) => {
            let text = format!("plugin panicked: {}", panic_message(payload));
            let mut ctx = Context::new(host);
            ctx.log(Level::Error, &text);
            set_error(host, &text);
            Status::Panic
        }
    }
}

/// Borrows a batch from the host after checking that its shape and buffers agree.
///
/// # Safety
/// `batch` must be null or point to a `BatchView` whose buffers are valid for the call.
unsafe fn batch_ref<'a>(batch: *const BatchView) -> Result<Batch<'a>, String> {
    if batch.is_null() {
        return Err("null batch".into());
    }
    // SAFETY: non-null, valid per the caller; `size` is read first.
    let view = unsafe { &*batch };
    if view.size < size_u32::<BatchView>() {
        return Err(format!("batch view too small ({} bytes)", view.size));
    }
    let shape = view.images.shape.map(|d| d as usize);
    let expected = shape.iter().product::<usize>();
    if view.images.len != expected {
        return Err(format!(
            "batch holds {} values but its shape {:?} needs {expected}",
            view.images.len, shape
        ));
    }
    if expected > 0 && view.images.data.is_null() {
        return Err("null image buffer".into());
    }
    if view.labels_len != 0 && view.labels_len != shape[0] {
        return Err(format!(
            "{} labels for {} images",
            view.labels_len, shape[0]
        ));
    }
    if view.labels_len != 0 && view.labels.is_null() {
        return Err("null label buffer".into());
    }
    let images = if expected == 0 {
        &[][..]
    } else {
        // SAFETY: checked non-null; the host guarantees `len` readable f32s for the call.
        unsafe { std::slice::from_raw_parts(view.images.data, expected) }
    };
    let labels = if view.labels_len == 0 {
        &[][..]
    } else {
        // SAFETY: checked non-null; the host guarantees `labels_len` readable u32s.
        unsafe { std::slice::from_raw_parts(view.labels, view.labels_len) }
    };
    Ok(Batch {
        images,
        shape,
        labels,
        want_images: view.flags & abi::BATCH_WANT_IMAGES != 0,
    })
}

/// Runs a method on a live instance: checks the pointers and poisoning, catches panics.
///
/// # Safety
/// `instance` must be null or a pointer returned by this plugin's `create` and not yet
/// destroyed; `host` as in [`host_ref`].
unsafe fn with_instance<M: Model>(
    instance: *mut Instance,
    host: *const HostCallbacks,
    f: impl FnOnce(&mut M, &mut Context<'_>) -> PluginResult<()>,
) -> u32 {
    // SAFETY: forwarded caller guarantee.
    let Some(host) = (unsafe { host_ref(host) }) else {
        return Status::BadArgument as u32;
    };
    if instance.is_null() {
        set_error(host, "null instance");
        return Status::BadArgument as u32;
    }
    // SAFETY: a live pointer from `create` (caller guarantee), used from one thread.
    let slot = unsafe { &mut *(instance as *mut Slot<M>) };
    if slot.poisoned {
        set_error(
            host,
            "instance is poisoned by an earlier panic; recreate it",
        );
        return Status::Poisoned as u32;
    }
    let status = guarded(host, |ctx| f(&mut slot.model, ctx));
    if status == Status::Panic {
        slot.poisoned = true;
    }
    status as u32
}

/// `describe`: RON text of the model's description, cached for the process.
///
/// One model per plugin library: the cache is shared by every `M` in this library.
///
/// # Safety
/// `out` must be null or writable.
pub unsafe extern "C" fn describe<M: Model>(out: *mut StrView) -> u32 {
    static TEXT: OnceLock<Result<String, String>> = OnceLock::new();
    if out.is_null() {
        return Status::BadArgument as u32;
    }
    install_panic_hook();
    let text = TEXT.get_or_init(|| {
        catch_unwind(M::describe)
            .map_err(panic_message)
            .and_then(|d| {
                ron::ser::to_string_pretty(&d, ron::ser::PrettyConfig::default())
                    .map_err(|e| e.to_string())
            })
    });
    match text {
        Ok(text) => {
            // SAFETY: `out` is non-null and writable (caller guarantee); the text lives in
            // a static for the rest of the process.
            unsafe { out.write(StrView::new(text)) };
            Status::Ok as u32
        }
        Err(reason) => {
            // SAFETY: as above; the reason lives in the same static.
            unsafe { out.write(StrView::new(reason)) };
            Status::Error as u32
        }
    }
}

/// `create`: builds an instance from params, device and setup.
///
/// # Safety
/// Views valid for the call, `host` as in [`host_ref`], `out` writable.
pub unsafe extern "C" fn create<M: Model>(
    params: StrView,
    device: StrView,
    setup: *const SetupView,
    host: *const HostCallbacks,
    out: *mut *mut Instance,
) -> u32 {
    // SAFETY: forwarded caller guarantee.
    let Some(host) = (unsafe { host_ref(host) }) else {
        return Status::BadArgument as u32;
    };
    if out.is_null() {
        set_error(host, "null output pointer");
        return Status::BadArgument as u32;
    }
    // SAFETY: `setup` is null or valid for the call (caller guarantee); `size` is first.
    if setup.is_null() || unsafe { (*setup).size } < size_u32::<SetupView>() {
        set_error(host, "missing or too small setup");
        return Status::BadArgument as u32;
    }
    // SAFETY: checked non-null and large enough.
    let setup = Setup::from_view(unsafe { &*setup });
    // SAFETY: views valid for the call (caller guarantee).
    let (params, device) = match unsafe { (params.to_str(), device.to_str()) } {
        (Ok(p), Ok(d)) => (p, d),
        _ => {
            set_error(host, "params or device is not valid UTF-8");
            return Status::BadArgument as u32;
        }
    };
    let mut created = None;
    let status = guarded(host, |ctx| {
        created = Some(M::create(params, device, &setup, ctx)?);
        Ok(())
    });
    if let (Status::Ok, Some(model)) = (status, created) {
        let slot = Box::new(Slot {
            model,
            poisoned: false,
        });
        // SAFETY: `out` is non-null and writable (checked above, caller guarantee).
        unsafe { out.write(Box::into_raw(slot) as *mut Instance) };
    }
    status as u32
}

/// `train_step`.
///
/// # Safety
/// As [`with_instance`] and [`batch_ref`].
pub unsafe extern "C" fn train_step<M: Model>(
    instance: *mut Instance,
    batch: *const BatchView,
    host: *const HostCallbacks,
) -> u32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { batch_call::<M>(instance, batch, host, M::train_step) }
}

/// `eval`.
///
/// # Safety
/// As [`with_instance`] and [`batch_ref`].
pub unsafe extern "C" fn eval<M: Model>(
    instance: *mut Instance,
    batch: *const BatchView,
    host: *const HostCallbacks,
) -> u32 {
    // SAFETY: forwarded caller guarantees.
    unsafe { batch_call::<M>(instance, batch, host, M::eval) }
}

/// # Safety
/// As [`with_instance`] and [`batch_ref`].
unsafe fn batch_call<M: Model>(
    instance: *mut Instance,
    batch: *const BatchView,
    host: *const HostCallbacks,
    method: fn(&mut M, &Batch<'_>, &mut Context<'_>) -> PluginResult<()>,
) -> u32 {
    // SAFETY: forwarded caller guarantee.
    let batch = match unsafe { batch_ref(batch) } {
        Ok(b) => b,
        Err(reason) => {
            // SAFETY: forwarded caller guarantee.
            if let Some(host) = unsafe { host_ref(host) } {
                set_error(host, &format!("bad batch: {reason}"));
            }
            return Status::BadArgument as u32;
        }
    };
    // SAFETY: forwarded caller guarantee.
    unsafe { with_instance::<M>(instance, host, |m, ctx| method(m, &batch, ctx)) }
}

/// `sample`.
///
/// # Safety
/// As [`with_instance`].
pub unsafe extern "C" fn sample<M: Model>(
    instance: *mut Instance,
    n: u32,
    seed: u64,
    host: *const HostCallbacks,
) -> u32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { with_instance::<M>(instance, host, |m, ctx| m.sample(n as usize, seed, ctx)) }
}

/// `save`.
///
/// # Safety
/// As [`with_instance`]; `dir` valid for the call.
pub unsafe extern "C" fn save<M: Model>(
    instance: *mut Instance,
    dir: StrView,
    host: *const HostCallbacks,
) -> u32 {
    // SAFETY: view valid for the call (caller guarantee).
    let dir = unsafe { dir.to_str_lossy() }.into_owned();
    // SAFETY: forwarded caller guarantee.
    unsafe { with_instance::<M>(instance, host, |m, ctx| m.save(Path::new(&dir), ctx)) }
}

/// `load`.
///
/// # Safety
/// As [`with_instance`]; `dir` valid for the call.
pub unsafe extern "C" fn load<M: Model>(
    instance: *mut Instance,
    dir: StrView,
    host: *const HostCallbacks,
) -> u32 {
    // SAFETY: view valid for the call (caller guarantee).
    let dir = unsafe { dir.to_str_lossy() }.into_owned();
    // SAFETY: forwarded caller guarantee.
    unsafe { with_instance::<M>(instance, host, |m, ctx| m.load(Path::new(&dir), ctx)) }
}

/// `destroy`: frees the instance; a panicking destructor is swallowed (nothing to report
/// to, and unwinding into the host would abort it).
///
/// # Safety
/// `instance` must be null or a live pointer from `create`, destroyed exactly once.
pub unsafe extern "C" fn destroy<M: Model>(instance: *mut Instance) {
    if instance.is_null() {
        return;
    }
    // SAFETY: a live pointer from `create`, reclaimed exactly once (caller guarantee).
    let slot = unsafe { Box::from_raw(instance as *mut Slot<M>) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(slot)));
}

/// The vtable for `M`.
pub const fn vtable<M: Model>() -> PluginVTable {
    PluginVTable {
        size: size_u32::<PluginVTable>(),
        describe: Some(describe::<M>),
        create: Some(create::<M>),
        train_step: Some(train_step::<M>),
        eval: Some(eval::<M>),
        sample: Some(sample::<M>),
        save: Some(save::<M>),
        load: Some(load::<M>),
        destroy: Some(destroy::<M>),
    }
}

/// A header for this ABI version. `panic_unwind` must be `cfg!(panic = "unwind")` as
/// evaluated in the plugin crate itself (the macro does this): the final library's panic
/// strategy is the plugin crate's, not this crate's.
pub const fn header(
    name: &'static str,
    version: &'static str,
    family: &'static str,
    candle_version: &'static str,
    panic_unwind: bool,
    vtable: &'static PluginVTable,
) -> PluginHeader {
    PluginHeader {
        magic: GANTRY_MAGIC,
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        header_size: size_u32::<PluginHeader>(),
        vtable_size: size_u32::<PluginVTable>(),
        host_callbacks_size: size_u32::<HostCallbacks>(),
        batch_view_size: size_u32::<BatchView>(),
        setup_view_size: size_u32::<SetupView>(),
        panic_unwind: panic_unwind as u32,
        name: StrView::new(name),
        version: StrView::new(version),
        family: StrView::new(family),
        rustc_version: StrView::new(crate::RUSTC_VERSION),
        candle_version: StrView::new(candle_version),
        vtable: vtable as *const PluginVTable,
    }
}

/// Exports a [`Model`] as a gantry plugin: generates the static vtable and header and the
/// entry symbol. The crate must be a `cdylib` built with `panic = "unwind"`.
///
/// ```ignore
/// gantry_plugin_api::export_model!(MyModel, name: "my-model", family: "autoencoder");
/// // optionally: candle: gantry_kit::CANDLE_VERSION
/// ```
#[macro_export]
macro_rules! export_model {
    ($model:ty, name: $name:expr, family: $family:expr $(, candle: $candle:expr)? $(,)?) => {
        const _: () = {
            static GANTRY_VTABLE: $crate::abi::PluginVTable = $crate::shim::vtable::<$model>();
            static GANTRY_HEADER: $crate::abi::PluginHeader = $crate::shim::header(
                $name,
                env!("CARGO_PKG_VERSION"),
                $family,
                $crate::export_model!(@candle $($candle)?),
                cfg!(panic = "unwind"),
                &GANTRY_VTABLE,
            );
            /// The entry symbol (ABI major 1). Returns the static header.
            #[unsafe(no_mangle)]
            pub extern "C" fn gantry_plugin_entry_v1() -> *const $crate::abi::PluginHeader {
                &GANTRY_HEADER
            }
        };
    };
    (@candle $candle:expr) => { $candle };
    (@candle) => { "" };
}
