//! Live loss charts: one chart per metric name (`loss`, `auroc`...), each overlaying the
//! splits (`train/`, `val/`, `test/`) and, with marked runs, every marked run. Smoothed
//! with TensorBoard's debiased EMA, the raw series faint behind; log-y, x by step, epoch
//! or wall time; zoomed to the last N points. Series are decimated per pixel column
//! (min and max kept), so a spike never disappears and a million points draw fast.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, LegendPosition};

use super::fmt_value;
use crate::text::escape_controls;
use crate::ui::app::{App, XAxis};
use crate::ui::series::{decimate_min_max, y_bounds};
use crate::ui::store::RunData;

/// Smallest useful chart height in rows.
const MIN_CHART_ROWS: u16 = 8;

/// One line to draw: a run's tag.
struct Member<'a> {
    run_index: usize,
    run: &'a RunData,
    tag: &'a str,
}

/// One series as drawn: decimated to the chart's width.
struct ChartLine {
    label: String,
    colour: usize,
    raw: Vec<(f64, f64)>,
    smooth: Vec<(f64, f64)>,
}

/// The chart a tag belongs to: its name after the split prefix (`val/loss` is `loss`),
/// or before a split suffix, as PyTorch's tutorials tag (`Loss/train` is `Loss`), or
/// after Keras' `val_` (`val_loss` is `loss`), so train and validation overlay in one
/// chart each way.
fn group_of(tag: &str) -> &str {
    const SPLITS: [&str; 5] = ["train", "val", "validation", "test", "eval"];
    let is_split = |s: &str| SPLITS.iter().any(|x| x.eq_ignore_ascii_case(s));
    match (tag.split_once('/'), tag.rsplit_once('/')) {
        (Some((first, _)), Some((name, last))) if !is_split(first) && is_split(last) => name,
        (Some((_, rest)), _) => rest,
        _ => tag.strip_prefix("val_").unwrap_or(tag),
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, runs: &[&RunData]) {
    let mut groups: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
    for (run_index, run) in runs.iter().enumerate() {
        for tag in run.series.keys() {
            groups.entry(group_of(tag)).or_default().push(Member {
                run_index,
                run,
                tag,
            });
        }
    }
    if groups.is_empty() {
        return super::placeholder(frame, area, app, "no scalars yet");
    }
    // `loss` first: it is what everyone looks at.
    let mut names: Vec<&str> = groups.keys().copied().collect();
    names.sort_by_key(|n| (!n.contains("loss"), *n));
    let columns: u16 = if area.width >= 140 { 2 } else { 1 };
    let rows_fit = (area.height / MIN_CHART_ROWS).max(1);
    let shown = (names.len() as u16).min(rows_fit * columns) as usize;
    let hidden = names.len() - shown;
    let grid_rows = (shown as u16).div_ceil(columns);
    let mut chart_area = area;
    if hidden > 0 {
        chart_area.height = chart_area.height.saturating_sub(1);
        let note = format!(
            "+{hidden} more chart(s): {} — enlarge the terminal",
            names[shown..].join(", ")
        );
        frame.render_widget(
            Line::styled(escape_controls(&note), app.theme.dim),
            Rect::new(area.x, area.bottom() - 1, area.width, 1),
        );
    }
    let row_areas =
        Layout::vertical(vec![Constraint::Fill(1); grid_rows as usize]).split(chart_area);
    for (i, name) in names.iter().take(shown).enumerate() {
        let row = row_areas[i / columns as usize];
        let cells = Layout::horizontal(vec![Constraint::Fill(1); columns as usize]).split(row);
        render_chart(
            frame,
            cells[i % columns as usize],
            app,
            name,
            &groups[name],
            runs.len() > 1,
        );
    }
}

fn render_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    name: &str,
    members: &[Member],
    compare: bool,
) {
    let settings = &app.losses;
    // Braille gives two dots per cell horizontally.
    let columns = (area.width.saturating_sub(12) as usize * 2).max(2);
    let mut lines: Vec<ChartLine> = Vec::new();
    for (k, m) in members.iter().enumerate() {
        let Some(points) = app.charts.get(&m.run.folder.dir, m.tag) else {
            continue;
        };
        let label = if compare {
            format!("{}:{}", m.run.id(), m.tag)
        } else {
            m.tag.to_string()
        };
        let colour = if compare { m.run_index * 3 + k % 3 } else { k };
        lines.push(ChartLine {
            label,
            colour,
            raw: decimate_min_max(&points.raw, columns),
            smooth: decimate_min_max(&points.smooth, columns),
        });
    }
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.raw.iter().chain(&l.smooth).copied())
        .collect();
    // A title line only: the view already sits in a frame, and borders cost chart space.
    let block = Block::default()
        .borders(Borders::NONE)
        .title(Line::from(vec![
            Span::styled(format!(" {} ", escape_controls(name)), app.theme.title),
            Span::styled(
                format!(
                    "smooth {:.2}{}{} ",
                    settings.smoothing,
                    if settings.log_y { " · log y" } else { "" },
                    settings
                        .last_n
                        .map(|n| format!(" · last {n}"))
                        .unwrap_or_default()
                ),
                app.theme.dim,
            ),
        ]));
    let (Some((x0, x1)), Some((y0, y1))) = (x_bounds(&all), y_bounds(&all, false)) else {
        frame.render_widget(block, area);
        return;
    };
    let mut datasets = Vec::new();
    for ChartLine {
        label,
        colour,
        raw,
        smooth,
    } in &lines
    {
        let style = app.theme.series(*colour);
        if smooth.is_empty() {
            datasets.push(
                Dataset::default()
                    .name(escape_controls(label))
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(style)
                    .data(raw),
            );
        } else {
            datasets.push(
                Dataset::default()
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(app.theme.dim)
                    .data(raw),
            );
            datasets.push(
                Dataset::default()
                    .name(escape_controls(label))
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(style)
                    .data(smooth),
            );
        }
    }
    let y_label = |v: f64| {
        if settings.log_y {
            fmt_value(10f64.powf(v))
        } else {
            fmt_value(v)
        }
    };
    let x_label = |v: f64| match settings.x_axis {
        XAxis::Epoch => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    };
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .style(app.theme.dim)
                .title(settings.x_axis.label())
                .labels([x_label(x0), x_label(x1)]),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .style(app.theme.dim)
                .labels([y_label(y0), y_label((y0 + y1) / 2.0), y_label(y1)]),
        )
        .legend_position(Some(LegendPosition::TopRight))
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(60)));
    frame.render_widget(chart, area);
}

fn x_bounds(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let lo = points.iter().map(|p| p.0).min_by(f64::total_cmp)?;
    let hi = points.iter().map(|p| p.0).max_by(f64::total_cmp)?;
    Some(if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    })
}

#[cfg(test)]
mod tests {
    use super::group_of;

    #[test]
    fn splits_prefixed_or_suffixed_share_a_chart() {
        assert_eq!(group_of("val/loss"), "loss");
        assert_eq!(group_of("train/d_loss"), "d_loss");
        assert_eq!(group_of("test/recall/normal"), "recall/normal");
        assert_eq!(group_of("Loss/train"), "Loss");
        assert_eq!(group_of("Accuracy/validation"), "Accuracy");
        assert_eq!(group_of("epoch_loss"), "epoch_loss");
        assert_eq!(group_of("val_loss"), "loss");
    }
}
