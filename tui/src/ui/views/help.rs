//! The `?` overlay: every key, by where it acts.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::ui::app::App;

/// (keys, what they do); an empty key starts a section.
pub const KEYS: &[(&str, &str)] = &[
    ("", "Everywhere"),
    ("q  Ctrl-C", "quit"),
    ("?", "this help (any key closes it)"),
    ("Tab  Shift-Tab  1-7", "next / previous / n-th view"),
    (
        "↑↓  j k  PgUp PgDn  g G",
        "select run (or scroll the focused view)",
    ),
    ("Enter  → l", "focus the view;  Esc ← h: back to the runs"),
    ("/", "filter runs by name, plugin, dataset (regex or text)"),
    ("Space", "mark / unmark the run for comparison"),
    ("S", "sort runs: age, name, state, best"),
    ("", "Losses"),
    ("+  -", "smoothing up / down (debiased EMA, 0 to 0.99)"),
    ("L", "log scale on y"),
    ("x", "x axis: step, epoch, wall time"),
    ("z", "zoom: all, last 1000, 100, 20 points"),
    ("", "Scores"),
    ("[  ]", "earlier / later evaluation"),
    ("t", "threshold: best F1 or Youden's J"),
    ("v", "bars overlaid or side by side"),
    ("L", "log counts"),
    ("", "Samples"),
    ("[  ]", "earlier / later epoch;  ↑↓ scroll when focused"),
];

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let width = area.width.min(80);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(keys, what)| {
            if keys.is_empty() {
                Line::styled(*what, app.theme.title)
            } else {
                Line::from(vec![
                    Span::styled(format!(" {keys:<24}"), app.theme.key),
                    Span::raw(*what),
                ])
            }
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(app.theme.focus_border)
                .title(" keys "),
        ),
        popup,
    );
}
