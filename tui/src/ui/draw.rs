//! Lays out one frame: header, runs list, view tabs, the active view, key hints or the
//! message bar, and the open popup on top. Reads the app and the store; changes nothing.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Tabs};

use super::app::{App, Focus, View};
use super::store::RunStore;
use super::views;
use crate::text::escape_controls;

/// Below this the dashboard shows a message instead of a cramped layout.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

pub fn draw(frame: &mut Frame, app: &App, store: &RunStore) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {}x{} (gantry needs at least {MIN_WIDTH}x{MIN_HEIGHT})",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let visible = app.visible(store).len() as u16;
    let list_height = (visible + 3).clamp(5, (area.height / 3).max(5));
    let [list, tabs, body, footer] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    views::runs::render(frame, list, app, store);
    render_tabs(frame, tabs, app, store);
    {
        let mut areas = app.areas.borrow_mut();
        areas.list = list;
        areas.body = body;
    }
    let border = if app.focus == Focus::Detail {
        app.theme.focus_border
    } else {
        app.theme.border
    };
    let block = Block::default().borders(Borders::ALL).border_style(border);
    let inner = block.inner(body);
    frame.render_widget(block, body);
    render_view(frame, inner, app, store);
    render_footer(frame, footer, app, store);
    if app.help {
        views::help::render(frame, area, app);
    }
    if let Some(form) = &app.form {
        form.render(frame, area, &app.theme);
    }
    if let Some(confirm) = &app.confirm {
        confirm.render(frame, area, &app.theme);
    }
}

fn render_tabs(frame: &mut Frame, area: Rect, app: &App, store: &RunStore) {
    let selected = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    let compared = app.compared(store);
    let subject = match compared.as_slice() {
        [] => String::new(),
        [one] => escape_controls(&one.id()),
        many => format!("{} runs compared", many.len()),
    };
    let full: Vec<String> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {}", i + 1, v.title()))
        .collect();
    // Each tab takes its title plus padding and a divider; when they and the run name do
    // not fit, only the selected view keeps its name (the others keep their key).
    let needed: usize = full.iter().map(|t| t.chars().count() + 3).sum::<usize>()
        + subject.chars().count().min(40)
        + 1;
    let titles: Vec<String> = if needed <= area.width as usize {
        full
    } else {
        full.into_iter()
            .enumerate()
            .map(|(i, t)| {
                if i == selected {
                    t
                } else {
                    (i + 1).to_string()
                }
            })
            .collect()
    };
    // Each tab is " title " and a one-column divider after it (ratatui's Tabs layout).
    let mut x = area.x;
    app.areas.borrow_mut().tabs_row = area.y;
    app.areas.borrow_mut().tabs = titles
        .iter()
        .map(|t| {
            let start = x;
            x += t.chars().count() as u16 + 2;
            let span = (start, x);
            x += 1;
            span
        })
        .collect();
    let [tabs, name] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(subject.chars().count().min(40) as u16 + 1),
    ])
    .areas(area);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(app.theme.selected)
            .divider("│")
            .padding(" ", " "),
        tabs,
    );
    frame.render_widget(Line::styled(subject, app.theme.title).right_aligned(), name);
}

fn render_view(frame: &mut Frame, area: Rect, app: &App, store: &RunStore) {
    match app.view {
        View::Plugins => return views::plugins::render(frame, area, app),
        // The host's GPUs show with no run selected too.
        View::Overview => return views::overview::render(frame, area, app, app.current(store)),
        _ => {}
    }
    let compared = app.compared(store);
    let Some(run) = app.current(store) else {
        return views::placeholder(frame, area, app, "no run selected");
    };
    match app.view {
        View::Losses => views::losses::render(frame, area, app, &compared),
        View::Metrics => views::metrics::render(frame, area, app, &compared),
        View::Scores => views::scores::render(frame, area, app, run),
        View::Samples => views::samples::render(frame, area, app, run),
        View::Log => views::log::render(frame, area, app, run),
        View::Embedding => views::embedding::render(frame, area, app, run),
        View::System => views::system::render(frame, area, app, &compared),
        View::Overview | View::Plugins => {}
    }
}

fn render_footer(frame: &mut Frame, area: Rect, app: &App, store: &RunStore) {
    if let Some(m) = &app.message {
        let style = if m.error {
            app.theme.error
        } else {
            app.theme.text
        };
        let glyph = if m.error { "⚠" } else { "·" };
        frame.render_widget(
            Line::styled(format!("{glyph} {}", escape_controls(&m.text)), style),
            area,
        );
        return;
    }
    let badges = app.remotes.badges(std::time::Instant::now());
    if store.root_errors.is_empty() && !badges.is_empty() {
        frame.render_widget(
            Line::styled(
                format!("⚠ {}", escape_controls(&badges.join(" · "))),
                app.theme.error,
            ),
            area,
        );
        return;
    }
    if let Some(e) = store.root_errors.first().or(store.watch_note.as_ref()) {
        frame.render_widget(
            Line::styled(format!("⚠ {}", escape_controls(e)), app.theme.error),
            area,
        );
        return;
    }
    let hints: &[(&str, &str)] = if app.filter.editing {
        &[("Enter", "keep filter"), ("Esc", "clear")]
    } else {
        match app.view {
            View::Losses => &[
                ("+-", "smooth"),
                ("L", "log"),
                ("a", "axis"),
                ("z", "zoom"),
                ("Space", "mark"),
                ("?", "help"),
                ("q", "quit"),
            ],
            View::Scores => &[
                ("[]", "epoch"),
                ("t", "rule"),
                ("v", "bars"),
                ("L", "log"),
                ("?", "help"),
                ("q", "quit"),
            ],
            // A foreign run's images are stepped by training step, not epoch.
            View::Samples if app.current(store).is_some_and(|r| r.foreign.is_some()) => &[
                ("[]", "step"),
                ("Enter", "scroll"),
                ("?", "help"),
                ("q", "quit"),
            ],
            View::Samples => &[
                ("[]", "epoch"),
                ("Enter", "scroll"),
                ("?", "help"),
                ("q", "quit"),
            ],
            View::Plugins => &[
                ("Enter", "scroll"),
                ("n", "new run"),
                ("Tab", "view"),
                ("?", "help"),
                ("q", "quit"),
            ],
            _ => &[
                ("Tab", "view"),
                ("/", "filter"),
                ("Space", "mark"),
                ("S", "sort"),
                ("n", "new"),
                ("x", "stop"),
                ("?", "help"),
                ("q", "quit"),
            ],
        }
    };
    let mut spans = Vec::new();
    for (k, what) in hints {
        spans.push(Span::styled(format!(" {k}"), app.theme.key));
        spans.push(Span::styled(format!(" {what} "), app.theme.dim));
    }
    frame.render_widget(Line::from(spans), area);
}
