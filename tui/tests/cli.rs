//! The real `gantry` binary on bad input: every mistake is named, nothing panics.
//! (Its presence also makes `cargo test` build the binary the workspace tests drive.)

use std::process::Command;

fn gantry(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .output()
        .expect("run gantry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_config_is_named() {
    let (code, _, err) = gantry(&["train", "/nonexistent/cfg.ron"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/cfg.ron"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn no_tfevents_with_a_detached_runner_is_refused_not_ignored() {
    let (code, _, err) = gantry(&["train", "/nonexistent/cfg.ron", "--detach", "--no-tfevents"]);
    assert_eq!(code, 1);
    assert!(err.contains("--no-tfevents is not passed on"), "{err}");
    // The later of --tfevents / --no-tfevents wins.
    let (code, _, err) = gantry(&[
        "train",
        "/nonexistent/cfg.ron",
        "--detach",
        "--no-tfevents",
        "--tfevents",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/cfg.ron"), "{err}");
}

#[test]
fn unknown_subcommand_prints_usage() {
    let (code, _, err) = gantry(&["trian"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn invalid_synth_option_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    let (code, _, err) = gantry(&[
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--size",
        "3",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("size"), "{err}");
}

#[test]
fn describe_of_a_non_plugin_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.so");
    std::fs::write(&path, "text").unwrap();
    let (code, out, _) = gantry(&["plugins", "describe", "--json", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("\"status\":\"refused\""), "{out}");
    assert!(out.contains("not an ELF file"), "{out}");
}

#[test]
fn runs_ls_of_an_empty_root_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = gantry(&["runs", "ls", "--runs", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("no runs"), "{out}");
}
