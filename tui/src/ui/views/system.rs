//! System metrics over time, as the runner samples them into `system.csv` every few
//! seconds: a grid of small braille charts (CPU %, memory, data wait, then each GPU's
//! utilisation, memory and temperature), x by time since the run started, overlaying the
//! marked runs in one colour each (the colour of their first line in the Losses view).
//! Series are decimated per pixel column (min and max kept), so a spike never vanishes.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType};

use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::series::{decimate_min_max, y_bounds};
use crate::ui::store::{RunData, Series};

/// Smallest useful chart height in rows: a title, three rows of plot, the x axis.
const MIN_CHART_ROWS: u16 = 6;
/// From this width on, charts go two to a row.
const TWO_COLUMNS: u16 = 76;

pub const PLACEHOLDER: &str = "no system metrics yet (written by the runner every 5 s)";

/// How a tag's y axis is laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Range {
    /// From 0 to at least 100.
    Percent,
    /// From 0 to a little above the largest value.
    FromZero,
    /// A share of the time: from 0 to a little above the largest value, at most 100.
    Share,
    /// Around the values.
    Auto,
}

/// What a tag is drawn as: where its chart goes, its title, the factor applied to its
/// values (a fraction shown as a percentage) and its y range.
#[derive(Debug, Clone, PartialEq)]
struct Kind {
    order: (u32, u32, u32),
    title: String,
    scale: f64,
    range: Range,
}

fn kind(tag: &str) -> Kind {
    let k = |order, title: &str, scale, range| Kind {
        order,
        title: title.to_string(),
        scale,
        range,
    };
    match tag {
        "sys/cpu_percent" => return k((0, 0, 0), "CPU %", 1.0, Range::Percent),
        "sys/rss_mb" => return k((0, 0, 1), "memory (RSS) MB", 1.0, Range::FromZero),
        "sys/data_wait" => return k((0, 0, 2), "data wait %", 100.0, Range::Share),
        _ => {}
    }
    if let Some((gpu, metric)) = tag.split_once('/')
        && let Some(index) = gpu.strip_prefix("gpu").and_then(|n| n.parse::<u32>().ok())
    {
        let known = match metric {
            "util" => Some((0, "util %", Range::Percent)),
            "memory_mb" => Some((1, "memory MB", Range::FromZero)),
            "temp_c" => Some((2, "temp °C", Range::Auto)),
            _ => None,
        };
        if let Some((i, what, range)) = known {
            return k((1, index, i), &format!("GPU {index} {what}"), 1.0, range);
        }
    }
    k((2, 0, 0), &escape_controls(tag), 1.0, Range::Auto)
}

/// One run's line in one chart.
struct RunLine {
    style: Style,
    points: Vec<(f64, f64)>,
    last: Option<f64>,
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, runs: &[&RunData]) {
    let tags: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.system.keys().map(String::as_str))
        .collect();
    if tags.is_empty() {
        return super::placeholder(frame, area, app, PLACEHOLDER);
    }
    let mut charts: Vec<(Kind, &str)> = tags.into_iter().map(|t| (kind(t), t)).collect();
    charts.sort_by(|a, b| (a.0.order, a.1).cmp(&(b.0.order, b.1)));
    let mut area = area;
    if runs.len() > 1 {
        render_legend(frame, Rect { height: 1, ..area }, app, runs);
        area.y += 1;
        area.height = area.height.saturating_sub(1);
    }
    let columns: u16 = if area.width >= TWO_COLUMNS { 2 } else { 1 };
    let rows_fit = (area.height / MIN_CHART_ROWS).max(1);
    let shown = (charts.len() as u16).min(rows_fit * columns) as usize;
    let hidden = charts.len() - shown;
    let mut grid = area;
    if hidden > 0 && area.height > 1 {
        grid.height -= 1;
        let names: Vec<&str> = charts[shown..].iter().map(|c| c.0.title.as_str()).collect();
        let note = format!(
            "+{hidden} more chart(s): {} — enlarge the terminal",
            names.join(", ")
        );
        frame.render_widget(
            Line::styled(note, app.theme.dim),
            Rect::new(area.x, area.bottom() - 1, area.width, 1),
        );
    }
    let grid_rows = (shown as u16).div_ceil(columns);
    let rows = Layout::vertical(vec![Constraint::Fill(1); grid_rows as usize]).split(grid);
    for (i, (kind, tag)) in charts.iter().take(shown).enumerate() {
        let row = rows[i / columns as usize];
        // A column between charts, so one's y labels never touch the other's plot.
        let cells = Layout::horizontal(vec![Constraint::Fill(1); columns as usize])
            .spacing(1)
            .split(row);
        render_chart(frame, cells[i % columns as usize], app, runs, kind, tag);
    }
}

/// The compared runs, each in its colour: `● ae-finished  ● ae-running (no system.csv)`.
fn render_legend(frame: &mut Frame, area: Rect, app: &App, runs: &[&RunData]) {
    let mut spans = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        spans.push(Span::styled("● ", run_style(app, i)));
        spans.push(Span::styled(escape_controls(&run.id()), app.theme.text));
        if run.system.is_empty() {
            spans.push(Span::styled(" (no system metrics)", app.theme.dim));
        }
        spans.push(Span::raw("  "));
    }
    frame.render_widget(Line::from(spans), area);
}

/// A run's colour: the one its first series has in the Losses view's comparison.
fn run_style(app: &App, run_index: usize) -> Style {
    app.theme.series(run_index * 3)
}

/// Seconds since the run started: status.ron's start, else its first sample.
fn run_start(run: &RunData) -> f64 {
    run.status
        .as_ref()
        .and_then(|s| s.started)
        .or_else(|| {
            run.system
                .values()
                .filter_map(|s| s.walls.first().copied())
                .min_by(f64::total_cmp)
        })
        .unwrap_or(0.0)
}

/// A series as (seconds since start, scaled value), in time order.
fn points(series: &Series, start: f64, scale: f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = series
        .walls
        .iter()
        .zip(&series.values)
        .filter(|(_, v)| v.is_finite())
        .map(|(&w, &v)| (w - start, v * scale))
        .collect();
    if !pts.windows(2).all(|w| w[0].0 <= w[1].0) {
        // A clock set back between samples, or a resumed run's earlier runner.
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    pts
}

fn render_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    runs: &[&RunData],
    kind: &Kind,
    tag: &str,
) {
    // Braille gives two dots per cell horizontally; the y labels take about 6 cells.
    let columns = (area.width.saturating_sub(7) as usize * 2).max(2);
    let lines: Vec<RunLine> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let series = run.system.get(tag)?;
            let pts = points(series, run_start(run), kind.scale);
            Some(RunLine {
                style: run_style(app, i),
                last: pts.last().map(|p| p.1),
                points: decimate_min_max(&pts, columns),
            })
        })
        .collect();
    let mut title = vec![Span::styled(format!(" {} ", kind.title), app.theme.title)];
    match lines.as_slice() {
        [one] if runs.len() == 1 => {
            let peak = one.points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
            if let Some(last) = one.last {
                title.push(Span::styled(fmt_axis(last), one.style));
                title.push(Span::styled(
                    format!(" · max {} ", fmt_axis(peak)),
                    app.theme.dim,
                ));
            }
        }
        many => {
            for line in many {
                if let Some(last) = line.last {
                    title.push(Span::styled(format!("{} ", fmt_axis(last)), line.style));
                }
            }
        }
    }
    let block = Block::default()
        .borders(Borders::NONE)
        .title(Line::from(title));
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .collect();
    let (Some((x0, x1)), Some((y0, y1))) = (x_bounds(&all), bounds(&all, kind.range)) else {
        frame.render_widget(block, area);
        return;
    };
    let datasets: Vec<Dataset> = lines
        .iter()
        .map(|l| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(l.style)
                .data(&l.points)
        })
        .collect();
    let span = x1 - x0;
    let x_labels: Vec<String> = if area.width >= 30 {
        vec![
            fmt_elapsed(x0, span),
            fmt_elapsed((x0 + x1) / 2.0, span),
            fmt_elapsed(x1, span),
        ]
    } else {
        vec![fmt_elapsed(x0, span), fmt_elapsed(x1, span)]
    };
    let y_labels = if area.height >= 8 {
        vec![fmt_axis(y0), fmt_axis((y0 + y1) / 2.0), fmt_axis(y1)]
    } else {
        vec![fmt_axis(y0), fmt_axis(y1)]
    };
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .style(app.theme.dim)
                .labels(x_labels),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .style(app.theme.dim)
                .labels(y_labels),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

fn x_bounds(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let lo = points.iter().map(|p| p.0).min_by(f64::total_cmp)?;
    let hi = points.iter().map(|p| p.0).max_by(f64::total_cmp)?;
    // Time since the start: from 0 unless the samples begin well after it.
    let lo = if lo >= 0.0 && lo <= (hi - lo) {
        0.0
    } else {
        lo
    };
    Some(if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    })
}

fn bounds(points: &[(f64, f64)], range: Range) -> Option<(f64, f64)> {
    let max = points.iter().map(|p| p.1).max_by(f64::total_cmp)?;
    let min = points.iter().map(|p| p.1).min_by(f64::total_cmp)?;
    match range {
        Range::Auto => y_bounds(points, false),
        _ if min < 0.0 => y_bounds(points, false),
        Range::Percent => Some((0.0, nice_ceiling(max.max(100.0)))),
        Range::FromZero => Some((0.0, nice_ceiling(max * 1.1).max(1.0))),
        Range::Share => Some((0.0, nice_ceiling(max * 1.1).clamp(1.0, 100.0))),
    }
}

/// Rounds up to 1, 2, 2.5 or 5 times a power of ten, so axis labels read as round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    let m = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|m| m * power >= v * (1.0 - 1e-9))
        .unwrap_or(10.0);
    m * power
}

/// A value on an axis or in a title: whole numbers from 10 up, one decimal below.
fn fmt_axis(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Seconds since the start, in the unit the whole axis `span` reads best in.
fn fmt_elapsed(secs: f64, span: f64) -> String {
    if secs.abs() < 0.5 {
        "0".into()
    } else if span <= 120.0 {
        format!("{secs:.0}s")
    } else if span <= 600.0 {
        format!("{:.1}m", secs / 60.0)
    } else if span <= 2.0 * 3600.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_ordered_and_titled() {
        let mut tags = vec![
            "gpu1/util",
            "zz/custom",
            "gpu0/temp_c",
            "sys/data_wait",
            "gpu0/util",
            "sys/rss_mb",
            "sys/cpu_percent",
            "gpu10/util",
            "gpu0/memory_mb",
        ];
        tags.sort_by_key(|t| (kind(t).order, *t));
        assert_eq!(
            tags,
            vec![
                "sys/cpu_percent",
                "sys/rss_mb",
                "sys/data_wait",
                "gpu0/util",
                "gpu0/memory_mb",
                "gpu0/temp_c",
                "gpu1/util",
                "gpu10/util",
                "zz/custom",
            ]
        );
        assert_eq!(kind("gpu0/temp_c").title, "GPU 0 temp °C");
        assert_eq!(kind("sys/data_wait").scale, 100.0);
    }

    #[test]
    fn axes_read_as_round_numbers() {
        assert_eq!(nice_ceiling(87.0), 100.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(2300.0), 2500.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(
            bounds(&[(0.0, 40.0), (1.0, 97.0)], Range::Percent),
            Some((0.0, 100.0))
        );
        assert_eq!(bounds(&[(0.0, 310.0)], Range::Percent), Some((0.0, 500.0)));
        assert_eq!(bounds(&[(0.0, 12.0)], Range::Share), Some((0.0, 20.0)));
        assert_eq!(bounds(&[(0.0, 97.0)], Range::Share), Some((0.0, 100.0)));
        assert_eq!(fmt_elapsed(0.0, 60.0), "0");
        assert_eq!(fmt_elapsed(45.0, 60.0), "45s");
        assert_eq!(fmt_elapsed(150.0, 300.0), "2.5m");
        assert_eq!(fmt_elapsed(1800.0, 3600.0), "30m");
        assert_eq!(fmt_elapsed(9000.0, 10_000.0), "2.5h");
        assert_eq!(fmt_axis(812.34), "812");
        assert_eq!(fmt_axis(3.26), "3.3");
    }
}

#[cfg(test)]
mod view_tests {
    use std::path::Path;

    use crossterm::event::KeyCode;

    use crate::fixtures::{self, FixtureRun};
    use crate::runfs::status::State;
    use crate::ui::app::View;
    use crate::ui::tests::{app, key, render, root, select, store};

    /// The standard fixtures plus a CUDA run, whose system.csv has GPU 0's rows too.
    fn gpu_root(name: &str) -> std::path::PathBuf {
        let root = root(name);
        let mut gpu = FixtureRun::new("ae-gpu", State::Running, 4);
        gpu.device = "cuda:0".into();
        gpu.age = 120.0;
        fixtures::write_run(&root, &gpu).unwrap();
        root
    }

    #[test]
    fn system_view_at_80x24_and_160x48() {
        let root = gpu_root("system-view");
        let store = store(&root);
        let mut app = app();
        select(&mut app, &root, "ae-gpu");
        key(&mut app, &store, KeyCode::Char('8'));
        assert_eq!(app.view, View::System);
        let small = render(&mut app, &store, 80, 24);
        for title in ["CPU %", "memory (RSS) MB", "data wait %", "GPU 0 util %"] {
            assert!(small.contains(title), "{title}\n{small}");
        }
        // What does not fit is named, not dropped silently.
        assert!(small.contains("+2 more chart(s)"), "{small}");
        insta::assert_snapshot!("system_80x24", small);
        let wide = render(&mut app, &store, 160, 48);
        for title in ["GPU 0 memory MB", "GPU 0 temp °C"] {
            assert!(wide.contains(title), "{title}\n{wide}");
        }
        assert!(!wide.contains("more chart(s)"), "{wide}");
        insta::assert_snapshot!("system_160x48", wide);
    }

    #[test]
    fn marked_runs_overlay_in_the_system_view() {
        let root = root("system-compare");
        let store = store(&root);
        let mut app = app();
        app.sort = crate::ui::app::SortKey::Name;
        for id in ["ae-finished", "ae-running"] {
            select(&mut app, &root, id);
            key(&mut app, &store, KeyCode::Char(' '));
        }
        app.view = View::System;
        let screen = render(&mut app, &store, 120, 30);
        // The legend names both runs, each after its colour's dot.
        assert!(
            screen
                .lines()
                .any(|l| l.contains("│● ae-finished  ● ae-running ")),
            "{screen}"
        );
        assert!(screen.contains("2 runs compared"), "{screen}");
        // Each chart's title carries both runs' latest values: `CPU % 203 188`.
        let cpu = screen.lines().find(|l| l.contains("CPU %")).unwrap();
        let after = cpu.split("CPU %").nth(1).unwrap();
        let values = after
            .split_whitespace()
            .take_while(|w| w.parse::<f64>().is_ok())
            .count();
        assert_eq!(values, 2, "{cpu}");
        insta::assert_snapshot!("system_compare_120x30", screen);
    }

    #[test]
    fn without_system_csv_the_view_says_when_it_comes() {
        let root = root("system-none");
        std::fs::remove_file(Path::new(&root).join("ae-finished/system.csv")).unwrap();
        let store = store(&root);
        let mut app = app();
        select(&mut app, &root, "ae-finished");
        app.view = View::System;
        let screen = render(&mut app, &store, 80, 24);
        assert!(screen.contains(super::PLACEHOLDER), "{screen}");
    }
}
