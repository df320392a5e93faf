//! Reading an image file (`read`, format guessed from its content, with decompression-bomb
//! limits) and the one-call `decode` that also shapes it for a batch. 8- and 16-bit PNG,
//! JPEG and TIFF; gray, RGB and RGBA. Shaping itself lives in [`super::transform`].

use std::io::{Cursor, Read as _};
use std::path::Path;

use image::{DynamicImage, ImageError, ImageReader, Limits};

use super::DataError;
use super::transform::{self, Shaping};

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

/// Largest width or height accepted. Whole-slide images are bigger, but those need tiling,
/// not a decode into memory; anything up to this is an ordinary scan.
pub const MAX_SIDE: u32 = 32768;

/// Largest decoded image (and file) accepted, in bytes. A small PNG or TIFF can declare a
/// multi-gigabyte image (a decompression bomb); refusing it by its header is cheap, while
/// allocating for it kills the loader, or the whole machine's training.
pub const MAX_BYTES: u64 = 1 << 30;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_BYTES);
    limits
}

/// Reads and decodes one image file, its format guessed from its content (extensions lie).
/// Errors name the file; an image over [`MAX_SIDE`] or [`MAX_BYTES`] is refused.
pub fn read(path: &Path) -> Result<DynamicImage, DataError> {
    // The whole file in one read: decoders then parse from memory, not through small
    // buffered reads.
    let bytes = read_file(path)?;
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| io_error(path, e))?;
    reader.limits(limits());
    reader.decode().map_err(|e| decode_error(path, &bytes, e))
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    // A FIFO among the images would hang the loader in `open`, and a link to /dev/zero
    // would read a gigabyte of zeros before failing: regular files only.
    let file = crate::runfs::tail::open_regular(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    if len > MAX_BYTES {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            message: format!(
                "the file is {} MiB, over the {} MiB limit for one image",
                len >> 20,
                MAX_BYTES >> 20
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    Ok(bytes)
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A decode error naming the file; a refused size says what the file declared.
fn decode_error(path: &Path, bytes: &[u8], e: ImageError) -> DataError {
    let message = match e {
        ImageError::Limits(_) => {
            let declared = declared_size(bytes).map_or_else(String::new, |(w, h)| {
                format!("it declares {w}x{h} pixels, ")
            });
            format!(
                "{declared}over the limit of {MAX_SIDE} pixels a side and {} MiB decoded \
                 (refused as a possible decompression bomb)",
                MAX_BYTES >> 20
            )
        }
        e => e.to_string(),
    };
    DataError::Decode {
        path: path.to_path_buf(),
        message,
    }
}

/// The dimensions in a file's header, read without limits (nothing is allocated for them).
fn declared_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    reader.no_limits();
    reader.into_dimensions().ok()
}

/// Decodes `path` into `shape.len()` values, channel-major in [0, 1]: stretched to the
/// shape with a bilinear filter.
pub fn decode(path: &Path, shape: Shape) -> Result<Vec<f32>, DataError> {
    let img = read(path)?;
    Ok(transform::shape_image(&img, &Shaping::stretch(shape)))
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

    /// A PNG whose header declares `w`x`h` pixels (color type `color`, 8 bits), with a
    /// few bytes of image data: what a decompression bomb looks like before inflating.
    fn png_declaring(w: u32, h: u32, color: u8, depth: u8) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            out.extend(kind);
            out.extend(data);
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend(crc.sum().to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([depth, color, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn huge_declared_images_are_refused_not_allocated() {
        let dir = tempfile::tempdir().unwrap();
        // Over the side limit; and within it but 30000x30000 RGBA 16-bit = 7.2 GB.
        for (name, w, h, color, depth) in [
            ("wide.png", 100_000, 10, 0, 8),
            ("bomb.png", 30_000, 30_000, 6, 16),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, png_declaring(w, h, color, depth)).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            assert!(err.contains(&format!("{w}x{h}")), "{err}");
            assert!(err.contains("32768") && err.contains("1024 MiB"), "{err}");
        }
    }

    #[test]
    fn format_is_guessed_from_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actually-a-png.jpg");
        image::GrayImage::from_pixel(3, 2, image::Luma([7]))
            .save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
        let img = read(&path).unwrap();
        assert_eq!((img.width(), img.height()), (3, 2));
    }

    #[test]
    fn special_files_are_refused_without_blocking_or_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.png");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let zero = dir.path().join("zero.png");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (path, why) in [(&fifo, "a FIFO"), (&zero, "a device")] {
            let err = read(path).unwrap_err().to_string();
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains(why),
                "{err}"
            );
        }
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
