//! The real dashboard in tmux, driven as a person would: open a fixture root, navigate,
//! filter, watch a scalar line appear, resize, open help, quit with a restored terminal.
//! Needs tmux (`.ci/run` installs it).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use gantry::fixtures;
use gantry_e2e::tmux::Tmux;
use gantry_e2e::{gantry, gantry_bin, plugin_dir, small_config};

fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

#[test]
fn dashboard_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    std::fs::create_dir(&root).unwrap();
    fixtures::write_standard_root(&root).unwrap();
    let command = format!(
        "{} watch --runs {}; echo EXIT=$?; sleep 30",
        gantry_bin().display(),
        root.display()
    );
    let tmux = Tmux::start(&command, 80, 24);
    let output = dir.path().join("terminal.out");
    tmux.record(&output);
    let (screen, _) = tmux.wait_for("the runs list", |s| s.contains("ae-running"));
    assert!(screen.contains("runs 5/5"), "{screen}");
    assert!(
        screen.contains("evil\\u{1b}[31mred"),
        "escaped run name: {screen}"
    );

    // Idle means idle: nothing changes on disk, so nothing is written to the terminal
    // (a liveness tick may redraw, but an unchanged frame produces no bytes).
    std::thread::sleep(Duration::from_millis(500));
    let before = std::fs::metadata(&output).unwrap().len();
    std::thread::sleep(Duration::from_millis(4500));
    let idle_bytes = std::fs::metadata(&output).unwrap().len() - before;
    assert_eq!(idle_bytes, 0, "bytes written while idle");

    // Metrics of the selected (newest) run, then a new evaluation appended live.
    tmux.keys(&["3"]);
    tmux.wait_for("the metrics view", |s| {
        s.contains("test/auroc") && s.contains("epoch")
    });
    append(
        &root.join("ae-running/scalars.csv"),
        "1800000000.000,40,4,val/loss,0.4242\n",
    );
    let (_, latency) = tmux.wait_for("the appended scalar", |s| s.contains("0.4242"));
    eprintln!("appended scalar on screen after {latency:?}");
    // A half-written line stays off screen until its newline arrives.
    append(
        &root.join("ae-running/scalars.csv"),
        "1800000001.000,41,4,val/loss,0.777",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!tmux.screen().contains("0.777"), "partial line shown");
    append(&root.join("ae-running/scalars.csv"), "7\n");
    tmux.wait_for("the completed line", |s| s.contains("0.7777"));

    // Filter by substring.
    tmux.keys(&["/", "f", "a", "i", "l", "Enter"]);
    let (screen, _) = tmux.wait_for("the filtered list", |s| s.contains("runs 1/5"));
    assert!(
        screen.contains("ae-failed") && !screen.contains("ae-finished"),
        "{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("the cleared filter", |s| s.contains("runs 5/5"));

    // A new run folder appears without a restart; a deleted one vanishes.
    let mut extra = fixtures::FixtureRun::new("ae-new", gantry::runfs::status::State::Running, 1);
    extra.age = 10.0;
    fixtures::write_run(&root, &extra).unwrap();
    tmux.wait_for("the new run", |s| {
        s.contains("ae-new") && s.contains("runs 6/6")
    });
    std::fs::remove_dir_all(root.join("ae-new")).unwrap();
    tmux.wait_for("the deleted run to vanish", |s| {
        !s.contains("ae-new") && s.contains("runs 5/5")
    });

    // Resize below the minimum and back.
    tmux.resize(50, 14);
    tmux.wait_for("the too-small message", |s| {
        s.contains("terminal too small")
    });
    tmux.resize(120, 40);
    tmux.wait_for("the full layout", |s| {
        s.contains("1 Overview") && s.contains("ae-running")
    });

    // Help opens and any key closes it.
    tmux.keys(&["?"]);
    tmux.wait_for("help", |s| s.contains(" keys ") && s.contains("threshold"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("help closed", |s| !s.contains(" keys "));

    // Quit: exit 0, and the last bytes written restore the terminal: leave the alternate
    // screen and show the cursor. (The bytes are checked rather than the pane: tmux 3.3
    // keeps alternate-screen content in the pane after a resize, for any program.)
    tmux.keys(&["q"]);
    let (screen, _) = tmux.wait_for("exit", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    std::thread::sleep(Duration::from_millis(100));
    let bytes = std::fs::read(&output).unwrap();
    let tail = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(64)..]).into_owned();
    let leave = tail.rfind("\u{1b}[?1049l").expect("alternate screen left");
    let cursor = tail.rfind("\u{1b}[?25h").expect("cursor shown");
    assert!(
        leave < cursor && cursor < tail.rfind("EXIT=0").unwrap(),
        "{tail:?}"
    );
}

/// The orchestration keys on a real runner: `x` `y` stops it (SIGTERM, checkpoint), `r`
/// `y` resumes it, and the runner outlives the dashboard.
#[test]
fn stop_and_resume_from_the_dashboard_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = gantry(&[
        "data",
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--n",
        "96",
        "--size",
        "16",
    ]);
    assert_eq!(code, 0, "{err}");
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, small_config(&data, 5000)).unwrap();
    let root = dir.path().join("runs");
    let plugins = plugin_dir();
    let (code, _, err) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        root.to_str().unwrap(),
        "--name",
        "live",
        "--detach",
        "--plugins",
        plugins.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let run = root.join("live");
    let command = format!(
        "{} watch --runs {} --plugins {}; echo EXIT=$?; sleep 30",
        gantry_bin().display(),
        root.display(),
        plugins.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("the running run", |s| s.contains("▶  live"));

    tmux.keys(&["x"]);
    tmux.wait_for("the stop confirmation", |s| s.contains("Stop run live?"));
    tmux.keys(&["y"]);
    let (screen, _) = tmux.wait_for("the stopped run", |s| s.contains("■  live"));
    assert!(screen.contains("SIGTERM sent to live"), "{screen}");
    assert!(run.join("checkpoints/last/checkpoint.ron").is_file());

    tmux.keys(&["r"]);
    tmux.wait_for("the resume confirmation", |s| {
        s.contains("Resume run live?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the resumed run", |s| s.contains("▶  live"));

    // Quitting the dashboard leaves the detached runner training.
    tmux.keys(&["q"]);
    tmux.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
    let status = gantry::runfs::RunFolder::new(&run).read_status().unwrap();
    assert!(
        gantry::runfs::status::process_alive(status.pid),
        "the runner outlives the dashboard"
    );
    let (code, _, err) = gantry(&["stop", run.to_str().unwrap(), "--force", "--wait", "30"]);
    assert_eq!(code, 0, "{err}");
}

/// The user's config file as a person meets it: plain `gantry` opens the roots it names
/// and takes its key bindings; a broken file is refused before the terminal is touched,
/// naming its line.
#[test]
fn user_config_file_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab-runs");
    std::fs::create_dir(&root).unwrap();
    fixtures::write_standard_root(&root).unwrap();
    let config = dir.path().join("config.ron");
    std::fs::write(
        &config,
        format!(
            "(\n    runs: [{:?}],\n    keys: {{\"quit\": \"Q\"}},\n    mouse: false,\n)\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    // From an empty folder: without the file there would be no runs here.
    let command = format!(
        "cd {} && GANTRY_CONFIG={} {}; echo EXIT=$?; sleep 30",
        dir.path().display(),
        config.display(),
        gantry_bin().display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    let (screen, _) = tmux.wait_for("the config's run root", |s| s.contains("ae-running"));
    assert!(screen.contains("runs 5/5"), "{screen}");
    tmux.keys(&["q"]);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !tmux.screen().contains("EXIT="),
        "q was rebound to Q but still quit"
    );
    tmux.keys(&["Q"]);
    tmux.wait_for("quit with the rebound key", |s| s.contains("EXIT=0"));

    std::fs::write(&config, "(\n    runs: [\"x\"],\n    mouse: perhaps,\n)\n").unwrap();
    let (code, _, err) = gantry_e2e::gantry_with_env(&["watch"], &[("GANTRY_CONFIG", &config)]);
    assert_ne!(code, 0);
    let named = format!("{}:3:", config.display());
    assert!(err.contains(&named), "error does not name the line: {err}");
}
