//! Metrics table: one row per evaluation and one column per evaluated tag (everything but
//! `train/*`), the best value of each column highlighted. With marked runs: one row per
//! run, showing last and best.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};

use super::{fmt_value, lower_is_better};
use crate::runfs::confusion::Confusion;
use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;

/// Evaluated headline tags of a run (`split/name`), in name order. Breakdowns such as
/// `test/recall/<class>` or `test/best_f1/threshold` stay in scalars.csv and the Losses
/// view: as columns they would push the headline numbers off the screen. A foreign run
/// (TensorBoard, Keras CSV) names its tags its own way: all of them are columns.
fn eval_tags(run: &RunData) -> Vec<&str> {
    run.series
        .keys()
        .map(String::as_str)
        .filter(|t| {
            run.foreign.is_some() || (!t.starts_with("train/") && t.matches('/').count() == 1)
        })
        .collect()
}

fn best_of(tag: &str, values: impl Iterator<Item = f64>) -> Option<f64> {
    let finite = values.filter(|v| v.is_finite());
    if lower_is_better(tag) {
        finite.min_by(f64::total_cmp)
    } else {
        finite.max_by(f64::total_cmp)
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, runs: &[&RunData]) {
    if runs.len() > 1 {
        return render_compare(frame, area, app, runs);
    }
    let Some(run) = runs.first() else {
        return super::placeholder(frame, area, app, "no run selected");
    };
    let tags = eval_tags(run);
    if tags.is_empty() {
        return super::placeholder(frame, area, app, "no evaluations yet");
    }
    let area = match &run.confusion {
        Some((name, confusion)) => {
            let rows = confusion.classes.len() as u16 + 3;
            let [table, matrix] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(rows)]).areas(area);
            render_confusion(frame, matrix, app, name, confusion);
            table
        }
        None => area,
    };
    // epoch -> (step, tag -> value)
    let mut table: BTreeMap<u32, (u64, BTreeMap<&str, f64>)> = BTreeMap::new();
    for tag in &tags {
        let s = &run.series[*tag];
        for i in 0..s.len() {
            let entry = table
                .entry(s.epochs[i])
                .or_insert((s.steps[i], BTreeMap::new()));
            entry.0 = entry.0.max(s.steps[i]);
            entry.1.insert(tag, s.values[i]);
        }
    }
    let best: Vec<Option<f64>> = tags
        .iter()
        .map(|t| best_of(t, table.values().filter_map(|(_, m)| m.get(t).copied())))
        .collect();
    let visible_rows = area.height.saturating_sub(1) as usize;
    let skip = table.len().saturating_sub(visible_rows);
    let rows: Vec<Row> = table
        .iter()
        .skip(skip)
        .map(|(epoch, (step, values))| {
            let mut cells = vec![Cell::from(epoch.to_string()), Cell::from(step.to_string())];
            for (i, tag) in tags.iter().enumerate() {
                cells.push(match values.get(tag) {
                    Some(v) if Some(*v) == best[i] => {
                        Cell::from(Span::styled(format!("{}*", fmt_value(*v)), app.theme.best))
                    }
                    Some(v) => Cell::from(fmt_value(*v)),
                    None => Cell::from("-"),
                });
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec!["epoch".to_string(), "step".to_string()];
    header.extend(tags.iter().map(|t| escape_controls(t)));
    let mut widths = vec![Constraint::Length(5), Constraint::Length(7)];
    widths.extend(tags.iter().map(|t| Constraint::Min(t.len().max(10) as u16)));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(app.theme.title))
            .column_spacing(2),
        area,
    );
}

/// One row per marked run: last value (best value) per tag, the best run highlighted.
fn render_compare(frame: &mut Frame, area: Rect, app: &App, runs: &[&RunData]) {
    let mut tags: Vec<&str> = runs.iter().flat_map(|r| eval_tags(r)).collect();
    tags.sort_unstable();
    tags.dedup();
    let bests: Vec<Option<f64>> = tags
        .iter()
        .map(|t| {
            best_of(
                t,
                runs.iter().filter_map(|r| {
                    r.series
                        .get(*t)
                        .and_then(|s| best_of(t, s.values.iter().copied()))
                }),
            )
        })
        .collect();
    let rows: Vec<Row> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let mut cells = vec![Cell::from(Span::styled(
                escape_controls(&run.id()),
                app.theme.series(i),
            ))];
            for (j, tag) in tags.iter().enumerate() {
                cells.push(match run.series.get(*tag) {
                    Some(s) if !s.is_empty() => {
                        let best = best_of(tag, s.values.iter().copied());
                        let text = format!(
                            "{} ({})",
                            fmt_value(s.last().unwrap_or(f64::NAN)),
                            best.map(fmt_value).unwrap_or_default()
                        );
                        if best.is_some() && best == bests[j] {
                            Cell::from(Span::styled(format!("{text}*"), app.theme.best))
                        } else {
                            Cell::from(text)
                        }
                    }
                    _ => Cell::from("-"),
                });
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec!["run (last (best))".to_string()];
    header.extend(tags.iter().map(|t| escape_controls(t)));
    let mut widths = vec![Constraint::Fill(2)];
    widths.extend(tags.iter().map(|_| Constraint::Min(18)));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(app.theme.title))
            .column_spacing(2),
        area,
    );
}

/// A classifier's confusion matrix (rows: true class, columns: predicted), the diagonal
/// highlighted, titled with the file it came from.
fn render_confusion(frame: &mut Frame, area: Rect, app: &App, name: &str, c: &Confusion) {
    let [title, table] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let text = format!(
        "confusion {}: rows true class, columns predicted",
        escape_controls(name.trim_end_matches(".csv"))
    );
    frame.render_widget(Span::styled(text, app.theme.title), title);
    let mut header = vec![Cell::from("")];
    header.extend(c.classes.iter().map(|k| Cell::from(escape_controls(k))));
    let rows: Vec<Row> = c
        .classes
        .iter()
        .zip(&c.counts)
        .enumerate()
        .map(|(i, (class, counts))| {
            let mut cells = vec![Cell::from(escape_controls(class))];
            cells.extend(counts.iter().enumerate().map(|(j, n)| {
                if i == j {
                    Cell::from(Span::styled(n.to_string(), app.theme.best))
                } else {
                    Cell::from(n.to_string())
                }
            }));
            Row::new(cells)
        })
        .collect();
    let first = c.classes.iter().map(|k| k.len()).max().unwrap_or(5).max(10) as u16;
    let mut widths = vec![Constraint::Length(first)];
    widths.extend(
        c.classes
            .iter()
            .map(|k| Constraint::Length(k.len().max(6) as u16)),
    );
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(app.theme.title))
            .column_spacing(2),
        table,
    );
}
