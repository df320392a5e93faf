//! Orchestration and crash safety, through the real `gantry` binary: detached launch,
//! stop and resume; resuming matches an uninterrupted run; SIGKILL at many moments loses
//! nothing; NaN rollback; plugins replaced under a running run; full and read-only disks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry::runfs::spec::RunRecord;
use gantry::runfs::status::{State, Status};
use gantry::runfs::{CheckpointInfo, RunFolder, read_ron};
use gantry_e2e::{fixture, gantry, gantry_bin, plugin_dir, scalar_rows, small_config};

fn synth_data() -> &'static Path {
    gantry_e2e::shared_synth(128, 16, 5)
}

fn write_config(dir: &Path, epochs: u32, train_extra: &str) -> PathBuf {
    let cfg = dir.join("cfg.ron");
    let text =
        small_config(synth_data(), epochs).replace("seed: 1)", &format!("seed: 1{train_extra})"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `gantry ARGS --plugins <built plugins> -q` as a child.
fn spawn(args: &[&str]) -> Child {
    Command::new(gantry_bin())
        .args(args)
        .args(["--plugins", s(&plugin_dir()), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_to_end(args: &[&str]) -> (i32, String) {
    let out = spawn(args).wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(run: &Path) -> Status {
    RunFolder::new(run).read_status().unwrap()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A run's TensorBoard event files, read in order with their restarts applied, hold the
/// rows of its scalars.csv (as the f32 TensorBoard keeps).
fn assert_events_hold_scalars_csv(run: &Path) {
    let events: Vec<(String, u64, f32)> = gantry::interop::tfevents::read_run_scalars(run)
        .unwrap()
        .into_iter()
        .map(|p| (p.tag, p.step as u64, p.value as f32))
        .collect();
    let csv: Vec<(String, u64, f32)> = scalar_rows(run)
        .into_iter()
        .map(|(step, _, tag, value)| (tag, step, value as f32))
        .collect();
    assert_eq!(events, csv, "{}", run.display());
}

fn train_losses(run: &Path) -> Vec<(u64, f64)> {
    scalar_rows(run)
        .into_iter()
        .filter(|r| r.2 == "train/loss")
        .map(|r| (r.0, r.3))
        .collect()
}

#[test]
fn killed_and_resumed_run_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 8, "");
    let runs = dir.path().join("runs");
    let (code, err) = run_to_end(&["train", s(&cfg), "--runs", s(&runs), "--name", "straight"]);
    assert_eq!(code, 0, "{err}");

    // The same config, SIGKILLed once its fourth epoch is evaluated, then resumed.
    let mut child = spawn(&["train", s(&cfg), "--runs", s(&runs), "--name", "resumed"]);
    let run = runs.join("resumed");
    wait_until("epoch 4", Duration::from_secs(120), || {
        RunFolder::new(&run)
            .read_checkpoint("last")
            .ok()
            .flatten()
            .is_some_and(|c| c.epoch >= 4)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = RunFolder::new(&run)
        .read_checkpoint("last")
        .unwrap()
        .unwrap();
    let (code, err) = run_to_end(&["resume", s(&run)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status(&run).state, State::Finished);
    // The resumed runner wrote a second event file; together they hold what scalars.csv
    // holds (its restart dropped the steps the kill repeated).
    assert_eq!(gantry::interop::tfevents::gantry_event_files(&run).len(), 2);
    assert_events_hold_scalars_csv(&run);

    let a = train_losses(&runs.join("straight"));
    let b = train_losses(&run);
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
    let last = |run: &Path, tag: &str| {
        scalar_rows(run)
            .into_iter()
            .rev()
            .find(|r| r.2 == tag)
            .unwrap()
            .3
    };
    let (va, vb) = (
        last(&runs.join("straight"), "val/loss"),
        last(&run, "val/loss"),
    );
    eprintln!(
        "resume equivalence: killed after epoch {} (step {}); {} steps; worst relative \
         train/loss difference {worst:.3e}; final val/loss {va:.8} vs {vb:.8}",
        killed_at.epoch,
        killed_at.step,
        a.len()
    );
    assert!(worst < 1e-4, "train/loss curves differ by {worst:.3e}");
    assert!((va - vb).abs() / va < 1e-4, "final val/loss {va} vs {vb}");
}

/// Which moment a kill aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// A random time into the run: most often in the middle of a training step.
    Random,
    /// While a checkpoint directory is being written.
    Checkpoint,
    /// Right after an epoch's last step: during its evaluation.
    Eval,
}

#[test]
fn sigkill_at_twenty_moments_then_resume_loses_nothing() {
    const EPOCHS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), EPOCHS as u32, ", checkpoint_every: 3");
    let runs = dir.path().join("runs");
    let run = runs.join("victim");
    let ckpts = run.join("checkpoints");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut steps_per_epoch = 0;
    let mut hits: Vec<(Moment, &str, u64)> = Vec::new();
    for i in 0..20 {
        let mut child = if i == 0 {
            spawn(&["train", s(&cfg), "--runs", s(&runs), "--name", "victim"])
        } else {
            spawn(&["resume", s(&run)])
        };
        let moment = [Moment::Random, Moment::Checkpoint, Moment::Eval][i % 3];
        let steps_before = last_train_step(&run);
        let limit = Duration::from_secs(60);
        // Past start-up (plugin load, data) into training first.
        wait_until("training", limit, || last_train_step(&run) > steps_before);
        if i == 0 {
            wait_until("a first checkpoint", limit, || ckpts.join("last").exists());
        }
        if steps_per_epoch == 0 {
            let st = status(&run);
            steps_per_epoch = st.total_steps / u64::from(st.epochs);
        }
        let during = match moment {
            Moment::Random => {
                std::thread::sleep(Duration::from_millis(rand(150)));
                "step"
            }
            Moment::Checkpoint => {
                // A checkpoint takes milliseconds: spin on the folder until one is seen
                // half-written (or give up after a while and kill anyway).
                let start = Instant::now();
                let mut seen = false;
                while !seen && start.elapsed() < Duration::from_secs(5) {
                    seen = std::fs::read_dir(&ckpts).is_ok_and(|d| {
                        d.flatten()
                            .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                    });
                }
                if seen { "checkpoint write" } else { "step" }
            }
            Moment::Eval => {
                wait_until("an epoch end", limit, || {
                    let step = last_train_step(&run);
                    step > steps_before && step.is_multiple_of(steps_per_epoch)
                });
                "eval"
            }
        };
        child.kill().unwrap();
        child.wait().unwrap();
        hits.push((moment, during, last_train_step(&run)));
    }
    assert!(
        last_train_step(&run) < EPOCHS * steps_per_epoch,
        "the run must still be unfinished after the kills"
    );
    let (code, err) = run_to_end(&["resume", s(&run)]);
    assert_eq!(code, 0, "{err}");
    let count = |what: &str| hits.iter().filter(|h| h.1 == what).count();
    eprintln!(
        "20 SIGKILLs: {} during a step, {} during a checkpoint write, {} during an eval; \
         (moment, hit, last step) = {hits:?}",
        count("step"),
        count("checkpoint write"),
        count("eval")
    );

    // Every file parses.
    let folder = RunFolder::new(&run);
    let st = folder.read_status().unwrap();
    assert_eq!(st.state, State::Finished, "{st:?}");
    let record: RunRecord = read_ron(&folder.run_file()).unwrap();
    assert_eq!(record.id, "victim");
    for which in ["last", "best"] {
        let info: CheckpointInfo = folder.read_checkpoint(which).unwrap().unwrap();
        assert!(info.step > 0);
    }
    for epoch in folder.score_epochs() {
        gantry::runfs::scores::read(&folder.scores_file(epoch)).unwrap();
    }
    // Steps strictly increase per tag, and training has every step exactly once.
    let rows = scalar_rows(&run);
    let mut by_tag: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for r in &rows {
        by_tag.entry(r.2.as_str()).or_default().push(r.0);
    }
    for (tag, steps) in &by_tag {
        assert!(
            steps.windows(2).all(|w| w[0] < w[1]),
            "{tag}: steps not strictly increasing: {steps:?}"
        );
    }
    let train: Vec<u64> = by_tag["train/loss"].clone();
    assert_eq!(train, (1..=EPOCHS * steps_per_epoch).collect::<Vec<u64>>());
    assert_eq!(
        by_tag["val/loss"].len() as u64,
        EPOCHS,
        "one evaluation per epoch"
    );
    // The last checkpoint loads: resuming the finished run restores it and ends at once.
    let (code, err) = run_to_end(&["resume", s(&run)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("finished"), "{err}");
    // The event files of all those runners, torn records cut and restarts applied, hold
    // what scalars.csv holds.
    assert_events_hold_scalars_csv(&run);
}

fn last_train_step(run: &Path) -> u64 {
    train_losses_or_empty(run).last().map_or(0, |r| r.0)
}

fn train_losses_or_empty(run: &Path) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(run.join("scalars.csv")) else {
        return vec![];
    };
    text.lines()
        .filter(|l| l.ends_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 5 && f[3] == "train/loss")
                .then(|| Some((f[1].parse().ok()?, f[4].parse().ok()?)))
                .flatten()
        })
        .collect()
}

#[test]
fn nan_rolls_back_with_a_lower_learning_rate_or_fails_naming_step_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let fixture_cfg = |retries: u32| {
        small_config(synth_data(), 3)
            .replace(
                "\"conv-ae\"",
                &format!("{:?}", fixture("ok").display().to_string()),
            )
            .replace(
                "{\"channels\": [8, 16], \"latent\": 16}",
                "{\"mode\": \"diverge\"}",
            )
            .replace(
                "lr: 0.002, seed: 1)",
                &format!(
                    "lr: 0.04, seed: 1, checkpoint_every: 2, \
                     on_nan: Rollback(lr_factor: 0.5, retries: {retries}))"
                ),
            )
    };
    let runs = dir.path().join("runs");
    let cfg = dir.path().join("rollback.ron");
    std::fs::write(&cfg, fixture_cfg(3)).unwrap();
    let (code, err) = run_to_end(&["train", s(&cfg), "--runs", s(&runs), "--name", "rb"]);
    assert_eq!(code, 0, "{err}");
    let run = runs.join("rb");
    assert_eq!(status(&run).state, State::Finished);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    // 0.04 diverges, 0.02 diverges, 0.01 trains.
    assert_eq!(log.matches("rolling back").count(), 2, "{log}");
    let info = RunFolder::new(&run)
        .read_checkpoint("last")
        .unwrap()
        .unwrap();
    assert_eq!(info.lr, Some(0.01));
    assert_eq!(info.rollbacks, 2);
    let steps: Vec<u64> = train_losses(&run).iter().map(|r| r.0).collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    assert!(train_losses(&run).iter().all(|r| r.1.is_finite()));
    // One event file, restarted at each rollback, ends as scalars.csv does.
    assert_eq!(gantry::interop::tfevents::gantry_event_files(&run).len(), 1);
    assert_events_hold_scalars_csv(&run);

    let cfg = dir.path().join("fail.ron");
    std::fs::write(&cfg, fixture_cfg(1)).unwrap();
    let (code, err) = run_to_end(&["train", s(&cfg), "--runs", s(&runs), "--name", "nanfail"]);
    assert_eq!(code, 1, "{err}");
    let st = status(&runs.join("nanfail"));
    assert_eq!(st.state, State::Failed);
    let error = st.error.unwrap();
    // Step 4 diverged, the one rollback went back to the step-2 checkpoint at lr 0.02,
    // whose fresh instance diverged on its fourth step: step 6, and no retries left.
    assert!(
        error.contains("step 6") && error.contains("non-finite loss"),
        "{error}"
    );
}

/// The session id of a process (field 6 of /proc/PID/stat).
fn session_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(3)?.parse().ok()
}

#[test]
fn detached_launch_stop_and_resume_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 400, "");
    let runs = dir.path().join("runs");
    let plugins = plugin_dir();
    let launched = Instant::now();
    let (code, out, err) = gantry(&[
        "train",
        s(&cfg),
        "--runs",
        s(&runs),
        "--name",
        "bg",
        "--detach",
        "--plugins",
        s(&plugins),
    ]);
    assert_eq!(code, 0, "{err}");
    let run = PathBuf::from(out.trim());
    assert_eq!(run, runs.join("bg"));
    // Queued at once (the folder is reserved before the runner starts), then running.
    let first = status(&run).state;
    assert!(matches!(first, State::Queued | State::Running), "{first:?}");
    wait_until("running", Duration::from_secs(5), || {
        RunFolder::new(&run)
            .read_status()
            .is_ok_and(|s| s.state == State::Running && s.pid != 0)
    });
    let shown_after = launched.elapsed();
    let pid = status(&run).pid;
    assert_ne!(
        session_of(pid),
        session_of(std::process::id()),
        "the runner has its own session"
    );
    assert!(
        std::fs::read_to_string(run.join("config.ron"))
            .unwrap()
            .contains(&synth_data().display().to_string()),
        "the reserved folder keeps the submitted config, with absolute data paths"
    );

    // A second runner on the same folder is refused while the first holds it.
    let (code, _, err) = gantry(&["resume", s(&run), "--plugins", s(&plugins), "-q"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("still running") || err.contains("already being trained"),
        "{err}"
    );

    let (code, _, err) = gantry(&["stop", s(&run), "--wait", "60"]);
    assert_eq!(code, 0, "{err}");
    let st = status(&run);
    assert_eq!(st.state, State::Stopped, "{st:?}");
    let stopped_step = st.step;
    assert!(run.join("checkpoints/last/model.safetensors").is_file());

    let (code, _, err) = gantry(&["resume", s(&run), "--detach", "--plugins", s(&plugins)]);
    assert_eq!(code, 0, "{err}");
    wait_until("resumed progress", Duration::from_secs(60), || {
        train_losses_or_empty(&run)
            .last()
            .is_some_and(|r| r.0 > stopped_step + 2)
    });
    let (code, _, err) = gantry(&["stop", s(&run), "--force", "--wait", "30"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = gantry(&["runs", "ls", "--json", "--runs", s(&runs)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\"crashed\""),
        "a SIGKILLed run shows as crashed: {out}"
    );
    let (code, _, err) = gantry(&["stop", s(&run)]);
    assert_ne!(code, 0);
    assert!(err.contains("no runner"), "{err}");
    eprintln!("detached run showed as running {shown_after:?} after launch");
}

#[test]
fn a_plugin_replaced_under_a_running_run_does_not_touch_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let lib = plugins.join("libconv_ae.so");
    std::fs::copy(plugin_dir().join("libconv_ae.so"), &lib).unwrap();
    let cfg = write_config(dir.path(), 6, "");
    let runs = dir.path().join("runs");
    let child = Command::new(gantry_bin())
        .args(["train", s(&cfg), "--runs", s(&runs), "--name", "old", "-q"])
        .args(["--plugins", s(&plugins)])
        .env("GANTRY_PLUGIN_PATH", "")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = runs.join("old");
    wait_until("training", Duration::from_secs(60), || {
        !train_losses_or_empty(&run).is_empty()
    });
    // Overwrite the file in place (what `cp new.so libconv_ae.so` does): a process that
    // had mapped this very file would crash on its next page fault.
    std::fs::write(&lib, b"\x7fELF garbage, not a library").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&run).state, State::Finished);
    // The next run uses the new file, and says what is wrong with it.
    let out = Command::new(gantry_bin())
        .args(["train", s(&cfg), "--runs", s(&runs), "--name", "new", "-q"])
        .args(["--plugins", s(&plugins)])
        .env("GANTRY_PLUGIN_PATH", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&lib.display().to_string()), "{err}");
}

#[test]
fn insecure_plugins_and_bad_run_names_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let lib = plugins.join("libconv_ae.so");
    std::fs::copy(plugin_dir().join("libconv_ae.so"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let cfg = write_config(dir.path(), 1, "");
    let runs = dir.path().join("runs");
    let train = |extra: &[&str]| {
        Command::new(gantry_bin())
            .args([
                "train",
                s(&cfg),
                "--runs",
                s(&runs),
                "-q",
                "--plugins",
                s(&plugins),
            ])
            .args(extra)
            .env("GANTRY_PLUGIN_PATH", "")
            .output()
            .unwrap()
    };
    let out = train(&["--name", "loose"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("writable by other users") && err.contains("chmod"),
        "{err}"
    );
    assert!(!runs.join("loose").exists());
    let out = train(&["--name", "loose", "--allow-insecure-plugins"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    for bad in ["../escape", ".hidden", "a/b", "x\u{1b}[31m"] {
        let out = train(&["--name", bad]);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--name"), "{err}");
        assert!(
            !err.contains('\u{1b}'),
            "the error echoes no raw escape: {err:?}"
        );
    }
    assert!(!dir.path().join("escape").exists());
}

/// Runs `script` as root of a private user and mount namespace (`unshare -rm`), where it
/// may mount a tmpfs. `None` when this machine does not allow unprivileged namespaces.
fn in_mount_namespace(script: &str) -> Option<std::process::Output> {
    let probe = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-rm", "sh", "-c", script])
            .output()
            .unwrap(),
    )
}

#[test]
fn read_only_or_full_run_root_is_a_clear_error_and_written_files_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), 400, ", checkpoint_every: 2");
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let gantry = gantry_bin();
    let plugins = plugin_dir();
    // Read-only: nothing can be created; the error names the run root.
    let script = format!(
        "mount -t tmpfs -o size=4m tmpfs {runs} && mount -o remount,ro {runs} && \
         {gantry} train {cfg} --runs {runs} --name ro --plugins {plugins} -q",
        runs = s(&runs),
        gantry = s(&gantry),
        cfg = s(&cfg),
        plugins = s(&plugins),
    );
    let Some(out) = in_mount_namespace(&script) else {
        eprintln!("SKIPPED: unprivileged user namespaces are not available here");
        return;
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(s(&runs)) && err.contains("Read-only file system"),
        "{err}"
    );

    // Full: a 160 KiB run root fills while training. The run fails with ENOSPC named, and
    // what was written before still parses and resumes elsewhere.
    let keep = dir.path().join("kept");
    let script = format!(
        "mount -t tmpfs -o size=160k tmpfs {runs} && \
         {gantry} train {cfg} --runs {runs} --name full --plugins {plugins}; \
         echo exit=$?; cp -a {runs}/full {keep}",
        runs = s(&runs),
        gantry = s(&gantry),
        cfg = s(&cfg),
        plugins = s(&plugins),
        keep = s(&keep),
    );
    let out = in_mount_namespace(&script).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exit=1"), "{stdout} {err}");
    assert!(err.contains("No space left on device"), "{err}");
    let folder = RunFolder::new(&keep);
    folder.read_status().expect("status.ron still parses");
    folder.read_record().expect("run.ron still parses");
    let info = folder
        .read_checkpoint("last")
        .expect("checkpoint.ron parses")
        .expect("a checkpoint was written before the disk filled");
    assert!(info.step > 0);
    // Resuming the copy on a healthy disk goes on from that checkpoint.
    let epochs = (info.epoch + 1).to_string();
    let (code, err) = run_to_end(&["resume", s(&keep), "--epochs", &epochs]);
    assert_eq!(code, 0, "{err}");
    let steps: Vec<u64> = train_losses(&keep).iter().map(|r| r.0).collect();
    assert!(steps.windows(2).all(|w| w[1] == w[0] + 1), "{steps:?}");
}
