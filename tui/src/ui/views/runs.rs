//! The runs list: state glyph, name, plugin, dataset, progress, best metric, age.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table, TableState};

use super::{fmt_age, fmt_value};
use crate::text::escape_controls;
use crate::ui::app::{App, Focus};
use crate::ui::store::{RunData, RunStore};

/// Cells of the progress bar.
const BAR: usize = 8;

pub fn render(frame: &mut Frame, area: Rect, app: &App, store: &RunStore) {
    let visible = app.visible(store);
    let current = app.current(store).map(|r| r.folder.dir.clone());
    let mut title = format!(
        " runs {}/{} · sort {}{} ",
        visible.len(),
        store.runs.len(),
        app.sort.label(),
        if app.sort_reverse { ", reversed" } else { "" }
    );
    if !app.filter.text.is_empty() || app.filter.editing {
        title.push_str(&format!(
            "· /{}{} ",
            escape_controls(&app.filter.text),
            if app.filter.editing { "▏" } else { "" }
        ));
    }
    if !app.marked.is_empty() {
        title.push_str(&format!("· {} marked ", app.marked.len()));
    }
    let border = if app.focus == Focus::Runs {
        app.theme.focus_border
    } else {
        app.theme.border
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(title);
    if visible.is_empty() {
        let roots: Vec<String> = store
            .roots
            .iter()
            .map(|r| escape_controls(&r.display().to_string()))
            .collect();
        let text = if store.runs.is_empty() {
            format!(
                "no runs yet in {} — n starts one (or `gantry train CONFIG.ron`)",
                roots.join(", ")
            )
        } else {
            "no run matches the filter (Esc clears it)".to_string()
        };
        frame.render_widget(
            ratatui::widgets::Paragraph::new(Line::styled(text, app.theme.dim)).block(block),
            area,
        );
        return;
    }
    let selected = visible
        .iter()
        .position(|r| Some(&r.folder.dir) == current.as_ref());
    // Rows are made for what fits on screen only: at 10,000 runs, formatting them all
    // was most of a frame's time.
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let offset = window_offset(app.runs_offset.get(), selected, height, visible.len());
    app.runs_offset.set(offset);
    let shown = &visible[offset..visible.len().min(offset + height)];
    let hosts = app.shows_hosts(store);
    let rows: Vec<Row> = shown.iter().map(|run| row(app, run, hosts)).collect();
    let selected = selected.map(|s| s - offset);
    let mut widths = vec![
        Constraint::Length(2),
        Constraint::Fill(3),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(BAR as u16 + 8),
        Constraint::Length(18),
        Constraint::Length(4),
    ];
    let mut names = vec!["", "run", "plugin", "data", "progress", "best", "age"];
    if hosts {
        // As wide as the longest host label shown (`user@gpu1:2222`), within reason.
        let widest = shown
            .iter()
            .map(|r| app.host_label(r).chars().count())
            .max()
            .unwrap_or(5);
        widths.insert(2, Constraint::Length(widest.clamp(5, 24) as u16));
        names.insert(2, "host");
    }
    let header = Row::new(names).style(app.theme.title);
    let highlight = if app.focus == Focus::Runs {
        app.theme.selected
    } else {
        app.theme.title
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(highlight);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// The first row on screen: the previous one, moved just enough to show the selection.
fn window_offset(previous: usize, selected: Option<usize>, height: usize, len: usize) -> usize {
    let mut offset = previous.min(len.saturating_sub(height));
    if let Some(s) = selected {
        if s < offset {
            offset = s;
        } else if s >= offset + height {
            offset = s + 1 - height;
        }
    }
    offset
}

fn row<'a>(app: &App, run: &'a RunData, hosts: bool) -> Row<'a> {
    let liveness = run.liveness(app.now, &app.host);
    let (glyph, style) = app.theme.state(liveness);
    let marked = app.marked.contains(&run.folder.dir);
    let mut name = Line::from(vec![
        Span::styled(if marked { "● " } else { "" }, app.theme.key),
        Span::raw(escape_controls(&run.id())),
    ]);
    if !run.errors.is_empty() {
        name.push_span(Span::styled(" ⚠", app.theme.error));
    }
    if let Some(seen) = &run.slurm {
        name.push_span(Span::styled(
            format!(" {}", escape_controls(&seen.short())),
            app.theme.dim,
        ));
    }
    let status = run.status.as_ref();
    let progress = match status {
        Some(s) if s.epochs > 0 => {
            let done = if s.total_steps > 0 {
                s.step as f64 / s.total_steps as f64
            } else {
                s.epoch as f64 / s.epochs as f64
            };
            let filled = ((done.clamp(0.0, 1.0)) * BAR as f64).round() as usize;
            Line::from(vec![
                Span::raw(format!("{:>3}/{:<3}", s.epoch, s.epochs)),
                Span::styled("━".repeat(filled), style),
                Span::styled("─".repeat(BAR - filled), app.theme.dim),
            ])
        }
        _ => Line::raw("-"),
    };
    let best = status
        .and_then(|s| s.best.as_ref())
        .map(|b| format!("{} {}", short_tag(&b.tag), fmt_value(b.value)))
        .unwrap_or_else(|| "-".into());
    let age = if run.created() > 0.0 {
        fmt_age(app.now, run.created())
    } else {
        "-".into()
    };
    let mut cells = vec![
        Cell::from(Span::styled(glyph, style)),
        Cell::from(name),
        Cell::from(escape_controls(run.plugin())),
        Cell::from(escape_controls(&run.dataset())),
        Cell::from(progress),
        Cell::from(escape_controls(&best)),
        Cell::from(age),
    ];
    if hosts {
        cells.insert(2, Cell::from(escape_controls(&app.host_label(run))));
    }
    Row::new(cells).style(Style::default())
}

/// `val/loss` stays; long tags keep their last part.
fn short_tag(tag: &str) -> &str {
    if tag.len() <= 10 {
        tag
    } else {
        tag.rsplit('/').next().unwrap_or(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::window_offset;

    #[test]
    fn the_list_scrolls_only_when_the_selection_leaves_it() {
        // Moving down inside the window keeps it; past its end scrolls by one.
        assert_eq!(window_offset(0, Some(5), 10, 100), 0);
        assert_eq!(window_offset(0, Some(10), 10, 100), 1);
        assert_eq!(window_offset(40, Some(45), 10, 100), 40);
        // Up past its top scrolls to the selection.
        assert_eq!(window_offset(40, Some(39), 10, 100), 39);
        // A list that shrank pulls the window back; no selection keeps the top.
        assert_eq!(window_offset(95, None, 10, 20), 10);
        assert_eq!(window_offset(0, None, 10, 3), 0);
    }
}
