//! `--device` against plugin builds on a machine without an NVIDIA driver (every CI and
//! dev machine of this project): a CUDA build asked for CUDA fails with a clear error,
//! `auto` falls back to a CPU build and says so, and the device used reaches status.ron.
//!
//! The CUDA build is stood in for by a library that, like the real one, links
//! `libcuda.so.1` (a fake driver, deleted after linking). When CI has built the real CUDA
//! plugins (`GANTRY_CUDA_PLUGIN_DIR`, from `.ci/run`), they are checked the same way, and
//! with Debian's driver library on the loader path (`GANTRY_LIBCUDA_DIR`: the driver is
//! there, no GPU is) the plugin's own probe must refuse `cuda` and fall back for `auto`.

use std::path::{Path, PathBuf};
use std::process::Command;

use gantry_e2e::{gantry_with_env, plugin_dir, small_config};

fn synth_data() -> &'static Path {
    gantry_e2e::shared_synth(96, 16, 5)
}

/// Whether this machine has an NVIDIA driver (then the missing-driver paths can't be
/// exercised, and the tests say so instead).
fn driver_present() -> bool {
    // SAFETY: probing only; the driver library's initialisers are NVIDIA's.
    let found = unsafe { libloading::Library::new("libcuda.so.1") }.is_ok();
    if found {
        eprintln!("an NVIDIA driver is present: the no-driver checks are skipped");
    }
    found
}

fn cc(args: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc).args(args).status().expect("run cc");
    assert!(status.success(), "cc {args:?} failed");
}

/// `dir/libconv_ae.so` that needs `libcuda.so.1`, as a CUDA build of conv-ae does.
fn fake_cuda_build(dir: &Path) -> PathBuf {
    let driver_dir = dir.join("driver");
    std::fs::create_dir(&driver_dir).unwrap();
    let c = dir.join("stub.c");
    std::fs::write(&c, "int cuInit(unsigned int flags) { return 100; }\n").unwrap();
    let driver = driver_dir.join("libcuda.so");
    cc(&[
        "-shared",
        "-fPIC",
        "-Wl,-soname,libcuda.so.1",
        "-o",
        driver.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    let plugin_c = dir.join("plugin.c");
    std::fs::write(
        &plugin_c,
        "extern int cuInit(unsigned int); int probe(void) { return cuInit(0); }\n",
    )
    .unwrap();
    let build = dir.join("cuda-build");
    std::fs::create_dir(&build).unwrap();
    let plugin = build.join("libconv_ae.so");
    cc(&[
        "-shared",
        "-fPIC",
        "-Wl,--no-as-needed",
        "-o",
        plugin.to_str().unwrap(),
        plugin_c.to_str().unwrap(),
        "-L",
        driver_dir.to_str().unwrap(),
        "-lcuda",
    ]);
    std::fs::remove_dir_all(&driver_dir).unwrap();
    plugin
}

fn config(dir: &Path, plugin: &Path) -> PathBuf {
    let cfg = dir.join("run.ron");
    let text = small_config(synth_data(), 1).replace(
        "plugin: \"conv-ae\"",
        &format!("plugin: {:?}", plugin.display().to_string()),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn train(cfg: &Path, runs: &Path, device: &str, env: &[(&str, &Path)]) -> (i32, String) {
    let (code, _, err) = gantry_with_env(
        &[
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
            "--device",
            device,
            "-q",
        ],
        env,
    );
    (code, err)
}

fn only_run(runs: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

#[test]
fn cuda_requested_from_a_cuda_build_without_a_driver_fails_clearly() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = fake_cuda_build(dir.path());
    let cfg = config(dir.path(), &plugin);
    for device in ["cuda", "cuda:1"] {
        let (code, err) = train(&cfg, &dir.path().join("runs"), device, &[]);
        assert_ne!(code, 0);
        assert!(
            err.contains(&format!(
                "CUDA requested ({device}), but no NVIDIA driver was found: libcuda.so.1"
            )),
            "{err}"
        );
        assert!(
            err.contains(&plugin.display().to_string()),
            "names the plugin: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn auto_falls_back_from_a_cuda_build_to_the_cpu_build_and_logs_it() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = fake_cuda_build(dir.path());
    let cfg = config(dir.path(), &plugin);
    let runs = dir.path().join("runs");
    let cpu_builds = plugin_dir();
    let (code, err) = train(&cfg, &runs, "auto", &[("GANTRY_PLUGIN_PATH", &cpu_builds)]);
    assert_eq!(code, 0, "{err}");
    let run = only_run(&runs);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("is a CUDA build and no NVIDIA driver was found"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "using {}",
            cpu_builds.join("libconv_ae.so").display()
        )),
        "{log}"
    );
    let status = std::fs::read_to_string(run.join("status.ron")).unwrap();
    assert!(status.contains("device: Some(\"cpu\")"), "{status}");
    assert!(status.contains("state: finished"), "{status}");
    // The run records what was asked for (`--device auto`), beside what was used.
    let record = std::fs::read_to_string(run.join("run.ron")).unwrap();
    assert!(record.contains("device: \"auto\""), "{record}");
}

/// The real CUDA builds of `.ci/run` (skipped where they weren't built).
fn cuda_plugin() -> Option<PathBuf> {
    let dir = std::env::var_os("GANTRY_CUDA_PLUGIN_DIR")?;
    let plugin = Path::new(&dir).join("libconv_ae.so");
    assert!(
        plugin.is_file(),
        "GANTRY_CUDA_PLUGIN_DIR is set, but {} is missing",
        plugin.display()
    );
    Some(plugin)
}

#[test]
fn the_real_cuda_build_refuses_cuda_without_a_driver() {
    let Some(plugin) = cuda_plugin() else {
        eprintln!("skipped: GANTRY_CUDA_PLUGIN_DIR not set (.ci/run builds the CUDA plugins)");
        return;
    };
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &plugin);
    let (code, err) = train(&cfg, &dir.path().join("runs"), "cuda", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("CUDA requested (cuda), but no NVIDIA driver was found"),
        "{err}"
    );
}

#[test]
fn the_real_cuda_build_probes_a_driver_without_a_gpu() {
    let Some(plugin) = cuda_plugin() else {
        eprintln!("skipped: GANTRY_CUDA_PLUGIN_DIR not set");
        return;
    };
    let (Some(libcuda), Some(cuda_libs)) = (
        std::env::var_os("GANTRY_LIBCUDA_DIR"),
        std::env::var_os("GANTRY_NVRTC_LIB_DIR"),
    ) else {
        eprintln!("skipped: GANTRY_LIBCUDA_DIR / GANTRY_NVRTC_LIB_DIR not set");
        return;
    };
    if driver_present() {
        return;
    }
    let loader_path =
        std::env::join_paths([PathBuf::from(libcuda), PathBuf::from(cuda_libs)]).unwrap();
    let loader_path = PathBuf::from(loader_path);
    let env = [("LD_LIBRARY_PATH", loader_path.as_path())];
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &plugin);

    let (code, err) = train(&cfg, &dir.path().join("runs-cuda"), "cuda", &env);
    assert_ne!(code, 0, "no GPU here, yet cuda trained: {err}");
    assert!(
        err.contains("CUDA requested, but cuda:0 is not usable"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let runs = dir.path().join("runs-auto");
    let (code, err) = train(&cfg, &runs, "auto", &env);
    assert_eq!(code, 0, "{err}");
    let run = only_run(&runs);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("auto: no usable CUDA GPU, falling back to cpu"),
        "{log}"
    );
    let status = std::fs::read_to_string(run.join("status.ron")).unwrap();
    assert!(status.contains("device: Some(\"cpu\")"), "{status}");
}
