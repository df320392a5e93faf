//! One module per view; each renders from `&App` and `&RunStore` and mutates nothing.

pub mod embedding;
pub mod help;
pub mod log;
pub mod losses;
pub mod metrics;
pub mod overview;
pub mod plugins;
pub mod runs;
pub mod samples;
pub mod scores;
pub mod system;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::app::App;

/// A centred, dim one-line message for an empty view.
pub fn placeholder(frame: &mut Frame, area: Rect, app: &App, text: &str) {
    let y = area.y + area.height / 2;
    let line = Line::styled(text.to_string(), app.theme.dim).centered();
    frame.render_widget(
        Paragraph::new(line),
        Rect::new(
            area.x,
            y.min(area.bottom().saturating_sub(1)),
            area.width,
            1.min(area.height),
        ),
    );
}

/// Formats a metric value compactly: 4 significant digits, scientific when tiny or huge.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// "3s", "5m", "2h", "4d": how long ago a Unix time was.
pub fn fmt_age(now: f64, then: f64) -> String {
    let s = (now - then).max(0.0);
    if s < 60.0 {
        format!("{}s", s as u64)
    } else if s < 3600.0 {
        format!("{}m", (s / 60.0) as u64)
    } else if s < 86_400.0 {
        format!("{}h", (s / 3600.0) as u64)
    } else if s < 365.0 * 86_400.0 {
        format!("{}d", (s / 86_400.0) as u64)
    } else {
        // Years: a TensorBoard logdir from long ago still fits the age column.
        format!("{}y", (s / (365.0 * 86_400.0)) as u64)
    }
}

/// Whether a lower value of this tag is better (losses, errors).
pub fn lower_is_better(tag: &str) -> bool {
    let t = tag.to_lowercase();
    ["loss", "mse", "error", "fid", "gmsd", "mdsi", "kl"]
        .iter()
        .any(|k| t.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_values_and_ages() {
        assert_eq!(fmt_value(0.123456), "0.1235");
        assert_eq!(fmt_value(0.00001234), "1.234e-5");
        assert_eq!(fmt_value(1234.5), "1234.5");
        assert_eq!(fmt_age(100.0, 40.0), "1m");
        assert_eq!(fmt_age(100.0, 99.0), "1s");
        assert_eq!(fmt_age(1000.0 * 86_400.0, 0.0), "2y");
        assert!(lower_is_better("val/loss") && !lower_is_better("test/auroc"));
    }
}
