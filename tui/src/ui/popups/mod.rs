//! Modal popups drawn over the dashboard: the new-run form and yes/no confirmations. Each
//! owns its state, draws from it, and handles every key while it is open.

pub mod confirm;
pub mod run_form;

use ratatui::layout::Rect;

/// A `width` x `height` rectangle centred in `area` (clipped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}
