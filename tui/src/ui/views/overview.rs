//! The selected run at a glance: state, progress with ETA, throughput, device and its
//! peak GPU memory, config, latest metrics and errors; below it, this host's GPUs (from
//! the background sampler, [`App::gpus`]) one line each, or one line saying why there are
//! none.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::{fmt_age, fmt_value, placeholder};
use crate::gpu::{GpuSample, GpuStats, fmt_gib};
use crate::runfs::status::Status;
use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;

/// Characters of a GPU's name shown, at most.
const GPU_NAME_CHARS: usize = 24;

/// The Overview: the run's details (or a placeholder when none is selected) above the
/// GPUs panel, which takes at most half the height.
pub fn render(frame: &mut Frame, area: Rect, app: &App, run: Option<&RunData>) {
    let panel = app
        .gpus
        .as_ref()
        .map(|stats| gpu_panel(app, stats, (area.height / 2).max(1)));
    let height = panel
        .as_ref()
        .map_or(0, |(titled, lines)| lines.len() as u16 + u16::from(*titled));
    let [details, gpus] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(height)]).areas(area);
    match run {
        Some(run) => render_run(frame, details, app, run),
        None => placeholder(frame, details, app, "no run selected"),
    }
    match panel {
        Some((true, lines)) => {
            let block = Block::default()
                .borders(Borders::TOP)
                .border_style(app.theme.border)
                .title(Span::styled(
                    format!(" GPUs on {} ", escape_controls(&app.host)),
                    app.theme.dim,
                ));
            frame.render_widget(Paragraph::new(lines).block(block), gpus);
        }
        Some((false, lines)) => frame.render_widget(Paragraph::new(lines), gpus),
        None => {}
    }
}

/// The GPUs panel's lines within `max_rows` (its title row included), and whether they
/// are a list under a title (`false`: one line saying why there is none).
fn gpu_panel(app: &App, stats: &GpuStats, max_rows: u16) -> (bool, Vec<Line<'static>>) {
    let t = &app.theme;
    let devices = match stats {
        GpuStats::Devices(d) if !d.is_empty() => d,
        _ => {
            let text = gpu_lines(stats).join(" ");
            return (false, vec![Line::styled(text, t.dim)]);
        }
    };
    let mut lines: Vec<Line<'static>> = gpu_lines(stats)
        .into_iter()
        .zip(devices)
        .map(|(text, d)| Line::styled(text, if d.error.is_some() { t.error } else { t.text }))
        .collect();
    let room = usize::from(max_rows.saturating_sub(1)).max(1);
    if lines.len() > room {
        let shown = room - 1;
        let hidden = lines.len() - shown;
        lines.truncate(shown);
        let more = if shown == 0 { "" } else { "… more: " };
        lines.push(Line::styled(
            format!("{more}{hidden} GPUs (a taller terminal lists them)"),
            t.dim,
        ));
    }
    (true, lines)
}

/// The GPUs panel as text: one line per GPU with aligned columns
/// (`0 H200  util 87%  mem 41.2/139.8 GiB  71°C  412 W`, `-` for what NVML would not
/// say), or one line saying why there is no list.
pub fn gpu_lines(stats: &GpuStats) -> Vec<String> {
    let devices = match stats {
        GpuStats::Unavailable(reason) => return vec![format!("GPUs: {reason}")],
        GpuStats::Devices(d) if d.is_empty() => {
            return vec!["GPUs: none (NVML sees no GPU on this host)".into()];
        }
        GpuStats::Devices(d) => d,
    };
    let rows: Vec<[String; 6]> = devices.iter().map(gpu_cells).collect();
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .zip(devices)
        .map(|(row, d)| {
            let [index, name, util, mem, temp, power] = row;
            let [wi, wn, wu, wm, wt, wp] = widths;
            if let Some(e) = &d.error {
                return format!("{index:>wi$} {name:<wn$}  unreadable: {e}");
            }
            format!(
                "{index:>wi$} {name:<wn$}  util {util:>wu$}  mem {mem:>wm$}  {temp:>wt$}  {power:>wp$}"
            )
            .trim_end()
            .to_string()
        })
        .collect()
}

/// Index, short name, utilisation, memory, temperature and power of one GPU, as shown.
fn gpu_cells(d: &GpuSample) -> [String; 6] {
    let name = d.name.strip_prefix("NVIDIA ").unwrap_or(&d.name);
    let mut name: String = escape_controls(name).chars().take(GPU_NAME_CHARS).collect();
    if name.is_empty() {
        name = "?".into();
    }
    let dash = || "-".to_string();
    let util = d.utilization_pct.map_or_else(dash, |u| format!("{u}%"));
    let mem = match (d.memory_used_bytes, d.memory_total_bytes) {
        (None, None) => dash(),
        (used, total) => format!(
            "{}/{} GiB",
            used.map_or_else(dash, fmt_gib),
            total.map_or_else(dash, fmt_gib)
        ),
    };
    let temp = d.temperature_c.map_or_else(dash, |c| format!("{c}°C"));
    let power = d
        .power_watts
        .filter(|w| w.is_finite())
        .map_or_else(dash, |w| format!("{w:.0} W"));
    [d.index.to_string(), name, util, mem, temp, power]
}

fn render_run(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    let t = &app.theme;
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10} "), t.dim),
            Span::raw(escape_controls(&v)),
        ])
    };
    let mut lines = Vec::new();
    let (glyph, style) = t.state(run.liveness(app.now, &app.host));
    let label = run
        .liveness(app.now, &app.host)
        .map_or("unreadable", |l| l.label());
    lines.push(Line::from(vec![
        Span::styled(format!("{glyph} {label}  "), style),
        Span::styled(escape_controls(&run.id()), t.title),
    ]));
    if let Some(job) = run.status.as_ref().and_then(|s| s.slurm_job.as_ref()) {
        let text = match &run.slurm {
            Some(seen) if &seen.job == job => seen.job_text(),
            _ => format!("{job} (asking Slurm…)"),
        };
        lines.push(kv("slurm", format!("job {text}")));
    }
    for e in &run.errors {
        lines.push(Line::styled(format!("⚠ {}", escape_controls(e)), t.error));
    }
    for (k, v) in run.foreign_facts() {
        lines.push(kv(k, v));
    }
    if let Some(s) = &run.status {
        lines.push(kv("progress", progress(s)));
        lines.push(kv("speed", format!("{:.1} img/s", s.images_per_sec)));
        let mut device = s.device.clone().unwrap_or_else(|| "?".into());
        if let Some(peak) = s.peak_gpu_memory_bytes {
            device.push_str(&format!(" · GPU mem peak {} GiB", fmt_gib(peak)));
        }
        lines.push(kv("device", device));
        lines.push(kv("host", format!("{} (pid {})", s.host, s.pid)));
        if let Some(start) = s.started {
            let ended = s
                .ended
                .map(|e| format!(", ended {} ago", fmt_age(app.now, e)))
                .unwrap_or_default();
            lines.push(kv(
                "started",
                format!("{} ago{ended}", fmt_age(app.now, start)),
            ));
        }
        if let Some(b) = &s.best {
            lines.push(kv(
                "best",
                format!(
                    "{} {} (epoch {}, step {})",
                    b.tag,
                    fmt_value(b.value),
                    b.epoch,
                    b.step
                ),
            ));
        }
        if !s.latest.is_empty() {
            let latest: Vec<String> = s
                .latest
                .iter()
                .map(|(k, v)| format!("{k} {}", fmt_value(*v)))
                .collect();
            lines.push(kv("latest", latest.join("  ")));
        }
        if let Some(e) = &s.error {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<10} ", "error"), t.error),
                Span::styled(escape_controls(e), t.error),
            ]));
        }
    }
    if let Some(r) = &run.record {
        let spec = &r.spec;
        lines.push(kv(
            "plugin",
            format!(
                "{} {} ({}, ABI {})",
                r.plugin.name, r.plugin.version, r.plugin.family, r.plugin.abi
            ),
        ));
        lines.push(kv(
            "data",
            format!(
                "{:?} {} size {}x{} ch {}{}",
                spec.data.kind,
                spec.data.root.display(),
                spec.data.size.0,
                spec.data.size.1,
                spec.data.channels,
                spec.data
                    .normal_class
                    .as_ref()
                    .map(|c| format!(" normal {c:?}"))
                    .unwrap_or_default()
            ),
        ));
        lines.push(kv(
            "train",
            format!(
                "epochs {} batch {} lr {} seed {}",
                spec.train.epochs,
                spec.train.batch_size,
                spec.train
                    .lr
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "default".into()),
                spec.train.seed
            ),
        ));
        lines.push(kv("params", spec.params_text()));
        lines.push(kv("device", format!("requested {}", spec.device)));
        if let Some(launcher) = crate::ui::slurm_jobs::launcher_line(&spec.launcher) {
            lines.push(kv("launcher", launcher));
        }
        if let Some(g) = &r.git {
            lines.push(kv("git", g.clone()));
        }
        lines.push(kv("folder", run.folder.dir.display().to_string()));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.overview_scroll, 0)),
        area,
    );
}

/// "epoch 3/10 · step 300/1000 (30%) · ETA 2m10s", the ETA only after a warm-up (the
/// first 5% of steps, at least 10) so start-up costs do not skew it.
fn progress(s: &Status) -> String {
    let mut text = format!(
        "epoch {}/{} · step {}/{}",
        s.epoch, s.epochs, s.step, s.total_steps
    );
    if s.total_steps > 0 {
        text.push_str(&format!(
            " ({:.0}%)",
            100.0 * s.step as f64 / s.total_steps as f64
        ));
    }
    let warm = s.step >= (s.total_steps / 20).max(10);
    if !s.state.is_final()
        && warm
        && s.images_per_sec > 0.0
        && s.step > 0
        && let (Some(start), true) = (s.started, s.total_steps > s.step)
    {
        let elapsed = (s.heartbeat - start).max(0.0);
        let per_step = elapsed / s.step as f64;
        let eta = per_step * (s.total_steps - s.step) as f64;
        text.push_str(&format!(" · ETA {}", fmt_duration(eta)));
    }
    text
}

fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
