//! Records the compiler's version so a plugin's header can say which rustc built it
//! (diagnostics only: the ABI does not depend on it).
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown rustc".into());
    println!("cargo:rustc-env=GANTRY_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
