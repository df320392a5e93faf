//! `samples/epoch-NNNN-<name>.png`: an emitted image batch tiled into one grid PNG.

use std::path::Path;

use super::RunFsError;

/// Pixels between tiles.
const GAP: usize = 2;

/// Tiles an NCHW f32 batch (values clamped to [0, 1]; 1 or 3 channels) into a grid
/// `columns` wide and writes it as an 8-bit PNG, atomically.
pub fn write_grid(
    path: &Path,
    data: &[f32],
    shape: [usize; 4],
    columns: usize,
) -> Result<(), RunFsError> {
    let [n, c, h, w] = shape;
    let invalid = |message: String| RunFsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if !matches!(c, 1 | 3) || n == 0 || data.len() != n * c * h * w {
        return Err(invalid(format!(
            "cannot tile an image batch of shape {shape:?}"
        )));
    }
    let cols = columns.clamp(1, n);
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * w + (cols - 1) * GAP, rows * h + (rows - 1) * GAP);
    let mut rgb = vec![0u8; gw * gh * 3];
    for i in 0..n {
        let (ox, oy) = ((i % cols) * (w + GAP), (i / cols) * (h + GAP));
        let img = &data[i * c * h * w..(i + 1) * c * h * w];
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| {
                    let v = img[(ch.min(c - 1) * h + y) * w + x];
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                };
                let o = ((oy + y) * gw + ox + x) * 3;
                rgb[o..o + 3].copy_from_slice(&[px(0), px(1), px(2)]);
            }
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image_rgb(&rgb, gw, gh)
        .map_err(|e| invalid(format!("encoding PNG: {e}")))?;
    super::atomic::write(path, &png)
}

/// `write_image` with the arguments in the order we have them.
trait WriteRgb {
    fn write_image_rgb(self, rgb: &[u8], w: usize, h: usize) -> image::ImageResult<()>;
}

impl<W: std::io::Write> WriteRgb for image::codecs::png::PngEncoder<W> {
    fn write_image_rgb(self, rgb: &[u8], w: usize, h: usize) -> image::ImageResult<()> {
        use image::ImageEncoder;
        self.write_image(rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_a_gray_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        // 3 images of 2x2, values 0, 0.5, 1.
        let data: Vec<f32> = [0.0f32, 0.5, 1.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, 4))
            .collect();
        write_grid(&path, &data, [3, 1, 2, 2], 2).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 2 columns, 2 rows, 2-pixel gaps.
        assert_eq!(img.dimensions(), (2 * 2 + GAP as u32, 2 * 2 + GAP as u32));
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(0, 4).0, [255, 255, 255]);
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_grid(&dir.path().join("x.png"), &[0.0; 3], [1, 1, 2, 2], 1).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
    }
}
