//! Draws the new-run form: one row per field (the focused one marked, a choice between
//! `‹ ›`, a field being typed into with its cursor), a hint for the focused field, the
//! error with its field and line, and the keys. Every value may come from a cloned run's
//! files, so all of it is escaped.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::config_text::{
    BATCH_SIZE, CHANNELS, DEVICE, EPOCHS, KIND, LR, NAME, NORMAL_CLASS, PARAMS, PLUGIN, ROOT, SEED,
    SIZE,
};
use super::{Field, RunForm};
use crate::text::escape_controls;
use crate::ui::popups::centered;
use crate::ui::theme::Theme;

/// Widest the form gets.
const WIDTH: u16 = 80;
/// Rows of editor text shown around an error line.
const EXCERPT: usize = 3;
/// Most rows the error message wraps to.
const ERROR_ROWS: u16 = 3;

impl RunForm {
    pub fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let width = area.width.min(WIDTH);
        let inner_width = width.saturating_sub(2).max(1);
        let error = self
            .error
            .as_ref()
            .map(|e| format!("⚠ {}", escape_controls(&e.summary())));
        let error_rows = error.as_ref().map_or(0, |e| {
            (e.chars().count() as u16)
                .div_ceil(inner_width)
                .clamp(1, ERROR_ROWS)
        });
        let body_rows = match &self.raw {
            Some(_) => 2 * EXCERPT as u16 + 2,
            None => self.fields.len() as u16,
        };
        let popup = centered(area, width, body_rows + error_rows + 4);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.focus_border)
            .title(format!(" {} ", escape_controls(&self.title)));
        let inner = block.inner(popup);
        frame.render_widget(Clear, popup);
        frame.render_widget(block, popup);
        let [body, hint_area, err, keys] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(error_rows),
            Constraint::Length(1),
        ])
        .areas(inner);
        match &self.raw {
            Some(raw) => self.render_raw(frame, body, raw, theme),
            None => self.render_fields(frame, body, theme),
        }
        let hint_text = match &self.raw {
            Some(_) => "the config from $EDITOR does not check out yet".to_string(),
            None => hint(&self.fields[self.focus], &self.title),
        };
        frame.render_widget(
            Line::styled(format!(" {}", escape_controls(&hint_text)), theme.dim),
            hint_area,
        );
        if let Some(e) = error {
            frame.render_widget(
                Paragraph::new(Line::styled(e, theme.error)).wrap(Wrap { trim: false }),
                err,
            );
        }
        frame.render_widget(self.keys_line(theme), keys);
    }

    fn render_fields(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let rows = area.height as usize;
        if rows == 0 {
            return;
        }
        let label_width = self
            .fields
            .iter()
            .map(|f| f.path.chars().count())
            .max()
            .unwrap_or(0)
            .min(24);
        let offset = self.focus.saturating_sub(rows - 1);
        let bad = self.error.as_ref().and_then(|e| e.field.as_deref());
        let lines: Vec<Line> = self
            .fields
            .iter()
            .enumerate()
            .skip(offset)
            .take(rows)
            .map(|(i, field)| {
                let focused = i == self.focus;
                let label_style = if bad.is_some_and(|b| field_is(field, b)) {
                    theme.error
                } else if focused {
                    theme.title
                } else {
                    theme.dim
                };
                let mut spans = vec![
                    Span::styled(if focused { "▶ " } else { "  " }, theme.key),
                    Span::styled(
                        format!("{:<label_width$} ", escape_controls(&field.path)),
                        label_style,
                    ),
                ];
                spans.extend(self.value_spans(field, focused, theme));
                Line::from(spans)
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn value_spans(&self, field: &Field, focused: bool, theme: &Theme) -> Vec<Span<'static>> {
        if let (true, Some(editing)) = (focused, &self.editing) {
            let (before, under, after) = editing.line.split();
            let cursor = theme.selected.add_modifier(Modifier::REVERSED);
            return vec![
                Span::raw(escape_controls(before)),
                Span::styled(
                    under.map_or(" ".to_string(), |c| escape_controls(&c.to_string())),
                    cursor,
                ),
                Span::raw(escape_controls(after)),
            ];
        }
        let value = escape_controls(&field.value);
        if !field.choices.is_empty() {
            let mut spans = vec![Span::styled(
                format!("‹ {value} ›"),
                if focused { theme.key } else { Style::default() },
            )];
            if field.path == PLUGIN {
                let about = match self.plugin() {
                    Some(p) => format!("  {}", p.about),
                    None if field.value.is_empty() => "  no usable plugin found yet".into(),
                    None => "  not a usable plugin".into(),
                };
                spans.push(Span::styled(escape_controls(&about), theme.dim));
            }
            return spans;
        }
        if value.is_empty() {
            return vec![Span::styled(placeholder(&field.path), theme.dim)];
        }
        let mut spans = vec![Span::raw(value)];
        if let Some(default) = field.default.as_ref().filter(|d| **d != field.value) {
            spans.push(Span::styled(
                format!("  (default {})", escape_controls(default)),
                theme.dim,
            ));
        }
        spans
    }

    /// The editor text around the error line, numbered, the error line marked.
    fn render_raw(&self, frame: &mut Frame, area: Rect, raw: &str, theme: &Theme) {
        let at = self.error.as_ref().and_then(|e| e.line).unwrap_or(1);
        let first = at.saturating_sub(EXCERPT).max(1);
        let lines: Vec<Line> = raw
            .lines()
            .enumerate()
            .skip(first - 1)
            .take(2 * EXCERPT + 1)
            .map(|(i, text)| {
                let n = i + 1;
                let style = if n == at { theme.error } else { theme.text };
                Line::from(vec![
                    Span::styled(format!("{n:>4} │ "), theme.dim),
                    Span::styled(escape_controls(text), style),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn keys_line(&self, theme: &Theme) -> Line<'static> {
        let keys: &[(&str, &str)] = if self.editing.is_some() {
            &[
                ("Enter", "keep"),
                ("Esc", "revert"),
                ("←→ Home End", "move"),
                ("Ctrl-U", "clear"),
                ("↑↓", "keep and go"),
            ]
        } else if self.raw.is_some() {
            &[
                ("e", "edit again"),
                ("Enter", "check"),
                ("Esc", "drop the edit"),
            ]
        } else {
            &[
                ("↑↓", "field"),
                ("i", "edit"),
                ("←→", "choose"),
                ("e", "$EDITOR"),
                ("Enter", "launch"),
                ("Esc", "cancel"),
            ]
        };
        let mut spans = Vec::new();
        for (k, what) in keys {
            spans.push(Span::styled(format!(" {k}"), theme.key));
            spans.push(Span::styled(format!(" {what} "), theme.dim));
        }
        Line::from(spans)
    }
}

/// Whether an error about `path` (a config path, maybe deeper) concerns this field.
fn field_is(field: &Field, path: &str) -> bool {
    path == field.path || path.starts_with(&format!("{}.", field.path))
}

/// Shown, dim, in an empty field.
fn placeholder(path: &str) -> String {
    match path {
        NAME => "(empty: date, time and plugin)",
        LR => "(empty: the plugin's default)",
        NORMAL_CLASS => "(empty: no one-class training)",
        ROOT => "(the dataset's folder)",
        _ if path.starts_with(PARAMS) => "(empty: the plugin's default)",
        _ => "(empty)",
    }
    .to_string()
}

/// A line about the focused field.
fn hint(field: &Field, title: &str) -> String {
    let from = if title.starts_with("clone") {
        "the cloned run's folder"
    } else {
        "the folder gantry was started in"
    };
    match field.path.as_str() {
        PLUGIN => "←→ picks among the plugins that described themselves (view 8 lists all)".into(),
        NAME => "the run folder's name".into(),
        KIND => {
            "ImageFolder: ROOT/{train,val,test}/<class>/* · Csv · Idx (MNIST files) · Dicom".into()
        }
        ROOT => format!("relative paths are taken from {from}"),
        SIZE => "height, width: every image is resized to this".into(),
        CHANNELS => "1 gray or 3 RGB (images are converted)".into(),
        NORMAL_CLASS => "one-class training: train on this class, test on every class".into(),
        DEVICE => "auto: CUDA when a GPU is there, else the CPU".into(),
        EPOCHS => "passes over the train split".into(),
        BATCH_SIZE => "images per step".into(),
        LR => "Adam's learning rate".into(),
        SEED => "seeds the weights, the data order and augmentation".into(),
        p if p.starts_with(PARAMS) => match &field.default {
            Some(d) => format!("a RON value; the plugin's default: {d}"),
            None => "not one of the plugin's parameters".into(),
        },
        _ => String::new(),
    }
}
