//! Named styles, built once. The palette uses only the 16 ANSI colours (safe over any SSH
//! terminal); with `NO_COLOR` set every style is plain and meaning is carried by glyphs,
//! bold and reverse video instead.

use ratatui::style::{Color, Modifier, Style};

use crate::runfs::status::{Liveness, State};

#[derive(Debug, Clone)]
pub struct Theme {
    pub color: bool,
    /// The terminal says it shows 24-bit colour (`COLORTERM=truecolor|24bit`); images use
    /// it, and fall back to ASCII shades on 16-colour terminals.
    pub truecolor: bool,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub selected: Style,
    pub border: Style,
    pub focus_border: Style,
    pub error: Style,
    pub best: Style,
    pub key: Style,
    pub normal: Style,
    pub anomalous: Style,
    pub threshold: Style,
}

/// Colours for overlaid runs and series, in order.
const PALETTE: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightBlue,
    Color::LightRed,
];

impl Theme {
    /// `NO_COLOR` (any value) turns colour off, as no-color.org asks.
    pub fn from_env() -> Theme {
        let mut theme = Theme::new(std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()));
        let colorterm = std::env::var("COLORTERM")
            .unwrap_or_default()
            .to_lowercase();
        theme.truecolor &= colorterm == "truecolor" || colorterm == "24bit";
        theme
    }

    /// [`Theme::from_env`], with the user's config over what the environment says.
    pub fn from_env_and(config: &crate::config::ThemeConfig) -> Theme {
        let auto = Theme::from_env();
        let mut theme = Theme::new(config.color.or(auto.color));
        theme.truecolor = theme.color && config.truecolor.or(auto.truecolor);
        theme
    }

    pub fn new(color: bool) -> Theme {
        let c = |style: Style, colour: Color| if color { style.fg(colour) } else { style };
        let plain = Style::default();
        Theme {
            color,
            truecolor: color,
            text: plain,
            dim: if color {
                plain.fg(Color::DarkGray)
            } else {
                plain.add_modifier(Modifier::DIM)
            },
            title: plain.add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            border: c(plain, Color::DarkGray),
            focus_border: c(plain.add_modifier(Modifier::BOLD), Color::Cyan),
            error: c(plain.add_modifier(Modifier::BOLD), Color::Red),
            best: c(plain.add_modifier(Modifier::BOLD), Color::Green),
            key: c(plain.add_modifier(Modifier::BOLD), Color::Yellow),
            normal: c(plain, Color::Cyan),
            anomalous: c(plain, Color::LightRed),
            threshold: c(plain.add_modifier(Modifier::BOLD), Color::Yellow),
        }
    }

    /// The colour of the i-th run or series (plain without colour).
    pub fn series(&self, i: usize) -> Style {
        if self.color {
            Style::default().fg(PALETTE[i % PALETTE.len()])
        } else {
            Style::default()
        }
    }

    /// Glyph and style of a run's liveness.
    pub fn state(&self, liveness: Option<Liveness>) -> (&'static str, Style) {
        let (glyph, colour) = match liveness {
            None => ("?", Color::Red),
            Some(Liveness::Recorded(State::Queued)) => ("…", Color::Gray),
            Some(Liveness::Recorded(State::Running)) => ("▶", Color::Cyan),
            Some(Liveness::Recorded(State::Finished)) => ("✔", Color::Green),
            Some(Liveness::Recorded(State::Failed)) => ("✘", Color::Red),
            Some(Liveness::Recorded(State::Stopped)) => ("■", Color::Yellow),
            Some(Liveness::Stalled) => ("⏸", Color::Yellow),
            Some(Liveness::Crashed) => ("‼", Color::LightRed),
            Some(Liveness::External { live: true }) => ("▷", Color::Cyan),
            Some(Liveness::External { live: false }) => ("◇", Color::Gray),
        };
        let style = if self.color {
            Style::default().fg(colour)
        } else {
            Style::default()
        };
        (glyph, style)
    }
}
