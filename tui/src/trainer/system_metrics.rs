//! System metrics over time: a thread of the runner samples, every
//! [`SYSTEM_INTERVAL_SECS`] (`GANTRY_SYSTEM_INTERVAL` seconds when set), this process's
//! CPU use (all threads; 100 = one core busy), its resident memory, the fraction of the
//! interval the training loop waited for data and, where NVML answers, the utilisation,
//! memory and temperature of the GPUs the run uses. Each sample appends whole lines to
//! `system.csv` in the run folder, in scalars.csv's format (`wall_time,step,epoch,tag,
//! value`, written through [`crate::runfs::scalars`]), tagged with the trainer's step and
//! epoch at the time. Like the GPU memory watch it never slows, fails or floods the run:
//! a reading that fails is left out, a write that fails is logged once.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::status_board::StatusUpdater;
use crate::gpu::nvml::NvmlGpus;
use crate::gpu::{GpuSample, GpuStats};
use crate::runfs::scalars::{self, ScalarRow, ScalarWriter};
use crate::runfs::status::Status;
use crate::runfs::{RunFsError, time};

/// Seconds between two samples.
pub const SYSTEM_INTERVAL_SECS: f64 = 5.0;
/// Environment variable that sets another interval, in seconds (tests use 0.2).
pub const INTERVAL_ENV: &str = "GANTRY_SYSTEM_INTERVAL";
/// The shortest interval the variable may ask for.
const MIN_INTERVAL_SECS: f64 = 0.05;
/// A last sample is taken when the run ends only if this long has passed since the one
/// before (CPU time is counted in ticks of 10 ms: a shorter span says little), or if it
/// is the runner's first.
const MIN_FINAL_SECS: f64 = 0.1;

pub const CPU_PERCENT: &str = "sys/cpu_percent";
pub const RSS_MB: &str = "sys/rss_mb";
pub const DATA_WAIT: &str = "sys/data_wait";

/// The sampling interval: [`INTERVAL_ENV`] when it holds a positive number of seconds,
/// else [`SYSTEM_INTERVAL_SECS`]; with a note for the run's log when the variable was
/// set but unusable.
pub fn interval() -> (Duration, Option<String>) {
    interval_from(std::env::var(INTERVAL_ENV).ok().as_deref())
}

fn interval_from(value: Option<&str>) -> (Duration, Option<String>) {
    let default = Duration::from_secs_f64(SYSTEM_INTERVAL_SECS);
    let Some(text) = value else {
        return (default, None);
    };
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            (Duration::from_secs_f64(secs.max(MIN_INTERVAL_SECS)), None)
        }
        _ => (
            default,
            Some(format!(
                "{INTERVAL_ENV}={text:?} is not a number of seconds: sampling system \
                 metrics every {SYSTEM_INTERVAL_SECS} s"
            )),
        ),
    }
}

/// CPU seconds this process has used so far (user + system, every thread), from
/// `/proc/self/stat`.
pub fn process_cpu_seconds() -> Result<f64, String> {
    let text =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    let ticks = cpu_ticks(&text).ok_or("/proc/self/stat: no utime and stime fields")?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second().max(1) as f64)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name
/// (field 2, in parentheses) may hold spaces and parentheses: fields are counted after
/// its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// This process's resident memory in bytes, from `VmRSS` in `/proc/self/status`.
pub fn process_rss_bytes() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    vm_rss_bytes(&text).ok_or_else(|| "/proc/self/status: no VmRSS line".into())
}

fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(kib * 1024),
        Some(_) => None,
    }
}

/// Bytes in MiB (what `top` and `nvidia-smi` call MB), to one decimal.
fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / (1u64 << 20) as f64, 1)
}

fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// CPU use between two looks at the process's CPU time.
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(f64, Instant)>,
}

impl CpuMeter {
    /// Starts measuring from now.
    pub fn start() -> CpuMeter {
        CpuMeter {
            last: process_cpu_seconds().ok().map(|s| (s, Instant::now())),
        }
    }

    /// Percent of one core used since the last call (or the start); `None` when the CPU
    /// time cannot be read or no time has passed.
    pub fn percent(&mut self) -> Option<f64> {
        let now = process_cpu_seconds().ok().map(|s| (s, Instant::now()));
        let (before, now) = (self.last.take(), now);
        self.last = now;
        let ((cpu0, t0), (cpu1, t1)) = (before?, now?);
        let wall = t1.duration_since(t0).as_secs_f64();
        (wall > 0.0).then(|| round(((cpu1 - cpu0).max(0.0) / wall) * 100.0, 1))
    }
}

/// Which GPUs a run's rows describe.
#[derive(Debug, Clone, PartialEq)]
enum GpuChoice {
    /// A CPU run: none.
    None,
    /// Unknown device: every GPU NVML sees.
    All,
    /// These NVML indices.
    Only(Vec<u32>),
}

/// The GPUs of a run on `device` (`cuda:N`, as the plugin reported it), when NVML does
/// not list this process on any: ordinal N counted through `CUDA_VISIBLE_DEVICES`
/// (`visible`) when that holds indices.
fn gpus_for(device: Option<&str>, visible: Option<&str>) -> GpuChoice {
    let Some(device) = device else {
        return GpuChoice::All;
    };
    let Some(rest) = device.strip_prefix("cuda") else {
        return GpuChoice::None;
    };
    let ordinal: usize = match rest.strip_prefix(':') {
        Some(n) => match n.parse() {
            Ok(n) => n,
            Err(_) => return GpuChoice::All,
        },
        None if rest.is_empty() => 0,
        None => return GpuChoice::All,
    };
    let index = match visible.map(str::trim).filter(|v| !v.is_empty()) {
        None => u32::try_from(ordinal).ok(),
        Some(list) => list
            .split(',')
            .nth(ordinal)
            .and_then(|entry| entry.trim().parse::<u32>().ok()),
    };
    match index {
        Some(i) => GpuChoice::Only(vec![i]),
        // GPU UUIDs or MIG names: NVML's indices cannot be told from them here.
        None => GpuChoice::All,
    }
}

/// The GPU side of a sample: NVML, when it opens, and the GPUs to report.
struct Gpus {
    nvml: NvmlGpus,
    fallback: GpuChoice,
    /// The GPUs NVML listed this process on, once it has.
    found: Option<Vec<u32>>,
}

impl Gpus {
    /// `None` for a CPU run, or when NVML is not there (no GPU rows, and nothing said:
    /// the GPU memory watch already says so in the log for a CUDA run).
    fn open(device: Option<&str>) -> Option<Gpus> {
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let fallback = gpus_for(device, visible.as_deref());
        if fallback == GpuChoice::None {
            return None;
        }
        let nvml = NvmlGpus::open().ok()?;
        Some(Gpus {
            nvml,
            fallback,
            found: None,
        })
    }

    fn rows(&mut self) -> Vec<(String, f64)> {
        if self.found.is_none() {
            let listed = self.nvml.process_gpus(std::process::id());
            self.found = (!listed.is_empty()).then_some(listed);
        }
        let GpuStats::Devices(devices) = self.nvml.sample() else {
            return Vec::new();
        };
        let wanted = |d: &GpuSample| match (&self.found, &self.fallback) {
            (Some(found), _) => found.contains(&d.index),
            (None, GpuChoice::Only(only)) => only.contains(&d.index),
            (None, _) => true,
        };
        devices
            .iter()
            .filter(|d| wanted(d))
            .flat_map(gpu_rows)
            .collect()
    }
}

/// One GPU's rows: `gpuN/util`, `gpuN/memory_mb`, `gpuN/temp_c`, those NVML gave.
fn gpu_rows(d: &GpuSample) -> Vec<(String, f64)> {
    let i = d.index;
    [
        ("util", d.utilization_pct.map(f64::from)),
        ("memory_mb", d.memory_used_bytes.map(mib)),
        ("temp_c", d.temperature_c.map(f64::from)),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some((format!("gpu{i}/{name}"), v?)))
    .collect()
}

/// A run's `system.csv`, shared by the sampler (appending) and the training loop (which
/// rewrites it without the rows past a checkpoint on resume and rollback).
#[derive(Clone)]
pub struct SystemCsv(Arc<Mutex<CsvState>>);

struct CsvState {
    path: PathBuf,
    /// Opened at the first write, and again after a rewrite.
    writer: Option<ScalarWriter>,
    warned: bool,
}

impl SystemCsv {
    pub fn new(path: PathBuf) -> SystemCsv {
        SystemCsv(Arc::new(Mutex::new(CsvState {
            path,
            writer: None,
            warned: false,
        })))
    }

    /// Appends the rows `make` builds, all visible at once (one flush of whole lines).
    /// `make` runs under the file's lock, so what it reads of the trainer's position is
    /// never older than a rewrite that happens meanwhile. A failure is logged once.
    fn append_with(&self, make: impl FnOnce() -> Vec<ScalarRow>) {
        let mut state = self.0.lock().expect("system.csv lock");
        let rows = make();
        if rows.is_empty() {
            return;
        }
        let result = (|| -> Result<(), RunFsError> {
            if state.writer.is_none() {
                state.writer = Some(ScalarWriter::open(&state.path)?);
            }
            let writer = state.writer.as_mut().expect("opened above");
            for row in &rows {
                writer.push(row)?;
            }
            writer.flush()
        })();
        if let Err(e) = result {
            // Opened afresh next time: the error may pass (a full disk freed).
            state.writer = None;
            if !state.warned {
                state.warned = true;
                tracing::warn!("system metrics not written (said once): {e}");
            }
        }
    }

    /// Rewrites the file with only the rows `keep` accepts (see [`scalars::retain`]);
    /// the next sample appends to the rewritten file.
    pub fn retain(&self, keep: impl Fn(&ScalarRow) -> bool) -> Result<usize, RunFsError> {
        let mut state = self.0.lock().expect("system.csv lock");
        if let Some(mut w) = state.writer.take() {
            w.flush()?;
        }
        scalars::retain(&state.path, keep)
    }
}

/// The step and epoch a sample is filed under: the trainer's current ones (the epoch in
/// progress, as scalars.csv counts it, not the epochs completed that status.ron says).
fn position(s: &Status) -> (u64, u32) {
    let epoch = if s.epochs == 0 {
        s.epoch
    } else {
        (s.epoch + 1).min(s.epochs)
    };
    (s.step, epoch)
}

/// What one sample measures, given the state carried between samples.
struct Meter {
    cpu: CpuMeter,
    waited: Duration,
    at: Instant,
}

impl Meter {
    fn start(status: &StatusUpdater) -> Meter {
        Meter {
            cpu: CpuMeter::start(),
            waited: status.data_waited(),
            at: Instant::now(),
        }
    }

    fn since_last(&self) -> Duration {
        self.at.elapsed()
    }

    fn sample(&mut self, status: &StatusUpdater, gpus: Option<&mut Gpus>) -> Vec<(String, f64)> {
        let mut values = Vec::new();
        if let Some(cpu) = self.cpu.percent() {
            values.push((CPU_PERCENT.to_string(), cpu));
        }
        if let Ok(rss) = process_rss_bytes() {
            values.push((RSS_MB.to_string(), mib(rss)));
        }
        let waited = status.data_waited();
        let wall = self.at.elapsed().as_secs_f64();
        if wall > 0.0 {
            let fraction = (waited.saturating_sub(self.waited)).as_secs_f64() / wall;
            values.push((DATA_WAIT.to_string(), round(fraction.clamp(0.0, 1.0), 4)));
        }
        self.waited = waited;
        self.at = Instant::now();
        if let Some(gpus) = gpus {
            values.extend(gpus.rows());
        }
        values
    }
}

/// The sampling thread; dropping it takes a last sample and stops it.
pub struct SystemSampler {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SystemSampler {
    /// Starts sampling every `period` into `csv`. `device` is the one the plugin chose
    /// (`cpu`, `cuda:N`; `None` when it did not say): it decides which GPUs are reported.
    pub fn start(
        csv: SystemCsv,
        status: StatusUpdater,
        device: Option<String>,
        period: Duration,
    ) -> SystemSampler {
        let (stop, stopped) = mpsc::channel();
        // The runner's log is this thread's default subscriber, not a global one.
        let log = tracing::dispatcher::get_default(|d| d.clone());
        let thread = std::thread::Builder::new()
            .name("system-metrics".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&log, || {
                    sample_until_stopped(&stopped, period, &csv, &status, device.as_deref());
                })
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("system metrics not recorded: cannot start their thread: {e}");
                None
            }
        };
        SystemSampler {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for SystemSampler {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sample_until_stopped(
    stopped: &Receiver<()>,
    period: Duration,
    csv: &SystemCsv,
    status: &StatusUpdater,
    device: Option<&str>,
) {
    let mut meter = Meter::start(status);
    // NVML may take a while to open: the first interval starts before it.
    let mut gpus = Gpus::open(device);
    let mut first = true;
    loop {
        let wait = period.saturating_sub(meter.since_last());
        let last = !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        if last && !first && meter.since_last().as_secs_f64() < MIN_FINAL_SECS {
            return;
        }
        first = false;
        let values = meter.sample(status, gpus.as_mut());
        csv.append_with(|| {
            let (step, epoch) = status.read(position);
            let wall_time = time::now();
            values
                .into_iter()
                .map(|(tag, value)| ScalarRow {
                    wall_time,
                    step,
                    epoch,
                    tag,
                    value,
                })
                .collect()
        });
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfs::RunFolder;
    use crate::runfs::scalars::ScalarTail;
    use crate::runfs::status::State;
    use crate::trainer::status_board::StatusBoard;

    /// This process's own readings are plausible: memory in use, CPU time that only
    /// grows, and a busy loop that shows as CPU use.
    #[test]
    fn reads_this_process_cpu_and_memory() {
        let rss = process_rss_bytes().unwrap();
        assert!(rss > 1 << 20, "RSS {rss} bytes");
        assert!(mib(rss) > 1.0 && mib(rss) < 1_000_000.0);
        let a = process_cpu_seconds().unwrap();
        let mut meter = CpuMeter::start();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let b = process_cpu_seconds().unwrap();
        assert!(b >= a && b > 0.0, "{a} -> {b}");
        let busy = meter.percent().unwrap();
        // One thread spinning shows, whatever else the machine runs (a tick is 10 ms).
        assert!(busy > 0.0 && busy <= 100.0 * 1024.0, "{busy}%");
        let idle = meter.percent();
        assert!(idle.is_none_or(|p| p >= 0.0), "{idle:?}");
    }

    #[test]
    fn parses_proc_files() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
        let status = "Name:\tgantry\nVmPeak:\t  9000 kB\nVmRSS:\t  2048 kB\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn interval_comes_from_the_environment_variable() {
        assert_eq!(interval_from(None), (Duration::from_secs(5), None));
        assert_eq!(interval_from(Some("0.2")).0, Duration::from_millis(200));
        assert_eq!(interval_from(Some("0.001")).0, Duration::from_millis(50));
        for bad in ["", "soon", "-1", "0", "NaN", "inf"] {
            let (d, note) = interval_from(Some(bad));
            assert_eq!(d, Duration::from_secs(5), "{bad}");
            assert!(note.unwrap().contains(INTERVAL_ENV), "{bad}");
        }
    }

    #[test]
    fn reports_the_gpus_the_run_uses() {
        assert_eq!(gpus_for(Some("cpu"), None), GpuChoice::None);
        assert_eq!(gpus_for(None, None), GpuChoice::All);
        assert_eq!(gpus_for(Some("cuda:1"), None), GpuChoice::Only(vec![1]));
        assert_eq!(gpus_for(Some("cuda"), None), GpuChoice::Only(vec![0]));
        assert_eq!(
            gpus_for(Some("cuda:1"), Some("3,5")),
            GpuChoice::Only(vec![5])
        );
        assert_eq!(gpus_for(Some("cuda:0"), Some("GPU-8f2c")), GpuChoice::All);
        let d = GpuSample {
            utilization_pct: Some(87),
            memory_used_bytes: Some(3 << 30),
            temperature_c: None,
            ..GpuSample::unknown(2)
        };
        assert_eq!(
            gpu_rows(&d),
            vec![
                ("gpu2/util".to_string(), 87.0),
                ("gpu2/memory_mb".to_string(), 3072.0)
            ]
        );
    }

    /// A CPU run never opens NVML; without a driver a CUDA run has no GPU rows and no
    /// error. On a GPU host every row is a GPU's, named `gpuN/...`.
    #[test]
    fn gpu_rows_only_where_nvml_answers() {
        assert!(Gpus::open(Some("cpu")).is_none());
        if !std::path::Path::new("/proc/driver/nvidia/version").exists() {
            assert!(Gpus::open(Some("cuda:0")).is_none());
            assert!(Gpus::open(None).is_none());
            return;
        }
        if let Some(mut gpus) = Gpus::open(None) {
            let rows = gpus.rows();
            assert!(!rows.is_empty());
            for (tag, value) in rows {
                assert!(tag.starts_with("gpu") && value.is_finite(), "{tag} {value}");
            }
        }
    }

    /// The thread writes whole rows tagged with the trainer's step and the epoch in
    /// progress, a last one when stopped, and a rewrite (resume) is appended to after.
    #[test]
    fn samples_into_system_csv_at_the_trainers_position() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path());
        let status = Status {
            epochs: 3,
            ..Status::new(State::Running, std::process::id(), 0.0)
        };
        let board = StatusBoard::start(folder.clone(), status);
        board.update(|s| {
            s.step = 7;
            s.epoch = 1;
        });
        let csv = SystemCsv::new(folder.system_file());
        let sampler = SystemSampler::start(
            csv.clone(),
            board.updater(),
            Some("cpu".into()),
            Duration::from_millis(50),
        );
        std::thread::sleep(Duration::from_millis(180));
        board.add_data_wait(Duration::from_millis(20));
        board.update(|s| s.step = 9);
        std::thread::sleep(Duration::from_millis(150));
        drop(sampler);
        let rows = ScalarTail::new().read_new(&folder.system_file()).unwrap();
        for tag in [CPU_PERCENT, RSS_MB, DATA_WAIT] {
            assert!(rows.iter().filter(|r| r.tag == tag).count() >= 3, "{tag}");
        }
        assert!(!rows.iter().any(|r| r.tag.starts_with("gpu")), "a CPU run");
        assert!(rows.iter().all(|r| r.epoch == 2), "epoch in progress");
        assert!(rows.windows(2).all(|w| w[0].step <= w[1].step));
        assert!(rows.windows(2).all(|w| w[0].wall_time <= w[1].wall_time));
        assert_eq!(rows.last().unwrap().step, 9);
        assert!(
            rows.iter()
                .filter(|r| r.tag == DATA_WAIT)
                .all(|r| (0.0..=1.0).contains(&r.value))
        );
        assert!(rows.iter().any(|r| r.tag == DATA_WAIT && r.value > 0.0));
        // Resume at step 7: later rows go, the next rows are appended to what is left.
        let dropped = csv.retain(|r| r.step <= 7).unwrap();
        assert!(dropped > 0);
        csv.append_with(|| {
            vec![ScalarRow {
                wall_time: time::now(),
                step: 8,
                epoch: 2,
                tag: RSS_MB.into(),
                value: 1.0,
            }]
        });
        let rows = ScalarTail::new().read_new(&folder.system_file()).unwrap();
        let steps: Vec<u64> = rows.iter().map(|r| r.step).collect();
        assert!(steps.iter().all(|&s| s == 7 || s == 8), "{steps:?}");
        assert_eq!(steps.last(), Some(&8));
    }
}
