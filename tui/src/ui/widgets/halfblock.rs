//! Images in a terminal with half-block characters: the widget that draws input slices,
//! reconstructions and anomaly maps. A cell is one pixel wide and two tall ('▀' with the
//! top pixel as foreground and the bottom as background), which makes pixels roughly
//! square in common terminal fonts. An ASCII luminance ramp covers terminals without true
//! colour and NO_COLOR.

use image::RgbImage;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::widgets::Widget;

/// Dark to bright; one character per two vertical pixels in [`ImageMode::Ascii`].
const RAMP: &[u8] = b" .:-=+*#%@";

/// Beyond this the image is just big blocks; leave the space to the rest of the layout.
const MAX_UPSCALE: u64 = 4;

/// Per axis, at most this many source pixels are averaged into one destination pixel, so a
/// large image costs a bounded amount per redraw.
const MAX_TAPS: usize = 4;

/// How to draw pixels: true colour, or (for 16-colour terminals / NO_COLOR) an ASCII
/// luminance ramp `" .:-=+*#%@"`, one character per two vertical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    TrueColor,
    Ascii,
}

/// Draws an RGB image scaled to fit (aspect kept, box filter when shrinking, nearest
/// neighbour when enlarging) into the widget area, centred. Each cell shows two vertical
/// pixels as '▀' with fg = top pixel and bg = bottom pixel (`TrueColor`), or one ramp
/// character (`Ascii`) from the mean luminance of the two. Cells outside the fitted image
/// are left untouched.
pub struct HalfBlockImage<'a> {
    image: &'a RgbImage,
    mode: ImageMode,
}

impl<'a> HalfBlockImage<'a> {
    pub fn new(image: &'a RgbImage, mode: ImageMode) -> Self {
        HalfBlockImage { image, mode }
    }
}

/// The (width, height) in cells the image occupies when fit into (max_w, max_h) cells
/// (each cell = 1 px wide, 2 px tall at scale 1); never upscales beyond 4x. (0, 0) for an
/// empty image or area; otherwise at least one cell each way, however thin the image.
pub fn fitted_size(image_w: u32, image_h: u32, max_w: u16, max_h: u16) -> (u16, u16) {
    let (w, h_px) = fitted_pixels(image_w, image_h, max_w, max_h);
    (w, h_px.div_ceil(2))
}

/// The fitted size in pixels: width (= cells) and height (= 2 per cell, the last cell
/// possibly half used). Integer arithmetic so an exact fit is not lost to rounding.
fn fitted_pixels(image_w: u32, image_h: u32, max_w: u16, max_h: u16) -> (u16, u16) {
    if image_w == 0 || image_h == 0 || max_w == 0 || max_h == 0 {
        return (0, 0);
    }
    let (iw, ih) = (u64::from(image_w), u64::from(image_h));
    let box_w = u64::from(max_w).min(iw * MAX_UPSCALE);
    let box_h = (2 * u64::from(max_h)).min(ih * MAX_UPSCALE);
    // Width-limited when box_w / iw <= box_h / ih.
    let (w, h) = if box_w * ih <= box_h * iw {
        (box_w, ih * box_w / iw)
    } else {
        (iw * box_h / ih, box_h)
    };
    // Both are bounded by box_w <= max_w and box_h <= 2 * max_h, which fit in u16 after
    // halving; the clamp keeps a 1000x1 strip visible.
    (w.max(1) as u16, h.clamp(1, u64::from(u16::MAX)) as u16)
}

/// Source range `[start, end)` that destination pixel `d` of `dst` covers along an axis of
/// `src` pixels; never empty, so enlarging degrades to nearest neighbour.
fn source_span(d: u32, dst: u32, src: u32) -> (u32, u32) {
    let start = (u64::from(d) * u64::from(src) / u64::from(dst)) as u32;
    let end = ((u64::from(d) + 1) * u64::from(src) / u64::from(dst)) as u32;
    (start, end.max(start + 1).min(src))
}

/// Up to `MAX_TAPS` evenly spaced samples of a span.
fn taps(start: u32, end: u32) -> impl Iterator<Item = u32> {
    let len = (end - start) as usize;
    let n = len.min(MAX_TAPS);
    (0..n).map(move |k| start + (k * len / n) as u32)
}

/// Mean colour of the source pixels behind destination pixel (dx, dy) of a dw x dh image.
fn sample(image: &RgbImage, dx: u32, dy: u32, dw: u32, dh: u32) -> [u8; 3] {
    let (x0, x1) = source_span(dx, dw, image.width());
    let (y0, y1) = source_span(dy, dh, image.height());
    let mut sum = [0u32; 3];
    let mut n = 0u32;
    for y in taps(y0, y1) {
        for x in taps(x0, x1) {
            let p = image.get_pixel(x, y).0;
            for c in 0..3 {
                sum[c] += u32::from(p[c]);
            }
            n += 1;
        }
    }
    // Rounded mean; n >= 1 since spans are never empty.
    sum.map(|s| ((s + n / 2) / n) as u8)
}

/// Rec. 601 luma in 0..=255.
fn luma([r, g, b]: [u8; 3]) -> f64 {
    0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)
}

fn ramp_char(luma: f64) -> char {
    let last = RAMP.len() - 1;
    let i = (luma / 255.0 * last as f64).round() as usize;
    RAMP[i.min(last)] as char
}

impl Widget for HalfBlockImage<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        // Clip to the buffer so a caller's oversized area cannot index outside it.
        let area = area.intersection(buf.area);
        let (w, h_px) = fitted_pixels(
            self.image.width(),
            self.image.height(),
            area.width,
            area.height,
        );
        if w == 0 || h_px == 0 {
            return;
        }
        let h_cells = h_px.div_ceil(2);
        let left = area.x + (area.width - w) / 2;
        let top = area.y + (area.height - h_cells) / 2;
        let (dw, dh) = (u32::from(w), u32::from(h_px));
        for cy in 0..h_cells {
            let upper_row = 2 * u32::from(cy);
            // With an odd pixel height the last cell has no bottom pixel.
            let has_lower = upper_row + 1 < dh;
            for cx in 0..w {
                let upper = sample(self.image, u32::from(cx), upper_row, dw, dh);
                let lower =
                    has_lower.then(|| sample(self.image, u32::from(cx), upper_row + 1, dw, dh));
                let Some(cell) = buf.cell_mut((left + cx, top + cy)) else {
                    continue;
                };
                match self.mode {
                    ImageMode::TrueColor => {
                        cell.set_char('▀')
                            .set_fg(Color::Rgb(upper[0], upper[1], upper[2]));
                        if let Some([r, g, b]) = lower {
                            cell.set_bg(Color::Rgb(r, g, b));
                        }
                    }
                    ImageMode::Ascii => {
                        let l = match lower {
                            Some(lower) => (luma(upper) + luma(lower)) / 2.0,
                            None => luma(upper),
                        };
                        cell.set_char(ramp_char(l));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Pixel (x, y) = (40x, 40y, 7): every pixel distinct and predictable.
    fn pattern() -> RgbImage {
        RgbImage::from_fn(4, 4, |x, y| Rgb([40 * x as u8, 40 * y as u8, 7]))
    }

    #[test]
    fn truecolor_maps_pixel_pairs_to_fg_bg() {
        let img = pattern();
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(buf.area, &mut buf);
        for cy in 0..2u16 {
            for cx in 0..4u16 {
                let cell = &buf[(cx, cy)];
                assert_eq!(cell.symbol(), "▀");
                let (x, y) = (40 * cx as u8, 80 * cy as u8);
                assert_eq!(cell.fg, Color::Rgb(x, y, 7), "fg at {cx},{cy}");
                assert_eq!(cell.bg, Color::Rgb(x, y + 40, 7), "bg at {cx},{cy}");
            }
        }
    }

    #[test]
    fn centred_in_a_wider_area_leaving_the_rest_untouched() {
        let img = pattern();
        // 4x4 into 10x2 cells (10x4 px): height-limited, 4 cells wide, offset (10-4)/2 = 3.
        let mut buf = Buffer::empty(Rect::new(5, 1, 10, 2));
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(buf.area, &mut buf);
        for cx in 5..15u16 {
            let inside = (8..12).contains(&cx);
            assert_eq!(buf[(cx, 1)].symbol() == "▀", inside, "column {cx}");
        }
        assert_eq!(buf[(8, 1)].fg, Color::Rgb(0, 0, 7));
        assert_eq!(buf[(11, 2)].bg, Color::Rgb(120, 120, 7));
    }

    #[test]
    fn shrinking_averages_blocks() {
        // 4x4 checkerboard into 2x1 cells (2x2 px): each pixel is the mean of a 2x2 block,
        // two black and two white: 510 / 4 = 127.5, rounded to 128.
        let img = RgbImage::from_fn(4, 4, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        });
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(buf.area, &mut buf);
        for cx in 0..2u16 {
            assert_eq!(buf[(cx, 0)].fg, Color::Rgb(128, 128, 128));
            assert_eq!(buf[(cx, 0)].bg, Color::Rgb(128, 128, 128));
        }
    }

    #[test]
    fn ascii_uses_only_ramp_characters() {
        // Left column black, right column white, a gradient between.
        let img = RgbImage::from_fn(4, 4, |x, _| Rgb([85 * x as u8; 3]));
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        HalfBlockImage::new(&img, ImageMode::Ascii).render(buf.area, &mut buf);
        let ramp = std::str::from_utf8(RAMP).unwrap();
        for cy in 0..2u16 {
            for cx in 0..4u16 {
                let sym = buf[(cx, cy)].symbol();
                assert!(sym.len() == 1 && ramp.contains(sym), "{sym:?}");
                assert_eq!(buf[(cx, cy)].fg, Color::Reset, "no colour in ASCII mode");
            }
            // luma 0 -> ' ', 85 -> 3/9 '-', 170 -> 6/9 '*', 255 -> '@'.
            let row: String = (0..4u16).map(|cx| buf[(cx, cy)].symbol()).collect();
            assert_eq!(row, " -*@");
        }
    }

    #[test]
    fn fitted_size_keeps_aspect_and_caps_upscale() {
        // 100x50 into 80 cells wide, 40 tall (80 px): width-limited, 80x40 px = 80x20 cells.
        assert_eq!(fitted_size(100, 50, 80, 40), (80, 20));
        // Tall 10x100 into 80x20 (80x40 px): height-limited, 4x40 px = 4x20 cells.
        assert_eq!(fitted_size(10, 100, 80, 20), (4, 20));
        // 4x4 into a huge area stops at 4x: 16x16 px = 16x8 cells.
        assert_eq!(fitted_size(4, 4, 200, 200), (16, 8));
        // Odd pixel height rounds up to a half-used cell: 3x3 at 1x = 3x2 cells.
        assert_eq!(fitted_size(3, 3, 3, 10), (3, 2));
        // A thin strip still gets one cell.
        assert_eq!(fitted_size(1000, 1, 10, 10), (10, 1));
        assert_eq!(fitted_size(0, 4, 10, 10), (0, 0));
        assert_eq!(fitted_size(4, 4, 0, 10), (0, 0));
    }

    #[test]
    fn odd_height_leaves_last_background_untouched() {
        let img = RgbImage::from_fn(1, 3, |_, y| Rgb([10 * y as u8; 3]));
        let mut buf = Buffer::empty(Rect::new(0, 0, 1, 2));
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(buf.area, &mut buf);
        assert_eq!(buf[(0, 0)].fg, Color::Rgb(0, 0, 0));
        assert_eq!(buf[(0, 0)].bg, Color::Rgb(10, 10, 10));
        assert_eq!(buf[(0, 1)].fg, Color::Rgb(20, 20, 20));
        assert_eq!(buf[(0, 1)].bg, Color::Reset);
    }

    #[test]
    fn empty_area_or_image_renders_nothing() {
        let img = pattern();
        let mut buf = Buffer::empty(Rect::new(0, 0, 0, 0));
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(buf.area, &mut buf);
        assert_eq!(buf, Buffer::empty(Rect::new(0, 0, 0, 0)));

        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        HalfBlockImage::new(&img, ImageMode::Ascii).render(Rect::new(1, 1, 0, 5), &mut buf);
        let empty = RgbImage::new(0, 0);
        HalfBlockImage::new(&empty, ImageMode::TrueColor).render(buf.area, &mut buf);
        // An area outside the buffer is clipped away, not indexed.
        HalfBlockImage::new(&img, ImageMode::TrueColor).render(Rect::new(50, 50, 4, 2), &mut buf);
        assert_eq!(buf, Buffer::empty(Rect::new(0, 0, 4, 2)));
    }
}
