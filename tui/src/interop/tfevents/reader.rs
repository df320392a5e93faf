//! Scalars and images out of a growing event file: [`RecordTail`] for the framing,
//! [`super::proto`] for the messages. A scalar is a `simple_value` (PyTorch's
//! SummaryWriter, tensorboardX) or a one-element numeric tensor whose tag's metadata names
//! the `scalars` plugin (TF2, the Keras TensorBoard callback). An image is a
//! `Summary.Image` (PyTorch's `add_image`) or a string tensor whose tag's metadata names
//! the `images` plugin (`tf.summary.image`, Keras). TensorFlow writers may send a tag's
//! metadata with its first value only, so the plugin of each tag is remembered.
//! Histograms, text, graphs are skipped unread. A record whose framing checks but whose
//! message does not decode is skipped and counted in [`EventFileTail::bad_records`], never
//! silently; an image that is damaged or over [`MAX_IMAGE_BYTES`] is left out and counted
//! in [`EventFileTail::refused_images`], the record's other values kept.
//!
//! Images are bounded as they are read: of what one read finds, only the images of each
//! tag's newest [`KEEP_IMAGE_STEPS`] steps within [`KEEP_IMAGE_BYTES`] are held (see
//! [`keep_newest_images`]), so a logdir of gigabytes of images costs tens of megabytes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::TfEventsError;
use super::proto::{self, SessionStatus, SummaryValue};
use super::record::RecordTail;

/// The largest image read; a bigger one is refused with an error naming the file, the
/// tag and the step. Real image summaries are kilobytes to a few megabytes.
pub const MAX_IMAGE_BYTES: usize = 16 << 20;
/// Steps of each image tag kept: the newest (TensorBoard's own loader keeps 4 by default).
pub const KEEP_IMAGE_STEPS: usize = 64;
/// Image bytes kept of one run, whatever its tags.
pub const KEEP_IMAGE_BYTES: usize = 64 << 20;

/// One scalar value of an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarPoint {
    pub tag: String,
    pub step: i64,
    pub wall_time: f64,
    pub value: f64,
}

/// One image of an event file, encoded as its writer encoded it (PNG).
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePoint {
    /// The tag; a TF2 summary of n > 1 images gives the i-th `"<tag> [i/n]"`.
    pub tag: String,
    pub step: i64,
    pub wall_time: f64,
    /// What the summary says (0 where it says nothing); a decoder reads the PNG's own.
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
}

/// What an event file says, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    Scalar(ScalarPoint),
    Image(ImagePoint),
    /// `SessionLog START`: the run restarted at `step`, and what it logged at and after
    /// that step before is void (TensorBoard purges it).
    Restart {
        step: i64,
    },
}

/// What one [`EventFileTail::read`] produced.
#[derive(Debug, Default)]
pub struct EventRead {
    pub items: Vec<EventItem>,
    /// The file was replaced or shrank and was read again from its start.
    pub restarted: bool,
    /// Reading stopped at a damaged record (named by file and offset).
    pub stuck: Option<TfEventsError>,
}

/// Incremental scalar reader of one event file.
#[derive(Debug, Default)]
pub struct EventFileTail {
    records: RecordTail,
    /// Plugin name per tag, from the first value that carried metadata.
    plugins: HashMap<String, String>,
    /// Records that framed correctly but did not decode: (offset, reason), the first
    /// [`BAD_KEPT`]; `bad_count` counts them all.
    pub bad_records: Vec<(u64, String)>,
    pub bad_count: usize,
    /// Images left out (damaged, or over [`MAX_IMAGE_BYTES`]): (record offset, reason
    /// naming the tag and step), the first [`BAD_KEPT`]; `refused_count` counts them all.
    pub refused_images: Vec<(u64, String)>,
    pub refused_count: usize,
    /// `file_version` of the first event, when there was one.
    pub file_version: Option<String>,
}

/// Undecodable records remembered with their reasons.
const BAD_KEPT: usize = 8;

impl EventFileTail {
    pub fn new() -> EventFileTail {
        EventFileTail::default()
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.records.offset()
    }

    /// Reads the scalars, images and restarts appended since the last call. Of the images
    /// only those [`keep_newest_images`] keeps are returned.
    pub fn read(&mut self, path: &Path) -> Result<EventRead, TfEventsError> {
        let mut items = Vec::new();
        let mut bad = Vec::new();
        let mut refused = Vec::new();
        let mut version = None;
        let mut plugins = std::mem::take(&mut self.plugins);
        // Images held and their bytes, thinned out when the bytes double or the images
        // outnumber all the items held at the last thinning (so that thinning, a pass
        // over every item, costs amortised O(1) an item).
        let (mut images, mut bytes) = (0usize, 0usize);
        let mut thin_at = 4 * KEEP_IMAGE_STEPS;
        let read = self.records.read(path, |offset, data| {
            let before = items.len();
            let mut problems = Vec::new();
            match decode(data, &mut plugins, &mut items, &mut problems) {
                Ok(Some(v)) => version = Some(v),
                Ok(None) => {}
                Err(e) => bad.push((offset, e.to_string())),
            }
            refused.extend(problems.into_iter().map(|p| (offset, p)));
            for item in &items[before..] {
                if let EventItem::Image(image) = item {
                    images += 1;
                    bytes += image.png.len();
                }
            }
            if images > thin_at || bytes > 2 * KEEP_IMAGE_BYTES {
                (images, bytes) = keep_newest_images(
                    &mut items,
                    shelved_item,
                    KEEP_IMAGE_STEPS,
                    KEEP_IMAGE_BYTES,
                );
                thin_at = (2 * images).max(4 * KEEP_IMAGE_STEPS).max(items.len());
            }
        })?;
        if images > 0 {
            keep_newest_images(&mut items, shelved_item, KEEP_IMAGE_STEPS, KEEP_IMAGE_BYTES);
        }
        if read.restarted {
            // Plugin names learnt from the old file are kept: a tag keeps its plugin.
            self.bad_records.clear();
            self.bad_count = 0;
            self.refused_images.clear();
            self.refused_count = 0;
            self.file_version = None;
        }
        self.plugins = plugins;
        if self.file_version.is_none() {
            self.file_version = version;
        }
        self.bad_count += bad.len();
        let room = BAD_KEPT.saturating_sub(self.bad_records.len());
        self.bad_records.extend(bad.into_iter().take(room));
        self.refused_count += refused.len();
        let room = BAD_KEPT.saturating_sub(self.refused_images.len());
        self.refused_images.extend(refused.into_iter().take(room));
        Ok(EventRead {
            items,
            restarted: read.restarted,
            stuck: read.stuck,
        })
    }
}

/// What [`keep_newest_images`] needs to know of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelved<'a> {
    Image {
        tag: &'a str,
        step: i64,
        bytes: usize,
    },
    /// A restart: drops the images of tags starting with `prefix` at steps `>= step`
    /// that came before it.
    Restart {
        prefix: &'a str,
        step: i64,
    },
    Other,
}

fn shelved_item(item: &EventItem) -> Shelved<'_> {
    match item {
        EventItem::Image(i) => Shelved::Image {
            tag: &i.tag,
            step: i.step,
            bytes: i.png.len(),
        },
        // One file's restart voids everything the file logged at and after its step.
        EventItem::Restart { step } => Shelved::Restart {
            prefix: "",
            step: *step,
        },
        EventItem::Scalar(_) => Shelved::Other,
    }
}

/// Drops, in place, the images of `items` that a holder of at most `steps` steps per tag
/// and `bytes` bytes would not end up with: scanning from the newest item back, an image
/// is kept while its tag has fewer than `steps` later steps kept and the bytes kept stay
/// within `bytes`; an older image of a (tag, step) already kept, or one a later restart
/// voids, is dropped. Every other item is kept, in order. Returns (images, bytes) kept.
pub fn keep_newest_images<T>(
    items: &mut Vec<T>,
    what: impl Fn(&T) -> Shelved<'_>,
    steps: usize,
    bytes: usize,
) -> (usize, usize) {
    let mut keep = vec![true; items.len()];
    let (mut kept, mut kept_bytes) = (0usize, 0usize);
    {
        // The lowest restart step seen so far (later in the file) per prefix.
        let mut restarts: HashMap<&str, i64> = HashMap::new();
        let mut per_tag: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashSet<(&str, i64)> = HashSet::new();
        for (i, item) in items.iter().enumerate().rev() {
            match what(item) {
                Shelved::Restart { prefix, step } => {
                    let low = restarts.entry(prefix).or_insert(step);
                    *low = (*low).min(step);
                }
                Shelved::Image {
                    tag,
                    step,
                    bytes: size,
                } => {
                    let voided = restarts
                        .iter()
                        .any(|(prefix, low)| step >= *low && tag.starts_with(prefix));
                    let count = per_tag.entry(tag).or_default();
                    if voided
                        || *count >= steps
                        || kept_bytes + size > bytes
                        || !seen.insert((tag, step))
                    {
                        keep[i] = false;
                    } else {
                        *count += 1;
                        kept += 1;
                        kept_bytes += size;
                    }
                }
                Shelved::Other => {}
            }
        }
    }
    let mut at = 0;
    items.retain(|_| {
        at += 1;
        keep[at - 1]
    });
    (kept, kept_bytes)
}

/// Decodes one event record, appending its scalars and images (`refused` gets why an
/// image was left out); returns its `file_version`, if any.
fn decode(
    data: &[u8],
    plugins: &mut HashMap<String, String>,
    items: &mut Vec<EventItem>,
    refused: &mut Vec<String>,
) -> Result<Option<String>, proto::ProtoError> {
    let event = proto::decode_event(data)?;
    if event.session_log == Some(SessionStatus::Start) {
        items.push(EventItem::Restart { step: event.step });
    }
    let Some(summary) = event.summary else {
        return Ok(event.file_version);
    };
    for value in proto::decode_summary(summary)? {
        if let Some(name) = &value.plugin_name
            && plugins.get(&value.tag) != Some(name)
        {
            plugins.insert(value.tag.clone(), name.clone());
        }
        let plugin = plugins.get(&value.tag).map(String::as_str);
        if value.image.is_some() || plugin == Some("images") {
            if let Err(why) = images(&value, plugin, event.step, event.wall_time, items) {
                refused.push(format!(
                    "image {:?} at step {}: {why}",
                    value.tag, event.step
                ));
            }
            continue;
        }
        let number = match (value.simple_value, value.tensor) {
            (Some(v), _) => Some(f64::from(v)),
            (None, Some(tensor))
                if plugins.get(&value.tag).map(String::as_str) == Some("scalars") =>
            {
                proto::decode_scalar_tensor(tensor)?
            }
            _ => None,
        };
        if let Some(v) = number {
            items.push(EventItem::Scalar(ScalarPoint {
                tag: value.tag,
                step: event.step,
                wall_time: event.wall_time,
                value: v,
            }));
        }
    }
    Ok(event.file_version)
}

/// Appends the images of one `Summary.Value`: its `Summary.Image`, or the images of its
/// TF2 string tensor. An error says why they were left out.
fn images(
    value: &SummaryValue<'_>,
    plugin: Option<&str>,
    step: i64,
    wall_time: f64,
    items: &mut Vec<EventItem>,
) -> Result<(), String> {
    let point = |tag: String, width, height, png: &[u8]| {
        if png.len() > MAX_IMAGE_BYTES {
            return Err(format!(
                "{} bytes, over the {} MiB image limit",
                png.len(),
                MAX_IMAGE_BYTES >> 20
            ));
        }
        Ok(EventItem::Image(ImagePoint {
            tag,
            step,
            wall_time,
            width,
            height,
            png: png.to_vec(),
        }))
    };
    if let Some(image) = value.image {
        let image = proto::decode_image(image).map_err(|e| e.to_string())?;
        if image.encoded.is_empty() {
            return Err("no encoded image".into());
        }
        items.push(point(
            value.tag.clone(),
            image.width,
            image.height,
            image.encoded,
        )?);
        return Ok(());
    }
    let Some(tensor) = value.tensor.filter(|_| plugin == Some("images")) else {
        return Ok(());
    };
    let strings = proto::decode_string_tensor(tensor)
        .map_err(|e| e.to_string())?
        .ok_or("an images-plugin tensor that holds no strings")?;
    let [width, height, pngs @ ..] = strings.as_slice() else {
        return Err(format!(
            "{} string(s), not width, height and images",
            strings.len()
        ));
    };
    let size = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let (width, height) = (size(width), size(height));
    // Check every image before taking any: a summary is shown whole or not at all.
    let mut points = Vec::with_capacity(pngs.len());
    for (i, png) in pngs.iter().enumerate() {
        let tag = if pngs.len() == 1 {
            value.tag.clone()
        } else {
            format!("{} [{}/{}]", value.tag, i + 1, pngs.len())
        };
        points.push(point(tag, width, height, png)?);
    }
    items.extend(points);
    Ok(())
}

/// Every scalar of a complete file, restarts applied as TensorBoard applies them (a START
/// at step s drops the values logged before it at steps >= s). A damaged or undecodable
/// record is an error; a torn last record is ignored, as a reader of a live file would.
pub fn read_scalars(path: &Path) -> Result<Vec<ScalarPoint>, TfEventsError> {
    Ok(apply_restarts(complete_items(path)?))
}

/// Every scalar of the event files directly in `dir` (one TensorBoard run), read in name
/// order with restarts applied across files, as TensorBoard merges a run's files.
pub fn read_run_scalars(dir: &Path) -> Result<Vec<ScalarPoint>, TfEventsError> {
    let mut items = Vec::new();
    for file in super::event_files(dir, usize::MAX) {
        items.extend(complete_items(&file)?);
    }
    Ok(apply_restarts(items))
}

fn complete_items(path: &Path) -> Result<Vec<EventItem>, TfEventsError> {
    let mut tail = EventFileTail::new();
    let read = tail.read(path)?;
    if let Some(e) = read.stuck {
        return Err(e);
    }
    if let Some((offset, message)) = tail.bad_records.first() {
        return Err(TfEventsError::corrupt(path, *offset, message.clone()));
    }
    Ok(read.items)
}

fn apply_restarts(items: Vec<EventItem>) -> Vec<ScalarPoint> {
    let mut points: Vec<ScalarPoint> = Vec::new();
    for item in items {
        match item {
            EventItem::Scalar(p) => points.push(p),
            EventItem::Image(_) => {}
            EventItem::Restart { step } => points.retain(|p| p.step < step),
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::super::proto::{Encoder, encode_image_tensor, encode_scalar};
    use super::super::writer::EventWriter;
    use super::*;

    /// A `w` x `h` PNG of one colour.
    fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        use image::ImageEncoder;
        let pixels: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn images(items: &[EventItem]) -> Vec<(&str, i64, u32, u32)> {
        items
            .iter()
            .filter_map(|i| match i {
                EventItem::Image(p) => Some((p.tag.as_str(), p.step, p.width, p.height)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pytorch_and_tf2_image_summaries_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let red = png(6, 4, [255, 0, 0]);
        let blue = png(3, 2, [0, 0, 255]);
        let mut w = EventWriter::create(dir.path(), 100.0).unwrap();
        // PyTorch: Summary.Image, with a scalar beside it.
        w.scalar(101.0, 1, "loss", 0.5);
        w.image(101.0, 1, "recon/0", (6, 4, 3), &red);
        w.image(102.0, 2, "recon/0", (6, 4, 3), &red);
        // TF2: a string tensor with the `images` plugin named on the first value only.
        w.event(&encode_image_tensor(
            101.0,
            1,
            "epoch_image",
            (3, 2),
            &[&blue],
            true,
        ));
        w.event(&encode_image_tensor(
            102.0,
            2,
            "epoch_image",
            (3, 2),
            &[&blue, &red],
            false,
        ));
        // Width and height only: a batch of no images.
        w.event(&encode_image_tensor(
            103.0,
            3,
            "epoch_image",
            (3, 2),
            &[],
            false,
        ));
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        let mut tail = EventFileTail::new();
        let read = tail.read(&path).unwrap();
        assert_eq!(tail.bad_count, 0, "{:?}", tail.bad_records);
        assert_eq!(tail.refused_count, 0, "{:?}", tail.refused_images);
        assert_eq!(
            images(&read.items),
            vec![
                ("recon/0", 1, 6, 4),
                ("recon/0", 2, 6, 4),
                ("epoch_image", 1, 3, 2),
                ("epoch_image [1/2]", 2, 3, 2),
                ("epoch_image [2/2]", 2, 3, 2),
            ]
        );
        let decoded: Vec<(u32, u32, [u8; 3])> = read
            .items
            .iter()
            .filter_map(|i| match i {
                EventItem::Image(p) => {
                    let img = image::load_from_memory(&p.png).unwrap().to_rgb8();
                    Some((img.width(), img.height(), img.get_pixel(0, 0).0))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            decoded,
            vec![
                (6, 4, [255, 0, 0]),
                (6, 4, [255, 0, 0]),
                (3, 2, [0, 0, 255]),
                (3, 2, [0, 0, 255]),
                (6, 4, [255, 0, 0]),
            ]
        );
        // The scalar is still a scalar, and images are no scalars.
        assert_eq!(
            read_scalars(&path)
                .unwrap()
                .iter()
                .map(|p| p.tag.as_str())
                .collect::<Vec<_>>(),
            vec!["loss"]
        );
        assert!(tail.read(&path).unwrap().items.is_empty(), "nothing new");
    }

    /// An event whose summary holds a scalar and one raw `Summary.Value` `value`.
    fn event_with(step: i64, value: &[u8]) -> Vec<u8> {
        let scalar = encode_scalar(1.0, step, "loss", 0.25);
        let summary = proto::decode_event(&scalar)
            .unwrap()
            .summary
            .unwrap()
            .to_vec();
        let mut s = Encoder { buf: summary };
        s.bytes(1, value);
        let mut e = Encoder::default();
        e.double(1, 1.0);
        e.uint(2, step as u64);
        e.bytes(5, &s.buf);
        e.buf
    }

    #[test]
    fn damaged_and_oversized_images_are_refused_without_losing_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 100.0).unwrap();
        // A Summary.Image whose encoded_image_string claims 100 bytes and holds 3.
        let mut v = Encoder::default();
        v.bytes(1, b"recon/0");
        v.bytes(4, &[0x22, 100, 1, 2, 3]);
        w.event(&event_with(1, &v.buf));
        // An image over the limit.
        let big = vec![0u8; MAX_IMAGE_BYTES + 1];
        w.image(2.0, 2, "huge", (1, 1, 3), &big);
        // A TF2 images tensor holding one string, not width, height and images.
        let mut t = Encoder::default();
        t.uint(1, proto::DT_STRING);
        t.bytes(8, b"3");
        let mut plugin = Encoder::default();
        plugin.bytes(1, b"images");
        let mut meta = Encoder::default();
        meta.bytes(1, &plugin.buf);
        let mut v = Encoder::default();
        v.bytes(1, b"tf_image");
        v.bytes(8, &t.buf);
        v.bytes(9, &meta.buf);
        w.event(&event_with(3, &v.buf));
        // An empty Summary.Image.
        let mut v = Encoder::default();
        v.bytes(1, b"empty");
        v.bytes(4, &[]);
        w.event(&event_with(4, &v.buf));
        w.flush().unwrap();
        let mut tail = EventFileTail::new();
        let read = tail.read(w.path()).unwrap();
        assert!(read.stuck.is_none());
        assert_eq!(tail.bad_count, 0, "{:?}", tail.bad_records);
        assert!(images(&read.items).is_empty());
        // The scalars beside the bad images are kept.
        let steps: Vec<i64> = read
            .items
            .iter()
            .filter_map(|i| match i {
                EventItem::Scalar(p) => Some(p.step),
                _ => None,
            })
            .collect();
        assert_eq!(steps, vec![1, 3, 4]);
        assert_eq!(tail.refused_count, 4);
        let reasons: Vec<&str> = tail
            .refused_images
            .iter()
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(
            reasons,
            vec![
                "image \"recon/0\" at step 1: truncated length-delimited field",
                "image \"huge\" at step 2: 16777217 bytes, over the 16 MiB image limit",
                "image \"tf_image\" at step 3: 1 string(s), not width, height and images",
                "image \"empty\" at step 4: no encoded image",
            ]
        );
    }

    #[test]
    fn hostile_image_values_never_panic() {
        // Every truncation and a byte flip at every offset of a real image event.
        let event = proto::encode_image(
            1.0,
            3,
            "recon/0",
            &proto::SummaryImage {
                height: 2,
                width: 2,
                colorspace: 3,
                encoded: &png(2, 2, [9, 9, 9]),
            },
        );
        let tf2 = encode_image_tensor(1.0, 3, "x", (2, 2), &[&png(2, 2, [1, 2, 3])], true);
        for bytes in [event, tf2] {
            for cut in 0..bytes.len() {
                for flip in [None, Some(cut)] {
                    let mut b = bytes[..cut.max(1)].to_vec();
                    if let Some(at) = flip.filter(|&a| a < b.len()) {
                        b[at] ^= 0xa5;
                    }
                    let mut items = Vec::new();
                    let mut refused = Vec::new();
                    let _ = decode(&b, &mut HashMap::new(), &mut items, &mut refused);
                }
            }
        }
    }

    fn image_item(tag: &str, step: i64, bytes: usize) -> EventItem {
        EventItem::Image(ImagePoint {
            tag: tag.into(),
            step,
            wall_time: 0.0,
            width: 0,
            height: 0,
            png: vec![0; bytes],
        })
    }

    #[test]
    fn kept_images_are_the_newest_steps_within_the_budget() {
        let mut items: Vec<EventItem> = (0..10).map(|s| image_item("a", s, 10)).collect();
        items.push(image_item("b", 3, 10));
        // A second image of (a, 9): the later one wins.
        items.push(image_item("a", 9, 11));
        let (n, bytes) = keep_newest_images(&mut items, shelved_item, 3, 1000);
        assert_eq!((n, bytes), (4, 41));
        assert_eq!(
            images(&items),
            vec![
                ("a", 7, 0, 0),
                ("a", 8, 0, 0),
                ("b", 3, 0, 0),
                ("a", 9, 0, 0)
            ]
        );
        // The byte budget: newest first, until it is spent.
        let mut items: Vec<EventItem> = (0..10).map(|s| image_item("a", s, 10)).collect();
        assert_eq!(
            keep_newest_images(&mut items, shelved_item, 64, 25),
            (2, 20)
        );
        // A restart at step 5 voids the images before it at steps >= 5, not after it.
        let mut items: Vec<EventItem> = (0..8).map(|s| image_item("a", s, 1)).collect();
        items.push(EventItem::Restart { step: 5 });
        items.push(image_item("a", 5, 1));
        keep_newest_images(&mut items, shelved_item, 64, 1000);
        let steps: Vec<i64> = images(&items).iter().map(|i| i.1).collect();
        assert_eq!(steps, vec![0, 1, 2, 3, 4, 5]);
        assert!(items.contains(&EventItem::Restart { step: 5 }), "kept");
    }

    #[test]
    fn a_file_of_many_images_reads_into_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 100.0).unwrap();
        let img = png(2, 2, [1, 1, 1]);
        for step in 0..1000 {
            w.image(100.0, step, "recon", (2, 2, 3), &img);
            w.scalar(100.0, step, "loss", 1.0);
        }
        w.flush().unwrap();
        let read = EventFileTail::new().read(w.path()).unwrap();
        let steps: Vec<i64> = images(&read.items).iter().map(|i| i.1).collect();
        assert_eq!(
            steps,
            (1000 - KEEP_IMAGE_STEPS as i64..1000).collect::<Vec<_>>()
        );
        assert_eq!(read.items.len(), 1000 + KEEP_IMAGE_STEPS);
    }
}
