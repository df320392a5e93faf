//! Sample images of one epoch (originals above reconstructions), drawn with half-block
//! characters, stacked and scrollable; `[` `]` step through epochs. A TensorBoard run's
//! image summaries show the same way, one step at a time, each under its tag.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

use crate::runfs::SampleFile;
use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;
use crate::ui::widgets::halfblock::{HalfBlockImage, ImageMode, fitted_size};

/// Largest side of an image summary decoded for the view. Its bytes come from another
/// program's event file: a few bytes of PNG may declare gigapixels, refused by the header.
pub const MAX_SUMMARY_SIDE: u32 = 8192;
/// Largest decode of an image summary, in bytes.
pub const MAX_SUMMARY_DECODE: u64 = 256 << 20;

/// Decodes a sample for the image cache: its PNG file, or the bytes of an image summary
/// held in memory (bounded by [`MAX_SUMMARY_SIDE`] and [`MAX_SUMMARY_DECODE`]). The error
/// names the file, or the tag and step.
pub fn load(sample: &SampleFile) -> Result<image::RgbImage, String> {
    let Some(bytes) = &sample.png else {
        return image::open(&sample.path)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("{}: {e}", sample.path.display()));
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SUMMARY_SIDE);
    limits.max_image_height = Some(MAX_SUMMARY_SIDE);
    limits.max_alloc = Some(MAX_SUMMARY_DECODE);
    image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| e.to_string())
        .and_then(|mut reader| {
            reader.limits(limits);
            reader.decode().map_err(|e| e.to_string())
        })
        .map(|i| i.to_rgb8())
        .map_err(|e| format!("{} at step {}: {e}", sample.name, sample.epoch))
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    let foreign = run.foreign.is_some();
    let Some(epoch) = app.sample_epoch(run) else {
        let empty = if foreign {
            "no images in this run's event files (add_image, tf.summary.image)"
        } else {
            "no samples yet (samples/epoch-NNNN-*.png)"
        };
        return super::placeholder(frame, area, app, empty);
    };
    let (unit, units) = if foreign {
        ("step", "steps")
    } else {
        ("epoch", "epochs")
    };
    let mode = if app.theme.color {
        ImageMode::TrueColor
    } else {
        ImageMode::Ascii
    };
    let mut y = area.y as i32 - app.samples_scroll as i32;
    for sample in run.samples.iter().filter(|s| s.epoch == epoch) {
        let title = format!(
            "{unit} {epoch} · {} ({})",
            escape_controls(&sample.name),
            if app.samples_back == 0 {
                "latest".to_string()
            } else {
                format!("[ ] {units}")
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
            None => {
                // Not read yet: a remote host's image on its way.
                if y >= area.y as i32 && (y as u16) < area.bottom() {
                    frame.render_widget(
                        Line::styled("… fetching", app.theme.dim),
                        Rect::new(area.x, y as u16, area.width, 1),
                    );
                }
                y += 2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header declares `w` x `h` RGB pixels, and one empty deflate block.
    fn png_declaring(w: u32, h: u32) -> Vec<u8> {
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8; 4], data: &[u8]| {
            png.extend((data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend(data);
            png.extend(&body);
            png.extend(crc.checksum(&body).to_be_bytes());
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(b"IEND", &[]);
        png
    }

    fn summary(png: Vec<u8>) -> SampleFile {
        SampleFile {
            epoch: 7,
            name: "recon/0".into(),
            path: "/nowhere#image:recon/0@step-7".into(),
            png: Some(png.into()),
        }
    }

    #[test]
    fn summaries_declaring_huge_images_are_refused_by_their_header() {
        let start = std::time::Instant::now();
        for (w, h) in [(100_000, 100_000), (4, 1_000_000_000), (8193, 1)] {
            let err = load(&summary(png_declaring(w, h))).unwrap_err();
            assert!(err.starts_with("recon/0 at step 7: "), "{err}");
        }
        assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
        let err = load(&summary(b"not an image".to_vec())).unwrap_err();
        assert!(err.starts_with("recon/0 at step 7: "), "{err}");
    }
}
