//! Python models as plugins, end to end through the real binary: a `.py` file in a plugin
//! folder is listed, described and trained like a `.so`; its errors are named.
//!
//! Needs a virtualenv with numpy: `GANTRY_TEST_VENV` (default `target/py-venv`, which
//! `.ci/run` makes). Without one these tests print that they were skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry_e2e::{gantry_bin, profile_dir, shared_synth, workspace_root};

fn venv() -> Option<PathBuf> {
    let venv = std::env::var_os("GANTRY_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/py-venv"));
    let ok = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: no virtualenv with numpy at {} (set GANTRY_TEST_VENV)",
            venv.display()
        );
        return None;
    }
    Some(venv)
}

/// The freshest build of the bridge library.
fn bridge() -> PathBuf {
    let top = profile_dir();
    [
        top.join("libgantry_python.so"),
        top.join("deps/libgantry_python.so"),
    ]
    .into_iter()
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max_by_key(|(t, _)| *t)
    .map(|(_, p)| p)
    .expect("libgantry_python.so not built: cargo test --workspace --release builds it")
}

/// A private plugin folder holding the bridge and the given scripts.
fn plugin_folder(dir: &Path, scripts: &[(&str, &str)]) -> PathBuf {
    let folder = dir.join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(bridge(), folder.join("libgantry_python.so")).unwrap();
    for (name, text) in scripts {
        std::fs::write(folder.join(name), text).unwrap();
    }
    folder
}

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("plugins/python/examples").join(name))
        .unwrap_or_else(|e| panic!("example {name}: {e}"))
}

fn run(args: &[&str], venv: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(gantry_bin())
        .args(args)
        .env("VIRTUAL_ENV", venv)
        .env_remove("GANTRY_PY_PLUGIN")
        .env_remove("GANTRY_PYTHON")
        .output()
        .expect("run gantry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gantry train CFG --runs RUNS [--name NAME] --plugins FOLDER -q` in the venv.
fn train(
    cfg: &Path,
    runs: &Path,
    name: Option<&str>,
    plugins: &str,
    venv: &Path,
) -> (i32, String, String) {
    let mut args = vec![
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    args.extend(["--plugins", plugins, "-q"]);
    run(&args, venv)
}

fn config(plugin: &str, data: &Path, epochs: u32, extra: &str) -> String {
    format!(
        r#"(
    plugin: {plugin:?},
    data: (kind: ImageFolder, root: {:?}, size: (32, 32), channels: 1, normal_class: "normal"),
    train: (epochs: {epochs}, batch_size: 16, seed: 0),
    device: "cpu",
    {extra}
)
"#,
        data.display().to_string()
    )
}

fn status(run: &Path) -> String {
    std::fs::read_to_string(run.join("status.ron")).unwrap_or_default()
}

fn latest(status: &str, tag: &str) -> Option<f64> {
    let at = status.find(&format!("(\"{tag}\","))?;
    let rest = &status[at + tag.len() + 4..];
    rest[..rest.find(')')?].trim().parse().ok()
}

/// The numpy model: listed with its own name, trained by name to a good AUROC, its
/// versions in the log.
#[test]
fn a_numpy_model_is_listed_and_trains_by_name() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path(), &[("numpy_ae.py", &example("numpy_ae.py"))]);
    let f = folder.to_str().unwrap();
    let (code, out, err) = run(&["plugins", "ls", "--plugins", f, "--json"], &venv);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let py = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("numpy_ae.py"))
        })
        .unwrap_or_else(|| panic!("numpy_ae.py not listed: {out}"));
    assert_eq!(py["status"], "ok", "{py}");
    let name = py["name"].as_str().unwrap().to_string();
    assert!(
        !listed.as_array().unwrap().iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("libgantry_python.so"))),
        "the bridge itself is not a model: {out}"
    );

    let data = shared_synth(300, 32, 0);
    let cfg = dir.path().join("numpy.ron");
    std::fs::write(&cfg, config(&name, data, 4, "")).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = train(&cfg, &runs, Some("np"), f, &venv);
    let run_dir = runs.join("np");
    assert_eq!(code, 0, "{err}\n{}", status(&run_dir));
    let status = status(&run_dir);
    assert!(status.contains("state: finished"), "{status}");
    let auroc = latest(&status, "test/auroc").unwrap_or_else(|| panic!("{status}"));
    assert!(auroc > 0.9, "test/auroc {auroc}");
    let log = std::fs::read_to_string(run_dir.join("train.log")).unwrap();
    assert!(log.contains("numpy"), "versions in the log: {log}");
    let record = std::fs::read_to_string(run_dir.join("run.ron")).unwrap();
    assert!(record.contains("numpy_ae.py"), "{record}");
}

const RAISES: &str = r#"
import numpy as np
GANTRY_PLUGIN = {"name": "raises", "family": "autoencoder", "version": "0.0.1",
                 "params": {}, "losses": ["loss"], "scores": ["mse"]}

def deep(x):
    raise ValueError(f"bad batch of {len(x)}")

class Model:
    def __init__(self, params, setup):
        pass
    def train_step(self, images, labels):
        return deep(images)
    def eval(self, images, labels):
        return {"scalars": {"loss": 0.0}, "scores": {"mse": np.zeros(len(images))}}
    def save(self, dir):
        pass
    def load(self, dir):
        pass
"#;

/// An exception ends the run `failed` with its type and message in status.ron and the
/// traceback in train.log; the host survives to write them.
#[test]
fn an_exception_fails_the_run_with_its_traceback() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path(), &[("raises.py", RAISES)]);
    let data = shared_synth(300, 32, 0);
    let cfg = dir.path().join("raises.ron");
    std::fs::write(&cfg, config("raises", data, 1, "")).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, _) = train(&cfg, &runs, Some("boom"), folder.to_str().unwrap(), &venv);
    assert_ne!(code, 0);
    let status = status(&runs.join("boom"));
    assert!(status.contains("state: failed"), "{status}");
    assert!(status.contains("ValueError: bad batch of 16"), "{status}");
    let log = std::fs::read_to_string(runs.join("boom/train.log")).unwrap();
    assert!(
        log.contains("Traceback") && log.contains("in deep"),
        "{log}"
    );
}

/// A module that does not import, a missing method and a missing virtualenv are each
/// named, before any run folder is made.
#[test]
fn broken_scripts_and_a_missing_venv_are_named() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broken = "import no_such_module_here\nGANTRY_PLUGIN = {\"name\": \"broken\", \"family\": \"autoencoder\"}\n";
    let no_eval = RAISES
        .replace("\"raises\"", "\"no-eval\"")
        .replace("def eval(", "def evaluate(");
    let folder = plugin_folder(
        dir.path(),
        &[("broken.py", broken), ("no_eval.py", &no_eval)],
    );
    let f = folder.to_str().unwrap();
    let (_, out, _) = run(&["plugins", "ls", "--plugins", f, "--json"], &venv);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reason = |file: &str| -> String {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(file)))
            .map(|e| format!("{} {}", e["status"], e["reason"]))
            .unwrap_or_else(|| panic!("{file} not listed: {out}"))
    };
    let b = reason("broken.py");
    assert!(b.contains("refused") && b.contains("broken.py"), "{b}");
    assert!(b.contains("no_such_module_here"), "{b}");
    let e = reason("no_eval.py");
    assert!(e.contains("refused") && e.contains("eval"), "{e}");

    let data = shared_synth(300, 32, 0);
    let cfg = dir.path().join("venv.ron");
    std::fs::write(
        &cfg,
        config("raises", data, 1, "python: \"/nonexistent/venv\","),
    )
    .unwrap();
    std::fs::write(folder.join("raises.py"), RAISES).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = train(&cfg, &runs, None, f, &venv);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/venv"), "{err}");
    assert!(
        !runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(),
        "a run folder was made"
    );
}

/// A `.py` plugin copied into a watched plugin folder appears in the running
/// dashboard's Plugins view.
#[test]
fn a_dropped_in_script_appears_in_the_plugins_view() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path(), &[]);
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let session = format!("gantry-py-{}", std::process::id());
    let command = format!(
        "VIRTUAL_ENV={} {} watch --runs {} --plugins {}",
        venv.display(),
        gantry_bin().display(),
        runs.display(),
        folder.display()
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux")
    };
    assert!(
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "40",
            &command
        ])
        .status
        .success()
    );
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    std::thread::sleep(Duration::from_millis(800));
    tmux(&["send-keys", "-t", &session, "9"]);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(folder.join("numpy_ae.py"), example("numpy_ae.py")).unwrap();
    let start = Instant::now();
    let found = loop {
        let s = screen();
        // Listed with the name it declares: described, not just found.
        if s.contains("numpy_ae.py") && s.contains("numpy-ae") {
            break Some(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(15) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let last = screen();
    tmux(&["kill-session", "-t", &session]);
    let took = found.unwrap_or_else(|| panic!("the script never appeared:\n{last}"));
    eprintln!("dropped-in .py listed after {took:?}");
    // About 0.25 s here (the folder's settle time plus a child that starts Python and
    // imports numpy); the bound leaves room for a loaded CI machine.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// SIGKILL in the middle of a Python run, then `gantry resume`: the same per-step losses
/// as an uninterrupted run (the model's save/load hold its optimiser state and step).
#[test]
fn a_killed_python_run_resumes_to_the_uninterrupted_losses() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path(), &[("numpy_ae.py", &example("numpy_ae.py"))]);
    let f = folder.to_str().unwrap().to_string();
    let data = shared_synth(300, 32, 0);
    let cfg = dir.path().join("np.ron");
    std::fs::write(&cfg, config("numpy-ae", data, 30, "")).unwrap();
    let runs = dir.path().join("runs");
    let train = |name: &str| {
        let mut cmd = std::process::Command::new(gantry_bin());
        cmd.args([
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
        ])
        .args(["--name", name, "--plugins", &f, "-q"])
        .env("VIRTUAL_ENV", &venv)
        .env_remove("GANTRY_PY_PLUGIN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        cmd
    };
    assert!(train("straight").status().unwrap().success());
    let mut child = train("killed").spawn().unwrap();
    let killed = runs.join("killed");
    let start = Instant::now();
    while gantry::runfs::RunFolder::new(&killed)
        .read_checkpoint("last")
        .ok()
        .flatten()
        .is_none_or(|c| c.epoch < 4)
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        status(&killed).contains("state: running"),
        "killed before it ended"
    );
    let (code, _, err) = run(
        &["resume", killed.to_str().unwrap(), "--plugins", &f, "-q"],
        &venv,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        status(&killed).contains("state: finished"),
        "{}",
        status(&killed)
    );
    let losses = |run: &Path| -> Vec<(u64, f64)> {
        gantry_e2e::scalar_rows(run)
            .into_iter()
            .filter(|r| r.2 == "train/loss")
            .map(|r| (r.0, r.3))
            .collect()
    };
    let (a, b) = (losses(&runs.join("straight")), losses(&killed));
    assert_eq!(
        a.iter().map(|r| r.0).collect::<Vec<_>>(),
        b.iter().map(|r| r.0).collect::<Vec<_>>(),
        "the resumed run has exactly the uninterrupted run's steps"
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x.1 - y.1).abs() / x.1.abs().max(1e-12))
        .fold(0.0, f64::max);
    eprintln!(
        "python resume: {} steps, worst relative train/loss difference {worst:.3e}",
        a.len()
    );
    assert!(worst < 1e-6, "train/loss curves differ by {worst:.3e}");
}
