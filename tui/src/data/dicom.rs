//! DICOM files as training images, read with dicom-rs.
//!
//! A CT or MR slice stores integers that only mean something after two steps: the
//! modality LUT (rescale slope and intercept, giving e.g. Hounsfield units) and a VOI
//! window that picks the range a reader looks at (40/80 for brain). Models train on
//! what a radiologist sees, so [`read`] applies both and hands back a 16-bit gray image
//! that the rest of the pipeline treats like a 16-bit PNG. Color images (ultrasound,
//! photos, secondary captures) have no such values and come back as RGB8.
//!
//! Decoding covers what a pure-Rust build of dicom-pixeldata can do, so CI needs no C
//! codec libraries: uncompressed (implicit/explicit VR, little/big endian, deflated,
//! encapsulated uncompressed), RLE lossless, JPEG baseline, 8-bit extended and lossless
//! (jpeg-decoder), and JPEG 2000 and High-Throughput JPEG 2000, lossless and lossy (jpeg2k
//! on openjp2, the Rust port of OpenJPEG). 12-bit lossy JPEG, JPEG-LS (whose only dicom-rs
//! decoder is CharLS, a C++ library) and JPEG XL are refused with an error naming the
//! transfer syntax.

use std::borrow::Cow;
use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_transfer_syntax_registry::{TransferSyntax, TransferSyntaxIndex, TransferSyntaxRegistry};
use image::{DynamicImage, ImageBuffer, Luma, Rgb};

use super::DataError;
use crate::data::options::Window;

/// Where the "DICM" magic sits: after the 128-byte preamble (PS3.10 7.1).
const MAGIC_OFFSET: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";

/// The most pixels (Rows x Columns x frames) a file may declare. Header values are
/// attacker- or corruption-controlled and decoders size buffers from them, so anything
/// larger (over 256 Mi pixels, 512 MiB at 16 bits) is refused before decoding.
const MAX_PIXELS: u64 = 1 << 28;

/// Explicit VR Big Endian, retired from DICOM in 2004 (dicom-dictionary-std deprecates
/// its constant) but still found in old archives.
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// The transfer syntaxes this build decodes, for the error that refuses the others.
const SUPPORTED: &str = "uncompressed, deflated, RLE lossless, JPEG baseline, 8-bit extended \
     and lossless, JPEG 2000 and HTJ2K";

/// JPEG 2000's transfer syntaxes, all decoded by openjp2: Part 1 lossless and lossy, Part 2
/// multi-component, and High-Throughput JPEG 2000 (lossless, lossless RPCL, lossy).
const JPEG_2000: [&str; 7] = [
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
    uids::JPEG2000MC_LOSSLESS,
    uids::JPEG2000MC,
    uids::HTJ2K_LOSSLESS,
    uids::HTJ2K_LOSSLESS_RPCL,
    uids::HTJ2K,
];

/// JPEG-LS lossless and near-lossless: dicom-rs decodes them only through CharLS, a C++
/// library that this pure-Rust build leaves out.
const JPEG_LS: [&str; 2] = [uids::JPEGLS_LOSSLESS, uids::JPEGLS_NEAR_LOSSLESS];

/// Every DICOM file under `root` (recursively): files with the "DICM" magic at byte 128,
/// whatever their extension (archives often have none), sorted by path. Hidden files and
/// folders are skipped, as in the other layouts; symlinked folders are not followed, so
/// a link cycle cannot loop.
pub fn index(root: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut found = Vec::new();
    walk(root, &mut found)?;
    found.sort();
    Ok(found)
}

/// Appends the DICOM files under `dir` to `found`.
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && has_magic(&path)? {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether `path` starts like a DICOM file (Part 10 preamble and magic). Reads 132 bytes,
/// so indexing a large archive stays cheap.
fn has_magic(path: &Path) -> Result<bool, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(MAGIC_OFFSET + MAGIC.len());
    File::open(path)
        .map_err(io)?
        .take((MAGIC_OFFSET + MAGIC.len()) as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head.get(MAGIC_OFFSET..) == Some(&MAGIC[..]))
}

/// Decodes the first frame of `path` as a 16-bit gray image: stored values -> rescale
/// slope/intercept (modality LUT) -> window (the given one; `Auto` = the file's
/// WindowCenter/WindowWidth if present, else the min..max of the rescaled values) mapped
/// linearly to 0..65535 with clamping -> inverted if PhotometricInterpretation is
/// MONOCHROME1. Color images (RGB, YBR, palette) become an RGB8 image instead (no
/// windowing).
///
/// Only the first frame: a training sample is one 2-D image, and a multi-frame file (a
/// cine loop, an enhanced CT volume) stands for one sample.
pub fn read(path: &Path, window: Window) -> Result<DynamicImage, DataError> {
    let obj = open(path)?;
    let ts = check_decodable(&obj, path)?;
    match photometric(&obj).as_str() {
        "MONOCHROME1" | "MONOCHROME2" => Ok(gray(&obj, path)?.windowed(window)),
        "PALETTE COLOR" => palette(&obj, path),
        "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT" => color(&obj, ts, path),
        other => Err(decode_error(
            path,
            format!("unsupported PhotometricInterpretation {other:?}"),
        )),
    }
}

/// Opens a DICOM file after checking its magic, so that a stray PNG or CSV gets "not a
/// DICOM file" rather than a parser error about a preamble.
fn open(path: &Path) -> Result<DefaultDicomObject, DataError> {
    if !has_magic(path)? {
        return Err(layout_error(
            path,
            "not a DICOM file (no \"DICM\" magic at byte 128)".into(),
        ));
    }
    OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| decode_error(path, describe(&e)))
}

/// Refuses, before any pixel buffer is allocated, files that have no pixel data, declare
/// an absurd size, or use a transfer syntax this build cannot decode. Returns the
/// transfer syntax, which decides whether a codec has already converted colors.
fn check_decodable(
    obj: &DefaultDicomObject,
    path: &Path,
) -> Result<&'static TransferSyntax, DataError> {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(layout_error(
            path,
            "has no pixel data (element (7FE0,0010))".into(),
        ));
    }
    let rows = required_u32(obj, tags::ROWS, "Rows", path)?;
    let cols = required_u32(obj, tags::COLUMNS, "Columns", path)?;
    // NumberOfFrames is an IS string that is sometimes malformed; 1 is its default.
    let frames = optional_u32(obj, tags::NUMBER_OF_FRAMES)
        .unwrap_or(1)
        .max(1);
    let pixels = u64::from(rows) * u64::from(cols) * u64::from(frames);
    if rows == 0 || cols == 0 || pixels > MAX_PIXELS {
        return Err(layout_error(
            path,
            format!(
                "declares {rows} x {cols} pixels x {frames} frames, outside 1..={MAX_PIXELS} pixels"
            ),
        ));
    }
    let ts = transfer_syntax(obj, path)?;
    codec_limits(obj, ts, path)?;
    Ok(ts)
}

/// Refuses what the registered codecs would get wrong or fail on with an obscure message:
/// 12-bit JPEG Extended (jpeg-decoder decodes 8-bit lossy JPEG only), and 32-bit samples
/// in the retired big-endian syntax (dicom-rs swaps them as 16-bit words).
fn codec_limits(
    obj: &DefaultDicomObject,
    ts: &TransferSyntax,
    path: &Path,
) -> Result<(), DataError> {
    let bits_stored = optional_u32(obj, tags::BITS_STORED).unwrap_or(8);
    if ts.uid() == uids::JPEG_EXTENDED12_BIT && bits_stored > 8 {
        return Err(decode_error(
            path,
            format!("unsupported: {bits_stored}-bit {} (8-bit only)", ts.name()),
        ));
    }
    let bits_allocated = optional_u32(obj, tags::BITS_ALLOCATED).unwrap_or(8);
    if ts.uid() == EXPLICIT_VR_BIG_ENDIAN && bits_allocated > 16 {
        return Err(decode_error(
            path,
            format!("unsupported: {bits_allocated}-bit samples in {}", ts.name()),
        ));
    }
    Ok(())
}

/// The file's transfer syntax, if this build can decode its pixel data.
fn transfer_syntax(
    obj: &DefaultDicomObject,
    path: &Path,
) -> Result<&'static TransferSyntax, DataError> {
    let uid = obj.meta().transfer_syntax();
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) if ts.can_decode_all() => Ok(ts),
        Some(ts) => {
            let why = if JPEG_LS.contains(&ts.uid()) {
                ", which needs CharLS, a C++ library this build leaves out"
            } else {
                ""
            };
            Err(decode_error(
                path,
                format!(
                    "unsupported transfer syntax {} ({uid}){why}; supported: {SUPPORTED}",
                    ts.name()
                ),
            ))
        }
        None => Err(decode_error(
            path,
            format!("unknown transfer syntax {uid}; supported: {SUPPORTED}"),
        )),
    }
}

/// PhotometricInterpretation, trimmed of DICOM's space padding; MONOCHROME2 if absent,
/// the usual meaning of a file that forgot it.
fn photometric(obj: &DefaultDicomObject) -> String {
    obj.get(tags::PHOTOMETRIC_INTERPRETATION)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "MONOCHROME2".into())
}

fn required_u32(
    obj: &DefaultDicomObject,
    tag: dicom_object::Tag,
    name: &str,
    path: &Path,
) -> Result<u32, DataError> {
    optional_u32(obj, tag).ok_or_else(|| {
        layout_error(
            path,
            format!(
                "has no valid {name} ({:04X},{:04X})",
                tag.group(),
                tag.element()
            ),
        )
    })
}

fn optional_u32(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

/// Decodes the first frame to native-endian samples, through whichever codec the
/// transfer syntax names; later frames are never decoded.
fn first_frame<'a>(
    obj: &'a DefaultDicomObject,
    path: &Path,
) -> Result<DecodedPixelData<'a>, DataError> {
    obj.decode_pixel_data_frame(0)
        .map_err(|e| decode_error(path, describe(&e)))
}

/// A gray frame in modality units (e.g. Hounsfield), before any window.
#[derive(Debug, Clone)]
struct Gray {
    width: u32,
    height: u32,
    /// Row-major rescaled values.
    values: Vec<f64>,
    /// The file's first WindowCenter/WindowWidth, used by `Window::Auto`.
    file_window: Option<(f64, f64)>,
    /// MONOCHROME1: low values display white, so the output is flipped to make high
    /// values bright as in MONOCHROME2.
    inverted: bool,
}

/// Reads a monochrome frame's stored values and applies the modality LUT (rescale slope
/// and intercept; an identity when the file has none, as for MR).
fn gray(obj: &DefaultDicomObject, path: &Path) -> Result<Gray, DataError> {
    let px = first_frame(obj, path)?;
    if px.samples_per_pixel() != 1 {
        return Err(layout_error(
            path,
            format!(
                "is monochrome but has {} samples per pixel",
                px.samples_per_pixel()
            ),
        ));
    }
    let (slope, intercept) = px
        .rescale()
        .ok()
        .and_then(|r| r.first().map(|r| (r.slope, r.intercept)))
        .unwrap_or((1.0, 0.0));
    let mut values = stored_values(&px, path)?;
    if values.len() != px.columns() as usize * px.rows() as usize {
        return Err(decode_error(
            path,
            "decoded frame has the wrong size".into(),
        ));
    }
    for v in &mut values {
        *v = *v * slope + intercept;
    }
    let file_window = px
        .window()
        .ok()
        .flatten()
        .and_then(|w| w.first().map(|w| (w.center, w.width)))
        .filter(|&(c, w)| c.is_finite() && w.is_finite() && w >= 1.0);
    Ok(Gray {
        width: px.columns(),
        height: px.rows(),
        values,
        file_window,
        inverted: px.photometric_interpretation().as_str() == "MONOCHROME1",
    })
}

/// How to turn one stored sample into its integer value: BitsStored of the
/// BitsAllocated bits carry the value, ending at HighBit, two's complement if signed.
#[derive(Debug, Clone, Copy)]
struct SampleFormat {
    bits_stored: u32,
    shift: u32,
    signed: bool,
}

impl SampleFormat {
    fn of(px: &DecodedPixelData, bits_allocated: u32) -> Self {
        let stored = u32::from(px.bits_stored());
        let bits_stored = if stored == 0 || stored > bits_allocated {
            bits_allocated
        } else {
            stored
        };
        let top = (u32::from(px.high_bit()) + 1).min(bits_allocated);
        Self {
            bits_stored,
            shift: top.saturating_sub(bits_stored),
            signed: px.pixel_representation() == PixelRepresentation::Signed,
        }
    }

    /// The value of a raw sample (its container bits, unsigned).
    fn value(self, raw: u32) -> i64 {
        let v = raw >> self.shift;
        if self.bits_stored >= 32 {
            return if self.signed {
                i64::from(v as i32)
            } else {
                i64::from(v)
            };
        }
        let v = i64::from(v & ((1u32 << self.bits_stored) - 1));
        if self.signed && v >> (self.bits_stored - 1) == 1 {
            v - (1i64 << self.bits_stored)
        } else {
            v
        }
    }
}

/// The stored (integer) values of a one-sample frame, as f64 so that rescaling can
/// follow. 1-bit frames arrive from dicom-pixeldata expanded to bytes of 0 or 255.
fn stored_values(px: &DecodedPixelData, path: &Path) -> Result<Vec<f64>, DataError> {
    let data = px
        .frame_data(0)
        .map_err(|e| decode_error(path, describe(&e)))?;
    let bits = u32::from(px.bits_allocated());
    let format = SampleFormat::of(px, bits);
    let value = |raw: u32| format.value(raw) as f64;
    Ok(match bits {
        1 => data.iter().map(|&b| f64::from(u8::from(b != 0))).collect(),
        8 => data.iter().map(|&b| value(u32::from(b))).collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| value(u32::from(u16::from_ne_bytes([c[0], c[1]]))))
            .collect(),
        32 => data
            .chunks_exact(4)
            .map(|c| value(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => {
            return Err(layout_error(
                path,
                format!("has BitsAllocated {bits}; 1, 8, 16 and 32 are supported"),
            ));
        }
    })
}

impl Gray {
    /// Windows the values to 16 bits (and flips MONOCHROME1), giving the image a model
    /// sees.
    fn windowed(&self, window: Window) -> DynamicImage {
        let linear = LinearWindow::new(self.window(window));
        let flip = if self.inverted { u16::MAX } else { 0 };
        let out: Vec<u16> = self
            .values
            .iter()
            .map(|&v| linear.apply(v) ^ flip)
            .collect();
        let buffer = ImageBuffer::<Luma<u16>, _>::from_raw(self.width, self.height, out)
            .expect("one value per pixel");
        DynamicImage::ImageLuma16(buffer)
    }

    /// (center, width) of the window to apply: the asked one, else the file's, else one
    /// spanning exactly min..max of the values (so `Auto` never clips a file that has no
    /// window of its own).
    fn window(&self, window: Window) -> (f64, f64) {
        if let Some(cw) = window.center_width().or(self.file_window) {
            return cw;
        }
        let (lo, hi) = self
            .values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            return (0.5, 1.0);
        }
        // PS3.3 C.11.2.1.2 maps c - 0.5 -+ (w - 1) / 2 to the ends of the output range.
        ((lo + hi) / 2.0 + 0.5, hi - lo + 1.0)
    }
}

/// DICOM's linear VOI function (PS3.3 C.11.2.1.2) onto 0..=65535: values at or below
/// `c - 0.5 - (w - 1) / 2` give 0, values above `c - 0.5 + (w - 1) / 2` give 65535,
/// and values between `((x - (c - 0.5)) / (w - 1) + 0.5) * 65535`. A width of 1 is a
/// threshold.
#[derive(Debug, Clone, Copy)]
struct LinearWindow {
    low: f64,
    high: f64,
    center: f64,
    span: f64,
}

impl LinearWindow {
    fn new((center, width): (f64, f64)) -> Self {
        let half = (width - 1.0) / 2.0;
        Self {
            low: center - 0.5 - half,
            high: center - 0.5 + half,
            center: center - 0.5,
            span: width - 1.0,
        }
    }

    fn apply(&self, x: f64) -> u16 {
        if x <= self.low {
            0
        } else if x > self.high {
            u16::MAX
        } else {
            let y = ((x - self.center) / self.span + 0.5) * f64::from(u16::MAX);
            y.round().clamp(0.0, f64::from(u16::MAX)) as u16
        }
    }
}

/// Decodes an RGB or YBR frame to RGB8. jpeg-decoder already returns RGB; JPEG 2000
/// returns RGB for YBR_ICT and YBR_RCT (the codestream's inverse component transform),
/// but YBR_FULL as stored; RLE and uncompressed data keep the file's color space. What is
/// still YBR is converted here, as pydicom does.
fn color(
    obj: &DefaultDicomObject,
    ts: &TransferSyntax,
    path: &Path,
) -> Result<DynamicImage, DataError> {
    let pi = photometric(obj);
    let j2k = JPEG_2000.contains(&ts.uid());
    // The other encapsulated codecs of this build (jpeg-decoder) convert YCbCr to RGB.
    let jpeg = ts.uid().starts_with("1.2.840.10008.1.2.4.") && !j2k;
    if pi == "YBR_FULL_422" && !ts.is_encapsulated_pixel_data() {
        return ybr_422_native(obj, path);
    }
    let px = first_frame(obj, path)?;
    if px.samples_per_pixel() != 3 {
        return Err(layout_error(
            path,
            format!(
                "is {pi} but has {} samples per pixel",
                px.samples_per_pixel()
            ),
        ));
    }
    let mut rgb = interleaved_8bit(&px, path)?;
    match pi.as_str() {
        _ if jpeg => {}
        "RGB" => {}
        "YBR_ICT" | "YBR_RCT" if j2k => {}
        "YBR_FULL" => rgb.chunks_exact_mut(3).for_each(ybr_to_rgb),
        other => {
            return Err(decode_error(
                path,
                format!("{other} pixel data in {} is not supported", ts.name()),
            ));
        }
    }
    rgb_image(px.columns(), px.rows(), rgb, path)
}

/// The frame's three samples per pixel as interleaved 8-bit values: planar data
/// (RRR..GGG..BBB) is interleaved, and 16- or 32-bit samples keep their top 8 stored
/// bits.
fn interleaved_8bit(px: &DecodedPixelData, path: &Path) -> Result<Vec<u8>, DataError> {
    let data = px
        .frame_data(0)
        .map_err(|e| decode_error(path, describe(&e)))?;
    let bits = u32::from(px.bits_allocated());
    let format = SampleFormat::of(px, bits);
    let down = format.bits_stored.saturating_sub(8);
    let to8 = |raw: u32| (format.value(raw) >> down).clamp(0, 255) as u8;
    let samples: Vec<u8> = match bits {
        8 => data.iter().map(|&b| to8(u32::from(b))).collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| to8(u32::from(u16::from_ne_bytes([c[0], c[1]]))))
            .collect(),
        32 => data
            .chunks_exact(4)
            .map(|c| to8(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => {
            return Err(layout_error(
                path,
                format!("has color BitsAllocated {bits}; 8, 16 and 32 are supported"),
            ));
        }
    };
    if px.planar_configuration() == PlanarConfiguration::Standard {
        return Ok(samples);
    }
    let n = samples.len() / 3;
    Ok((0..n)
        .flat_map(|i| [samples[i], samples[n + i], samples[2 * n + i]])
        .collect())
}

/// YBR_FULL (full-range BT.601 YCbCr, PS3.3 C.7.6.3.1.2) to RGB, in place.
fn ybr_to_rgb(px: &mut [u8]) {
    let y = f64::from(px[0]);
    let cb = f64::from(px[1]) - 128.0;
    let cr = f64::from(px[2]) - 128.0;
    let channel = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    px[0] = channel(y + 1.402 * cr);
    px[1] = channel(y - 0.344136 * cb - 0.714136 * cr);
    px[2] = channel(y + 1.772 * cb);
}

/// Uncompressed YBR_FULL_422: each pair of pixels is stored as Y1 Y2 Cb Cr, which
/// dicom-pixeldata does not unpack, so the raw element is read here.
fn ybr_422_native(obj: &DefaultDicomObject, path: &Path) -> Result<DynamicImage, DataError> {
    let cols = required_u32(obj, tags::COLUMNS, "Columns", path)?;
    let rows = required_u32(obj, tags::ROWS, "Rows", path)?;
    let bits = optional_u32(obj, tags::BITS_ALLOCATED).unwrap_or(8);
    let raw = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.to_bytes().ok())
        .unwrap_or(Cow::Borrowed(&[]));
    let need = rows as usize * cols as usize * 2;
    if bits != 8 || cols % 2 != 0 || raw.len() < need {
        return Err(layout_error(
            path,
            format!(
                "YBR_FULL_422 pixel data needs 8 bits and an even width and {need} bytes; has {bits} bits, {cols} columns, {} bytes",
                raw.len()
            ),
        ));
    }
    let rgb = raw[..need]
        .chunks_exact(4)
        .flat_map(|q| {
            let mut a = [q[0], q[2], q[3]];
            let mut b = [q[1], q[2], q[3]];
            ybr_to_rgb(&mut a);
            ybr_to_rgb(&mut b);
            [a[0], a[1], a[2], b[0], b[1], b[2]]
        })
        .collect();
    rgb_image(cols, rows, rgb, path)
}

/// PALETTE COLOR: each stored value indexes three lookup tables (PS3.3 C.7.6.3.1.5),
/// common in ultrasound. Segmented palettes are not supported.
fn palette(obj: &DefaultDicomObject, path: &Path) -> Result<DynamicImage, DataError> {
    let luts = [
        (
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
        (
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
        (
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
    ]
    .map(|(descriptor, data)| PaletteLut::read(obj, descriptor, data));
    let [Some(red), Some(green), Some(blue)] = luts else {
        return Err(decode_error(
            path,
            "PALETTE COLOR without readable (unsegmented) lookup tables".into(),
        ));
    };
    let px = first_frame(obj, path)?;
    let index = stored_values(&px, path)?;
    let rgb = index
        .iter()
        .flat_map(|&v| [red.get(v), green.get(v), blue.get(v)])
        .collect();
    rgb_image(px.columns(), px.rows(), rgb, path)
}

/// One channel's palette lookup table, already reduced to 8 bits.
#[derive(Debug)]
struct PaletteLut {
    first: f64,
    entries: Vec<u8>,
}

impl PaletteLut {
    /// Reads a descriptor (entries, first mapped value, bits per entry) and its data.
    /// 8-bit tables come either packed two entries to a 16-bit word or one per word;
    /// the data length tells which. dicom-rs holds OW data as native-endian words.
    fn read(
        obj: &DefaultDicomObject,
        descriptor: dicom_object::Tag,
        data: dicom_object::Tag,
    ) -> Option<Self> {
        let d: Vec<i64> = obj.get(descriptor)?.to_multi_int().ok()?;
        let (&count, &first, &bits) = (d.first()?, d.get(1)?, d.get(2)?);
        let count = if count == 0 { 65536 } else { count as usize };
        let bytes = obj.get(data)?.to_bytes().ok()?;
        let entries: Vec<u8> = if bytes.len() >= 2 * count {
            let shift = if bits > 8 { 8 } else { 0 };
            bytes
                .chunks_exact(2)
                .take(count)
                .map(|w| (u16::from_ne_bytes([w[0], w[1]]) >> shift) as u8)
                .collect()
        } else if bytes.len() >= count {
            bytes[..count].to_vec()
        } else {
            return None;
        };
        Some(Self {
            first: first as f64,
            entries,
        })
    }

    /// The color of a stored value; values outside the table take its ends.
    fn get(&self, value: f64) -> u8 {
        let last = self.entries.len() - 1;
        let i = (value - self.first).clamp(0.0, last as f64) as usize;
        self.entries[i]
    }
}

fn rgb_image(
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    path: &Path,
) -> Result<DynamicImage, DataError> {
    ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, rgb)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| decode_error(path, "decoded color data is shorter than the image".into()))
}

fn decode_error(path: &Path, message: String) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        message,
    }
}

fn layout_error(path: &Path, message: String) -> DataError {
    DataError::Layout {
        path: path.to_path_buf(),
        message,
    }
}

/// An error with its causes, since dicom-rs keeps the useful detail (which attribute,
/// which codec) in the source chain.
fn describe(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::OnceLock;

    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    use super::*;

    // ---- helpers ----------------------------------------------------------------------

    /// pydicom's test files: `$GANTRY_PYDICOM_DATA`, else the folder the CI venv's pydicom
    /// reports; `None` (the real-file tests skip) when neither is there.
    fn pydicom_data() -> Option<&'static Path> {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        DIR.get_or_init(|| {
            if let Some(dir) = std::env::var_os("GANTRY_PYDICOM_DATA") {
                return Some(PathBuf::from(dir));
            }
            let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/ci-venv/bin/python");
            let script = "import os, pydicom.data as d; \
                          print(os.path.dirname(d.get_testdata_file('CT_small.dcm')))";
            let out = Command::new(python).args(["-c", script]).output().ok()?;
            let dir = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
        })
        .as_deref()
    }

    /// pydicom's test files, or `None` after printing why the calling test is skipped.
    fn pydicom_data_or_skip() -> Option<&'static Path> {
        let dir = pydicom_data();
        if dir.is_none() {
            eprintln!(
                "skipped: pydicom's test files not found (set GANTRY_PYDICOM_DATA, or \
                 python3 -m venv target/ci-venv && target/ci-venv/bin/pip install pydicom)"
            );
        }
        dir
    }

    /// A pydicom test file, or `None` (the test skips). A configured folder that lacks
    /// the file is a broken setup and fails the test.
    fn real(name: &str) -> Option<PathBuf> {
        let path = pydicom_data_or_skip()?.join(name);
        assert!(path.is_file(), "{} is missing", path.display());
        Some(path)
    }

    /// What a synthetic test file holds.
    struct Spec {
        rows: u16,
        cols: u16,
        photometric: &'static str,
        /// Signed 16-bit stored values, row-major; `None` leaves out PixelData.
        values: Option<Vec<i16>>,
        rescale: Option<(f64, f64)>,
        window: Option<(f64, f64)>,
        transfer_syntax: &'static str,
    }

    impl Spec {
        fn ct(rows: u16, cols: u16, values: Vec<i16>) -> Self {
            Spec {
                rows,
                cols,
                photometric: "MONOCHROME2",
                values: Some(values),
                rescale: None,
                window: None,
                transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN,
            }
        }
    }

    fn element(
        tag: dicom_object::Tag,
        vr: VR,
        value: impl Into<PrimitiveValue>,
    ) -> DataElement<InMemDicomObject> {
        DataElement::new(tag, vr, value.into())
    }

    /// Writes a 16-bit signed CT-like file with dicom-object's in-memory API.
    fn write_synthetic(path: &Path, spec: &Spec) {
        let mut obj = InMemDicomObject::from_element_iter([
            element(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
            element(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.2.1143.1",
            ),
            element(tags::SAMPLES_PER_PIXEL, VR::US, 1_u16),
            element(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, spec.photometric),
            element(tags::ROWS, VR::US, spec.rows),
            element(tags::COLUMNS, VR::US, spec.cols),
            element(tags::BITS_ALLOCATED, VR::US, 16_u16),
            element(tags::BITS_STORED, VR::US, 16_u16),
            element(tags::HIGH_BIT, VR::US, 15_u16),
            element(tags::PIXEL_REPRESENTATION, VR::US, 1_u16),
        ]);
        if let Some((slope, intercept)) = spec.rescale {
            obj.put(element(tags::RESCALE_SLOPE, VR::DS, slope.to_string()));
            obj.put(element(
                tags::RESCALE_INTERCEPT,
                VR::DS,
                intercept.to_string(),
            ));
        }
        if let Some((center, width)) = spec.window {
            obj.put(element(tags::WINDOW_CENTER, VR::DS, center.to_string()));
            obj.put(element(tags::WINDOW_WIDTH, VR::DS, width.to_string()));
        }
        match &spec.values {
            Some(_) if spec.transfer_syntax != uids::EXPLICIT_VR_LITTLE_ENDIAN => {
                // Encapsulated: one fragment that no decoder will ever get to read.
                let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0; 8]]);
                obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
            }
            Some(values) => {
                let words: Vec<u16> = values.iter().map(|&v| v as u16).collect();
                obj.put(DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OW,
                    PrimitiveValue::U16(words.into()),
                ));
            }
            None => {}
        }
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(spec.transfer_syntax)
            .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.826.0.1.3680043.2.1143.1");
        obj.with_meta(meta)
            .expect("valid meta")
            .write_to_file(path)
            .expect("write synthetic DICOM");
    }

    fn gray16(image: DynamicImage) -> Vec<u16> {
        match image {
            DynamicImage::ImageLuma16(buffer) => buffer.into_raw(),
            other => panic!("expected 16-bit gray, got {:?}", other.color()),
        }
    }

    fn message(result: Result<DynamicImage, DataError>) -> String {
        result.expect_err("expected an error").to_string()
    }

    // ---- windowing ----------------------------------------------------------------------

    #[test]
    fn linear_window_follows_ps3_3_c_11_2_1_2() {
        // Brain 40/80: 0 and below black, above 79 white, 39.5 the middle gray.
        let brain = LinearWindow::new((40.0, 80.0));
        assert_eq!(brain.apply(-1000.0), 0);
        assert_eq!(brain.apply(0.0), 0);
        assert_eq!(brain.apply(39.5), 32768);
        assert_eq!(brain.apply(79.0), 65535);
        assert_eq!(brain.apply(79.5), 65535);
        assert_eq!(brain.apply(3000.0), 65535);
        assert_eq!(brain.apply(1.0), (65535.0_f64 / 79.0).round() as u16);
        // Width 1 is a threshold at c - 0.5, without dividing by zero.
        let threshold = LinearWindow::new((10.0, 1.0));
        assert_eq!(threshold.apply(9.5), 0);
        assert_eq!(threshold.apply(9.6), 65535);
    }

    #[test]
    fn auto_window_is_the_files_else_min_to_max() {
        let gray = Gray {
            width: 3,
            height: 1,
            values: vec![-5.0, 2.5, 10.0],
            file_window: None,
            inverted: false,
        };
        assert_eq!(gray16(gray.windowed(Window::Auto)), [0, 32768, 65535]);
        let with_file = Gray {
            file_window: Some((0.5, 2.0)),
            ..gray.clone()
        };
        assert_eq!(gray16(with_file.windowed(Window::Auto)), [0, 65535, 65535]);
        // A named window overrides the file's.
        let custom = Window::Custom {
            center: 2.5,
            width: 16.0,
        };
        assert_eq!(
            gray16(with_file.windowed(custom)),
            gray16(gray.windowed(custom))
        );
        // A constant image has no range: all black rather than a division by zero.
        let flat = Gray {
            values: vec![7.0; 3],
            ..gray
        };
        assert_eq!(gray16(flat.windowed(Window::Auto)), [0, 0, 0]);
    }

    // ---- synthetic files ----------------------------------------------------------------

    #[test]
    fn read_rescales_then_windows_and_inverts_monochrome1() {
        let dir = tempfile::tempdir().unwrap();
        // Stored -524 .. 524 with slope 2, intercept -1000 span -2048 .. 48 HU.
        let stored = vec![-524, 500, 500 + 20, 524];
        let mut spec = Spec::ct(2, 2, stored.clone());
        spec.rescale = Some((2.0, -1000.0));
        let mono2 = dir.path().join("mono2.dcm");
        write_synthetic(&mono2, &spec);
        spec.photometric = "MONOCHROME1";
        let mono1 = dir.path().join("mono1.dcm");
        write_synthetic(&mono1, &spec);

        let brain = LinearWindow::new((40.0, 80.0));
        let expected: Vec<u16> = stored
            .iter()
            .map(|&s| brain.apply(2.0 * f64::from(s) - 1000.0))
            .collect();
        assert_eq!(expected[..2], [0, 0]);
        assert!(expected[2] > 0 && expected[3] < 65535);
        let image = read(&mono2, Window::Brain).unwrap();
        assert_eq!((image.width(), image.height()), (2, 2));
        assert_eq!(gray16(image), expected);
        let inverted: Vec<u16> = expected.iter().map(|v| 65535 - v).collect();
        assert_eq!(gray16(read(&mono1, Window::Brain).unwrap()), inverted);
        // `Auto` takes the file's own window when it has one.
        spec.photometric = "MONOCHROME2";
        spec.window = Some((40.0, 80.0));
        let own = dir.path().join("own-window.dcm");
        write_synthetic(&own, &spec);
        assert_eq!(gray16(read(&own, Window::Auto).unwrap()), expected);
    }

    #[test]
    fn a_file_that_is_not_dicom_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.dcm");
        std::fs::write(&path, vec![b'x'; 300]).unwrap();
        let err = message(read(&path, Window::Auto));
        assert!(err.contains("not a DICOM file"), "{err}");
        assert!(err.contains("scan.dcm"), "{err}");
    }

    #[test]
    fn a_dicom_file_without_pixel_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.dcm");
        let mut spec = Spec::ct(2, 2, vec![]);
        spec.values = None;
        write_synthetic(&path, &spec);
        let err = message(read(&path, Window::Auto));
        assert!(
            err.ends_with("report.dcm: has no pixel data (element (7FE0,0010))"),
            "{err}"
        );
    }

    #[test]
    fn an_undecodable_transfer_syntax_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jls.dcm");
        let mut spec = Spec::ct(2, 2, vec![0; 4]);
        for (uid, name) in [
            (uids::JPEGLS_LOSSLESS, "JPEG-LS Lossless Image Compression"),
            (
                uids::JPEGLS_NEAR_LOSSLESS,
                "JPEG-LS Lossy (Near-Lossless) Image Compression",
            ),
        ] {
            spec.transfer_syntax = uid;
            write_synthetic(&path, &spec);
            let err = message(read(&path, Window::Auto));
            assert!(err.contains("jls.dcm"), "{err}");
            assert!(
                err.contains(&format!("unsupported transfer syntax {name} ({uid})")),
                "{err}"
            );
            assert!(err.contains("needs CharLS, a C++ library"), "{err}");
            assert!(err.ends_with(SUPPORTED), "{err}");
        }
        spec.transfer_syntax = uids::JPEGXL_LOSSLESS;
        write_synthetic(&path, &spec);
        let err = message(read(&path, Window::Auto));
        assert!(
            err.contains("unsupported transfer syntax JPEG XL Lossless"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_jpeg_2000_codestream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j2k.dcm");
        let mut spec = Spec::ct(2, 2, vec![0; 4]);
        for uid in JPEG_2000 {
            // Eight zero bytes where a codestream should be.
            spec.transfer_syntax = uid;
            write_synthetic(&path, &spec);
            let err = message(read(&path, Window::Auto));
            assert!(err.contains("j2k.dcm"), "{err}");
            assert!(err.contains("jpeg2k decoder failure"), "{uid}: {err}");
        }
    }

    #[test]
    fn an_absurd_declared_size_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.dcm");
        // 65535 x 65535 declared, 4 pixels stored.
        write_synthetic(&path, &Spec::ct(u16::MAX, u16::MAX, vec![0; 4]));
        let err = message(read(&path, Window::Auto));
        assert!(err.contains("huge.dcm"), "{err}");
        assert!(err.contains("declares 65535 x 65535 pixels"), "{err}");
    }

    #[test]
    fn index_finds_dicom_files_by_magic_whatever_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let dicom = Spec::ct(1, 1, vec![0]);
        for sub in ["a/b", ".cache", "c"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        write_synthetic(&root.join("c/slice.dcm"), &dicom);
        write_synthetic(&root.join("a/b/IM000001"), &dicom);
        write_synthetic(&root.join("a/.hidden.dcm"), &dicom);
        write_synthetic(&root.join(".cache/copy.dcm"), &dicom);
        std::fs::write(root.join("a/notes.txt"), "DICM").unwrap();
        std::fs::write(root.join("a/fake.dcm"), vec![0; 200]).unwrap();
        std::fs::write(root.join("c/empty"), b"").unwrap();
        let found = index(root).unwrap();
        assert_eq!(found, [root.join("a/b/IM000001"), root.join("c/slice.dcm")]);
        let missing = index(&root.join("nope")).unwrap_err().to_string();
        assert!(missing.contains("nope"), "{missing}");
    }

    // ---- JPEG 2000 ----------------------------------------------------------------------

    /// A 12 x 10, 12-bit unsigned [`gray12_pattern`] as an HTJ2K codestream, reversible
    /// (lossless), made with OpenJPH (`ojph_compress -reversible true -num_decomps 2
    /// -prog_order LRCP`, openjph-tools 0.9).
    const HTJ2K_GRAY12: &str = "\
        ff4fff51002940000000000c0000000a00000000000000000000000c0000000a000000000000000000010b01\
        01ff500008000200000007ff52000c00000001000204044001ff5c000a2070787878707078ff64001600014f\
        70656e4a50482056657220302e392e302eff90000a0000000000bd0001ff93c0016b00ff1fcb8d013bcc80f1\
        25943af7003097fc840378b900c000b4a000574000ad87ae7c1a120eec5018fd0305b86100fcb800736405dc\
        e41eb5f8004281bc56001ff60a4ffb9ef8003201bc5600c0017430005bd0002d602c60ff7ee73ffeebdf3f65\
        c801907f02f03f0010d0c02c963f4b30c09651827c00ff7ee37ffc37ff783ffc2f8c15cbfb8076d027c2e03d\
        8f9c1738c0965a00ff7bff7fff3ffef7ff7f8fe031bd0f987f3140965b00ffd9";

    /// [`gray12_pattern`] as a lossy HTJ2K codestream (9/7 wavelet, `-qstep 0.0005`):
    /// OpenJPEG (pydicom's decoder) gives it back within 2 of the pattern.
    const HTJ2K_GRAY12_LOSSY: &str = "\
        ff4fff51002940000000000c0000000a00000000000000000000000c0000000a000000000000000000010b01\
        01ff500008000200000025ff52000c00000001000204044000ff5c00112277e6683568356878601a601a6fbf\
        ff64001600014f70656e4a50482056657220302e392e302eff90000a0000000000e40001ff93c0016b0043d8\
        4b55c28e298024d3a15bf8003097fc8500f8b900c002d2800574002b800e9232ac0ab7d8630bfe0205b86000\
        f9b8001069d7122cf94841003201bf9600001489824e7416f0003181bf9600c005d4c005d64002e980243a00\
        9ba000624201af03c83591432800d143281732184d220b69fe2c96cd11004922208e915b7d0060933d640eaf\
        06703622e068ac07179a5365123426a7c6e0a532af84833622f716db3c14302bd18ce47a3c000f799f0724e4\
        c81806ac069f529c35343940a3f5e4830c0201816db300100402bd0024235d00ffd9";

    /// An 8 x 6 [`ybr_pattern`] (Y, Cb, Cr as stored, no component transform) as a
    /// reversible HTJ2K codestream in RPCL order (`-reversible true -colour_trans false`).
    const HTJ2K_YBR8: &str = "\
        ff4fff51002f4000000000080000000600000000000000000000000800000006000000000000000000030701\
        01070101070101ff500008000200000003ff52000c00020001000204044001ff5c000a2050585858505058ff\
        64001600014f70656e4a50482056657220302e392e302eff90000a0000000000740001ff93c01500634d0df9\
        0080b400c01500df8f61fe00219400c013809bb8890040b400c0096004604400c274000a3300c0098094fe00\
        027400a00460063300c013c0152000fea123427500baaeebc00001beb600c0138066f6a323c27500a00a809c\
        73fec1c9beb500ffd9";

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The image in [`HTJ2K_GRAY12`], row-major.
    fn gray12_pattern() -> Vec<f64> {
        (0..10)
            .flat_map(|r| (0..12).map(move |c| f64::from((r * 397 + c * 151 + r * c * 13) % 4096)))
            .collect()
    }

    /// The Y, Cb, Cr samples in [`HTJ2K_YBR8`], row-major.
    fn ybr_pattern() -> Vec<[u8; 3]> {
        (0..6_i32)
            .flat_map(|r| {
                (0..8_i32).map(move |c| {
                    [16 + r * 30 + c * 5, 128 + (c - 4) * 12, 128 + (r - 3) * 15].map(|v| v as u8)
                })
            })
            .collect()
    }

    /// Writes an unsigned image whose pixel data is one encapsulated frame.
    fn write_encapsulated(
        path: &Path,
        transfer_syntax: &str,
        photometric: &str,
        (rows, cols, samples): (u16, u16, u16),
        bits_stored: u16,
        frame: Vec<u8>,
    ) {
        let bits_allocated: u16 = if bits_stored > 8 { 16 } else { 8 };
        let mut obj = InMemDicomObject::from_element_iter([
            element(
                tags::SOP_CLASS_UID,
                VR::UI,
                uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            ),
            element(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.2.1143.2",
            ),
            element(tags::SAMPLES_PER_PIXEL, VR::US, samples),
            element(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
            element(tags::ROWS, VR::US, rows),
            element(tags::COLUMNS, VR::US, cols),
            element(tags::BITS_ALLOCATED, VR::US, bits_allocated),
            element(tags::BITS_STORED, VR::US, bits_stored),
            element(tags::HIGH_BIT, VR::US, bits_stored - 1),
            element(tags::PIXEL_REPRESENTATION, VR::US, 0_u16),
        ]);
        if samples == 3 {
            obj.put(element(tags::PLANAR_CONFIGURATION, VR::US, 0_u16));
        }
        let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![frame]);
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(transfer_syntax)
            .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.826.0.1.3680043.2.1143.2");
        obj.with_meta(meta)
            .expect("valid meta")
            .write_to_file(path)
            .expect("write encapsulated DICOM");
    }

    /// The modality values of a gray file, as [`decoded_like_reference`] reads them.
    fn gray_values(path: &Path) -> Vec<f64> {
        let obj = open(path).unwrap();
        check_decodable(&obj, path).unwrap();
        gray(&obj, path).unwrap().values
    }

    #[test]
    fn htj2k_decodes_lossless_exactly_and_lossy_closely() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ht.dcm");
        let want = gray12_pattern();
        // (openjp2 decodes any progression order, whatever the transfer syntax promises.)
        for uid in [uids::HTJ2K_LOSSLESS, uids::HTJ2K_LOSSLESS_RPCL, uids::HTJ2K] {
            write_encapsulated(
                &path,
                uid,
                "MONOCHROME2",
                (10, 12, 1),
                12,
                unhex(HTJ2K_GRAY12),
            );
            assert_eq!(gray_values(&path), want, "{uid}");
        }
        write_encapsulated(
            &path,
            uids::HTJ2K,
            "MONOCHROME2",
            (10, 12, 1),
            12,
            unhex(HTJ2K_GRAY12_LOSSY),
        );
        let got = gray_values(&path);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 2.0, "lossy HTJ2K off by {worst}");
        // OpenJPEG (pydicom) decodes it to values that sum to 229759 (the pattern's 229770).
        assert_eq!(got.iter().sum::<f64>(), 229759.0);
        // A 16-bit image from its windowed read, as the pipeline sees it.
        let image = read(&path, Window::Auto).unwrap();
        assert_eq!((image.width(), image.height()), (12, 10));
    }

    #[test]
    fn jpeg_2000_converts_ybr_full_and_keeps_what_the_codec_made_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ybr.dcm");
        let rgb8 = |pi: &str| -> Vec<[u8; 3]> {
            write_encapsulated(
                &path,
                uids::HTJ2K_LOSSLESS_RPCL,
                pi,
                (6, 8, 3),
                8,
                unhex(HTJ2K_YBR8),
            );
            match read(&path, Window::Auto).unwrap() {
                DynamicImage::ImageRgb8(rgb) => rgb.pixels().map(|p| p.0).collect(),
                other => panic!("{pi}: expected RGB8, got {:?}", other.color()),
            }
        };
        // YBR_FULL comes out of the codec as stored and is converted as pydicom does.
        let mut want = ybr_pattern();
        want.iter_mut().for_each(|p| ybr_to_rgb(p));
        assert_eq!(rgb8("YBR_FULL"), want);
        // The codec itself inverts YBR_ICT and YBR_RCT (this codestream has no component
        // transform, so its samples come out as stored): no second conversion.
        for pi in ["RGB", "YBR_ICT", "YBR_RCT"] {
            assert_eq!(rgb8(pi), ybr_pattern(), "{pi}");
        }
        // Subsampled chroma is not upsampled by dicom-rs' JPEG 2000 adapter: refused.
        write_encapsulated(
            &path,
            uids::HTJ2K_LOSSLESS_RPCL,
            "YBR_FULL_422",
            (6, 8, 3),
            8,
            unhex(HTJ2K_YBR8),
        );
        let err = message(read(&path, Window::Auto));
        assert!(
            err.contains("YBR_FULL_422 pixel data in High-Throughput"),
            "{err}"
        );
    }

    // ---- pydicom's files ----------------------------------------------------------------

    /// CT_small's own rescaled values (HU), read straight from its PixelData element:
    /// signed 16-bit, explicit VR little endian.
    fn ct_small_hu(path: &Path) -> (u32, u32, Vec<f64>) {
        let obj = dicom_object::open_file(path).unwrap();
        let number = |tag| obj.element(tag).unwrap().to_float64().unwrap();
        let (slope, intercept) = (number(tags::RESCALE_SLOPE), number(tags::RESCALE_INTERCEPT));
        let rows = obj.element(tags::ROWS).unwrap().to_int::<u32>().unwrap();
        let cols = obj.element(tags::COLUMNS).unwrap().to_int::<u32>().unwrap();
        let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        let hu = bytes
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_ne_bytes([c[0], c[1]])) * slope + intercept)
            .collect();
        (rows, cols, hu)
    }

    #[test]
    fn ct_small_brain_window_blacks_out_air_and_whites_out_bone() {
        let Some(path) = real("CT_small.dcm") else {
            return;
        };
        let (rows, cols, hu) = ct_small_hu(&path);
        let image = read(&path, Window::Brain).unwrap();
        assert_eq!((image.width(), image.height()), (cols, rows));
        let out = gray16(image);
        let air = hu.iter().filter(|&&h| h < -500.0).count();
        let bone = hu.iter().filter(|&&h| h > 300.0).count();
        assert!(air > 100 && bone > 100, "air {air}, bone {bone}");
        for (&h, &v) in hu.iter().zip(&out) {
            if h <= 0.0 {
                assert_eq!(v, 0, "{h} HU");
            } else if h > 79.0 {
                assert_eq!(v, 65535, "{h} HU");
            } else {
                let want = ((h - 39.5) / 79.0 + 0.5) * 65535.0;
                assert!((f64::from(v) - want).abs() <= 0.5, "{h} HU -> {v}");
            }
        }
    }

    #[test]
    fn mr_small_auto_uses_the_files_window() {
        let Some(path) = real("MR_small.dcm") else {
            return;
        };
        // MR_small declares WindowCenter 600, WindowWidth 1600.
        let auto = gray16(read(&path, Window::Auto).unwrap());
        let own = Window::Custom {
            center: 600.0,
            width: 1600.0,
        };
        assert_eq!(auto, gray16(read(&path, own).unwrap()));
        assert_ne!(auto, gray16(read(&path, Window::Brain).unwrap()));
    }

    /// Rewrites a real file through dicom-object with one change.
    fn rewritten(from: &Path, to: &Path, change: impl FnOnce(&mut DefaultDicomObject)) {
        let mut obj = dicom_object::open_file(from).unwrap();
        change(&mut obj);
        obj.write_to_file(to).unwrap();
    }

    #[test]
    fn monochrome1_comes_out_inverted() {
        let Some(path) = real("CT_small.dcm") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let mono1 = dir.path().join("mono1.dcm");
        rewritten(&path, &mono1, |obj| {
            obj.put(element(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME1",
            ));
        });
        for window in [Window::Auto, Window::Bone] {
            let normal = gray16(read(&path, window).unwrap());
            let inverted = gray16(read(&mono1, window).unwrap());
            assert!(normal.iter().zip(&inverted).all(|(a, b)| a + b == 65535));
        }
    }

    #[test]
    fn real_file_errors_name_the_file() {
        let Some(ct) = real("CT_small.dcm") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let stripped = dir.path().join("stripped.dcm");
        rewritten(&ct, &stripped, |obj| {
            obj.remove_element(tags::PIXEL_DATA);
        });
        let err = message(read(&stripped, Window::Auto));
        assert!(
            err.ends_with("stripped.dcm: has no pixel data (element (7FE0,0010))"),
            "{err}"
        );
        let readme = real("README.txt").unwrap();
        assert!(message(read(&readme, Window::Auto)).contains("not a DICOM file"));
        let jpeg12 = real("JPGExtended.dcm").unwrap();
        let err = message(read(&jpeg12, Window::Auto));
        assert!(err.contains("unsupported: 12-bit JPEG Extended"), "{err}");
        let be32 = real("rtdose_expb_1frame.dcm").unwrap();
        let err = message(read(&be32, Window::Auto));
        assert!(
            err.contains("32-bit samples in Explicit VR Big Endian"),
            "{err}"
        );
        // JPEG-LS needs CharLS, a C++ library this build leaves out.
        for (name, syntax) in [
            ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless"),
            ("JPEGLSNearLossless_08.dcm", "JPEG-LS Lossy (Near-Lossless)"),
            ("JPEGLSNearLossless_16.dcm", "JPEG-LS Lossy (Near-Lossless)"),
            ("SC_rgb_jls_lossy_line.dcm", "JPEG-LS Lossy (Near-Lossless)"),
            (
                "SC_rgb_jls_lossy_sample.dcm",
                "JPEG-LS Lossy (Near-Lossless)",
            ),
        ] {
            let jls = real(name).unwrap();
            let err = message(read(&jls, Window::Auto));
            assert!(err.contains(name), "{err}");
            assert!(
                err.contains(&format!("unsupported transfer syntax {syntax}")),
                "{err}"
            );
            assert!(err.contains("needs CharLS, a C++ library"), "{err}");
        }
    }

    #[test]
    fn pydicoms_jpeg_2000_files_decode() {
        // Lossless and lossy (.91), gray (signed, 13- to 16-bit) and color (RGB, YBR_RCT);
        // decodes_pydicoms_files_as_pydicom_does checks their values.
        for (name, rows, cols) in [
            ("MR_small_jp2klossless.dcm", 64, 64),
            ("J2K_pixelrep_mismatch.dcm", 512, 512),
            ("693_J2KI.dcm", 512, 512),
            ("JPEG2000.dcm", 1024, 256),
            ("GDCMJ2K_TextGBR.dcm", 400, 400),
            ("examples_jpeg2k.dcm", 480, 640),
            ("SC_rgb_gdcm_KY.dcm", 100, 100),
        ] {
            let Some(path) = real(name) else {
                return;
            };
            let image = read(&path, Window::Auto).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((image.height(), image.width()), (rows, cols), "{name}");
        }
        // A copy of JPEG2000.dcm with four codestream bytes overwritten, which pydicom
        // does not decode either: an error, not garbage or a panic.
        let Some(broken) = real("JPEG2000-embedded-sequence-delimiter.dcm") else {
            return;
        };
        let err = message(read(&broken, Window::Auto));
        assert!(err.contains("jpeg2k decoder failure"), "{err}");
    }

    #[test]
    fn index_finds_pydicoms_dicom_files_and_only_those() {
        let Some(dir) = pydicom_data_or_skip() else {
            return;
        };
        let found = index(dir).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"CT_small.dcm".to_string()), "{names:?}");
        // Files without the preamble/magic and non-DICOM files are not listed.
        for absent in ["no_meta.dcm", "README.txt", "zipMR.gz", "crayons.icc"] {
            assert!(!names.iter().any(|n| n == absent), "{absent} listed");
        }
        assert!(found.windows(2).all(|w| w[0] < w[1]));
    }

    /// One file of tests/data/pydicom_reference.json: what pydicom decodes.
    #[derive(Debug, serde::Deserialize)]
    struct Reference {
        file: String,
        kind: String,
        rows: u32,
        cols: u32,
        lossy: bool,
        sum: f64,
        min: f64,
        max: f64,
        grid: Vec<serde_json::Value>,
    }

    /// The first frame as pydicom's reference describes it: modality values for gray
    /// images, RGB8 for color, one `Vec` per pixel.
    fn decoded_like_reference(path: &Path, kind: &str) -> (u32, u32, Vec<Vec<f64>>) {
        if kind == "gray" {
            let obj = open(path).unwrap();
            check_decodable(&obj, path).unwrap();
            let gray = gray(&obj, path).unwrap();
            let pixels = gray.values.iter().map(|&v| vec![v]).collect();
            return (gray.width, gray.height, pixels);
        }
        let image = read(path, Window::Auto).unwrap();
        let DynamicImage::ImageRgb8(rgb) = image else {
            panic!("{}: expected RGB8, got {:?}", path.display(), image.color());
        };
        let pixels = rgb
            .pixels()
            .map(|p| p.0.iter().map(|&c| f64::from(c)).collect())
            .collect();
        (rgb.width(), rgb.height(), pixels)
    }

    #[test]
    fn decodes_pydicoms_files_as_pydicom_does() {
        if pydicom_data_or_skip().is_none() {
            return;
        }
        #[derive(serde::Deserialize)]
        struct File {
            files: Vec<Reference>,
        }
        let json = include_str!("../../../tests/data/pydicom_reference.json");
        let references: File = serde_json::from_str(json).unwrap();
        let failures: Vec<String> = references
            .files
            .iter()
            .filter_map(|want| {
                std::panic::catch_unwind(|| matches_reference(want))
                    .err()
                    .map(|_| want.file.clone())
            })
            .collect();
        assert!(failures.is_empty(), "differ from pydicom: {failures:?}");
    }

    /// Panics (saying where) unless the file decodes as pydicom's reference says.
    fn matches_reference(want: &Reference) {
        let path = real(&want.file).unwrap();
        let (cols, rows, pixels) = decoded_like_reference(&path, &want.kind);
        let name = &want.file;
        assert_eq!((rows, cols), (want.rows, want.cols), "{name}");
        let all = || pixels.iter().flatten().copied();
        let sum: f64 = all().sum();
        let min = all().fold(f64::INFINITY, f64::min);
        let max = all().fold(f64::NEG_INFINITY, f64::max);
        let count = all().count() as f64;
        // Lossy JPEG and JPEG 2000: two decoders' inverse transforms may differ by a little
        // per sample (openjp2 and OpenJPEG agree exactly on pydicom's JPEG 2000 files).
        let (per_sample, mean) = if want.lossy { (3.0, 0.5) } else { (0.0, 0.0) };
        assert!(
            (sum - want.sum).abs() / count <= mean + 1e-9,
            "{name}: sum {sum} vs {}",
            want.sum
        );
        assert!(
            (min - want.min).abs() <= per_sample,
            "{name}: min {min} vs {}",
            want.min
        );
        assert!(
            (max - want.max).abs() <= per_sample,
            "{name}: max {max} vs {}",
            want.max
        );
        for (i, expected) in want.grid.iter().enumerate() {
            let (r, c) = (
                (i / 5) as u32 * (rows - 1) / 4,
                (i % 5) as u32 * (cols - 1) / 4,
            );
            let got = &pixels[(r * cols + c) as usize];
            let expected: Vec<f64> = match expected {
                serde_json::Value::Array(v) => v.iter().map(|x| x.as_f64().unwrap()).collect(),
                x => vec![x.as_f64().unwrap()],
            };
            let close = got
                .iter()
                .zip(&expected)
                .all(|(g, e)| (g - e).abs() <= per_sample);
            assert!(
                close,
                "{name} at ({r}, {c}): {got:?} vs pydicom's {expected:?}"
            );
        }
    }
}
