//! The `?` overlay: every key, by where it acts; `↑↓` scroll it where it does not fit.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::ui::app::App;

/// (keys, what they do); an empty key starts a section.
pub const KEYS: &[(&str, &str)] = &[
    ("", "Everywhere"),
    ("q  Ctrl-C", "quit"),
    ("?", "this help (↑↓ scroll it, any other key closes it)"),
    (
        "Tab  Shift-Tab  1-9",
        "next / previous / n-th view (8: system, 9: plugins)",
    ),
    (
        "↑↓  j k  PgUp PgDn  g G",
        "select run (or scroll the focused view)",
    ),
    ("Enter  → l", "focus the view;  Esc ← h: back to the runs"),
    ("/", "filter runs by name, plugin, dataset (regex or text)"),
    ("Space", "mark / unmark the run for comparison"),
    ("S", "sort runs by the next key: age, name, state, best"),
    ("R", "reverse the order, whatever the key (S keeps it)"),
    ("mouse", "wheel: scroll;  click: select a run or a view tab"),
    ("", "Runs"),
    ("n", "new run: plugin, data, device, hyper-parameters"),
    ("c", "clone the selected run's config into the new-run form"),
    (
        "x",
        "stop the selected run (SIGTERM, after y); again: SIGKILL",
    ),
    ("r", "resume a stopped, failed or crashed run (after y)"),
    ("", "New-run form"),
    ("↑↓  Tab", "next / previous field"),
    ("i  Space", "type into the field (Enter keeps, Esc reverts)"),
    ("←→", "choose: plugin, kind, channels, device"),
    ("e", "the whole config as RON in $EDITOR"),
    ("Enter", "check, then launch;  Esc: cancel"),
    ("", "Losses"),
    ("+  -", "smoothing up / down (debiased EMA, 0 to 0.99)"),
    ("L", "log scale on y"),
    ("a", "x axis: step, epoch, wall time"),
    ("z", "zoom: all, last 1000, 100, 20 points"),
    ("", "Scores"),
    ("[  ]", "earlier / later evaluation"),
    ("t", "threshold: best F1 or Youden's J"),
    ("v", "bars overlaid or side by side"),
    ("L", "log counts"),
    ("", "Samples"),
    (
        "[  ]",
        "earlier / later epoch (step);  ↑↓ scroll when focused",
    ),
    ("", "Plugins"),
    (
        "Enter  ↑↓",
        "focus, then scroll; the list follows the plugin folders",
    ),
];

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let width = area.width.min(80);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let clipped = KEYS.len() as u16 + 2 > height;
    let scroll = app
        .help_scroll
        .min((KEYS.len() as u16 + 2).saturating_sub(height));
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
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(app.theme.focus_border)
                    .title(if clipped {
                        " keys (↑↓ scroll) "
                    } else {
                        " keys "
                    }),
            )
            .scroll((scroll, 0)),
        popup,
    );
}
