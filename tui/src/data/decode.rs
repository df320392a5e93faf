//! Decoding an image file into the f32 CHW layout a batch holds: converted to the
//! configured channels, resized to the configured size, scaled to [0, 1]. 8- and 16-bit
//! PNG, JPEG and TIFF; gray, RGB and RGBA.

use std::path::Path;

use image::imageops::FilterType;

use super::DataError;

/// How images are shaped for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

impl Shape {
    /// Values per image.
    pub fn len(&self) -> usize {
        (self.channels * self.height * self.width) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes `path` into `shape.len()` values, channel-major.
pub fn decode(path: &Path, shape: Shape) -> Result<Vec<f32>, DataError> {
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .with_guessed_format()
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .decode()
        .map_err(|e| DataError::Decode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let (w, h) = (shape.width, shape.height);
    // f32 conversion scales any bit depth to [0, 1]; Triangle is bilinear, as Keras'
    // default interpolation.
    let resize = |needs: bool| {
        if needs {
            FilterType::Triangle
        } else {
            FilterType::Nearest
        }
    };
    let same = img.width() == w && img.height() == h;
    let mut out = Vec::with_capacity(shape.len());
    if shape.channels == 1 {
        let gray = img.to_luma32f();
        let gray = if same {
            gray
        } else {
            image::imageops::resize(&gray, w, h, resize(true))
        };
        out.extend(gray.pixels().map(|p| p.0[0].clamp(0.0, 1.0)));
    } else {
        let rgb = img.to_rgb32f();
        let rgb = if same {
            rgb
        } else {
            image::imageops::resize(&rgb, w, h, resize(true))
        };
        for c in 0..3 {
            out.extend(rgb.pixels().map(|p| p.0[c].clamp(0.0, 1.0)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_png_16bit_and_rgb_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let img = image::ImageBuffer::from_fn(4, 4, |x, _| {
            image::Luma([if x < 2 { 0u16 } else { 65535 }])
        });
        img.save(&path).unwrap();
        let gray = decode(
            &path,
            Shape {
                channels: 1,
                height: 4,
                width: 4,
            },
        )
        .unwrap();
        assert_eq!(gray.len(), 16);
        assert_eq!(&gray[..4], &[0.0, 0.0, 1.0, 1.0]);
        let rgb = decode(
            &path,
            Shape {
                channels: 3,
                height: 2,
                width: 2,
            },
        )
        .unwrap();
        assert_eq!(rgb.len(), 12);
        assert!(rgb.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn unreadable_image_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let err = decode(
            &path,
            Shape {
                channels: 1,
                height: 4,
                width: 4,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("broken.png"), "{err}");
    }
}
