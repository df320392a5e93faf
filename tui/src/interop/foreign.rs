//! Runs other programs wrote, found under a run root and shown beside gantry's own:
//!
//! - a TensorBoard logdir: a folder one or two levels under the root that holds
//!   `events.out.tfevents.*` files, directly (PyTorch's `runs/<date_host>/`) or in
//!   sub-folders (the Keras callback's `<logdir>/train/` and `<logdir>/validation/`).
//!   Files in a sub-folder have their tags prefixed by its name (`train/epoch_loss`,
//!   `validation/epoch_loss`), as TensorBoard names the run, so one run overlays them;
//! - a Keras CSVLogger history: a `*.csv` directly in the root, or in a folder directly
//!   under it, whose header has an `epoch` column; every other column is a tag, and the
//!   epoch is the step.
//!
//! A folder with a `status.ron` or `run.ron` is a gantry run and is never looked into:
//! gantry's own event file is not shown twice. Hidden folders are skipped, and at most
//! [`LIST_LIMIT`] entries of any folder are looked at, so a dataset folder under the root
//! costs a bounded listing. Values come out as [`ScalarRow`]s, the dashboard's currency;
//! a logdir's image summaries as [`ForeignImage`]s, bounded as
//! [`tfevents::reader::keep_newest_images`] bounds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::keras_csv::{self, KerasCsvTail};
use super::tfevents::reader::{KEEP_IMAGE_BYTES, KEEP_IMAGE_STEPS, Shelved, keep_newest_images};
use super::tfevents::{self, EventFileTail, EventItem};
use crate::runfs::scalars::ScalarRow;
use crate::runfs::{RUN_FILE, STATUS_FILE};

/// A foreign run whose files changed less than this long ago reads as live. Writers
/// flush in bursts (PyTorch's SummaryWriter every 120 s, CSVLogger once an epoch).
pub const LIVE_SECS: f64 = 300.0;

/// Entries of one folder looked at while searching for runs.
pub const LIST_LIMIT: usize = 4096;

/// Which program's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ForeignKind {
    TensorBoard,
    KerasCsv,
}

impl ForeignKind {
    /// What the runs list shows in its plugin column.
    pub fn label(self) -> &'static str {
        match self {
            ForeignKind::TensorBoard => "tensorboard",
            ForeignKind::KerasCsv => "keras-csv",
        }
    }
}

/// A foreign run found under a root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// The logdir, or the CSV file.
    pub path: PathBuf,
    /// The path relative to the root.
    pub id: String,
    pub kind: ForeignKind,
}

/// What a root holds, from one listing of it: gantry's run folders and the runs other
/// programs wrote.
#[derive(Debug, Default)]
pub struct RootListing {
    /// Folders holding a run.ron or status.ron (gantry's runs), unordered.
    pub runs: Vec<PathBuf>,
    /// Foreign runs, in path order.
    pub foreign: Vec<Found>,
}

/// Lists `root` once. The entry types come with the listing (no stat per entry), so this
/// stays quick at tens of thousands of runs. A missing root holds nothing.
pub fn list_root(root: &Path) -> std::io::Result<RootListing> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RootListing::default()),
        Err(e) => return Err(e),
    };
    let mut listing = RootListing::default();
    let mut others = Vec::new();
    let mut csvs = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        if is_hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        if is_dir {
            if is_gantry_run(&path) {
                listing.runs.push(path);
            } else {
                others.push(path);
            }
        } else if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
        {
            csvs.push(path);
        }
    }
    others.sort();
    others.truncate(LIST_LIMIT);
    csvs.truncate(LIST_LIMIT);
    let mut add = |path: PathBuf, kind| {
        let id = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        listing.foreign.push(Found { path, id, kind });
    };
    for csv in csvs
        .into_iter()
        .filter(|p| keras_csv::read_header(p).is_some())
    {
        add(csv, ForeignKind::KerasCsv);
    }
    for dir in others {
        for csv in histories(&dir) {
            add(csv, ForeignKind::KerasCsv);
        }
        if is_logdir(&dir) {
            add(dir, ForeignKind::TensorBoard);
            continue;
        }
        for inner in subdirs(&dir) {
            if !is_gantry_run(&inner) && is_logdir(&inner) {
                add(inner, ForeignKind::TensorBoard);
            }
        }
    }
    listing.foreign.sort();
    Ok(listing)
}

/// Every foreign run under `root`, in path order.
pub fn discover(root: &Path) -> Vec<Found> {
    list_root(root).map(|l| l.foreign).unwrap_or_default()
}

fn is_gantry_run(dir: &Path) -> bool {
    dir.join(STATUS_FILE).exists() || dir.join(RUN_FILE).exists()
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Folders directly in `dir` (symlinks to folders included), hidden ones left out.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .take(LIST_LIMIT)
        .filter_map(|e| e.ok())
        .filter(|e| !is_hidden(&e.file_name()))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// CSV files directly in `dir` whose header has an `epoch` column.
fn histories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .take(LIST_LIMIT)
        .filter_map(|e| e.ok())
        .filter(|e| !is_hidden(&e.file_name()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
        .filter(|p| keras_csv::read_header(p).is_some())
        .collect()
}

/// Whether `dir` holds event files, directly or one folder down.
fn is_logdir(dir: &Path) -> bool {
    !tfevents::event_files(dir, LIST_LIMIT).is_empty()
        || subdirs(dir)
            .iter()
            .any(|s| !tfevents::event_files(s, LIST_LIMIT).is_empty())
}

/// The event files of a logdir with the tag prefix of each: `""` directly in it,
/// `"<sub>/"` in a sub-folder.
fn logdir_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = tfevents::event_files(dir, LIST_LIMIT)
        .into_iter()
        .map(|f| (f, String::new()))
        .collect();
    for sub in subdirs(dir) {
        let prefix = format!("{}/", sub.file_name().unwrap_or_default().to_string_lossy());
        files.extend(
            tfevents::event_files(&sub, LIST_LIMIT)
                .into_iter()
                .map(|f| (f, prefix.clone())),
        );
    }
    files
}

/// What changed in a foreign run, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Row(ScalarRow),
    /// A restart (`SessionLog START`): drop the values of tags starting with `prefix`
    /// at steps `>= step` read before.
    Purge {
        prefix: String,
        step: u64,
    },
}

/// An image summary of a TensorBoard run (PyTorch's `add_image`, `tf.summary.image`).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignImage {
    /// The tag, prefixed by its sub-folder as scalar tags are (`validation/epoch_image`).
    pub tag: String,
    pub step: u64,
    pub wall_time: f64,
    /// As the summary says (0 where it says nothing).
    pub width: u32,
    pub height: u32,
    /// The encoded image (PNG), shared with the dashboard's sample list.
    pub png: Arc<[u8]>,
}

/// What one [`ForeignRun::refresh`] produced.
#[derive(Debug, Default)]
pub struct ForeignRead {
    /// Everything held from this run is stale: the changes are its whole content again.
    pub restarted: bool,
    pub changes: Vec<Change>,
    /// New images, in file order. The restarts among `changes` are already applied to
    /// them (apply every [`Change::Purge`] to the images held before, then add these),
    /// and of each tag at most the newest [`KEEP_IMAGE_STEPS`] steps within
    /// [`KEEP_IMAGE_BYTES`] are here.
    pub images: Vec<ForeignImage>,
    /// Problems, each naming its file (a damaged record, bad CSV rows).
    pub errors: Vec<String>,
}

/// One foreign run being followed.
#[derive(Debug)]
pub struct ForeignRun {
    pub kind: ForeignKind,
    pub id: String,
    /// The logdir or the CSV file.
    pub path: PathBuf,
    /// Newest modification time of its files (Unix seconds), 0 before the first read.
    pub modified: f64,
    /// Its first wall time (or the file's modification time), for sorting by age.
    pub created: f64,
    /// Files read.
    pub files: usize,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// Event files by path, with their tag prefixes.
    TensorBoard(BTreeMap<PathBuf, (String, EventFileTail)>),
    Keras(KerasCsvTail),
}

impl ForeignRun {
    pub fn new(found: &Found) -> ForeignRun {
        ForeignRun {
            kind: found.kind,
            id: found.id.clone(),
            path: found.path.clone(),
            modified: 0.0,
            created: 0.0,
            files: 0,
            source: match found.kind {
                ForeignKind::TensorBoard => Source::TensorBoard(BTreeMap::new()),
                ForeignKind::KerasCsv => Source::Keras(KerasCsvTail::new()),
            },
        }
    }

    /// Whether its files changed within [`LIVE_SECS`] of `now`.
    pub fn is_live(&self, now: f64) -> bool {
        self.modified > 0.0 && now - self.modified < LIVE_SECS
    }

    /// Whether a changed `path` (from the file watcher) belongs to this run.
    pub fn owns(&self, path: &Path) -> bool {
        match self.kind {
            ForeignKind::KerasCsv => path == self.path,
            ForeignKind::TensorBoard => path.starts_with(&self.path),
        }
    }

    /// Reads what was appended since the last call.
    pub fn refresh(&mut self) -> ForeignRead {
        match self.kind {
            ForeignKind::TensorBoard => self.refresh_logdir(),
            ForeignKind::KerasCsv => self.refresh_history(),
        }
    }

    fn refresh_logdir(&mut self) -> ForeignRead {
        let listed = logdir_files(&self.path);
        let Source::TensorBoard(files) = &mut self.source else {
            return ForeignRead::default();
        };
        // A file that went away takes its values with it: read everything again.
        let mut restarted = files.keys().any(|k| !listed.iter().any(|(p, _)| p == k));
        let mut out = ForeignRead::default();
        // Images and restarts in order, thinned after each file.
        let mut shelf: Vec<Shelf> = Vec::new();
        for pass in 0..2 {
            if restarted {
                files.clear();
                shelf.clear();
                out = ForeignRead {
                    restarted: true,
                    ..ForeignRead::default()
                };
            }
            for (path, prefix) in &listed {
                files
                    .entry(path.clone())
                    .or_insert_with(|| (prefix.clone(), EventFileTail::new()));
            }
            let mut again = false;
            for (path, (prefix, tail)) in files.iter_mut() {
                match tail.read(path) {
                    Ok(read) => {
                        again |= read.restarted;
                        for item in read.items {
                            match item {
                                EventItem::Scalar(p) => out.changes.push(Change::Row(ScalarRow {
                                    wall_time: p.wall_time,
                                    step: p.step.max(0) as u64,
                                    epoch: p.step.clamp(0, i64::from(u32::MAX)) as u32,
                                    tag: format!("{prefix}{}", p.tag),
                                    value: p.value,
                                })),
                                EventItem::Image(i) => shelf.push(Shelf::Image(ForeignImage {
                                    tag: format!("{prefix}{}", i.tag),
                                    step: i.step.max(0) as u64,
                                    wall_time: i.wall_time,
                                    width: i.width,
                                    height: i.height,
                                    png: i.png.into(),
                                })),
                                EventItem::Restart { step } => {
                                    let step = step.max(0) as u64;
                                    shelf.push(Shelf::Restart(prefix.clone(), step));
                                    out.changes.push(Change::Purge {
                                        prefix: prefix.clone(),
                                        step,
                                    });
                                }
                            }
                        }
                        keep_newest_images(
                            &mut shelf,
                            Shelf::shelved,
                            KEEP_IMAGE_STEPS,
                            KEEP_IMAGE_BYTES,
                        );
                        if let Some((offset, message)) = tail.refused_images.first() {
                            out.errors.push(format!(
                                "{}: record at byte {offset}: {message} ({} image(s) left out)",
                                path.display(),
                                tail.refused_count
                            ));
                        }
                        if let Some(e) = read.stuck {
                            out.errors.push(e.to_string());
                        }
                        if let Some((offset, message)) = tail.bad_records.first() {
                            out.errors.push(format!(
                                "{}: record at byte {offset}: {message} ({} undecodable \
                                 records skipped)",
                                path.display(),
                                tail.bad_count
                            ));
                        }
                    }
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
            // One file replaced under us: its old values are mixed into the series, so
            // read every file again from the start, once.
            if again && pass == 0 && !restarted {
                restarted = true;
                continue;
            }
            break;
        }
        out.images = shelf
            .into_iter()
            .filter_map(|s| match s {
                Shelf::Image(i) => Some(i),
                Shelf::Restart(..) => None,
            })
            .collect();
        self.files = files.len();
        let paths: Vec<&PathBuf> = files.keys().collect();
        self.modified = newest_mtime(paths.iter().map(|p| p.as_path()));
        if self.created == 0.0 || out.restarted {
            self.created = out
                .changes
                .iter()
                .find_map(|c| match c {
                    Change::Row(r) => Some(r.wall_time),
                    Change::Purge { .. } => None,
                })
                .unwrap_or(self.modified);
        }
        out
    }

    fn refresh_history(&mut self) -> ForeignRead {
        let Source::Keras(tail) = &mut self.source else {
            return ForeignRead::default();
        };
        let mtime = newest_mtime(std::iter::once(self.path.as_path()));
        let mut out = ForeignRead::default();
        match tail.read(&self.path) {
            Ok(read) => {
                out.restarted = read.restarted;
                if let Some(e) = read.refused {
                    out.errors.push(e.to_string());
                }
                // CSVLogger writes no times: a row is as old as the file when it was read.
                for row in read.rows {
                    for (tag, value) in row.values {
                        out.changes.push(Change::Row(ScalarRow {
                            wall_time: mtime,
                            step: row.epoch,
                            epoch: row.epoch.min(u64::from(u32::MAX)) as u32,
                            tag,
                            value,
                        }));
                    }
                }
            }
            Err(e) => out.errors.push(e.to_string()),
        }
        if let Some((line, message)) = tail.bad_lines.first() {
            out.errors.push(format!(
                "{}:{line}: {message} ({} bad rows skipped)",
                self.path.display(),
                tail.bad_count
            ));
        }
        self.files = 1;
        self.modified = mtime;
        if self.created == 0.0 || out.restarted {
            self.created = mtime;
        }
        out
    }
}

/// A logdir's images and restarts in file order, while a refresh reads its files.
enum Shelf {
    Image(ForeignImage),
    Restart(String, u64),
}

impl Shelf {
    fn shelved(&self) -> Shelved<'_> {
        let step = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        match self {
            Shelf::Image(i) => Shelved::Image {
                tag: &i.tag,
                step: step(i.step),
                bytes: i.png.len(),
            },
            Shelf::Restart(prefix, s) => Shelved::Restart {
                prefix,
                step: step(*s),
            },
        }
    }
}

/// The newest modification time of `paths` in Unix seconds (0 when none reads).
fn newest_mtime<'a>(paths: impl Iterator<Item = &'a Path>) -> f64 {
    paths
        .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn logdir_images_come_prefixed_bounded_and_refusals_name_file_and_tag() {
        use crate::interop::tfevents::EventWriter;
        let dir = tempfile::tempdir().unwrap();
        let logdir = dir.path().join("fit");
        std::fs::create_dir_all(logdir.join("validation")).unwrap();
        let mut w = EventWriter::create(&logdir.join("validation"), 100.0).unwrap();
        for step in 0..100 {
            w.image(100.0, step, "epoch_image", (1, 1, 3), b"png bytes");
        }
        w.image(
            100.0,
            100,
            "huge",
            (1, 1, 3),
            &vec![0; tfevents::MAX_IMAGE_BYTES + 1],
        );
        w.flush().unwrap();
        let found = discover(dir.path());
        assert_eq!(found.len(), 1);
        let mut run = ForeignRun::new(&found[0]);
        let read = run.refresh();
        let steps: Vec<u64> = read.images.iter().map(|i| i.step).collect();
        assert_eq!(
            steps,
            (100 - KEEP_IMAGE_STEPS as u64..100).collect::<Vec<_>>()
        );
        assert!(
            read.images
                .iter()
                .all(|i| i.tag == "validation/epoch_image")
        );
        assert_eq!(&*read.images[0].png, b"png bytes");
        assert_eq!(read.errors.len(), 1, "{:?}", read.errors);
        let error = &read.errors[0];
        assert!(
            error.contains(&w.path().display().to_string())
                && error.contains("image \"huge\" at step 100")
                && error.contains("over the 16 MiB image limit"),
            "{error}"
        );
        // A restart in a later file voids this read's images from its step on, in that
        // sub-folder only.
        let mut again = EventWriter::create(&logdir.join("validation"), 200.0).unwrap();
        again.restart(200.0, 90);
        again.image(200.0, 90, "epoch_image", (1, 1, 3), b"new");
        again.flush().unwrap();
        let mut run = ForeignRun::new(&found[0]);
        let read = run.refresh();
        let last: Vec<(u64, &[u8])> = read.images[read.images.len() - 2..]
            .iter()
            .map(|i| (i.step, &*i.png))
            .collect();
        assert_eq!(last, vec![(89, &b"png bytes"[..]), (90, &b"new"[..])]);
        assert!(
            read.changes.contains(&Change::Purge {
                prefix: "validation/".into(),
                step: 90
            }),
            "the store still hears of the restart"
        );
    }

    #[test]
    fn discovers_logdirs_and_histories_but_not_gantry_runs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("history.csv"), "epoch,loss\n");
        touch(&root.join("labels.csv"), "file,label\n");
        touch(&root.join("pt/events.out.tfevents.1.h.1"), "");
        touch(
            &root.join("fit/20240101/train/events.out.tfevents.1.h.1.v2"),
            "",
        );
        touch(
            &root.join("fit/20240101/validation/events.out.tfevents.1.h.2.v2"),
            "",
        );
        touch(&root.join("keras-run/log.csv"), "epoch;acc\n");
        touch(&root.join("gantry-run/status.ron"), "");
        touch(
            &root.join("gantry-run/events.out.tfevents.1.h.1.gantry"),
            "",
        );
        touch(
            &root.join("gantry-run/scalars.csv"),
            "wall_time,step,epoch,tag,value\n",
        );
        touch(&root.join(".cache/events.out.tfevents.1.h.1"), "");
        touch(&root.join("deep/a/b/events.out.tfevents.1.h.1"), "");
        let found: Vec<(String, ForeignKind)> =
            discover(root).into_iter().map(|f| (f.id, f.kind)).collect();
        assert_eq!(
            found,
            vec![
                // Events two folders down: `a` is the run, `b/` its tags' prefix.
                ("deep/a".into(), ForeignKind::TensorBoard),
                ("fit/20240101".into(), ForeignKind::TensorBoard),
                ("history.csv".into(), ForeignKind::KerasCsv),
                ("keras-run/log.csv".into(), ForeignKind::KerasCsv),
                ("pt".into(), ForeignKind::TensorBoard),
            ]
        );
        let files: Vec<String> = logdir_files(&root.join("fit/20240101"))
            .into_iter()
            .map(|(_, prefix)| prefix)
            .collect();
        assert_eq!(files, vec!["train/", "validation/"]);
    }
}
