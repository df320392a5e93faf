//! The Slurm launcher on a host without Slurm: the real `gantry` binary, with a PATH that
//! holds no Slurm tool, says so plainly, marks the run failed, and never panics. (The
//! real-Slurm tests are tests/tests/slurm.rs.)

use std::path::Path;
use std::process::Command;

fn gantry_without_slurm(args: &[&str], empty_path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env("PATH", empty_path)
        .env_remove("SLURM_JOB_ID")
        .output()
        .expect("run gantry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CONFIG: &str = r#"(
    plugin: "conv-ae",
    data: (kind: ImageFolder, root: "data", size: (16, 16)),
    train: (epochs: 1, batch_size: 8),
    launcher: Slurm(partition: "debug", gres: "gpu:1", extra: ["--qos=normal"]),
)
"#;

#[test]
fn a_slurm_launch_without_slurm_names_the_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("bin");
    std::fs::create_dir(&empty).unwrap();
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, CONFIG).unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = gantry_without_slurm(
        &[
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
            "--name",
            "nosl",
        ],
        &empty,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("sbatch not found: is Slurm installed on this host?"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The reserved folder says why the run never started, and keeps its script.
    let run = runs.join("nosl");
    let status = std::fs::read_to_string(run.join("status.ron")).unwrap();
    assert!(status.contains("state: failed"), "{status}");
    assert!(status.contains("sbatch not found"), "{status}");
    let script = std::fs::read_to_string(run.join("slurm.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --gres=gpu:1\n"), "{script}");
    assert!(script.contains("#SBATCH --qos=normal\n"), "{script}");

    // A run whose status names a Slurm job: stop needs scancel.
    std::fs::write(
        run.join("status.ron"),
        status
            .replace("state: failed", "state: queued")
            .replace("slurm_job: None", "slurm_job: Some(\"41\")"),
    )
    .unwrap();
    let (code, _, err) = gantry_without_slurm(&["stop", run.to_str().unwrap()], &empty);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("scancel not found: is Slurm installed on this host?"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_slurm_option_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(
        &cfg,
        CONFIG.replace(r#"partition: "debug""#, r#"partition: "debug\nrm -rf ~""#),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let (code, _, err) = gantry_without_slurm(
        &[
            "train",
            cfg.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("launcher Slurm partition"), "{err}");
    assert!(!runs.exists(), "nothing is written for an invalid config");
}
