//! The protobuf wire format, by hand, for exactly the TensorBoard messages gantry reads
//! and writes: `Event`, `Summary`, `Summary.Value`, `SummaryMetadata.PluginData`,
//! `SessionLog`, the rank-0 `TensorProto` a TF2 scalar is, `Summary.Image` (PyTorch's
//! `add_image`) and the string `TensorProto` of a TF2 image summary. Unknown fields are
//! skipped, as protobuf requires, so histograms, graphs and fields added by later
//! TensorFlow versions pass through unread. Decoding borrows from the record and never
//! allocates more than the record holds; a malformed message is an error, never a panic.
//!
//! Field numbers are those of tensorboard/compat/proto/{event,summary,tensor,
//! tensor_shape,types}.proto.

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("field number 0")]
    FieldZero,
    #[error("field {field}: unsupported wire type {wire}")]
    WireType { field: u64, wire: u8 },
    #[error("{message}: field {field} has wire type {wire}, not {expected}")]
    Mismatch {
        message: &'static str,
        field: u64,
        wire: u8,
        expected: u8,
    },
}

/// A field's value as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    fn code(&self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Bytes(_) => 2,
            Wire::Fixed32(_) => 5,
        }
    }
}

/// Iterates over the fields of one message.
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(ProtoError::Truncated("varint"));
            };
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintTooLong)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtoError> {
        if self.buf.len() < n {
            return Err(ProtoError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(ProtoError::FieldZero);
        }
        let value = match (key & 7) as u8 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(fixed(self.take(8, "fixed64")?))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| ProtoError::Truncated("bytes"))?;
                Wire::Bytes(self.take(len, "length-delimited field")?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(fixed(self.take(4, "fixed32")?))),
            // Groups (3, 4) are deprecated and absent from every TensorBoard message.
            wire => return Err(ProtoError::WireType { field, wire }),
        };
        Ok(Some((field, value)))
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn mismatch(message: &'static str, field: u64, wire: &Wire<'_>, expected: u8) -> ProtoError {
    ProtoError::Mismatch {
        message,
        field,
        wire: wire.code(),
        expected,
    }
}

/// `SessionLog.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Unspecified,
    /// A (re)start: TensorBoard drops what the run logged at and after this event's step.
    Start,
    Stop,
    Checkpoint,
}

/// An `Event`, its summary left encoded until asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event<'a> {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    /// The encoded `Summary`, when the event carries one.
    pub summary: Option<&'a [u8]>,
    pub session_log: Option<SessionStatus>,
}

pub fn decode_event(buf: &[u8]) -> Result<Event<'_>, ProtoError> {
    const M: &str = "Event";
    let mut event = Event::default();
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Fixed64(bits)) => event.wall_time = f64::from_bits(bits),
            (2, Wire::Varint(v)) => event.step = v as i64,
            (3, Wire::Bytes(b)) => event.file_version = Some(String::from_utf8_lossy(b).into()),
            (5, Wire::Bytes(b)) => event.summary = Some(b),
            (7, Wire::Bytes(b)) => event.session_log = Some(decode_session_status(b)?),
            (1, w) => return Err(mismatch(M, 1, &w, 1)),
            (2, w) => return Err(mismatch(M, 2, &w, 0)),
            (3 | 5 | 7, w) => return Err(mismatch(M, field, &w, 2)),
            _ => {}
        }
    }
    Ok(event)
}

fn decode_session_status(buf: &[u8]) -> Result<SessionStatus, ProtoError> {
    let mut status = SessionStatus::Unspecified;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Varint(v)) => {
                status = match v {
                    1 => SessionStatus::Start,
                    2 => SessionStatus::Stop,
                    3 => SessionStatus::Checkpoint,
                    _ => SessionStatus::Unspecified,
                }
            }
            (1, w) => return Err(mismatch("SessionLog", 1, &w, 0)),
            _ => {}
        }
    }
    Ok(status)
}

/// One `Summary.Value`: what the reader needs, the tensor and image left encoded (a
/// damaged image is then its own error, not the whole record's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryValue<'a> {
    pub tag: String,
    pub simple_value: Option<f32>,
    /// `metadata.plugin_data.plugin_name`, when the value carries metadata.
    pub plugin_name: Option<String>,
    pub tensor: Option<&'a [u8]>,
    /// The encoded `Summary.Image` (field 4), as PyTorch's `add_image` writes it.
    pub image: Option<&'a [u8]>,
}

/// The values of an encoded `Summary`.
pub fn decode_summary(buf: &[u8]) -> Result<Vec<SummaryValue<'_>>, ProtoError> {
    let mut values = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Bytes(b)) => values.push(decode_value(b)?),
            (1, w) => return Err(mismatch("Summary", 1, &w, 2)),
            _ => {}
        }
    }
    Ok(values)
}

fn decode_value(buf: &[u8]) -> Result<SummaryValue<'_>, ProtoError> {
    const M: &str = "Summary.Value";
    let mut value = SummaryValue::default();
    let mut fields = Fields::new(buf);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Bytes(b)) => value.tag = String::from_utf8_lossy(b).into(),
            (2, Wire::Fixed32(bits)) => value.simple_value = Some(f32::from_bits(bits)),
            (4, Wire::Bytes(b)) => value.image = Some(b),
            (8, Wire::Bytes(b)) => value.tensor = Some(b),
            (9, Wire::Bytes(b)) => value.plugin_name = decode_plugin_name(b)?,
            (2, w) => return Err(mismatch(M, 2, &w, 5)),
            (1 | 4 | 8 | 9, w) => return Err(mismatch(M, field, &w, 2)),
            // 3 old-style histogram, 5 histo, 6 audio, 7 node_name: not read.
            _ => {}
        }
    }
    Ok(value)
}

/// `SummaryMetadata.plugin_data.plugin_name`.
fn decode_plugin_name(buf: &[u8]) -> Result<Option<String>, ProtoError> {
    let mut name = None;
    let mut fields = Fields::new(buf);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Bytes(plugin_data)) => {
                let mut inner = Fields::new(plugin_data);
                while let Some((f, w)) = inner.next_field()? {
                    match (f, w) {
                        (1, Wire::Bytes(b)) => name = Some(String::from_utf8_lossy(b).into()),
                        (1, w) => return Err(mismatch("PluginData", 1, &w, 2)),
                        _ => {}
                    }
                }
            }
            (1, w) => return Err(mismatch("SummaryMetadata", 1, &w, 2)),
            _ => {}
        }
    }
    Ok(name)
}

/// `Summary.Image`: one encoded image (PNG from PyTorch's and TensorFlow's writers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SummaryImage<'a> {
    pub height: u32,
    pub width: u32,
    /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA, 5 digital YUV, 6 BGRA (0 when unset).
    pub colorspace: u32,
    /// The PNG (or JPEG) bytes, borrowed from the record.
    pub encoded: &'a [u8],
}

/// Decodes a `Summary.Image`. Sizes are read as the int32 they are on the wire; a
/// negative one reads as 0 (unknown), the image's own header being what a decoder uses.
pub fn decode_image(buf: &[u8]) -> Result<SummaryImage<'_>, ProtoError> {
    const M: &str = "Summary.Image";
    let mut image = SummaryImage::default();
    let mut fields = Fields::new(buf);
    let size = |v: u64| u32::try_from(v as i32).unwrap_or(0);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Varint(v)) => image.height = size(v),
            (2, Wire::Varint(v)) => image.width = size(v),
            (3, Wire::Varint(v)) => image.colorspace = size(v),
            (4, Wire::Bytes(b)) => image.encoded = b,
            (1..=3, w) => return Err(mismatch(M, field, &w, 0)),
            (4, w) => return Err(mismatch(M, 4, &w, 2)),
            _ => {}
        }
    }
    Ok(image)
}

/// `DataType` of a string tensor (a TF2 image summary's).
pub const DT_STRING: u64 = 7;

/// The `string_val`s of a `DT_STRING` tensor, borrowed from the record; `Ok(None)` for a
/// tensor of another dtype. A TF2 image summary (`tf.summary.image`, the Keras
/// TensorBoard callback) holds `[width, height, image, image...]`, sizes as ASCII.
pub fn decode_string_tensor(buf: &[u8]) -> Result<Option<Vec<&[u8]>>, ProtoError> {
    const M: &str = "TensorProto";
    let mut dtype = 0;
    let mut strings = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Varint(v)) => dtype = v,
            (8, Wire::Bytes(b)) => strings.push(b),
            (1, w) => return Err(mismatch(M, 1, &w, 0)),
            (8, w) => return Err(mismatch(M, 8, &w, 2)),
            _ => {}
        }
    }
    Ok((dtype == DT_STRING).then_some(strings))
}

/// `DataType` values a scalar may have.
pub const DT_FLOAT: u64 = 1;
pub const DT_DOUBLE: u64 = 2;
pub const DT_INT32: u64 = 3;
pub const DT_INT64: u64 = 9;
pub const DT_BFLOAT16: u64 = 14;
pub const DT_HALF: u64 = 19;

/// The value of a one-element numeric tensor (rank 0, or every dimension 1), as f64.
/// `Ok(None)` for anything else: more elements, an unknown rank, a string or complex
/// dtype. A tensor with no stored values is zeros, as TensorFlow reads it.
pub fn decode_scalar_tensor(buf: &[u8]) -> Result<Option<f64>, ProtoError> {
    const M: &str = "TensorProto";
    let mut dtype = 0;
    let mut elements: Option<i128> = Some(1);
    let mut content: Option<&[u8]> = None;
    // The first stored value of each typed list, packed or not.
    let mut first: Option<f64> = None;
    let mut first_half: Option<u16> = None;
    let mut fields = Fields::new(buf);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Varint(v)) => dtype = v,
            (2, Wire::Bytes(shape)) => elements = shape_elements(shape)?,
            (4, Wire::Bytes(b)) => content = Some(b),
            // float_val
            (5, Wire::Bytes(b)) if first.is_none() && b.len() >= 4 => {
                first = Some(f64::from(f32::from_le_bytes(fixed(b))));
            }
            (5, Wire::Fixed32(bits)) => {
                first.get_or_insert(f64::from(f32::from_bits(bits)));
            }
            // double_val
            (6, Wire::Bytes(b)) if first.is_none() && b.len() >= 8 => {
                first = Some(f64::from_le_bytes(fixed(b)));
            }
            (6, Wire::Fixed64(bits)) => {
                first.get_or_insert(f64::from_bits(bits));
            }
            // int_val (int32), int64_val
            (7 | 10, Wire::Bytes(b)) if first.is_none() && !b.is_empty() => {
                let v = Fields::new(b).varint()?;
                first = Some(int_value(field, v));
            }
            (7 | 10, Wire::Varint(v)) => {
                first.get_or_insert(int_value(field, v));
            }
            // half_val: the 16 bits of a half or bfloat16 in an int32 varint
            (13, Wire::Bytes(b)) if first_half.is_none() && !b.is_empty() => {
                first_half = Some(Fields::new(b).varint()? as u16);
            }
            (13, Wire::Varint(v)) => {
                first_half.get_or_insert(v as u16);
            }
            (1, w) => return Err(mismatch(M, 1, &w, 0)),
            (2 | 4, w) => return Err(mismatch(M, field, &w, 2)),
            _ => {}
        }
    }
    if elements != Some(1) {
        return Ok(None);
    }
    let from_content = |n: usize| content.filter(|c| c.len() >= n);
    let value = match dtype {
        DT_FLOAT => from_content(4)
            .map(|c| f64::from(f32::from_le_bytes(fixed(c))))
            .or(first),
        DT_DOUBLE => from_content(8)
            .map(|c| f64::from_le_bytes(fixed(c)))
            .or(first),
        DT_INT32 => from_content(4)
            .map(|c| f64::from(i32::from_le_bytes(fixed(c))))
            .or(first),
        DT_INT64 => from_content(8)
            .map(|c| i64::from_le_bytes(fixed(c)) as f64)
            .or(first),
        DT_HALF => from_content(2)
            .map(|c| u16::from_le_bytes(fixed(c)))
            .or(first_half)
            .map(|h| f64::from(f16_to_f32(h))),
        DT_BFLOAT16 => from_content(2)
            .map(|c| u16::from_le_bytes(fixed(c)))
            .or(first_half)
            .map(|h| f64::from(f32::from_bits(u32::from(h) << 16))),
        _ => return Ok(None),
    };
    Ok(Some(value.unwrap_or(0.0)))
}

fn int_value(field: u64, v: u64) -> f64 {
    if field == 7 {
        f64::from(v as i32)
    } else {
        v as i64 as f64
    }
}

/// Elements of a `TensorShapeProto`; `None` for an unknown rank or size.
fn shape_elements(buf: &[u8]) -> Result<Option<i128>, ProtoError> {
    let mut count: i128 = 1;
    let mut known = true;
    let mut fields = Fields::new(buf);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (2, Wire::Bytes(dim)) => {
                let mut size = 0i64;
                let mut inner = Fields::new(dim);
                while let Some((f, w)) = inner.next_field()? {
                    if let (1, Wire::Varint(v)) = (f, w) {
                        size = v as i64;
                    }
                }
                if size < 0 {
                    known = false;
                }
                // Saturates: only "exactly one" matters.
                count = count.saturating_mul(i128::from(size.max(0))).min(1 << 64);
            }
            (3, Wire::Varint(v)) if v != 0 => known = false,
            _ => {}
        }
    }
    Ok(known.then_some(count))
}

/// IEEE 754 binary16 to f32, exactly.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Builds one message.
#[derive(Debug, Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u8) {
        self.varint((field << 3) | u64::from(wire));
    }

    pub fn uint(&mut self, field: u64, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    pub fn double(&mut self, field: u64, v: f64) {
        self.key(field, 1);
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn float(&mut self, field: u64, v: f32) {
        self.key(field, 5);
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn bytes(&mut self, field: u64, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
}

/// An `Event` with `wall_time`, `step` and `file_version`: the first event of a file.
pub fn encode_file_version(wall_time: f64, version: &str) -> Vec<u8> {
    let mut e = Encoder::default();
    e.double(1, wall_time);
    e.bytes(3, version.as_bytes());
    e.buf
}

/// An `Event` carrying one scalar as `simple_value`, as PyTorch's SummaryWriter writes it.
pub fn encode_scalar(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    let mut v = Encoder::default();
    v.bytes(1, tag.as_bytes());
    v.float(2, value);
    summary_event(wall_time, step, &v.buf)
}

/// An `Event` carrying one image as `Summary.Image`, as PyTorch's `add_image` writes it
/// (`colorspace` 3 for RGB, 1 for grey).
pub fn encode_image(wall_time: f64, step: i64, tag: &str, image: &SummaryImage<'_>) -> Vec<u8> {
    let mut img = Encoder::default();
    img.uint(1, u64::from(image.height));
    img.uint(2, u64::from(image.width));
    img.uint(3, u64::from(image.colorspace));
    img.bytes(4, image.encoded);
    let mut v = Encoder::default();
    v.bytes(1, tag.as_bytes());
    v.bytes(4, &img.buf);
    summary_event(wall_time, step, &v.buf)
}

/// An `Event` carrying images as TF2's `tf.summary.image` writes them: a `DT_STRING`
/// tensor of shape `[2 + n]` holding `[width, height, png...]`, with the `images` plugin
/// named in its metadata when `metadata` (TF1's FileWriter writes it on a tag's first
/// value only).
pub fn encode_image_tensor(
    wall_time: f64,
    step: i64,
    tag: &str,
    (width, height): (u32, u32),
    images: &[&[u8]],
    metadata: bool,
) -> Vec<u8> {
    let mut dim = Encoder::default();
    dim.uint(1, 2 + images.len() as u64);
    let mut shape = Encoder::default();
    shape.bytes(2, &dim.buf);
    let mut t = Encoder::default();
    t.uint(1, DT_STRING);
    t.bytes(2, &shape.buf);
    t.bytes(8, width.to_string().as_bytes());
    t.bytes(8, height.to_string().as_bytes());
    for image in images {
        t.bytes(8, image);
    }
    let mut v = Encoder::default();
    v.bytes(1, tag.as_bytes());
    v.bytes(8, &t.buf);
    if metadata {
        let mut plugin = Encoder::default();
        plugin.bytes(1, b"images");
        let mut meta = Encoder::default();
        meta.bytes(1, &plugin.buf);
        v.bytes(9, &meta.buf);
    }
    summary_event(wall_time, step, &v.buf)
}

/// An `Event` at `step` whose `Summary` holds the one encoded `Summary.Value` `value`.
fn summary_event(wall_time: f64, step: i64, value: &[u8]) -> Vec<u8> {
    let mut summary = Encoder::default();
    summary.bytes(1, value);
    let mut e = Encoder::default();
    e.double(1, wall_time);
    e.uint(2, step as u64);
    e.bytes(5, &summary.buf);
    e.buf
}

/// An `Event` with `SessionLog { status: START }` at `step`: readers drop what the file's
/// run logged at and after `step` (a resumed run rewriting those steps).
pub fn encode_session_start(wall_time: f64, step: i64) -> Vec<u8> {
    let mut log = Encoder::default();
    log.uint(1, 1);
    let mut e = Encoder::default();
    e.double(1, wall_time);
    e.uint(2, step as u64);
    e.bytes(7, &log.buf);
    e.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_event_round_trips() {
        let bytes = encode_scalar(12.5, 7, "val/loss", 0.25);
        let event = decode_event(&bytes).unwrap();
        assert_eq!((event.wall_time, event.step), (12.5, 7));
        let values = decode_summary(event.summary.unwrap()).unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].tag, "val/loss");
        assert_eq!(values[0].simple_value, Some(0.25));
        let bytes = encode_session_start(1.0, 3);
        let start = decode_event(&bytes).unwrap();
        assert_eq!(
            (start.step, start.session_log),
            (3, Some(SessionStatus::Start))
        );
        let bytes = encode_file_version(2.0, "brain.Event:2");
        let first = decode_event(&bytes).unwrap();
        assert_eq!(first.file_version.as_deref(), Some("brain.Event:2"));
    }

    #[test]
    fn tensorboard_scalar_pb_bytes_decode() {
        // tensorboard.plugins.scalar.summary.scalar_pb("epoch_loss", 0.5).SerializeToString()
        let hex = "0a250a0a65706f63685f6c6f7373420a080112002a040000003f4a0b0a090a077363616c617273";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let values = decode_summary(&bytes).unwrap();
        assert_eq!(values[0].tag, "epoch_loss");
        assert_eq!(values[0].plugin_name.as_deref(), Some("scalars"));
        assert_eq!(
            decode_scalar_tensor(values[0].tensor.unwrap()),
            Ok(Some(0.5))
        );
    }

    #[test]
    fn tensors_that_are_not_one_element_are_not_scalars() {
        // dtype float, shape [2], float_val packed [1, 2]
        let mut dim = Encoder::default();
        dim.uint(1, 2);
        let mut shape = Encoder::default();
        shape.bytes(2, &dim.buf);
        let mut t = Encoder::default();
        t.uint(1, DT_FLOAT);
        t.bytes(2, &shape.buf);
        t.bytes(5, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
        assert_eq!(decode_scalar_tensor(&t.buf), Ok(None));
        // A string tensor (an image) is not a scalar either.
        let mut s = Encoder::default();
        s.uint(1, 7);
        s.bytes(8, b"png");
        assert_eq!(decode_scalar_tensor(&s.buf), Ok(None));
    }

    #[test]
    fn image_summaries_round_trip_both_ways() {
        let png: &[u8] = b"\x89PNG\r\n\x1a\n fake";
        let image = SummaryImage {
            height: 4,
            width: 6,
            colorspace: 3,
            encoded: png,
        };
        let bytes = encode_image(1.0, 5, "recon/0", &image);
        let event = decode_event(&bytes).unwrap();
        let values = decode_summary(event.summary.unwrap()).unwrap();
        assert_eq!(values[0].tag, "recon/0");
        assert_eq!(decode_image(values[0].image.unwrap()), Ok(image));
        let bytes = encode_image_tensor(2.0, 6, "epoch_image", (6, 4), &[png, b"two"], true);
        let event = decode_event(&bytes).unwrap();
        let values = decode_summary(event.summary.unwrap()).unwrap();
        assert_eq!(values[0].plugin_name.as_deref(), Some("images"));
        let strings = decode_string_tensor(values[0].tensor.unwrap()).unwrap();
        assert_eq!(strings, Some(vec![&b"6"[..], b"4", png, b"two"]));
        // A numeric tensor is no string tensor.
        let mut t = Encoder::default();
        t.uint(1, DT_FLOAT);
        t.bytes(5, &[0, 0, 0x80, 0x3f]);
        assert_eq!(decode_string_tensor(&t.buf), Ok(None));
    }

    #[test]
    fn malformed_images_are_errors() {
        // encoded_image_string claims 100 bytes and holds 3.
        assert_eq!(
            decode_image(&[0x22, 100, 1, 2, 3]),
            Err(ProtoError::Truncated("length-delimited field"))
        );
        // width as bytes
        assert!(matches!(
            decode_image(&[0x12, 1, 0]),
            Err(ProtoError::Mismatch { field: 2, .. })
        ));
        // A negative width (an int32 on the wire) reads as unknown.
        let mut img = Encoder::default();
        img.uint(2, (-3i64) as u64);
        assert_eq!(decode_image(&img.buf).unwrap().width, 0);
        // An image field that is a varint, not a message.
        assert!(matches!(
            decode_summary(&[0x0a, 0x02, 0x20, 0x00]),
            Err(ProtoError::Mismatch { field: 4, .. })
        ));
        assert_eq!(
            decode_string_tensor(&[0x42, 9, 1]),
            Err(ProtoError::Truncated("length-delimited field"))
        );
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3400), 0.25);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(
            decode_event(&[0x08]).unwrap_err(),
            ProtoError::Truncated("varint")
        );
        assert_eq!(
            decode_event(&[0x2a, 0x05, 0x00]).unwrap_err(),
            ProtoError::Truncated("length-delimited field")
        );
        assert_eq!(decode_event(&[0x00]).unwrap_err(), ProtoError::FieldZero);
        assert_eq!(
            decode_event(&[0x0b]).unwrap_err(),
            ProtoError::WireType { field: 1, wire: 3 }
        );
        assert_eq!(
            decode_event(&[0xff; 11]).unwrap_err(),
            ProtoError::VarintTooLong
        );
        // step as a fixed32 instead of a varint
        assert!(matches!(
            decode_event(&[0x15, 0, 0, 0, 0]).unwrap_err(),
            ProtoError::Mismatch { field: 2, .. }
        ));
    }
}
