//! Remote hosts through a real OpenSSH server on a loopback port (a throwaway instance,
//! see `gantry_e2e::sshd`), driven through the real binary in tmux: a remote root listed
//! beside a local one and tailed live, a killed ssh client survived with no row lost or
//! doubled, a login banner tolerated, a missing remote gantry, another protocol version
//! and a refused key named, and stop and resume of a remote run whose runner outlives the
//! dashboard. Without sshd or tmux these tests say they were skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry::fixtures;
use gantry_e2e::sshd::{HOST, Sshd};
use gantry_e2e::tmux::Tmux;
use gantry_e2e::{gantry_bin, gantry_with_env, plugin_dir, shared_synth, small_config};

fn have_tmux() -> bool {
    let ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok();
    if !ok {
        eprintln!("skipped: no tmux");
    }
    ok
}

/// A script that prints a login banner, then runs gantry with the test's plugins.
fn wrapper(dir: &Path) -> PathBuf {
    let path = dir.join("gantry-with-banner");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho 'Welcome to gpu1 (Debian GNU/Linux)'\necho 'Last login: today from 10.0.0.1'\n\
             GANTRY_PLUGIN_PATH={} exec {} \"$@\"\n",
            plugin_dir().display(),
            gantry_bin().display()
        ),
    )
    .unwrap();
    make_executable(&path);
    path
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The dashboard over `roots` in tmux, reaching hosts through `sshd`.
fn dashboard(
    sshd: &Sshd,
    cache: &Path,
    roots: &[String],
    remote_gantry: &Path,
    ssh: Option<&str>,
) -> Tmux {
    let mut command = format!(
        "GANTRY_SSH='{}' XDG_CACHE_HOME={} {} --no-mouse --remote-gantry {}",
        ssh.map_or_else(|| sshd.gantry_ssh(), str::to_string),
        cache.display(),
        gantry_bin().display(),
        remote_gantry.display()
    );
    for r in roots {
        command.push_str(&format!(" --runs {r}"));
    }
    command.push_str("; echo EXIT=$?; sleep 30");
    Tmux::start(&command, 150, 32)
}

/// The mirror's copy of `rel` under the cache folder (one remote root per test).
fn mirrored(cache: &Path, rel: &str) -> Option<PathBuf> {
    fn walk(dir: &Path, rel: &str) -> Option<PathBuf> {
        let candidate = dir.join(rel);
        if candidate.is_file() {
            return Some(candidate);
        }
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            if e.path().is_dir()
                && let Some(found) = walk(&e.path(), rel)
            {
                return Some(found);
            }
        }
        None
    }
    walk(&cache.join("gantry/remote"), rel)
}

/// `gantry train CFG --runs REMOTE --name NAME` on the "remote" host (this machine),
/// with the test's plugins; `--detach`, or a Slurm launcher, returns at once.
fn start_run(cfg: &Path, remote: &Path, name: &str, extra: &[&str]) {
    let plugins = plugin_dir();
    let mut args = vec![
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        remote.to_str().unwrap(),
        "--name",
        name,
    ];
    args.extend(extra);
    args.extend(["--plugins", plugins.to_str().unwrap()]);
    let (code, _, err) = gantry_with_env(&args, &[]);
    assert_eq!(code, 0, "{err}");
}

/// Waits until the mirror's copy of `rel` holds exactly `want`.
fn wait_mirrored(cache: &Path, rel: &str, want: &[u8], what: &str, limit: Duration) {
    wait_until(what, limit, || {
        mirrored(cache, rel)
            .and_then(|p| std::fs::read(p).ok())
            .as_deref()
            == Some(want)
    });
}

fn wait_until(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_remote_root_is_tailed_live_beside_a_local_one_and_survives_a_killed_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote-runs");
    let local = dir.path().join("local-runs");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    fixtures::write_standard_root(&remote).unwrap();
    let cache = dir.path().join("cache");
    let roots = [
        local.display().to_string(),
        format!("{HOST}:{}", remote.display()),
    ];
    // A local run too: then the list has a host column.
    std::fs::create_dir_all(local.join("here")).unwrap();
    for f in ["run.ron", "status.ron", "scalars.csv"] {
        std::fs::copy(
            remote.join("ae-finished").join(f),
            local.join("here").join(f),
        )
        .unwrap();
    }
    let tmux = dashboard(&sshd, &cache, &roots, &wrapper(dir.path()), None);
    let (screen, waited) = tmux.wait_for("the remote runs beside the local one", |s| {
        s.contains("ae-running") && s.contains("here") && s.contains(HOST)
    });
    assert!(
        screen.contains("host"),
        "a host column when two hosts are shown:\n{screen}"
    );
    eprintln!("remote runs listed after {waited:?}");

    // A run on the remote host writes rows; its ssh connection is killed half-way.
    let scalars = remote.join("ae-running/scalars.csv");
    let write_rows = |from: u64, to: u64| {
        for step in from..to {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&scalars)
                .unwrap();
            writeln!(
                f,
                "{}.5,{step},1,train/loss,{}",
                1_700_000_000 + step,
                1.0 / step as f64
            )
            .unwrap();
            drop(f);
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    write_rows(1000, 1100);
    let remote_now = std::fs::read(&scalars).unwrap();
    wait_mirrored(
        &cache,
        "ae-running/scalars.csv",
        &remote_now,
        "the first rows in the mirror",
        Duration::from_secs(10),
    );
    let killed = sshd.kill_clients();
    assert!(
        killed >= 1,
        "an ssh client to kill; screen:\n{}",
        tmux.screen()
    );
    let (screen, _) = tmux.wait_within("the reconnecting badge", Duration::from_secs(10), |s| {
        s.contains("reconnecting")
    });
    assert!(
        screen.contains(&format!("{HOST}: the connection was lost")),
        "{screen}"
    );
    write_rows(1100, 1200);
    let remote_end = std::fs::read(&scalars).unwrap();
    wait_mirrored(
        &cache,
        "ae-running/scalars.csv",
        &remote_end,
        "every row, once, after the reconnect",
        Duration::from_secs(30),
    );
    tmux.wait_for("the badge to go", |s| !s.contains("reconnecting"));

    // Sample images stay on the host until the Samples view shows them.
    let pngs = |root: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for run in std::fs::read_dir(root).unwrap().flatten() {
            if let Ok(files) = std::fs::read_dir(run.path().join("samples")) {
                out.extend(files.flatten().map(|f| f.path()));
            }
        }
        out
    };
    let mirror_root = mirrored(&cache, "ae-running/scalars.csv").unwrap();
    let mirror_root = mirror_root
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let listed = pngs(&mirror_root);
    assert!(!listed.is_empty(), "the fixture's sample images are listed");
    assert!(
        listed
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() == 0),
        "not fetched before they are shown"
    );
    // A finished run: nothing else on screen changes while its images arrive.
    tmux.keys(&["/"]);
    for c in "ae-finished".chars() {
        tmux.keys(&[&c.to_string()]);
    }
    tmux.keys(&["Enter"]);
    tmux.wait_for("the finished run alone", |s| s.contains("runs 1/6"));
    tmux.keys(&["5"]);
    wait_until("a shown image fetched", Duration::from_secs(10), || {
        pngs(&mirror_root).iter().any(|p| {
            let rel = p.strip_prefix(&mirror_root).unwrap();
            std::fs::metadata(p).unwrap().len() > 0
                && std::fs::read(p).ok() == std::fs::read(remote.join(rel)).ok()
        })
    });
    let (screen, _) = tmux.wait_for("the image drawn", |s| !s.contains("fetching"));
    assert!(
        screen.contains("reconstruction") && screen.contains("▀▀▀"),
        "{screen}"
    );
    tmux.keys(&["q"]);
    tmux.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
}

#[test]
fn a_missing_gantry_another_version_and_a_refused_key_are_named() {
    let Some(sshd) = Sshd::start() else { return };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("runs");
    std::fs::create_dir_all(&remote).unwrap();
    let roots = [format!("{HOST}:{}", remote.display())];

    let missing = dir.path().join("no/such/gantry");
    let tmux = dashboard(&sshd, &dir.path().join("c1"), &roots, &missing, None);
    let (screen, _) = tmux.wait_for("the missing-gantry message", |s| s.contains("not found"));
    assert!(
        screen.contains("gantry not found on gantry-test (--remote-gantry PATH"),
        "{screen}"
    );
    drop(tmux);

    let other = dir.path().join("gantry-99");
    std::fs::write(
        &other,
        "#!/bin/sh\necho 'GANTRY-AGENT proto=99 gantry=9.9.9 host=gpu1'\nsleep 5\n",
    )
    .unwrap();
    make_executable(&other);
    let tmux = dashboard(&sshd, &dir.path().join("c2"), &roots, &other, None);
    let (screen, _) = tmux.wait_for("the version message", |s| s.contains("protocol 99"));
    assert!(
        screen.contains("(gantry 9.9.9)") && screen.contains("this gantry speaks 1"),
        "{screen}"
    );
    drop(tmux);

    // A client config whose key the server does not know: ssh's own words.
    let wrong = dir.path().join("wrong_config");
    let cfg = std::fs::read_to_string(sshd.client_config()).unwrap();
    std::fs::write(&wrong, cfg.replace("client_key", "host_key")).unwrap();
    let ssh = format!("ssh -F {}", wrong.display());
    let tmux = dashboard(
        &sshd,
        &dir.path().join("c3"),
        &roots,
        &gantry_bin(),
        Some(&ssh),
    );
    let (screen, _) = tmux.wait_for("ssh's refusal", |s| s.contains("Permission denied"));
    assert!(
        screen.contains("ssh:") && screen.contains("reconnecting"),
        "{screen}"
    );
    // The dashboard stays responsive while a host is down.
    tmux.keys(&["?"]);
    tmux.wait_for("the help", |s| s.to_lowercase().contains("keys"));
}

#[test]
fn a_remote_run_stops_and_resumes_and_outlives_the_dashboard() {
    let Some(sshd) = Sshd::start() else { return };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("runs");
    let cfg = dir.path().join("cfg.ron");
    std::fs::write(&cfg, small_config(shared_synth(96, 16, 0), 5000)).unwrap();
    let ssh = sshd.gantry_ssh();
    start_run(&cfg, &remote, "far", &["--detach"]);
    let cache = dir.path().join("cache");
    let roots = [format!("{HOST}:{}", remote.display())];
    let tmux = dashboard(&sshd, &cache, &roots, &wrapper(dir.path()), None);
    tmux.wait_for("the running remote run", |s| s.contains("▶  far"));
    tmux.keys(&["x"]);
    tmux.wait_for("the stop confirmation", |s| s.contains("Stop run far?"));
    tmux.keys(&["y"]);
    let (screen, _) = tmux.wait_within("the stopped run", Duration::from_secs(60), |s| {
        s.contains("■  far")
    });
    assert!(screen.contains("SIGTERM sent to far"), "{screen}");
    let run = remote.join("far");
    assert!(run.join("checkpoints/last/checkpoint.ron").is_file());
    tmux.keys(&["r"]);
    tmux.wait_for("the resume confirmation", |s| s.contains("Resume run far?"));
    tmux.keys(&["y"]);
    tmux.wait_within("the resumed run", Duration::from_secs(60), |s| {
        s.contains("▶  far")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
    drop(tmux);
    // The runner the agent started lives on without the dashboard or its ssh.
    std::thread::sleep(Duration::from_secs(2));
    let status = gantry::runfs::RunFolder::new(&run).read_status().unwrap();
    assert!(
        gantry::runfs::status::process_alive(status.pid),
        "the remote runner outlives the dashboard"
    );
    // And the command line reaches it too.
    let out = std::process::Command::new(gantry_bin())
        .env("GANTRY_SSH", &ssh)
        .args([
            "stop",
            &format!("{HOST}:{}", run.display()),
            "--force",
            "--wait",
            "30",
            "--remote-gantry",
        ])
        .arg(gantry_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(gantry_bin())
        .env("GANTRY_SSH", &ssh)
        .args([
            "runs",
            "ls",
            "--json",
            "--runs",
            &format!("{HOST}:{}", remote.display()),
            "--remote-gantry",
        ])
        .arg(gantry_bin())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("\"far\""),
        "{listed}"
    );
}

/// A Slurm run on a remote login node, stopped and resubmitted from the dashboard: the
/// agent's stop is `scancel` there and its resume a new `sbatch`. Needs the one-node
/// cluster of `.ci/slurm-up` (`GANTRY_SLURM=1`) besides sshd and tmux.
#[test]
fn a_remote_slurm_run_is_cancelled_and_resubmitted_from_the_dashboard() {
    if std::env::var("GANTRY_SLURM").map_or(true, |v| v != "1") {
        eprintln!("skipped: set GANTRY_SLURM=1 with a Slurm cluster up (.ci/slurm-up)");
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("runs");
    let cfg = dir.path().join("cfg.ron");
    let launcher = "device: \"cpu\",\n    launcher: Slurm(partition: Some(\"debug\"), time: Some(\"00:20:00\")),";
    let text = small_config(shared_synth(96, 16, 0), 5000).replace("device: \"cpu\",", launcher);
    std::fs::write(&cfg, text).unwrap();
    start_run(&cfg, &remote, "job", &[]);
    let run = remote.join("job");
    let job = |run: &Path| {
        gantry::runfs::RunFolder::new(run)
            .read_status()
            .ok()
            .and_then(|s| s.slurm_job)
    };
    let first = job(&run).expect("a Slurm job id");
    // The one-node cluster must be free for the next test, whatever happens here.
    struct Cancel(PathBuf);
    impl Drop for Cancel {
        fn drop(&mut self) {
            if let Some(j) = gantry::runfs::RunFolder::new(&self.0)
                .read_status()
                .ok()
                .and_then(|s| s.slurm_job)
            {
                let _ = std::process::Command::new("scancel").arg(j).status();
            }
        }
    }
    let _cancel = Cancel(run.clone());
    let tmux = dashboard(
        &sshd,
        &dir.path().join("cache"),
        &[format!("{HOST}:{}", remote.display())],
        &wrapper(dir.path()),
        None,
    );
    tmux.wait_within("the running Slurm run", Duration::from_secs(120), |s| {
        s.contains("▶  job")
    });
    tmux.keys(&["x"]);
    tmux.wait_for("the stop confirmation", |s| {
        s.contains(&format!("Stop run job (Slurm job {first})?"))
    });
    tmux.keys(&["y"]);
    let (screen, _) = tmux.wait_within("the cancelled run", Duration::from_secs(150), |s| {
        s.contains("■  job")
    });
    assert!(screen.contains(&format!("scancel {first}")), "{screen}");
    // Slurm may still be ending the cancelled job ("still ending (COMPLETING)"): the
    // dashboard says so and r is pressed again, as a person would.
    let start = Instant::now();
    let second = loop {
        tmux.keys(&["r"]);
        tmux.wait_for("the resume confirmation", |s| s.contains("Resume run job?"));
        tmux.keys(&["y"]);
        let asked = Instant::now();
        let mut new_job = None;
        while asked.elapsed() < Duration::from_secs(5) {
            if let Some(j) = job(&run).filter(|j| *j != first) {
                new_job = Some(j);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(j) = new_job {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no new job:\n{}",
            tmux.screen()
        );
    };
    tmux.wait_within("the resubmitted run", Duration::from_secs(120), |s| {
        s.contains("▶  job")
    });
    eprintln!("Slurm job {first} cancelled and resubmitted as {second} through the agent");
}
