//! Sample images of one epoch (originals above reconstructions), drawn with half-block
//! characters, stacked and scrollable; `[` `]` step through epochs.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;
use crate::ui::widgets::halfblock::{HalfBlockImage, ImageMode, fitted_size};

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    let Some(epoch) = app.sample_epoch(run) else {
        return super::placeholder(
            frame,
            area,
            app,
            "no samples yet (samples/epoch-NNNN-*.png)",
        );
    };
    let mode = if app.theme.color {
        ImageMode::TrueColor
    } else {
        ImageMode::Ascii
    };
    let mut y = area.y as i32 - app.samples_scroll as i32;
    for sample in run.samples.iter().filter(|s| s.epoch == epoch) {
        let title = format!(
            "epoch {epoch} · {} ({})",
            escape_controls(&sample.name),
            if app.samples_back == 0 {
                "latest"
            } else {
                "[ ] epochs"
            }
        );
        if y >= area.y as i32 && (y as u16) < area.bottom() {
            frame.render_widget(
                Line::styled(title, app.theme.title),
                Rect::new(area.x, y as u16, area.width, 1),
            );
        }
        y += 1;
        match app.image_cache.get(&sample.path) {
            Some(Ok(img)) => {
                let (w, h) = fitted_size(
                    img.width(),
                    img.height(),
                    area.width,
                    area.height.saturating_sub(1).max(1),
                );
                let top = y.max(area.y as i32);
                let bottom = (y + h as i32).min(area.bottom() as i32);
                // Only whole images are drawn: a partly scrolled-off image is skipped
                // rather than cropped into a misleading picture.
                if top == y && bottom == y + h as i32 && h > 0 {
                    frame.render_widget(
                        HalfBlockImage::new(img, mode),
                        Rect::new(area.x, y as u16, w, h),
                    );
                }
                y += h as i32 + 1;
            }
            Some(Err(e)) => {
                if y >= area.y as i32 && (y as u16) < area.bottom() {
                    frame.render_widget(
                        Line::styled(format!("⚠ {}", escape_controls(e)), app.theme.error),
                        Rect::new(area.x, y as u16, area.width, 1),
                    );
                }
                y += 2;
            }
            None => y += 1,
        }
    }
}
