//! One line of text being edited, with a cursor (in characters, so multi-byte input is
//! never split).

/// The text of a field while it is edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdit {
    pub text: String,
    /// Characters before the cursor.
    pub cursor: usize,
}

impl LineEdit {
    /// Starts editing `text` with the cursor at its end.
    pub fn new(text: &str) -> LineEdit {
        LineEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.text.chars().count());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.chars().count();
    }

    /// Ctrl-U: clears the line.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    /// The text split at the cursor: (before, the character under it, after).
    pub fn split(&self) -> (&str, Option<char>, &str) {
        let at = self.byte_at(self.cursor);
        let (before, rest) = self.text.split_at(at);
        let mut chars = rest.chars();
        let under = chars.next();
        (before, under, chars.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_at_the_cursor_by_character() {
        let mut e = LineEdit::new("[32, 64]");
        e.home();
        e.right();
        e.delete();
        e.delete();
        e.insert('1');
        e.insert('6');
        assert_eq!(e.text, "[16, 64]");
        e.end();
        e.backspace();
        e.insert('é');
        e.left();
        assert_eq!(e.split(), ("[16, 64", Some('é'), ""));
        e.clear();
        assert_eq!((e.text.as_str(), e.cursor), ("", 0));
    }
}
