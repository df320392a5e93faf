//! A yes/no question about an action that cannot be taken back (stop, kill, resume): `y`
//! carries the action out, `n` or `Esc` drops it, every other key is swallowed so a stray
//! keystroke never confirms.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::centered;
use crate::text::escape_controls;
use crate::ui::actions::Action;
use crate::ui::theme::Theme;

/// An open confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// The question, naming the run (raw: escaped when drawn).
    pub question: String,
    /// What happens on `y`, in a sentence.
    pub detail: String,
    pub action: Action,
}

/// What a key did to a confirmation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Yes(Action),
    No,
    /// Not an answer; the question stays.
    Pending,
}

impl Confirm {
    pub fn on_key(&self, key: KeyEvent) -> Answer {
        match key.code {
            KeyCode::Char('y' | 'Y') => Answer::Yes(self.action.clone()),
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => Answer::No,
            _ => Answer::Pending,
        }
    }

    pub fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let width = area.width.min(64);
        let question = escape_controls(&self.question);
        let detail = escape_controls(&self.detail);
        // Borders, the question, a blank line, the detail wrapped, a blank line, the keys.
        let inner = width.saturating_sub(2).max(1) as usize;
        let wrapped = |s: &str| (s.chars().count().max(1)).div_ceil(inner) as u16;
        let height = 2 + wrapped(&question) + 1 + wrapped(&detail) + 2;
        let popup = centered(area, width, height);
        let lines = vec![
            Line::styled(question, theme.title),
            Line::raw(""),
            Line::styled(detail, theme.text),
            Line::raw(""),
            Line::from(vec![
                Span::styled(" y", theme.key),
                Span::styled(" yes   ", theme.dim),
                Span::styled("n Esc", theme.key),
                Span::styled(" no", theme.dim),
            ]),
        ];
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.focus_border)
                    .title(" confirm "),
            ),
            popup,
        );
    }
}
