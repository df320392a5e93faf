//! Compiles every kernel with NVRTC (to PTX for compute_80 and compute_90) and assembles
//! the PTX with `ptxas -v` for sm_80 and sm_90, failing on register spills. No GPU needed.
//!
//! `cargo test nvrtc` selects these. NVRTC is loaded at run time: from
//! `GANTRY_NVRTC_LIB_DIR` when set (CI sets it to the PyPI wheel's `lib`; then a missing
//! library fails the test), else from the loader's default path, else the test says it was
//! skipped. `ptxas` likewise comes from `GANTRY_PTXAS` (required when set) or `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};
use gantry_kernels::{ALL, KernelSource};

/// The GPU generations gantry's kernels are checked for: Ampere (A100) and Hopper (H100,
/// H200), the data-centre GPUs medical-imaging labs train on.
const ARCHES: [(&str, &str); 2] = [("compute_80", "sm_80"), ("compute_90", "sm_90")];

/// NVRTC's soname for the CUDA major version cudarc was built for (`cuda-13000`).
const NVRTC_SONAME: &str = "libnvrtc.so.13";

/// Whether NVRTC can be used, loading it from `GANTRY_NVRTC_LIB_DIR` first. Panics when
/// that variable is set and the library does not load: CI must not skip silently.
fn nvrtc_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("GANTRY_NVRTC_LIB_DIR") {
            // NVRTC opens its builtins library by soname when it compiles, so that one is
            // loaded first. Loading both by path makes the later loads by soname (NVRTC's,
            // and cudarc's) find these copies, without LD_LIBRARY_PATH.
            let dir = Path::new(&dir);
            let mut libs: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("GANTRY_NVRTC_LIB_DIR {}: {e}", dir.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libnvrtc-builtins.so."))
                })
                .collect();
            libs.push(dir.join(NVRTC_SONAME));
            for path in libs {
                // SAFETY: NVRTC's initialisers are NVIDIA's; loading it is what cudarc
                // does next anyway. The handle is leaked so the library stays loaded.
                let lib = unsafe { libloading::Library::new(&path) }.unwrap_or_else(|e| {
                    panic!(
                        "GANTRY_NVRTC_LIB_DIR is set, but {} does not load: {e}",
                        path.display()
                    )
                });
                std::mem::forget(lib);
            }
            return true;
        }
        // SAFETY: probing loads and unloads the library by name; no symbol is called.
        let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
        if !present {
            eprintln!(
                "nvrtc checks skipped: {NVRTC_SONAME} not found (set GANTRY_NVRTC_LIB_DIR; \
                 `.ci/cuda-toolchain` fetches it)"
            );
        }
        present
    })
}

fn compile(src: &KernelSource, arch: &'static str) -> String {
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{}.cu", src.module)),
        ..Default::default()
    };
    match compile_ptx_with_opts(src.source, opts) {
        Ok(ptx) => ptx.to_src(),
        Err(e) => panic!("NVRTC could not compile {} for {arch}: {e:?}", src.module),
    }
}

#[test]
fn nvrtc_compiles_every_kernel_to_ptx_for_ampere_and_hopper() {
    if !nvrtc_available() {
        return;
    }
    for src in ALL {
        for (arch, _) in ARCHES {
            let ptx = compile(src, arch);
            for kernel in src.kernels {
                assert!(
                    ptx.contains(&format!(".entry {kernel}(")),
                    "{}: no .entry {kernel} in the PTX for {arch}",
                    src.module
                );
            }
            eprintln!("nvrtc: {} -> {arch} PTX, {} bytes", src.module, ptx.len());
        }
    }
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GANTRY_PTXAS") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GANTRY_PTXAS is set, but {} is not a file",
            p.display()
        );
        return Some(p);
    }
    let on_path = Command::new("ptxas").arg("--version").output();
    match on_path {
        Ok(out) if out.status.success() => Some(PathBuf::from("ptxas")),
        _ => {
            eprintln!("nvrtc ptxas check skipped: no ptxas (set GANTRY_PTXAS)");
            None
        }
    }
}

/// `(function, registers, spill store bytes, spill load bytes)` from `ptxas -v` output.
fn spills(report: &str) -> Vec<(String, u32, u64, u64)> {
    let mut out = Vec::new();
    let mut function = String::new();
    for line in report.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            function = rest.split('\'').next().unwrap_or_default().to_string();
        }
        if line.contains("bytes spill stores") {
            let num_before = |key: &str| -> u64 {
                let head = line.split(key).next().unwrap_or_default();
                head.split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            let stores = num_before(" bytes spill stores");
            let loads = num_before(" bytes spill loads");
            out.push((function.clone(), 0, stores, loads));
        }
        if let Some(rest) = line.split("Used ").nth(1) {
            let regs = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(last) = out.last_mut().filter(|l| l.0 == function) {
                last.1 = regs;
            }
        }
    }
    out
}

#[test]
fn nvrtc_ptx_assembles_with_ptxas_for_sm80_and_sm90_without_spills() {
    if !nvrtc_available() {
        return;
    }
    let Some(ptxas) = ptxas() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for src in ALL {
        for (arch, sm) in ARCHES {
            let ptx_path = dir.path().join(format!("{}_{sm}.ptx", src.module));
            std::fs::write(&ptx_path, compile(src, arch)).unwrap();
            let out = Command::new(&ptxas)
                .arg(format!("-arch={sm}"))
                .arg("-v")
                .arg(&ptx_path)
                .arg("-o")
                .arg(dir.path().join(format!("{}_{sm}.cubin", src.module)))
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", ptxas.display()));
            let report = String::from_utf8_lossy(&out.stderr);
            eprintln!("== ptxas -arch={sm} -v {}.ptx\n{report}", src.module);
            assert!(
                out.status.success(),
                "ptxas failed on {} for {sm}",
                src.module
            );
            let entries = spills(&report);
            for kernel in src.kernels {
                assert!(
                    entries.iter().any(|e| e.0 == *kernel),
                    "ptxas -v reported nothing for {kernel} ({sm})"
                );
            }
            for (function, regs, stores, loads) in entries {
                if stores > 0 || loads > 0 {
                    failures.push(format!(
                        "{function} on {sm}: {regs} registers, {stores} bytes spill stores, \
                         {loads} bytes spill loads"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "register spills:\n{}",
        failures.join("\n")
    );
}

#[test]
fn nvrtc_spill_report_parser_reads_ptxas_lines() {
    let report = "ptxas info    : 0 bytes gmem\n\
        ptxas info    : Compiling entry function 'gantry_row_sse' for 'sm_80'\n\
        ptxas info    : Function properties for gantry_row_sse\n\
        \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
        ptxas info    : Used 18 registers, used 1 barriers, 396 bytes cmem[0]\n";
    assert_eq!(
        spills(report),
        vec![("gantry_row_sse".to_string(), 18, 4, 12)]
    );
}
