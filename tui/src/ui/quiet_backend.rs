//! A terminal backend that writes nothing for a frame that changed nothing.
//!
//! ratatui diffs each frame against the last and sends only changed cells, but its
//! crossterm backend still ends every draw with colour resets, and the terminal hides the
//! cursor on every frame: about 25 bytes per redraw. A redraw that changes nothing (a
//! liveness tick over runs whose state and age read the same) must write nothing at all
//! over SSH, so this wrapper drops those bytes when there is nothing to draw and sends a
//! cursor change only when the cursor's state changes.

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

pub struct QuietBackend<B> {
    inner: B,
    /// What the terminal was last told about the cursor (`None` before the first call).
    cursor_hidden: Option<bool>,
}

impl<B> QuietBackend<B> {
    pub fn new(inner: B) -> QuietBackend<B> {
        QuietBackend {
            inner,
            cursor_hidden: None,
        }
    }
}

impl<B: Backend> Backend for QuietBackend<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut content = content.peekable();
        if content.peek().is_none() {
            return Ok(());
        }
        self.inner.draw(content)
    }

    fn append_lines(&mut self, n: u16) -> Result<(), Self::Error> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_hidden == Some(true) {
            return Ok(());
        }
        self.cursor_hidden = Some(true);
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_hidden == Some(false) {
            return Ok(());
        }
        self.cursor_hidden = Some(false);
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        // After a clear (the editor handing the terminal back) the terminal's cursor
        // state is not known any more.
        self.cursor_hidden = None;
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell as Count;
    use std::rc::Rc;

    use ratatui::Terminal;
    use ratatui::backend::CrosstermBackend;
    use ratatui::text::Line;

    use super::*;

    /// Counts the bytes written to the "terminal".
    struct Counted(Rc<Count<usize>>);

    impl std::io::Write for Counted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.set(self.0.get() + buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The same frame drawn twice writes bytes once; a changed frame writes again.
    #[test]
    fn an_unchanged_frame_writes_nothing() {
        let written = Rc::new(Count::new(0));
        let backend = QuietBackend::new(CrosstermBackend::new(Counted(Rc::clone(&written))));
        let options = ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 20, 2)),
        };
        let mut terminal = Terminal::with_options(backend, options).unwrap();
        let frame = |text: &'static str| {
            move |f: &mut ratatui::Frame| f.render_widget(Line::raw(text), f.area())
        };
        terminal.draw(frame("one")).unwrap();
        let first = written.get();
        assert!(first > 0);
        terminal.draw(frame("one")).unwrap();
        assert_eq!(written.get(), first, "bytes written for an unchanged frame");
        terminal.draw(frame("two")).unwrap();
        assert!(written.get() > first);
    }
}
