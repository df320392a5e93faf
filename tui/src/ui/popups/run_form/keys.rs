//! Keys of the new-run form. Browsing, the form's keys are commands (`e`, `Enter`, `Esc`,
//! arrows); `i` or `Space` on a text field starts typing into it, and then every printable
//! key is text until `Enter` (keep) or `Esc` (revert).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::config_text::PLUGIN;
use super::line_edit::LineEdit;
use super::{Editing, RunForm, check};
use crate::ui::actions::Action;

/// What a key did to the form.
#[derive(Debug, Clone, PartialEq)]
pub enum FormOutcome {
    Changed,
    Unchanged,
    /// Close the form, launching nothing.
    Cancel,
    /// Launch, or open `$EDITOR`.
    Act(Action),
}

impl RunForm {
    pub fn on_key(&mut self, key: KeyEvent) -> FormOutcome {
        if self.editing.is_some() {
            return self.on_edit_key(key);
        }
        if self.raw.is_some() {
            return self.on_raw_key(key);
        }
        match key.code {
            KeyCode::Esc => return FormOutcome::Cancel,
            KeyCode::Enter => return self.submit(),
            KeyCode::Char('e') => {
                return FormOutcome::Act(Action::Edit {
                    text: self.config_text().text,
                });
            }
            KeyCode::Up | KeyCode::BackTab | KeyCode::Char('k') => self.move_focus(-1),
            KeyCode::Down | KeyCode::Tab | KeyCode::Char('j') => self.move_focus(1),
            KeyCode::Home | KeyCode::PageUp | KeyCode::Char('g') => self.focus = 0,
            KeyCode::End | KeyCode::PageDown | KeyCode::Char('G') => {
                self.focus = self.fields.len() - 1
            }
            KeyCode::Left | KeyCode::Char('h') => return self.cycle(-1),
            KeyCode::Right | KeyCode::Char('l') => return self.cycle(1),
            KeyCode::Char(' ') if !self.fields[self.focus].choices.is_empty() => {
                return self.cycle(1);
            }
            KeyCode::Char(' ' | 'i') if self.fields[self.focus].choices.is_empty() => {
                let value = self.fields[self.focus].value.clone();
                self.editing = Some(Editing {
                    line: LineEdit::new(&value),
                    original: value,
                });
            }
            _ => return FormOutcome::Unchanged,
        }
        FormOutcome::Changed
    }

    /// Editor text that did not check out: `e` opens it again, `Enter` checks it again,
    /// `Esc` drops it and shows the fields as they were.
    fn on_raw_key(&mut self, key: KeyEvent) -> FormOutcome {
        match key.code {
            KeyCode::Esc => {
                self.raw = None;
                self.error = None;
                FormOutcome::Changed
            }
            KeyCode::Enter => self.submit(),
            KeyCode::Char('e') => FormOutcome::Act(Action::Edit {
                text: self.raw.clone().unwrap_or_default(),
            }),
            _ => FormOutcome::Unchanged,
        }
    }

    fn on_edit_key(&mut self, key: KeyEvent) -> FormOutcome {
        let Some(editing) = self.editing.as_mut() else {
            return FormOutcome::Unchanged;
        };
        let line = &mut editing.line;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => line.clear(),
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                line.insert(c)
            }
            KeyCode::Backspace => line.backspace(),
            KeyCode::Delete => line.delete(),
            KeyCode::Left => line.left(),
            KeyCode::Right => line.right(),
            KeyCode::Home => line.home(),
            KeyCode::End => line.end(),
            KeyCode::Esc => self.editing = None,
            KeyCode::Enter => self.commit(),
            KeyCode::Up | KeyCode::BackTab => {
                self.commit();
                self.move_focus(-1);
            }
            KeyCode::Down | KeyCode::Tab => {
                self.commit();
                self.move_focus(1);
            }
            _ => return FormOutcome::Unchanged,
        }
        FormOutcome::Changed
    }

    /// Ends typing, keeping the text; an error about this field is now stale.
    fn commit(&mut self) {
        if let Some(editing) = self.editing.take() {
            let field = &mut self.fields[self.focus];
            field.value = editing.line.text;
            if self.error.as_ref().and_then(|e| e.field.as_ref()) == Some(&field.path) {
                self.error = None;
            }
        }
    }

    fn move_focus(&mut self, by: i64) {
        let last = self.fields.len() as i64 - 1;
        self.focus = (self.focus as i64 + by).clamp(0, last) as usize;
    }

    /// Steps a choice field; the plugin's params follow the plugin.
    fn cycle(&mut self, by: i64) -> FormOutcome {
        let field = &mut self.fields[self.focus];
        let n = field.choices.len() as i64;
        if n == 0 {
            return FormOutcome::Unchanged;
        }
        let at = field
            .choices
            .iter()
            .position(|c| *c == field.value)
            .unwrap_or(0) as i64;
        field.value = field.choices[(at + by).rem_euclid(n) as usize].clone();
        if field.path == PLUGIN {
            self.plugin_changed();
        }
        FormOutcome::Changed
    }

    fn submit(&mut self) -> FormOutcome {
        match check::submit(self) {
            Ok(action) => FormOutcome::Act(action),
            Err(e) => {
                self.error = Some(e);
                FormOutcome::Changed
            }
        }
    }
}
