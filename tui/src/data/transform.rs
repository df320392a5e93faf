//! From a decoded image to the values a batch holds: shaping (channels, size, [0, 1]),
//! training-time augmentation, normalisation, in that order.
//!
//! Shaping resizes at the source's own depth (8-bit stays u8, 16-bit stays u16, float
//! stays f32) with `fast_image_resize`'s SIMD kernels and converts to f32 only at the end:
//! the resize then moves a quarter of the bytes, and a 16-bit CT or X-ray keeps all its
//! levels. Gray conversion runs before the resize and gray-to-RGB replication after it, so
//! the resize always works on the fewer channels.

use std::cell::RefCell;

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{F32, F32x3, U8, U8x3, U16, U16x3};
use fast_image_resize::{
    FilterType, ImageView as _, PixelTrait, ResizeAlg, ResizeOptions, Resizer,
};
use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::decode::Shape;
use super::options::{Augment, Filter, Normalize, Resize};

/// How a decoded image is brought to the model's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shaping {
    pub shape: Shape,
    pub resize: Resize,
    pub filter: Filter,
}

impl Shaping {
    /// Stretched with a bilinear filter: Keras' and torchvision's defaults.
    pub fn stretch(shape: Shape) -> Shaping {
        Shaping {
            shape,
            resize: Resize::Stretch,
            filter: Filter::Bilinear,
        }
    }
}

/// To CHW f32 in [0,1]: channel conversion (gray <-> RGB, RGBA drops alpha; 16-bit and
/// float inputs keep their precision), resize per `resize`/`filter`.
///
/// RGB to gray uses ITU-R 601 luma in Pillow's fixed-point form, so 8-bit results match
/// Pillow's `convert("L")` (what Keras' and torchvision's loaders call) exactly. Alpha is
/// dropped rather than composited: medical images carry no meaningful transparency.
/// `shape.channels` other than 1 is taken as 3 (the config allows only 1 or 3).
pub fn shape_image(img: &DynamicImage, s: &Shaping) -> Vec<f32> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return vec![0.0; s.shape.len()];
    }
    let gray = s.shape.channels == 1 || !img.color().has_color();
    use DynamicImage as D;
    match (img, gray) {
        (D::ImageLuma8(b), _) => shape_bytes::<U8>(b.as_raw(), w, h, s),
        (D::ImageLumaA8(b), _) => shape_pixels(&pick(b.as_raw(), 2, |p| U8::new(p[0])), w, h, s),
        (D::ImageRgb8(b), false) => shape_bytes::<U8x3>(b.as_raw(), w, h, s),
        (D::ImageRgb8(b), true) => shape_pixels(&pick(b.as_raw(), 3, luma8), w, h, s),
        (D::ImageRgba8(b), false) => shape_pixels(&pick(b.as_raw(), 4, rgb(U8x3::new)), w, h, s),
        (D::ImageRgba8(b), true) => shape_pixels(&pick(b.as_raw(), 4, luma8), w, h, s),
        (D::ImageLuma16(b), _) => shape_pixels(&pick(b.as_raw(), 1, |p| U16::new(p[0])), w, h, s),
        (D::ImageLumaA16(b), _) => shape_pixels(&pick(b.as_raw(), 2, |p| U16::new(p[0])), w, h, s),
        (D::ImageRgb16(b), false) => shape_pixels(&pick(b.as_raw(), 3, rgb(U16x3::new)), w, h, s),
        (D::ImageRgb16(b), true) => shape_pixels(&pick(b.as_raw(), 3, luma16), w, h, s),
        (D::ImageRgba16(b), false) => shape_pixels(&pick(b.as_raw(), 4, rgb(U16x3::new)), w, h, s),
        (D::ImageRgba16(b), true) => shape_pixels(&pick(b.as_raw(), 4, luma16), w, h, s),
        (D::ImageRgb32F(b), false) => shape_pixels(&pick(b.as_raw(), 3, rgb(F32x3::new)), w, h, s),
        (D::ImageRgb32F(b), true) => shape_pixels(&pick(b.as_raw(), 3, luma_f32), w, h, s),
        (D::ImageRgba32F(b), false) => shape_pixels(&pick(b.as_raw(), 4, rgb(F32x3::new)), w, h, s),
        (D::ImageRgba32F(b), true) => shape_pixels(&pick(b.as_raw(), 4, luma_f32), w, h, s),
        // Layouts `image` may add later: through f32, which loses nothing.
        (other, false) => shape_pixels(
            &pick(other.to_rgb32f().as_raw(), 3, rgb(F32x3::new)),
            w,
            h,
            s,
        ),
        (other, true) => shape_pixels(&pick(other.to_rgb32f().as_raw(), 3, luma_f32), w, h, s),
    }
}

/// A pixel the resize works on: one or three channels at the source's depth.
trait Unit: PixelTrait {
    const CHANNELS: usize;
    /// Channel `c`, scaled to [0, 1].
    fn unit(&self, c: usize) -> f32;
}

// Division, not multiplication by a reciprocal: `x / 255` is what NumPy code computes,
// so 8-bit values come out bit-identical to the usual Python loaders.
impl Unit for U8 {
    const CHANNELS: usize = 1;
    fn unit(&self, _: usize) -> f32 {
        f32::from(self.0) / 255.0
    }
}

impl Unit for U8x3 {
    const CHANNELS: usize = 3;
    fn unit(&self, c: usize) -> f32 {
        f32::from(self.0[c]) / 255.0
    }
}

impl Unit for U16 {
    const CHANNELS: usize = 1;
    fn unit(&self, _: usize) -> f32 {
        f32::from(self.0) / 65535.0
    }
}

impl Unit for U16x3 {
    const CHANNELS: usize = 3;
    fn unit(&self, c: usize) -> f32 {
        f32::from(self.0[c]) / 65535.0
    }
}

impl Unit for F32 {
    const CHANNELS: usize = 1;
    fn unit(&self, _: usize) -> f32 {
        unit_f32(self.0)
    }
}

impl Unit for F32x3 {
    const CHANNELS: usize = 3;
    fn unit(&self, c: usize) -> f32 {
        unit_f32(self.0[c])
    }
}

/// Float images may hold anything: clamped to [0, 1], NaN to 0.
fn unit_f32(v: f32) -> f32 {
    if v >= 0.0 { v.min(1.0) } else { 0.0 }
}

/// One working pixel per `stride` values of an interleaved buffer.
fn pick<T, P>(raw: &[T], stride: usize, make: impl Fn(&[T]) -> P) -> Vec<P> {
    raw.chunks_exact(stride).map(make).collect()
}

/// The first three values of a pixel as an RGB working pixel (drops alpha).
fn rgb<T: Copy, P>(make: impl Fn([T; 3]) -> P) -> impl Fn(&[T]) -> P {
    move |p| make([p[0], p[1], p[2]])
}

/// ITU-R 601 luma weights in 16-bit fixed point (they sum to 65536), as Pillow's
/// `convert("L")` uses them.
const LUMA: [u32; 3] = [19595, 38470, 7471];

fn luma8(p: &[u8]) -> U8 {
    let sum: u32 = (0..3).map(|c| LUMA[c] * u32::from(p[c])).sum();
    U8::new(((sum + 0x8000) >> 16) as u8)
}

fn luma16(p: &[u16]) -> U16 {
    // At most 65535 * 65536 + 0x8000: fits u32.
    let sum: u32 = (0..3).map(|c| LUMA[c] * u32::from(p[c])).sum();
    U16::new(((sum + 0x8000) >> 16) as u16)
}

fn luma_f32(p: &[f32]) -> F32 {
    F32::new(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
}

/// Shapes an 8-bit buffer in place, without copying it into working pixels first.
fn shape_bytes<P: Unit>(raw: &[u8], w: u32, h: u32, s: &Shaping) -> Vec<f32> {
    let view = TypedImageRef::<P>::from_buffer(w, h, raw)
        .expect("an image buffer holds width x height pixels");
    shape_view(&view, s)
}

fn shape_pixels<P: Unit>(pixels: &[P], w: u32, h: u32, s: &Shaping) -> Vec<f32> {
    let view =
        TypedImageRef::new(w, h, pixels).expect("an image buffer holds width x height pixels");
    shape_view(&view, s)
}

fn shape_view<P: Unit>(src: &TypedImageRef<'_, P>, s: &Shaping) -> Vec<f32> {
    let plan = Plan::new(src.width(), src.height(), s.shape, s.resize);
    if plan.is_copy(src.width(), src.height()) {
        return to_chw(src.pixels(), &plan, s.shape);
    }
    let resized = resample(src, &plan, s.filter);
    to_chw(resized.pixels(), &plan, s.shape)
}

thread_local! {
    /// One resizer per thread: it keeps its scratch buffers between images.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

fn resample<P: Unit>(
    src: &TypedImageRef<'_, P>,
    plan: &Plan,
    filter: Filter,
) -> TypedImage<'static, P> {
    let mut dst = TypedImage::<P>::new(plan.size.0, plan.size.1);
    let [left, top, width, height] = plan.window;
    let options = ResizeOptions::new()
        .resize_alg(algorithm(filter))
        .crop(left, top, width, height);
    RESIZER
        .with_borrow_mut(|r| r.resize_typed(src, &mut dst, &options))
        .expect("the window lies inside the source and the pixel types match");
    dst
}

fn algorithm(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Nearest => ResizeAlg::Nearest,
        // Convolution widens the kernel when shrinking (antialiasing), as Pillow does.
        Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        // Pillow's BICUBIC (a = -0.5) is Catmull-Rom.
        Filter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
    }
}

/// Where a resize reads from and where its result lands.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    /// Source window (left, top, width, height) in source pixels; fractional, so a
    /// center crop is exactly centered.
    window: [f64; 4],
    /// Size of the resized image.
    size: (u32, u32),
    /// Its top-left corner on the output (non-zero only for `Pad`).
    offset: (u32, u32),
}

impl Plan {
    fn new(iw: u32, ih: u32, shape: Shape, resize: Resize) -> Plan {
        let (ow, oh) = (shape.width, shape.height);
        let whole = [0.0, 0.0, f64::from(iw), f64::from(ih)];
        match resize {
            Resize::Stretch => Plan {
                window: whole,
                size: (ow, oh),
                offset: (0, 0),
            },
            Resize::CenterCrop => Plan {
                window: center_window(iw, ih, ow, oh),
                size: (ow, oh),
                offset: (0, 0),
            },
            Resize::Pad => {
                let size = fit_inside(iw, ih, ow, oh);
                Plan {
                    window: whole,
                    size,
                    offset: ((ow - size.0) / 2, (oh - size.1) / 2),
                }
            }
        }
    }

    /// Whether the source goes to the output unscaled and uncropped.
    fn is_copy(&self, iw: u32, ih: u32) -> bool {
        self.size == (iw, ih) && self.window == [0.0, 0.0, f64::from(iw), f64::from(ih)]
    }
}

/// The centered source window with the output's aspect ratio, as large as fits.
fn center_window(iw: u32, ih: u32, ow: u32, oh: u32) -> [f64; 4] {
    let (iw, ih) = (f64::from(iw), f64::from(ih));
    let scale = (f64::from(ow) / iw).max(f64::from(oh) / ih);
    let (cw, ch) = (
        (f64::from(ow) / scale).min(iw),
        (f64::from(oh) / scale).min(ih),
    );
    let (left, top) = (((iw - cw) / 2.0).max(0.0), ((ih - ch) / 2.0).max(0.0));
    // Rounding must never push the window past the source's edge.
    [left, top, cw.min(iw - left), ch.min(ih - top)]
}

/// The source's size if it fits in the output, else scaled down to fit (aspect kept).
fn fit_inside(iw: u32, ih: u32, ow: u32, oh: u32) -> (u32, u32) {
    if iw <= ow && ih <= oh {
        return (iw, ih);
    }
    let scale = (f64::from(ow) / f64::from(iw)).min(f64::from(oh) / f64::from(ih));
    let side = |v: u32, max: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max);
    (side(iw, ow), side(ih, oh))
}

/// Interleaved working pixels to channel-major [0, 1] values on a zero canvas; one gray
/// plane is replicated when the output is RGB.
fn to_chw<P: Unit>(pixels: &[P], plan: &Plan, shape: Shape) -> Vec<f32> {
    let (ow, plane) = (shape.width as usize, (shape.width * shape.height) as usize);
    let (pw, (ox, oy)) = (plan.size.0 as usize, plan.offset);
    let mut out = vec![0.0; shape.len()];
    if plane == 0 || pw == 0 {
        return out;
    }
    for (c, dst) in out.chunks_exact_mut(plane).take(P::CHANNELS).enumerate() {
        for (y, row) in pixels.chunks_exact(pw).enumerate() {
            let start = (oy as usize + y) * ow + ox as usize;
            for (o, p) in dst[start..start + pw].iter_mut().zip(row) {
                *o = p.unit(c);
            }
        }
    }
    for c in P::CHANNELS..shape.channels as usize {
        out.copy_within(0..plane, c * plane);
    }
    out
}

/// Deterministic augmentation of one CHW [0,1] image given a seed (the caller derives it
/// from run seed, epoch and sample index).
///
/// Order: flips, quarter turns, integer shift (exact pixel moves), then rotation and
/// random crop in one bilinear resampling (one interpolation, not two), then contrast and
/// brightness, clamped to [0, 1]. Every random value is drawn whether its augmentation is
/// on or not, so turning one on does not change what the others draw.
pub fn augment(pixels: &mut Vec<f32>, shape: Shape, aug: &Augment, seed: u64) {
    assert_eq!(
        pixels.len(),
        shape.len(),
        "augment: values do not match the shape"
    );
    if shape.is_empty() || !aug.any() {
        return;
    }
    let d = Draws::new(shape, aug, &mut ChaCha8Rng::seed_from_u64(seed));
    if d.hflip {
        flip_h(pixels, shape);
    }
    if d.vflip {
        flip_v(pixels, shape);
    }
    if d.quarter_turns > 0 {
        *pixels = rot90(pixels, shape, d.quarter_turns);
    }
    if d.shift != (0, 0) {
        *pixels = shift(pixels, shape, d.shift);
    }
    if d.angle != 0.0 || d.crop.is_some() {
        *pixels = warp(pixels, shape, d.angle, d.crop);
    }
    jitter(pixels, d.contrast, d.brightness);
}

/// The random choices of one augmentation.
#[derive(Debug, Clone, PartialEq)]
struct Draws {
    hflip: bool,
    vflip: bool,
    /// Counter-clockwise quarter turns (0 on non-square images).
    quarter_turns: u8,
    /// (dx, dy) in pixels.
    shift: (i64, i64),
    /// Radians, counter-clockwise.
    angle: f64,
    /// Crop window (left, top, width, height) in pixels.
    crop: Option<[f64; 4]>,
    /// Contrast factor (1 = unchanged).
    contrast: f32,
    /// Value added (0 = unchanged).
    brightness: f32,
}

impl Draws {
    fn new(shape: Shape, aug: &Augment, rng: &mut ChaCha8Rng) -> Draws {
        // Exactly one draw each, in a fixed order, on or off.
        let u: [f64; 12] = std::array::from_fn(|_| rng.random::<f64>());
        let (w, h) = (f64::from(shape.width), f64::from(shape.height));
        let sym = |u: f64| 2.0 * u - 1.0; // [0, 1) -> [-1, 1)
        let square = shape.width == shape.height;
        let pixels = |u: f64, side: f64| {
            let m = (f64::from(aug.shift) * side).round() as i64;
            (u * (2 * m + 1) as f64).floor() as i64 - m
        };
        let crop_on = aug.crop > 0.0 && aug.crop < 1.0;
        let crop_side = |u: f64| f64::from(aug.crop) + u * (1.0 - f64::from(aug.crop));
        let (cw, ch) = (crop_side(u[6]) * w, crop_side(u[7]) * h);
        Draws {
            hflip: aug.hflip && u[0] < 0.5,
            vflip: aug.vflip && u[1] < 0.5,
            quarter_turns: if aug.rot90 && square {
                (u[2] * 4.0) as u8
            } else {
                0
            },
            shift: if aug.shift > 0.0 {
                (pixels(u[3], w), pixels(u[4], h))
            } else {
                (0, 0)
            },
            angle: (sym(u[5]) * f64::from(aug.rotate)).to_radians(),
            crop: crop_on.then(|| [u[8] * (w - cw), u[9] * (h - ch), cw, ch]),
            contrast: 1.0 + sym(u[10]) as f32 * aug.contrast,
            brightness: sym(u[11]) as f32 * aug.brightness,
        }
    }
}

/// Mirrors left-right.
fn flip_h(pixels: &mut [f32], shape: Shape) {
    for row in pixels.chunks_exact_mut(shape.width as usize) {
        row.reverse();
    }
}

/// Mirrors top-bottom.
fn flip_v(pixels: &mut [f32], shape: Shape) {
    let (w, h) = (shape.width as usize, shape.height as usize);
    for plane in pixels.chunks_exact_mut(w * h) {
        for y in 0..h / 2 {
            let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}

/// Turns a square image by `k` quarter turns counter-clockwise.
fn rot90(pixels: &[f32], shape: Shape, k: u8) -> Vec<f32> {
    let n = shape.width as usize;
    debug_assert_eq!(shape.width, shape.height);
    let mut out = vec![0.0; pixels.len()];
    for (src, dst) in pixels.chunks_exact(n * n).zip(out.chunks_exact_mut(n * n)) {
        for y in 0..n {
            for x in 0..n {
                // Output (x, y) reads the source pixel that turns onto it.
                let (sx, sy) = match k % 4 {
                    1 => (n - 1 - y, x),
                    2 => (n - 1 - x, n - 1 - y),
                    3 => (y, n - 1 - x),
                    _ => (x, y),
                };
                dst[y * n + x] = src[sy * n + sx];
            }
        }
    }
    out
}

/// Moves the image by whole pixels, filling with zeros.
fn shift(pixels: &[f32], shape: Shape, (dx, dy): (i64, i64)) -> Vec<f32> {
    let (w, h) = (i64::from(shape.width), i64::from(shape.height));
    let mut out = vec![0.0; pixels.len()];
    let xs = 0.max(dx)..w.min(w + dx); // destination columns that have a source
    if xs.is_empty() {
        return out;
    }
    let plane = (w * h) as usize;
    for (src, dst) in pixels.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for y in 0.max(dy)..h.min(h + dy) {
            let d = (y * w) as usize;
            let s = ((y - dy) * w) as usize;
            let (a, b) = (xs.start as usize, xs.end as usize);
            let sa = (xs.start - dx) as usize;
            dst[d + a..d + b].copy_from_slice(&src[s + sa..s + sa + (b - a)]);
        }
    }
    out
}

/// Rotation about the center, then a crop window scaled back up to the full size, as one
/// bilinear resampling; outside the source is zero.
fn warp(pixels: &[f32], shape: Shape, angle: f64, crop: Option<[f64; 4]>) -> Vec<f32> {
    let (w, h) = (shape.width as usize, shape.height as usize);
    let (fw, fh) = (w as f64, h as f64);
    let [left, top, cw, ch] = crop.unwrap_or([0.0, 0.0, fw, fh]);
    let (sx, sy) = (cw / fw, ch / fh);
    let (cx, cy) = (fw / 2.0, fh / 2.0);
    let (sin, cos) = angle.sin_cos();
    let mut out = vec![0.0; pixels.len()];
    for (src, dst) in pixels.chunks_exact(w * h).zip(out.chunks_exact_mut(w * h)) {
        for y in 0..h {
            for x in 0..w {
                // Output pixel center -> rotated image (crop) -> source (inverse rotation).
                let qx = left + (x as f64 + 0.5) * sx - cx;
                let qy = top + (y as f64 + 0.5) * sy - cy;
                let px = cx + cos * qx - sin * qy;
                let py = cy + sin * qx + cos * qy;
                dst[y * w + x] = bilinear(src, w, h, px - 0.5, py - 0.5);
            }
        }
    }
    out
}

/// The plane's value at (x, y) (pixel centers at integers), zero outside.
fn bilinear(plane: &[f32], w: usize, h: usize, x: f64, y: f64) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let at = |xi: f64, yi: f64| {
        if xi < 0.0 || yi < 0.0 || xi >= w as f64 || yi >= h as f64 {
            0.0
        } else {
            plane[yi as usize * w + xi as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Contrast about the image mean (as torchvision does), then brightness; clamped.
fn jitter(pixels: &mut [f32], contrast: f32, brightness: f32) {
    if contrast == 1.0 && brightness == 0.0 {
        return;
    }
    let mean = if contrast == 1.0 {
        0.0
    } else {
        (pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / pixels.len() as f64) as f32
    };
    for v in pixels {
        *v = ((*v - mean) * contrast + mean + brightness).clamp(0.0, 1.0);
    }
}

/// Normalisation after augmentation; `MeanStd` with one value applies it to all channels;
/// a mean/std count that is neither 1 nor the channel count is an error (String naming
/// `data.normalize`); std 0 is an error.
pub fn normalize(pixels: &mut [f32], shape: Shape, n: &Normalize) -> Result<(), String> {
    check_normalize(n, shape.channels)?;
    let Normalize::MeanStd { mean, std } = n else {
        return Ok(());
    };
    let plane = (shape.width * shape.height) as usize;
    if plane == 0 {
        return Ok(());
    }
    for (c, values) in pixels.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (per_channel(mean, c), per_channel(std, c));
        for v in values {
            *v = (*v - m) / s;
        }
    }
    Ok(())
}

/// Channel `c`'s value of a list that is either one value for all or one per channel.
fn per_channel(values: &[f32], c: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// Checks a normalisation against the channel count, for the config check to refuse a
/// bad one before any run starts rather than at the first batch.
pub fn check_normalize(n: &Normalize, channels: u32) -> Result<(), String> {
    let Normalize::MeanStd { mean, std } = n else {
        return Ok(());
    };
    for (name, values) in [("mean", mean), ("std", std)] {
        if values.len() != 1 && values.len() != channels as usize {
            return Err(format!(
                "data.normalize MeanStd: {name} has {} values; give 1 (for every channel) or \
                 {channels} (one per channel)",
                values.len()
            ));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(format!(
                "data.normalize MeanStd: {name} {v} is not a number"
            ));
        }
    }
    if let Some(s) = std.iter().find(|&&s| s <= 0.0) {
        return Err(format!(
            "data.normalize MeanStd: std must be above 0 (it divides), not {s}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba};

    fn shape(channels: u32, height: u32, width: u32) -> Shape {
        Shape {
            channels,
            height,
            width,
        }
    }

    fn shaping(s: Shape, resize: Resize) -> Shaping {
        Shaping {
            shape: s,
            resize,
            filter: Filter::Bilinear,
        }
    }

    fn u8s(values: &[u8]) -> Vec<f32> {
        values.iter().map(|&v| f32::from(v) / 255.0).collect()
    }

    #[test]
    fn rgb_to_gray_matches_pillow_luma_and_gray_to_rgb_replicates() {
        // Red, green, blue, white: Pillow's convert("L") gives 76, 150, 29, 255.
        let colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
        let img = RgbImage::from_fn(4, 1, |x, _| Rgb(colors[x as usize]));
        let gray = shape_image(&img.into(), &Shaping::stretch(shape(1, 1, 4)));
        assert_eq!(gray, u8s(&[76, 150, 29, 255]));

        let img = GrayImage::from_fn(2, 1, |x, _| Luma([[10, 200][x as usize]]));
        let rgb = shape_image(&img.into(), &Shaping::stretch(shape(3, 1, 2)));
        assert_eq!(rgb, u8s(&[10, 200, 10, 200, 10, 200]));
    }

    #[test]
    fn rgba_drops_alpha_and_keeps_channels_apart() {
        let img = ImageBuffer::from_fn(2, 1, |x, _| Rgba([10, 20, 30, [0, 255][x as usize]]));
        let rgb = shape_image(
            &DynamicImage::ImageRgba8(img),
            &Shaping::stretch(shape(3, 1, 2)),
        );
        assert_eq!(rgb, u8s(&[10, 10, 20, 20, 30, 30]));
    }

    #[test]
    fn sixteen_bit_ramp_keeps_more_than_256_levels() {
        let img = ImageBuffer::from_fn(1024, 4, |x, _| Luma([(x * 64) as u16]));
        let img = DynamicImage::ImageLuma16(img);
        for (w, levels) in [(1024, 1024), (512, 512)] {
            let out = shape_image(&img, &Shaping::stretch(shape(1, 2, w)));
            let mut distinct: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(distinct.len() >= levels, "{w}: {} levels", distinct.len());
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Unscaled, each value is exact.
        let out = shape_image(&img, &Shaping::stretch(shape(1, 4, 1024)));
        assert_eq!(out[1], 64.0 / 65535.0);
    }

    #[test]
    fn float_images_are_clamped() {
        let img = ImageBuffer::from_fn(3, 1, |x, _| Rgb([[-1.0, 0.25, 7.0][x as usize]; 3]));
        let out = shape_image(
            &DynamicImage::ImageRgb32F(img),
            &Shaping::stretch(shape(1, 1, 3)),
        );
        assert_eq!(out, [0.0, 0.25, 1.0]);
    }

    #[test]
    fn pad_centers_a_digit_with_a_zero_border() {
        let digit = GrayImage::from_fn(28, 28, |x, y| Luma([(1 + (x * 7 + y * 3) % 255) as u8]));
        let out = shape_image(
            &digit.clone().into(),
            &shaping(shape(1, 32, 32), Resize::Pad),
        );
        for y in 0..32 {
            for x in 0..32 {
                let v = out[y * 32 + x];
                if (2..30).contains(&x) && (2..30).contains(&y) {
                    let d = digit.get_pixel(x as u32 - 2, y as u32 - 2).0[0];
                    assert_eq!(v, f32::from(d) / 255.0, "({x}, {y})");
                } else {
                    assert_eq!(v, 0.0, "border ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn pad_scales_down_a_larger_image_keeping_its_aspect() {
        let img = GrayImage::from_pixel(64, 32, Luma([255]));
        let out = shape_image(&img.into(), &shaping(shape(1, 16, 16), Resize::Pad));
        // 64x32 fits 16x16 as 16x8: rows 4..12 are the image, the rest padding.
        for (y, row) in out.chunks(16).enumerate() {
            let want = if (4..12).contains(&y) { 1.0 } else { 0.0 };
            assert!(row.iter().all(|&v| v == want), "row {y}: {row:?}");
        }
    }

    #[test]
    fn center_crop_of_a_wide_image_keeps_the_center() {
        // Unscaled: the middle 32 columns of a 96-wide ramp.
        let ramp = GrayImage::from_fn(96, 32, |x, _| Luma([(x * 2) as u8]));
        let out = shape_image(&ramp.into(), &shaping(shape(1, 32, 32), Resize::CenterCrop));
        for (x, &v) in out[..32].iter().enumerate() {
            assert_eq!(v, f32::from((32 + x as u8) * 2) / 255.0, "column {x}");
        }
        // Scaled: white middle third between black thirds; the sides stay out.
        let img = GrayImage::from_fn(192, 64, |x, _| {
            Luma([if (64..128).contains(&x) { 255 } else { 0 }])
        });
        let out = shape_image(&img.into(), &shaping(shape(1, 32, 32), Resize::CenterCrop));
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!(mean > 0.95, "mean {mean}");
        // Stretch of the same image keeps the black sides.
        let img = GrayImage::from_fn(192, 64, |x, _| {
            Luma([if (64..128).contains(&x) { 255 } else { 0 }])
        });
        let out = shape_image(&img.into(), &Shaping::stretch(shape(1, 32, 32)));
        assert!(
            out[0] == 0.0 && out[31] == 0.0 && out[16] == 1.0,
            "{:?}",
            &out[..32]
        );
    }

    #[test]
    fn stretch_gives_the_exact_size_for_every_filter() {
        let img: DynamicImage = RgbImage::from_pixel(50, 30, Rgb([51, 102, 153])).into();
        for filter in [
            Filter::Nearest,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos3,
        ] {
            for s in [shape(3, 20, 40), shape(1, 7, 5), shape(3, 64, 96)] {
                let out = shape_image(
                    &img,
                    &Shaping {
                        shape: s,
                        resize: Resize::Stretch,
                        filter,
                    },
                );
                assert_eq!(out.len(), s.len(), "{filter:?} {s:?}");
                if s.channels == 3 {
                    // A flat image stays flat, channel by channel.
                    let plane = (s.width * s.height) as usize;
                    for (c, want) in [51u8, 102, 153].into_iter().enumerate() {
                        let want = f32::from(want) / 255.0;
                        let got = &out[c * plane..(c + 1) * plane];
                        assert!(got.iter().all(|&v| (v - want).abs() < 1e-6), "{filter:?}");
                    }
                }
            }
        }
    }

    fn test_image(s: Shape) -> Vec<f32> {
        (0..s.len())
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect()
    }

    fn augmented(s: Shape, aug: &Augment, seed: u64) -> Vec<f32> {
        let mut v = test_image(s);
        augment(&mut v, s, aug, seed);
        v
    }

    fn everything() -> Augment {
        Augment {
            hflip: true,
            vflip: true,
            rot90: true,
            shift: 0.1,
            rotate: 15.0,
            crop: 0.8,
            brightness: 0.1,
            contrast: 0.2,
        }
    }

    #[test]
    fn augmentation_is_deterministic_by_seed_and_varies_across_seeds() {
        let s = shape(3, 24, 24);
        let aug = everything();
        assert_eq!(augmented(s, &aug, 42), augmented(s, &aug, 42));
        let outs: Vec<_> = (0..6).map(|seed| augmented(s, &aug, seed)).collect();
        for i in 0..outs.len() {
            for j in i + 1..outs.len() {
                assert_ne!(outs[i], outs[j], "seeds {i} and {j}");
            }
        }
        for out in &outs {
            assert_eq!(out.len(), s.len());
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn hflip_mirrors_each_row_for_about_half_the_seeds() {
        let s = shape(2, 3, 5);
        let original = test_image(s);
        let mirrored: Vec<f32> = original
            .chunks(5)
            .flat_map(|r| r.iter().rev().copied())
            .collect();
        let aug = Augment {
            hflip: true,
            ..Augment::default()
        };
        let flips = (0..40)
            .filter(|&seed| {
                let out = augmented(s, &aug, seed);
                assert!(out == original || out == mirrored, "seed {seed}");
                out == mirrored
            })
            .count();
        assert!((8..=32).contains(&flips), "{flips} of 40 flipped");
    }

    #[test]
    fn vflip_and_rot90_move_pixels_exactly() {
        let s = shape(1, 4, 4);
        let original = test_image(s);
        let aug = Augment {
            vflip: true,
            ..Augment::default()
        };
        let flipped: Vec<f32> = original.chunks(4).rev().flatten().copied().collect();
        assert!((0..20).any(|seed| augmented(s, &aug, seed) == flipped));
        // Four quarter turns of any kind: each output is a rotation of the input.
        let aug = Augment {
            rot90: true,
            ..Augment::default()
        };
        let turn = |v: &[f32]| rot90(v, s, 1);
        let mut turns = vec![original.clone()];
        for k in 0..3 {
            let next = turn(&turns[k]);
            turns.push(next);
        }
        assert_eq!(
            turns[1][0], original[3],
            "counter-clockwise: top-right goes top-left"
        );
        for seed in 0..20 {
            assert!(turns.contains(&augmented(s, &aug, seed)), "seed {seed}");
        }
        // Non-square images are left alone.
        let wide = shape(1, 4, 6);
        assert!((0..20).all(|seed| augmented(wide, &aug, seed) == test_image(wide)));
    }

    #[test]
    fn shift_moves_by_whole_pixels_and_fills_with_zero() {
        let s = shape(1, 3, 4);
        let v: Vec<f32> = (1..=12).map(|i| i as f32).collect();
        let out = shift(&v, s, (1, -1));
        #[rustfmt::skip]
        assert_eq!(out, [
            0.0, 5.0, 6.0, 7.0,
            0.0, 9.0, 10.0, 11.0,
            0.0, 0.0, 0.0, 0.0,
        ]);
        assert!(shift(&v, s, (4, 0)).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn rotation_and_crop_resample_around_the_center() {
        let s = shape(1, 8, 8);
        let v = test_image(s);
        // No rotation, full window: the identity.
        assert_eq!(warp(&v, s, 0.0, None), v);
        // Half a turn mirrors both ways (up to rounding).
        let half = warp(&v, s, std::f64::consts::PI, None);
        for (a, b) in half.iter().zip(v.iter().rev()) {
            assert!((a - b).abs() < 1e-5);
        }
        // A 4x4 window at (2, 2) scaled up to 8x8 holds only the window's values' range.
        let out = warp(&v, s, 0.0, Some([2.0, 2.0, 4.0, 4.0]));
        let inner: Vec<f32> = (2..6)
            .flat_map(|y| v[y * 8 + 2..y * 8 + 6].to_vec())
            .collect();
        let (lo, hi) = inner
            .iter()
            .fold((1.0f32, 0.0f32), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(out.iter().all(|&x| x >= lo - 1e-6 && x <= hi + 1e-6));
    }

    #[test]
    fn brightness_and_contrast_jitter_stay_in_range() {
        let s = shape(1, 2, 2);
        let mut v = vec![0.2, 0.4, 0.6, 0.8];
        jitter(&mut v, 2.0, 0.0);
        let want = [0.0, 0.3, 0.7, 1.0];
        assert!(
            v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v:?}"
        );
        let aug = Augment {
            brightness: 0.5,
            ..Augment::default()
        };
        let outs: Vec<_> = (0..8).map(|seed| augmented(s, &aug, seed)).collect();
        assert!(outs.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
        assert!(outs.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn normalize_per_channel_and_broadcast() {
        let s = shape(3, 1, 2);
        let mut v = vec![0.5, 1.0, 0.5, 1.0, 0.5, 1.0];
        let n = Normalize::MeanStd {
            mean: vec![0.5, 0.0, 1.0],
            std: vec![0.5, 2.0, 0.25],
        };
        normalize(&mut v, s, &n).unwrap();
        assert_eq!(v, [0.0, 1.0, 0.25, 0.5, -2.0, 0.0]);
        let mut v = vec![0.5, 1.0, 0.5, 1.0, 0.5, 1.0];
        let one = Normalize::MeanStd {
            mean: vec![0.5],
            std: vec![0.5],
        };
        normalize(&mut v, s, &one).unwrap();
        assert_eq!(v, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let mut v = vec![0.25; 6];
        normalize(&mut v, s, &Normalize::Unit).unwrap();
        assert_eq!(v, [0.25; 6]);
    }

    #[test]
    fn normalize_refuses_bad_counts_and_zero_std() {
        let two = Normalize::MeanStd {
            mean: vec![0.5, 0.5],
            std: vec![0.5],
        };
        let err = check_normalize(&two, 3).unwrap_err();
        assert!(
            err.contains("data.normalize") && err.contains("mean has 2"),
            "{err}"
        );
        assert!(check_normalize(&two, 2).is_ok());
        let zero = Normalize::MeanStd {
            mean: vec![0.5],
            std: vec![0.0],
        };
        let err = check_normalize(&zero, 1).unwrap_err();
        assert!(
            err.contains("data.normalize") && err.contains("std"),
            "{err}"
        );
        let mut v = vec![0.5; 4];
        assert!(normalize(&mut v, shape(1, 2, 2), &zero).is_err());
        assert_eq!(v, [0.5; 4], "refused normalisation leaves the values alone");
        assert!(check_normalize(&Normalize::Unit, 3).is_ok());
    }
}
