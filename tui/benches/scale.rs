//! The real dashboard at a lab's scale, measured as a user meets it: the release binary in
//! tmux over a root of N finished runs (run.ron, status.ron, a 120-row scalars.csv,
//! scores/, samples/, train.log each), against the same over one run.
//!
//! `cargo bench -p gantry --bench scale [-- --runs 10000 --idle 60 --appends 50 --root DIR]`
//! (`-- --ssh HOST` puts the same N-run root watched as `HOST:ROOT` over ssh beside it)
//! (`--root` keeps the written runs there for the next time).
//!
//! Prints one table: time to the first frame that lists every run with the visible rows'
//! data; resident memory (peak); CPU over an idle window (from /proc, with nothing
//! writing) and the bytes written to the terminal meanwhile; and the latency from
//! appending one line to one run's scalars.csv to seeing it on screen (p50/p95). Needs
//! tmux. Timings on shared machines are noisy: compare the two columns of one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gantry::fixtures::{self, FixtureRun};
use gantry::runfs::status::State;
use rayon::prelude::*;

struct Args {
    /// Keep the written roots here (reused by the next run with the same count).
    root: Option<PathBuf>,
    runs: usize,
    idle: u64,
    appends: usize,
    /// `--ssh HOST`: also watch the N-run root as `HOST:ROOT` over ssh (to localhost;
    /// `GANTRY_SSH` as the dashboard takes it), in the 1-run column's place.
    ssh: Option<String>,
}

fn args() -> Args {
    let mut out = Args {
        root: None,
        runs: 10_000,
        idle: 60,
        appends: 50,
        ssh: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let value = |i: usize| -> u64 {
        argv.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{} takes a number", argv[i]))
    };
    for i in 0..argv.len() {
        match argv[i].as_str() {
            "--runs" => out.runs = value(i) as usize,
            "--idle" => out.idle = value(i),
            "--appends" => out.appends = value(i) as usize,
            "--root" => out.root = argv.get(i + 1).map(PathBuf::from),
            "--ssh" => out.ssh = argv.get(i + 1).cloned(),
            _ => {}
        }
    }
    out
}

/// N finished runs of 120 scalar rows each (6 epochs x 17 steps, 3 evaluated tags).
fn write_root(root: &Path, n: usize) {
    (0..n).into_par_iter().for_each(|i| {
        let mut run = FixtureRun::new(&format!("run-{i:05}"), State::Finished, 6);
        run.steps_per_epoch = 17;
        run.age = 60.0 + i as f64;
        fixtures::write_run(root, &run).expect("write fixture run");
    });
}

/// A tmux session running the dashboard, killed when dropped.
struct Session {
    name: String,
}

impl Session {
    /// The dashboard over `root`; over ssh from `host` when given, with a fresh mirror.
    fn start(bin: &Path, root: &Path, host: Option<&str>) -> Session {
        let name = format!("gantry-scale-{}", std::process::id());
        let bin_q = shell_quote(bin.to_str().unwrap());
        let command = match host {
            None => format!(
                "exec {bin_q} watch --runs {}",
                shell_quote(root.to_str().unwrap())
            ),
            Some(host) => {
                let cache =
                    std::env::temp_dir().join(format!("gantry-scale-cache-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&cache);
                format!(
                    "exec env XDG_CACHE_HOME={} GANTRY_SSH={} {bin_q} watch --remote-gantry {bin_q} --runs {}",
                    shell_quote(cache.to_str().unwrap()),
                    shell_quote(&std::env::var("GANTRY_SSH").unwrap_or_else(|_| "ssh".into())),
                    shell_quote(&format!("{host}:{}", root.display()))
                )
            }
        };
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "48"])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux must be installed for this bench");
        assert!(status.success(), "tmux new-session failed");
        Session { name }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    fn pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", &self.name, "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", &self.name, keys]);
    }

    /// Waits (polling the screen) until `pred` holds; returns the time it took.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if pred(&self.screen()) {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!(
                    "{what}: not on screen within {within:?}:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// utime + stime of a process, all threads, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks / hz
}

/// A `/proc/PID/status` line's value in MB (`VmRSS`, `VmHWM`).
fn memory_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Measured {
    first_frame: Duration,
    /// Until the start-up work after the first frame was done.
    loaded: Duration,
    rss_mb: f64,
    peak_mb: f64,
    idle_cpu_pct: f64,
    idle_bytes: u64,
    latency_p50: Duration,
    latency_p95: Duration,
}

fn measure(bin: &Path, root: &Path, n: usize, args: &Args, host: Option<&str>) -> Measured {
    let session = Session::start(bin, root, host);
    let header = format!("runs {n}/{n}");
    // The newest run is listed first and selected; its best value must be drawn too.
    let first_frame = session.wait_for("the first frame", Duration::from_secs(60), |s| {
        s.contains(&header) && s.contains("run-00000") && s.contains("val/loss 0.")
    });
    let pid = session.pid();
    // The start-up work after the first frame (reading every run in full, adding the
    // watches, describing plugins) is not idleness: the idle window starts once a whole
    // second passes with (almost) no CPU used.
    let settle = Instant::now();
    loop {
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(1));
        if cpu_seconds(pid) - before < 0.02 || settle.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let loaded = first_frame + settle.elapsed() - Duration::from_secs(1);
    let rss_mb = memory_mb(pid, "VmRSS");
    let out = std::env::temp_dir().join(format!("gantry-scale-{}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    session.tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        &session.name,
        &format!("cat >> {}", shell_quote(out.to_str().unwrap())),
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.idle));
    let idle_cpu_pct = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    session.tmux(&["pipe-pane", "-t", &session.name]);
    let idle_bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&out);

    // Appends to the selected run, seen in the Metrics view (one row per evaluation).
    session.keys("3");
    session.wait_for("the metrics view", Duration::from_secs(10), |s| {
        s.contains("val/loss") && s.contains("epoch")
    });
    let scalars = root.join("run-00000/scalars.csv");
    let mut latencies = Vec::new();
    for i in 0..args.appends {
        let value = format!("0.{:04}", 5000 + i);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&scalars)
            .expect("open scalars.csv");
        let start = Instant::now();
        writeln!(f, "1800000100.000,{},7,val/loss,{value}", 200 + i).unwrap();
        drop(f);
        session.wait_for("an appended value", Duration::from_secs(10), |s| {
            s.contains(&value)
        });
        latencies.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let peak_mb = memory_mb(pid, "VmHWM");
    Measured {
        first_frame,
        loaded,
        rss_mb,
        peak_mb,
        idle_cpu_pct,
        idle_bytes,
        latency_p50: at(0.5),
        latency_p95: at(0.95),
    }
}

fn main() {
    let args = args();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_gantry"));
    let temp = tempfile::tempdir().unwrap();
    let dir = args
        .root
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let many = dir.join(format!("runs-{}", args.runs));
    let one = dir.join("runs-1");
    for (root, n) in [(&many, args.runs), (&one, 1)] {
        let done = root.join(format!("run-{:05}/status.ron", n - 1));
        if !done.exists() {
            let start = Instant::now();
            write_root(root, n);
            eprintln!("wrote {n} runs in {:.1} s", start.elapsed().as_secs_f64());
        }
    }
    let big = measure(&bin, &many, args.runs, &args, None);
    let n = args.runs;
    let (small, second) = match &args.ssh {
        Some(host) => (
            measure(&bin, &many, n, &args, Some(host)),
            format!("{n} over ssh"),
        ),
        None => (measure(&bin, &one, 1, &args, None), "1 run".to_string()),
    };
    println!(
        "{:<44} {:>14} {:>14} {:>12}",
        "gantry watch in tmux 160x48",
        format!("{n} runs"),
        second,
        "target"
    );
    let row = |what: &str, a: String, b: String, target: &str| {
        println!("{what:<44} {a:>14} {b:>14} {target:>12}");
    };
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    row(
        "first frame (all listed, visible rows' data)",
        ms(big.first_frame),
        ms(small.first_frame),
        "<= 500 ms",
    );
    row(
        "start-up work done (every run read, watched)",
        ms(big.loaded),
        ms(small.loaded),
        "",
    );
    row(
        "resident memory after start-up",
        format!("{:.0} MB", big.rss_mb),
        format!("{:.0} MB", small.rss_mb),
        "<= 200 MB",
    );
    row(
        "peak resident memory",
        format!("{:.0} MB", big.peak_mb),
        format!("{:.0} MB", small.peak_mb),
        "<= 200 MB",
    );
    row(
        &format!("idle CPU over {} s (one core = 100%)", args.idle),
        format!("{:.2} %", big.idle_cpu_pct),
        format!("{:.2} %", small.idle_cpu_pct),
        "<= 0.5 %",
    );
    row(
        "bytes written to the terminal while idle",
        big.idle_bytes.to_string(),
        small.idle_bytes.to_string(),
        "0",
    );
    row(
        &format!("append to screen, p50 of {}", args.appends),
        ms(big.latency_p50),
        ms(small.latency_p50),
        "",
    );
    row(
        &format!("append to screen, p95 of {}", args.appends),
        ms(big.latency_p95),
        ms(small.latency_p95),
        "<= 100 ms",
    );
}
