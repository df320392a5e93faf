//! Shared pieces of gantry's model plugins, so each plugin holds only its architecture and
//! its loss: device choice, hyper-parameter parsing, seeded initialisation, the optimiser,
//! losses, tensor conversion and checkpoint files.
//!
//! Everything returns `candle_core::Result` or a `String` reason; plugins turn either into
//! a `PluginError` with `?`.

pub mod batch;
pub mod checkpoint;
pub mod device;
pub mod fused;
pub mod init;
pub mod layers;
pub mod loss;
pub mod ops;
pub mod optim;
pub mod params;
pub mod quality;

/// The candle version this kit (and every plugin built on it) links, reported in plugin
/// headers for diagnostics. A test checks it against Cargo.lock.
pub const CANDLE_VERSION: &str = "candle 0.11.1";

#[cfg(test)]
mod tests {
    #[test]
    fn candle_version_matches_the_lockfile() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("Cargo.lock at the workspace root");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"candle-core\""))
            .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
            .expect("candle-core in Cargo.lock");
        let version = version.trim_start_matches("version = ").trim_matches('"');
        assert_eq!(super::CANDLE_VERSION, format!("candle {version}"));
    }
}
