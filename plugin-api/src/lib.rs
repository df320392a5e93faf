//! The stable C ABI between gantry and its model plugins, both sides of it.
//!
//! - [`abi`]: the `#[repr(C)]` types and constants that cross the boundary.
//! - [`model`]: the safe [`Model`] trait a plugin author implements.
//! - [`shim`]: `extern "C"` shims and the [`export_model!`] macro (plugin side).
//! - `host` (feature `host`): loading, checking and driving plugins (host side).
//!
//! A plugin is a `cdylib` with one `impl Model` and one `export_model!`; it writes no
//! unsafe code. See README.md "Writing a plugin".

pub mod abi;
pub mod model;
pub mod shim;

#[cfg(feature = "host")]
pub mod host;

pub use model::{
    Batch, Context, Description, ImageRef, InputConstraints, Level, Model, PluginError,
    PluginResult, Setup,
};

/// The rustc that compiled this crate (and so the plugin that links it).
pub const RUSTC_VERSION: &str = env!("GANTRY_RUSTC_VERSION");

#[cfg(test)]
mod tests {
    use super::abi::*;

    /// The header's leading fields are what every future host reads first; pin their
    /// layout so a refactor cannot silently move them.
    #[test]
    fn header_prefix_layout_is_pinned() {
        assert_eq!(std::mem::offset_of!(PluginHeader, magic), 0);
        assert_eq!(std::mem::offset_of!(PluginHeader, abi_major), 8);
        assert_eq!(std::mem::offset_of!(PluginHeader, abi_minor), 12);
        assert_eq!(std::mem::offset_of!(PluginHeader, header_size), 16);
        assert_eq!(std::mem::offset_of!(PluginVTable, size), 0);
        assert_eq!(std::mem::offset_of!(HostCallbacks, size), 0);
        assert_eq!(std::mem::offset_of!(BatchView, size), 0);
        assert_eq!(GANTRY_MAGIC.to_le_bytes(), *b"GANTRYPL");
    }

    #[test]
    fn entry_symbol_carries_the_major() {
        assert_eq!(ENTRY_SYMBOL, format!("{ENTRY_SYMBOL_PREFIX}{ABI_MAJOR}"));
    }

    #[test]
    fn status_round_trips_and_rejects_unknown() {
        for s in [
            Status::Ok,
            Status::Error,
            Status::Panic,
            Status::Poisoned,
            Status::BadArgument,
            Status::Unsupported,
        ] {
            assert_eq!(Status::from_raw(s as u32), Some(s));
        }
        assert_eq!(Status::from_raw(99), None);
    }
}
