//! The built bridge (`target/<profile>/libgantry_python.so`), loaded through
//! gantry-plugin-api's host as the runner loads plugins (`Plugin::load`: RTLD_NOW |
//! RTLD_LOCAL), in child processes: the script is chosen by `GANTRY_PY_PLUGIN` and loaded
//! once per process, and setting variables in-process is unsafe, so each test re-runs its
//! own test binary filtered to itself with the environment set, and the child does the
//! checks.
//!
//! numpy comes from a virtualenv: `GANTRY_TEST_VENV`, default `target/py-venv` (make it
//! with `python3 -m venv target/py-venv && target/py-venv/bin/pip install numpy`; add
//! `torch` for the PyTorch examples). Tests skip, saying why, when it has no numpy (or no
//! torch).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use gantry_plugin_api::host::{CallError, HostSink, LoadError, Plugin, PluginInstance};
use gantry_plugin_api::{Batch, ImageRef, Level, Setup};

/// Set in a child to the name of the test it runs.
const CHILD: &str = "GANTRY_BRIDGE_TEST_CHILD";
/// A scratch folder the parent made for the child.
const SCRATCH: &str = "GANTRY_BRIDGE_TEST_DIR";
/// What a refusal child expects.
const EXPECT: &str = "GANTRY_BRIDGE_TEST_EXPECT";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The bridge cargo built for this test: `cargo test` leaves it beside the test binary
/// in `deps/` (only `cargo build` copies it up to `target/<profile>/`).
fn bridge() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let path = deps.join("libgantry_python.so");
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

fn scratch() -> PathBuf {
    PathBuf::from(std::env::var_os(SCRATCH).expect("the parent sets the scratch dir"))
}

/// The test virtualenv when its Python imports `module`; else prints why and gives None.
fn venv_with(module: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("GANTRY_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/py-venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: {} cannot import {module} (python3 -m venv target/py-venv && \
             target/py-venv/bin/pip install {module}, or set GANTRY_TEST_VENV)",
            python.display()
        );
    }
    ok.then_some(venv)
}

/// Re-runs test `test` in a child with `env` (and nothing of the caller's Python
/// variables); panics with the child's output unless it passed.
fn run_child(test: &str, env: &[(&str, &OsStr)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env_remove("GANTRY_PY_PLUGIN")
        .env_remove("GANTRY_PYTHON")
        .env_remove("VIRTUAL_ENV");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {test} ran no test:\n{text}"
    );
}

/// Writes `files` into a fresh folder and runs the child with `GANTRY_PY_PLUGIN` naming
/// `files[0]` and `GANTRY_PYTHON` the venv.
fn run_with_script(test: &str, venv: &Path, files: &[(&str, &str)], extra: &[(&str, &OsStr)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let script = dir.path().join(files[0].0);
    let mut env: Vec<(&str, &OsStr)> = vec![
        ("GANTRY_PY_PLUGIN", script.as_os_str()),
        ("GANTRY_PYTHON", venv.as_os_str()),
        (SCRATCH, dir.path().as_os_str()),
    ];
    env.extend_from_slice(extra);
    run_child(test, &env);
}

/// Everything a call reported.
#[derive(Default)]
struct Sink {
    scalars: Vec<(String, f64)>,
    scores: Vec<(String, Vec<f32>)>,
    images: Vec<(String, [usize; 4], usize, Vec<f32>)>,
    vectors: Vec<(String, usize, usize, Vec<f32>)>,
    info: Vec<(String, String)>,
    logs: Vec<(Level, String)>,
}

impl HostSink for Sink {
    fn scalar(&mut self, name: &str, value: f64) {
        self.scalars.push((name.into(), value));
    }
    fn scores(&mut self, name: &str, values: &[f32]) {
        self.scores.push((name.into(), values.to_vec()));
    }
    fn image(&mut self, name: &str, image: ImageRef<'_>) {
        self.images
            .push((name.into(), image.shape, image.columns, image.data.to_vec()));
    }
    fn info(&mut self, key: &str, value: &str) {
        self.info.push((key.into(), value.into()));
    }
    fn log(&mut self, level: Level, text: &str) {
        self.logs.push((level, text.into()));
    }
    fn vectors(&mut self, name: &str, values: &[f32], rows: usize, cols: usize) {
        self.vectors
            .push((name.into(), rows, cols, values.to_vec()));
    }
}

impl Sink {
    fn scalar(&self, name: &str) -> f64 {
        self.scalars
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no scalar {name} in {:?}", self.scalars))
            .1
    }
    fn info(&self, key: &str) -> Option<&str> {
        self.info
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn score(&self, name: &str) -> &[f32] {
        &self
            .scores
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no score {name}"))
            .1
    }
}

fn setup(c: usize, size: usize, classes: usize) -> Setup {
    Setup {
        channels: c,
        height: size,
        width: size,
        num_classes: classes,
        seed: 7,
        learning_rate: None,
        total_steps: Some(100),
    }
}

fn batch<'a>(images: &'a [f32], labels: &'a [u32], shape: [usize; 4], want: bool) -> Batch<'a> {
    Batch {
        images,
        shape,
        labels,
        want_images: want,
    }
}

fn libpython_mapped() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("libpython")
}

const TINY: &str = r#"
import os
import sys

import numpy as np

from tiny_helper import SCALE  # a sibling module: the script's folder is on sys.path

GANTRY_PLUGIN = {
    "name": "tiny-ae",
    "family": "autoencoder",
    "version": "0.1.0",
    "params": {"latent": 4, "mode": "ok", "gain": 0.5, "tags": ["a", "b"], "nested": {"k": True}},
    "losses": ["loss"],
    "scores": ["mse"],
    "input": {"channels": [1], "multiple_of": 4, "min_size": 8},
    "summary": "a test model",
}


def _explode(step):
    raise ValueError(f"step {step} exploded")


class Model:
    def __init__(self, params, setup):
        if params["mode"] == "raise_init":
            raise RuntimeError("cannot build")
        self.params = params
        self.setup = setup
        self.step = 0
        if params["mode"] == "device":
            self.device = "cuda:7"
        venv = os.environ["GANTRY_PYTHON"]
        site_dir = next(p for p in sys.path if p.endswith("site-packages"))
        self.venv_ok = (
            sys.prefix == venv
            and sys.executable == os.path.join(venv, "bin", "python")
            and site_dir.startswith(venv)
            and not any(p.startswith("/usr/lib/python3/dist-packages") for p in sys.path)
            and sys.path[0] == os.path.dirname(os.path.abspath(__file__))
        )

    def train_step(self, images, labels):
        self.step += 1
        if self.params["mode"] == "raise" and self.step == 2:
            _explode(self.step)
        assert images.dtype == np.float32 and images.flags.c_contiguous
        images *= 1.0  # writable
        assert labels.dtype == np.uint32 and labels.shape == (len(images),)
        return {
            "loss": float(images.mean()) * SCALE,
            "step": np.int64(self.step),
            "latent": self.params["latent"],
            "label_sum": labels.sum(),
            "seed": self.setup["seed"],
            "lr_is_none": self.setup["lr"] is None,
            "total_steps": self.setup["total_steps"],
            "nested_k": self.params["nested"]["k"] is True,
            "gain": self.params["gain"],
            "venv_ok": self.venv_ok,
            "shape": float(np.prod(images.shape) * 1000 + images.shape[1] * 100 + images.shape[2]),
        }

    def eval(self, images, labels):
        n = len(images)
        if self.params["mode"] == "bad_scores":
            return {"scores": {"mse": np.zeros(n + 1)}}
        per = images.reshape(n, -1).mean(1)
        return {
            "scalars": {"loss": float(per.mean())},
            "scores": {"mse": per},
            "images": {"reconstruction": images * 2.0},
            "vectors": {"latent": np.tile(per[:, None], (1, self.params["latent"]))},
        }

    def save(self, dir):
        np.savez(os.path.join(dir, "tiny.npz"), step=self.step)

    def load(self, dir):
        self.step = int(np.load(os.path.join(dir, "tiny.npz"))["step"])
"#;

const HELPER: &str = "SCALE = 1.0\n";

fn tiny_files() -> Vec<(&'static str, &'static str)> {
    vec![("tiny_ae.py", TINY), ("tiny_helper.py", HELPER)]
}

#[test]
fn describe_gives_the_scripts_name_version_families_and_params_with_numpy_loaded_rtld_local() {
    const TEST: &str =
        "describe_gives_the_scripts_name_version_families_and_params_with_numpy_loaded_rtld_local";
    if is_child(TEST) {
        // This process does not link libpython: only the bridge does, and Plugin::load
        // opens it RTLD_LOCAL, so numpy's C extensions import only thanks to the bridge's
        // RTLD_GLOBAL re-open.
        assert!(!libpython_mapped());
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        assert!(libpython_mapped());
        // The host names a bridged plugin by what its description says, not the header.
        let info = plugin.info();
        assert_eq!(
            (
                info.name.as_str(),
                info.version.as_str(),
                info.family.as_str()
            ),
            ("tiny-ae", "0.1.0", "autoencoder")
        );
        let d = &info.description;
        assert_eq!(d.name.as_deref(), Some("tiny-ae"));
        assert_eq!(d.version.as_deref(), Some("0.1.0"));
        assert_eq!(d.families, vec!["autoencoder"]);
        assert_eq!(d.summary, "a test model");
        assert_eq!(d.losses, vec!["loss"]);
        assert_eq!(d.scores, vec!["mse"]);
        assert_eq!(d.input.channels, vec![1]);
        assert_eq!((d.input.multiple_of, d.input.min_size), (4, 8));
        let params: ron::Value = ron::from_str(&d.default_params).unwrap();
        let expected: ron::Value = ron::from_str(
            "{\"latent\": 4, \"mode\": \"ok\", \"gain\": 0.5, \"tags\": [\"a\", \"b\"], \
             \"nested\": {\"k\": true}}",
        )
        .unwrap();
        assert_eq!(params, expected);
        return;
    }
    let Some(venv) = venv_with("numpy") else {
        return;
    };
    run_with_script(TEST, &venv, &tiny_files(), &[]);
}

#[test]
fn create_train_eval_save_and_load_carry_what_the_script_returns() {
    const TEST: &str = "create_train_eval_save_and_load_carry_what_the_script_returns";
    if is_child(TEST) {
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        let mut sink = Sink::default();
        let mut model = plugin
            .create("{\"latent\":3}", "auto", &setup(1, 8, 1), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sink.info("device"), Some("cpu"), "{:?}", sink.info);
        let python = sink.info("python").unwrap();
        let venv = std::env::var("GANTRY_PYTHON").unwrap();
        assert!(
            python.starts_with("3.") && python.ends_with(&format!("({venv})")),
            "{python}"
        );
        assert!(
            sink.info("numpy")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        );
        assert_eq!(sink.info("torch"), None, "the script did not import torch");

        let n = 2;
        let images: Vec<f32> = (0..n * 64).map(|i| i as f32 / 128.0).collect();
        let labels = [3u32, 4];
        let mut sink = Sink::default();
        model
            .train_step(&batch(&images, &labels, [n, 1, 8, 8], false), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        let mean = images.iter().sum::<f32>() as f64 / images.len() as f64;
        assert!((sink.scalar("loss") - mean).abs() < 1e-6);
        assert_eq!(sink.scalar("step"), 1.0);
        assert_eq!(
            sink.scalar("latent"),
            3.0,
            "the run's params merge over the defaults"
        );
        assert_eq!(sink.scalar("gain"), 0.5);
        assert_eq!(
            sink.scalar("venv_ok"),
            1.0,
            "sys.prefix, executable and path as the venv's"
        );
        assert_eq!(sink.scalar("nested_k"), 1.0);
        assert_eq!(sink.scalar("label_sum"), 7.0);
        assert_eq!(sink.scalar("seed"), 7.0);
        assert_eq!(sink.scalar("lr_is_none"), 1.0);
        assert_eq!(sink.scalar("total_steps"), 100.0);
        assert_eq!(sink.scalar("shape"), 128_000.0 + 100.0 + 8.0);

        let mut sink = Sink::default();
        model
            .eval(&batch(&images, &labels, [n, 1, 8, 8], true), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        let per: Vec<f32> = images
            .chunks(64)
            .map(|c| c.iter().sum::<f32>() / 64.0)
            .collect();
        let mse = sink.score("mse");
        assert_eq!(mse.len(), n);
        assert!(
            mse.iter().zip(&per).all(|(a, b)| (a - b).abs() < 1e-6),
            "{mse:?}"
        );
        assert!((sink.scalar("loss") - (per[0] + per[1]) as f64 / 2.0).abs() < 1e-6);
        let (name, shape, columns, data) = &sink.images[0];
        assert_eq!(
            (name.as_str(), *shape, *columns),
            ("reconstruction", [2, 1, 8, 8], 2)
        );
        assert!(
            data.iter().all(|v| (0.0..=1.0).contains(v)),
            "clamped to [0, 1]"
        );
        assert_eq!(data[1], images[1] * 2.0);
        let (name, rows, cols, values) = &sink.vectors[0];
        assert_eq!((name.as_str(), *rows, *cols), ("latent", 2, 3));
        assert_eq!(values[3], per[1]);

        // Images only for the batches the host asks images for.
        let mut sink = Sink::default();
        model
            .eval(&batch(&images, &labels, [n, 1, 8, 8], false), &mut sink)
            .unwrap();
        assert!(sink.images.is_empty());
        assert_eq!(sink.score("mse").len(), n);

        // save, then a fresh instance loads the step counter.
        let dir = scratch().join("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        model.save(&dir, &mut Sink::default()).unwrap();
        assert!(dir.join("tiny.npz").is_file());
        let mut other = plugin
            .create("{}", "cpu", &setup(1, 8, 1), &mut Sink::default())
            .unwrap();
        other.load(&dir, &mut Sink::default()).unwrap();
        let mut sink = Sink::default();
        other
            .train_step(&batch(&images, &labels, [n, 1, 8, 8], false), &mut sink)
            .unwrap();
        assert_eq!(sink.scalar("step"), 2.0);

        // The model's own device wins over the requested one.
        let mut sink = Sink::default();
        let _m = plugin
            .create("{\"mode\": \"device\"}", "auto", &setup(1, 8, 1), &mut sink)
            .unwrap();
        assert_eq!(sink.info("device"), Some("cuda:7"));

        // No sampling without a sample method.
        let err = other.sample(4, 1, &mut Sink::default()).unwrap_err();
        assert!(
            err.to_string().contains("does not generate samples"),
            "{err}"
        );
        return;
    }
    let Some(venv) = venv_with("numpy") else {
        return;
    };
    run_with_script(TEST, &venv, &tiny_files(), &[]);
}

#[test]
fn exceptions_and_bad_results_are_errors_with_type_message_and_traceback() {
    const TEST: &str = "exceptions_and_bad_results_are_errors_with_type_message_and_traceback";
    if is_child(TEST) {
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        let script = std::env::var("GANTRY_PY_PLUGIN").unwrap();
        let images = vec![0.5f32; 4 * 64];
        let labels = [0u32; 4];
        let b = batch(&images, &labels, [4, 1, 8, 8], true);

        let mut model = plugin
            .create(
                "{\"mode\": \"raise\"}",
                "cpu",
                &setup(1, 8, 1),
                &mut Sink::default(),
            )
            .unwrap();
        model.train_step(&b, &mut Sink::default()).unwrap();
        let mut sink = Sink::default();
        let err = model.train_step(&b, &mut sink).unwrap_err();
        let CallError::Failed { call, message, .. } = &err else {
            panic!("expected a failed call, got {err:?}");
        };
        assert_eq!(*call, "train_step");
        let mut lines = message.lines();
        assert_eq!(
            lines.next(),
            Some("ValueError: step 2 exploded"),
            "{message}"
        );
        assert_eq!(
            lines.next(),
            Some("Traceback (most recent call last):"),
            "{message}"
        );
        let line = TINY
            .lines()
            .position(|l| l.contains("raise ValueError"))
            .unwrap()
            + 1;
        assert!(
            message.contains(&format!("File \"{script}\", line {line}, in _explode")),
            "{message}"
        );
        assert!(message.contains("in train_step"), "{message}");
        let logged = sink
            .logs
            .iter()
            .find(|(level, _)| *level == Level::Error)
            .expect("the traceback is logged");
        assert!(
            logged.1.contains("Traceback (most recent call last):"),
            "{:?}",
            logged
        );
        assert!(
            logged.1.contains("ValueError: step 2 exploded"),
            "{:?}",
            logged
        );
        // An error (not a panic) leaves the instance usable.
        model.train_step(&b, &mut Sink::default()).unwrap();

        let err = plugin
            .create(
                "{\"mode\": \"raise_init\"}",
                "cpu",
                &setup(1, 8, 1),
                &mut Sink::default(),
            )
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("create failed: RuntimeError: cannot build\nTraceback"),
            "{err}"
        );
        let err = plugin
            .create(
                "{\"latnet\": 3}",
                "cpu",
                &setup(1, 8, 1),
                &mut Sink::default(),
            )
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown key \"latnet\""), "{err}");

        let mut bad = plugin
            .create(
                "{\"mode\": \"bad_scores\"}",
                "cpu",
                &setup(1, 8, 1),
                &mut Sink::default(),
            )
            .unwrap();
        let mut sink = Sink::default();
        let err = bad.eval(&b, &mut sink).unwrap_err();
        assert!(
            err.to_string()
                .contains("eval()[\"scores\"][\"mse\"] has shape (5,); expected 4 values"),
            "{err}"
        );
        assert!(sink.scores.is_empty(), "nothing of a bad result is emitted");
        return;
    }
    let Some(venv) = venv_with("numpy") else {
        return;
    };
    run_with_script(TEST, &venv, &tiny_files(), &[]);
}

#[test]
fn scripts_that_cannot_load_are_refused_in_one_line_naming_the_file() {
    const TEST: &str = "scripts_that_cannot_load_are_refused_in_one_line_naming_the_file";
    if is_child(TEST) {
        let expected = std::env::var(EXPECT).unwrap();
        let err = Plugin::load(bridge()).expect_err("refused");
        let LoadError::Describe { reason, .. } = &err else {
            panic!("expected a describe refusal, got {err}");
        };
        assert!(!reason.contains('\n'), "one line: {reason:?}");
        let expected = expected.replace(
            "{script}",
            &std::env::var("GANTRY_PY_PLUGIN").unwrap_or_default(),
        );
        match expected.strip_suffix('*') {
            Some(prefix) => assert!(reason.starts_with(prefix), "{reason:?} vs {prefix:?}"),
            None => assert_eq!(reason, &expected),
        }
        return;
    }
    let Some(venv) = venv_with("numpy") else {
        return;
    };
    let no_eval = TINY.replace(
        "    def eval(self, images, labels):",
        "    def evaluate(self, images, labels):",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no_eval.py",
            no_eval,
            "{script}: class Model has no method eval",
        ),
        (
            "bad_import.py",
            "import not_a_module_for_gantry_tests\n".into(),
            "{script}: ModuleNotFoundError: No module named 'not_a_module_for_gantry_tests'",
        ),
        (
            "no_manifest.py",
            "class Model:\n    pass\n".into(),
            "{script}: no GANTRY_PLUGIN dict",
        ),
        (
            "no_model.py",
            "GANTRY_PLUGIN = {'name': 'x', 'family': 'autoencoder'}\n".into(),
            "{script}: no class Model",
        ),
        (
            "bad_manifest.py",
            TINY.replace("\"family\": \"autoencoder\",", ""),
            "{script}: GANTRY_PLUGIN has no \"family\"*",
        ),
        (
            "syntax.py",
            "def broken(:\n".into(),
            "{script}: SyntaxError: *",
        ),
    ];
    for (name, text, expected) in &cases {
        let expect = OsString::from(expected);
        run_with_script(
            TEST,
            &venv,
            &[(name, text), ("tiny_helper.py", HELPER)],
            &[(EXPECT, &expect)],
        );
    }

    // The virtualenv: another Python's, a missing one, and no script at all.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("py399");
    std::fs::create_dir_all(other.join("lib/python3.99/site-packages")).unwrap();
    std::fs::write(other.join("pyvenv.cfg"), "home = /x\nversion = 3.99.1\n").unwrap();
    let expect = OsString::from(format!(
        "{{script}}: venv {} was made with Python 3.99, this gantry embeds 3.*",
        other.display()
    ));
    run_with_script(
        TEST,
        &venv,
        &tiny_files(),
        &[("GANTRY_PYTHON", other.as_os_str()), (EXPECT, &expect)],
    );
    let missing = dir.path().join("missing");
    let expect = OsString::from(format!(
        "{{script}}: no virtualenv at {} (GANTRY_PYTHON)",
        missing.display()
    ));
    run_with_script(
        TEST,
        &venv,
        &tiny_files(),
        &[("GANTRY_PYTHON", missing.as_os_str()), (EXPECT, &expect)],
    );
    let expect = OsString::from("GANTRY_PY_PLUGIN is not set*");
    run_child(TEST, &[(EXPECT, &expect)]);
    let absent = dir.path().join("absent.py");
    let expect = OsString::from(format!("{}: cannot read: *", absent.display()));
    run_child(
        TEST,
        &[("GANTRY_PY_PLUGIN", absent.as_os_str()), (EXPECT, &expect)],
    );
}

/// Deterministic 16x16 "tissue": a smooth background with two soft dark nuclei; an
/// anomaly adds a large bright disc.
fn tissue(i: usize, anomalous: bool) -> Vec<f32> {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32
    };
    let (gx, gy) = (rand() * 0.1, rand() * 0.1);
    let nuclei: Vec<(f32, f32)> = (0..2)
        .map(|_| (2.0 + rand() * 12.0, 2.0 + rand() * 12.0))
        .collect();
    let lesion = (4.0 + rand() * 8.0, 4.0 + rand() * 8.0);
    let mut out = Vec::with_capacity(256);
    for y in 0..16 {
        for x in 0..16 {
            let (fx, fy) = (x as f32, y as f32);
            let mut v = 0.45 + gx * fx / 16.0 + gy * fy / 16.0 + 0.02 * (rand() - 0.5);
            for (cx, cy) in &nuclei {
                v -= 0.2 * (-((fx - cx).powi(2) + (fy - cy).powi(2)) / 2.0).exp();
            }
            if anomalous && (fx - lesion.0).powi(2) + (fy - lesion.1).powi(2) < 9.0 {
                v += 0.4;
            }
            out.push(v.clamp(0.0, 1.0));
        }
    }
    out
}

fn auroc(normal: &[f32], anomalous: &[f32]) -> f64 {
    let mut wins = 0.0;
    for a in anomalous {
        for n in normal {
            wins += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (normal.len() * anomalous.len()) as f64
}

fn train_steps(
    model: &mut PluginInstance,
    data: &[f32],
    steps: std::ops::Range<usize>,
) -> Vec<f64> {
    let per = 8 * 256;
    let labels = [0u32; 8];
    steps
        .map(|s| {
            let start = (s * per) % data.len();
            let mut sink = Sink::default();
            model
                .train_step(
                    &batch(&data[start..start + per], &labels, [8, 1, 16, 16], false),
                    &mut sink,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            sink.scalar("loss")
        })
        .collect()
}

#[test]
fn numpy_ae_example_ranks_lesions_and_resumes_exactly() {
    const TEST: &str = "numpy_ae_example_ranks_lesions_and_resumes_exactly";
    if is_child(TEST) {
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plugin.info().description.name.as_deref(), Some("numpy-ae"));
        let train: Vec<f32> = (0..64).flat_map(|i| tissue(i, false)).collect();
        let mut sink = Sink::default();
        let mut model = plugin
            .create("{\"latent\": 8}", "auto", &setup(1, 16, 1), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sink.info("device"), Some("cpu"));
        let first = train_steps(&mut model, &train, 0..40);
        assert!(first[39] < first[0] * 0.5, "{first:?}");

        let score = |model: &mut PluginInstance, anomalous: bool| {
            let images: Vec<f32> = (1000..1032).flat_map(|i| tissue(i, anomalous)).collect();
            let mut sink = Sink::default();
            model
                .eval(&batch(&images, &[0; 32], [32, 1, 16, 16], true), &mut sink)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                sink.images[0].1,
                [16, 1, 16, 16],
                "8 originals over 8 reconstructions"
            );
            assert_eq!(sink.images[0].2, 8);
            assert_eq!((sink.vectors[0].1, sink.vectors[0].2), (32, 8));
            sink.score("mse").to_vec()
        };
        let normal = score(&mut model, false);
        let anomalous = score(&mut model, true);
        let a = auroc(&normal, &anomalous);
        assert!(a > 0.9, "AUROC {a}");

        // Resume: a fresh instance loading the checkpoint continues bit for bit.
        let dir = scratch().join("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        model.save(&dir, &mut Sink::default()).unwrap();
        let mut resumed = plugin
            .create(
                "{\"latent\": 8}",
                "cpu",
                &setup(1, 16, 1),
                &mut Sink::default(),
            )
            .unwrap();
        resumed.load(&dir, &mut Sink::default()).unwrap();
        assert_eq!(
            train_steps(&mut model, &train, 40..45),
            train_steps(&mut resumed, &train, 40..45)
        );
        return;
    }
    let Some(venv) = venv_with("numpy") else {
        return;
    };
    let script = examples().join("numpy_ae.py");
    let dir = tempfile::tempdir().unwrap();
    run_child(
        TEST,
        &[
            ("GANTRY_PY_PLUGIN", script.as_os_str()),
            ("GANTRY_PYTHON", venv.as_os_str()),
            (SCRATCH, dir.path().as_os_str()),
        ],
    );
}

#[test]
fn torch_conv_ae_example_trains_evaluates_and_resumes_exactly() {
    const TEST: &str = "torch_conv_ae_example_trains_evaluates_and_resumes_exactly";
    if is_child(TEST) {
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        let params = "{\"channels\": [4, 8], \"latent\": 8}";
        let mut sink = Sink::default();
        let mut model = plugin
            .create(params, "cpu", &setup(1, 16, 1), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sink.info("device"), Some("cpu"));
        assert!(sink.info("torch").is_some(), "{:?}", sink.info);
        let train: Vec<f32> = (0..16).flat_map(|i| tissue(i, false)).collect();
        train_steps(&mut model, &train, 0..3);

        let images: Vec<f32> = (100..110).flat_map(|i| tissue(i, true)).collect();
        let mut sink = Sink::default();
        model
            .eval(&batch(&images, &[0; 10], [10, 1, 16, 16], true), &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sink.score("mse").len(), 10);
        assert_eq!((sink.images[0].1, sink.images[0].2), ([16, 1, 16, 16], 8));
        assert_eq!((sink.vectors[0].1, sink.vectors[0].2), (10, 8));
        assert!(sink.scalar("loss") > 0.0);

        let dir = scratch().join("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        model.save(&dir, &mut Sink::default()).unwrap();
        let mut resumed = plugin
            .create(params, "cpu", &setup(1, 16, 1), &mut Sink::default())
            .unwrap();
        resumed.load(&dir, &mut Sink::default()).unwrap();
        assert_eq!(
            train_steps(&mut model, &train, 3..5),
            train_steps(&mut resumed, &train, 3..5)
        );
        return;
    }
    let Some(venv) = venv_with("torch") else {
        return;
    };
    let script = examples().join("torch_conv_ae.py");
    let dir = tempfile::tempdir().unwrap();
    run_child(
        TEST,
        &[
            ("GANTRY_PY_PLUGIN", script.as_os_str()),
            ("GANTRY_PYTHON", venv.as_os_str()),
            (SCRATCH, dir.path().as_os_str()),
        ],
    );
}

#[test]
fn torch_classifier_example_reports_per_class_probabilities() {
    const TEST: &str = "torch_classifier_example_reports_per_class_probabilities";
    if is_child(TEST) {
        let plugin = Plugin::load(bridge()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plugin.info().description.families, vec!["classifier"]);
        let mut model = plugin
            .create(
                "{\"channels\": [4, 8]}",
                "cpu",
                &setup(1, 16, 2),
                &mut Sink::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let images: Vec<f32> = (0..8).flat_map(|i| tissue(i, i % 2 == 1)).collect();
        let labels: Vec<u32> = (0..8).map(|i| i % 2).collect();
        let b = batch(&images, &labels, [8, 1, 16, 16], true);
        for _ in 0..3 {
            let mut sink = Sink::default();
            model
                .train_step(&b, &mut sink)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!((0.0..=1.0).contains(&sink.scalar("accuracy")));
        }
        let mut sink = Sink::default();
        model.eval(&b, &mut sink).unwrap_or_else(|e| panic!("{e}"));
        let (p0, p1) = (sink.score("p/0"), sink.score("p/1"));
        assert_eq!((p0.len(), p1.len()), (8, 8));
        assert!(p0.iter().zip(p1).all(|(a, b)| (a + b - 1.0).abs() < 1e-5));
        assert!(sink.scalar("loss") > 0.0);
        assert_eq!(sink.images[0].0, "saliency");
        assert_eq!(sink.images[0].1, [16, 1, 16, 16]);
        return;
    }
    let Some(venv) = venv_with("torch") else {
        return;
    };
    let script = examples().join("torch_classifier.py");
    run_child(
        TEST,
        &[
            ("GANTRY_PY_PLUGIN", script.as_os_str()),
            ("GANTRY_PYTHON", venv.as_os_str()),
        ],
    );
}
