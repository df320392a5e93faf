//! The selected run at a glance: state, progress with ETA, throughput, device, config,
//! latest metrics and errors.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{fmt_age, fmt_value};
use crate::runfs::status::Status;
use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
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
    for e in &run.errors {
        lines.push(Line::styled(format!("⚠ {}", escape_controls(e)), t.error));
    }
    if let Some(s) = &run.status {
        lines.push(kv("progress", progress(s)));
        lines.push(kv("speed", format!("{:.1} img/s", s.images_per_sec)));
        lines.push(kv("device", s.device.clone().unwrap_or_else(|| "?".into())));
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
