//! Helpers shared by the end-to-end tests in `tests/tests/`: where the workspace and its
//! built artifacts are, and the fixture plugins built on demand.

pub mod sshd;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The profile directory this test binary was built into (`target/release` under
/// `cargo test --release`): the `gantry` binary and plugin libraries sit there.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a built artifact in the profile directory, with a clear failure if absent.
pub fn artifact(file: &str) -> PathBuf {
    let path = profile_dir().join(file);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace --release` so every \
         workspace member is built",
        path.display()
    );
    path
}

/// The `gantry` binary.
pub fn gantry_bin() -> PathBuf {
    artifact("gantry")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The fixture plugin built once per variant, keyed by name: `ok` (default features),
/// each header-breaking feature, and `panic-abort`. Built into `target/fixtures` so the
/// outer `cargo test` build lock is never contended.
pub fn fixture(variant: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_fixtures);
    let path = dir.join(format!("{variant}.so"));
    assert!(path.exists(), "no fixture variant {variant}");
    path
}

const FEATURE_VARIANTS: [&str; 5] = [
    "bad-magic",
    "future-major",
    "future-major-symbol",
    "small-vtable",
    "missing-function",
];

fn build_fixtures() -> PathBuf {
    let root = workspace_root();
    let target = root.join("target").join("fixtures");
    let out = target.join("variants");
    std::fs::create_dir_all(&out).expect("create fixture dir");
    let built = target.join("release").join("libfixture_plugin.so");
    let run = |args: &[&str], variant: &str| {
        // `--target-dir` goes right after the subcommand: anything after `--` is rustc's.
        let status = Command::new(cargo())
            .current_dir(&root)
            .arg(args[0])
            .arg("--target-dir")
            .arg(&target)
            .args(&args[1..])
            .status()
            .expect("run cargo");
        assert!(
            status.success(),
            "building fixture variant {variant} failed"
        );
        std::fs::copy(&built, out.join(format!("{variant}.so"))).expect("copy fixture");
    };
    let manifest = root.join("plugin-api/tests/fixture-plugin/Cargo.toml");
    let manifest = manifest.to_str().expect("UTF-8 workspace path");
    let base = ["build", "--release", "-q", "--manifest-path", manifest];
    run(&base, "ok");
    for feature in FEATURE_VARIANTS {
        let mut args = base.to_vec();
        args.extend(["--features", feature]);
        run(&args, feature);
    }
    // The plugin crate itself compiled with panic=abort: its header must say so.
    run(
        &[
            "rustc",
            "--release",
            "-q",
            "--manifest-path",
            manifest,
            "--lib",
            "--",
            "-C",
            "panic=abort",
        ],
        "panic-abort",
    );
    out
}

/// A shared library that is not a gantry plugin, compiled from empty C.
pub fn foreign_library(dir: &Path) -> PathBuf {
    let src = dir.join("foreign.c");
    std::fs::write(&src, "int foreign_answer(void) { return 42; }\n").unwrap();
    let out = dir.join("libforeign.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed to build a foreign .so");
    out
}

/// The folder holding the freshest built plugins: `target/<profile>/deps/` after `cargo
/// test` (which builds them as dependencies), `target/<profile>/` after `cargo build`.
/// The newer `libconv_ae.so` wins, so a stale `cargo build` output never stands in for
/// what this test run just compiled.
pub fn plugin_dir() -> PathBuf {
    let top = profile_dir();
    let modified = |d: &PathBuf| {
        std::fs::metadata(d.join("libconv_ae.so"))
            .and_then(|m| m.modified())
            .ok()
    };
    [top.join("deps"), top.clone()]
        .into_iter()
        .filter_map(|d| modified(&d).map(|t| (t, d)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, d)| d)
        .unwrap_or_else(|| {
            panic!(
                "libconv_ae.so not found under {}: run `cargo test --workspace --release`",
                top.display()
            )
        })
}

/// Runs `gantry` with arguments, returning (exit code, stdout, stderr).
pub fn gantry(args: &[&str]) -> (i32, String, String) {
    gantry_with_env(args, &[])
}

/// As [`gantry`], with extra environment variables.
pub fn gantry_with_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let out = Command::new(gantry_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .expect("run gantry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small config for conv-ae on 16x16 synthetic data: trains in seconds.
pub fn small_config(data: &Path, epochs: u32) -> String {
    format!(
        r#"(
    plugin: "conv-ae",
    params: {{"channels": [8, 16], "latent": 16}},
    data: (kind: ImageFolder, root: {:?}, size: (16, 16), channels: 1, normal_class: "normal"),
    train: (epochs: {epochs}, batch_size: 16, lr: 0.002, seed: 1),
    device: "cpu",
)
"#,
        data.display().to_string()
    )
}

/// Every row of a run's scalars.csv as (step, epoch, tag, value), header checked.
pub fn scalar_rows(run: &Path) -> Vec<(u64, u32, String, f64)> {
    let text = std::fs::read_to_string(run.join("scalars.csv")).expect("scalars.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("wall_time,step,epoch,tag,value"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].parse().expect("step"),
                f[2].parse().expect("epoch"),
                f[3].to_string(),
                f[4].parse().expect("value"),
            )
        })
        .collect()
}

/// Synthetic images from `gantry data synth --n N --size S --seed SEED`, written once per
/// test binary into a temp folder that lives as long as the process.
pub fn shared_synth(n: u32, size: u32, seed: u64) -> &'static Path {
    use std::sync::{Mutex, OnceLock};
    type Written = Vec<((u32, u32, u64), &'static Path)>;
    static WRITTEN: OnceLock<Mutex<Written>> = OnceLock::new();
    let mut written = WRITTEN
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = written.iter().find(|(k, _)| *k == (n, size, seed)) {
        return path;
    }
    // Kept for the whole test process: tests on other threads read it until the end.
    let dir: &'static tempfile::TempDir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let path: &'static Path = Box::leak(dir.path().join("data").into_boxed_path());
    let (code, _, err) = gantry(&[
        "data",
        "synth",
        "--out",
        path.to_str().unwrap(),
        "--n",
        &n.to_string(),
        "--size",
        &size.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert_eq!(code, 0, "synth failed: {err}");
    written.push(((n, size, seed), path));
    path
}
