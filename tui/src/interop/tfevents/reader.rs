//! Scalars out of a growing event file: [`RecordTail`] for the framing, [`super::proto`]
//! for the messages. A scalar is a `simple_value` (PyTorch's SummaryWriter, tensorboardX)
//! or a one-element numeric tensor whose tag's metadata names the `scalars` plugin (TF2,
//! the Keras TensorBoard callback). TensorFlow writers may send a tag's metadata with its
//! first value only, so the plugin of each tag is remembered. Images, histograms, text,
//! graphs are skipped unread. A record whose framing checks but whose message does not
//! decode is skipped and counted in [`EventFileTail::bad_records`], never silently.

use std::collections::HashMap;
use std::path::Path;

use super::TfEventsError;
use super::proto::{self, SessionStatus};
use super::record::RecordTail;

/// One scalar value of an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarPoint {
    pub tag: String,
    pub step: i64,
    pub wall_time: f64,
    pub value: f64,
}

/// What an event file says, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    Scalar(ScalarPoint),
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

    /// Reads the scalars (and restarts) appended since the last call.
    pub fn read(&mut self, path: &Path) -> Result<EventRead, TfEventsError> {
        let mut items = Vec::new();
        let mut bad = Vec::new();
        let mut version = None;
        let mut plugins = std::mem::take(&mut self.plugins);
        let read = self.records.read(path, |offset, data| {
            match decode(data, &mut plugins, &mut items) {
                Ok(Some(v)) => version = Some(v),
                Ok(None) => {}
                Err(e) => bad.push((offset, e.to_string())),
            }
        })?;
        if read.restarted {
            // Plugin names learnt from the old file are kept: a tag keeps its plugin.
            self.bad_records.clear();
            self.bad_count = 0;
            self.file_version = None;
        }
        self.plugins = plugins;
        if self.file_version.is_none() {
            self.file_version = version;
        }
        self.bad_count += bad.len();
        let room = BAD_KEPT.saturating_sub(self.bad_records.len());
        self.bad_records.extend(bad.into_iter().take(room));
        Ok(EventRead {
            items,
            restarted: read.restarted,
            stuck: read.stuck,
        })
    }
}

/// Decodes one event record, appending its scalars; returns its `file_version`, if any.
fn decode(
    data: &[u8],
    plugins: &mut HashMap<String, String>,
    items: &mut Vec<EventItem>,
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
            EventItem::Restart { step } => points.retain(|p| p.step < step),
        }
    }
    points
}
