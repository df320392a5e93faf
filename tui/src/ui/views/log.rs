//! The run's `train.log`, tailed live; scroll up from the end when focused.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    if run.log.is_empty() {
        super::placeholder(frame, area, app, "train.log is empty");
        return;
    }
    let height = area.height as usize;
    let end = run
        .log
        .len()
        .saturating_sub(app.log_scroll.min(run.log.len().saturating_sub(height)));
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = run
        .log
        .range(start..end)
        .map(|l| {
            let style = if l.contains(" ERROR ") {
                app.theme.error
            } else if l.contains(" WARN ") {
                app.theme.key
            } else {
                app.theme.text
            };
            Line::styled(escape_controls(l), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
