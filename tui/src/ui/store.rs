//! The dashboard's copy of the run roots, read only through [`crate::runfs`]. It is
//! refreshed per run folder when the watcher reports a change there: status and record are
//! re-read (small), scalars and the log are tailed from their last offsets, the score and
//! sample listings re-listed. A file that fails to read marks its run with an error and
//! nothing else. Runs other programs wrote (TensorBoard logdirs, Keras CSV histories) are
//! found and followed by [`crate::interop::foreign`]; their values land in the same
//! [`Series`], and a logdir's image summaries in the same sample list (held in memory,
//! the newest steps of each tag), so every view shows them as it shows gantry's.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::interop::foreign::{self, Change, ForeignImage, ForeignRun};
use crate::interop::tfevents::reader::{KEEP_IMAGE_BYTES, KEEP_IMAGE_STEPS};
use crate::runfs::confusion::{self, Confusion};
use crate::runfs::embedding::{self, Point};
use crate::runfs::scalars::ScalarTail;
use crate::runfs::spec::RunRecord;
use crate::runfs::status::{Liveness, Status};
use crate::runfs::tail::LineTail;
use crate::runfs::{RunFolder, SampleFile};

/// Runs whose run.ron the start-up scan reads before the first frame: more than any
/// terminal shows rows.
const FIRST_RECORDS: usize = 256;
/// Log lines kept per run.
const LOG_LINES: usize = 2000;

/// One scalar tag's history, in file order (steps ascend within a run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub steps: Vec<u64>,
    pub epochs: Vec<u32>,
    pub walls: Vec<f64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn last(&self) -> Option<f64> {
        self.values.last().copied()
    }
}

/// Everything the dashboard shows of one run.
#[derive(Debug)]
pub struct RunData {
    pub folder: RunFolder,
    pub record: Option<RunRecord>,
    pub status: Option<Status>,
    /// Problems reading this run's files, newest last (shown as an error badge).
    pub errors: Vec<String>,
    pub series: BTreeMap<String, Series>,
    /// The runner's system metrics from system.csv (`sys/cpu_percent`, `gpu0/util`...).
    pub system: BTreeMap<String, Series>,
    pub score_epochs: Vec<u32>,
    pub samples: Vec<SampleFile>,
    /// A classifier's newest confusion matrix: (file name, matrix).
    pub confusion: Option<(String, Confusion)>,
    /// The newest 2-D embedding of latent codes: (file name, points).
    pub embedding: Option<(String, Vec<Point>)>,
    pub log: VecDeque<String>,
    /// Its Slurm job's state, for a run launched through Slurm (set by
    /// [`super::slurm_jobs`]'s poller, not read from the folder).
    pub slurm: Option<super::slurm_jobs::SlurmSeen>,
    /// A run another program wrote: what follows its files. `None` for gantry's runs.
    pub foreign: Option<ForeignRun>,
    /// A foreign run's image summaries by tag and step, the newest of each (tag, step);
    /// `samples` lists them.
    images: BTreeMap<String, BTreeMap<u64, ForeignImage>>,
    image_bytes: usize,
    scalar_tail: ScalarTail,
    system_tail: ScalarTail,
    log_tail: LineTail,
    loaded: bool,
}

impl RunData {
    fn new(folder: RunFolder) -> RunData {
        RunData {
            folder,
            record: None,
            status: None,
            errors: Vec::new(),
            series: BTreeMap::new(),
            system: BTreeMap::new(),
            score_epochs: Vec::new(),
            samples: Vec::new(),
            confusion: None,
            embedding: None,
            log: VecDeque::new(),
            slurm: None,
            foreign: None,
            images: BTreeMap::new(),
            image_bytes: 0,
            scalar_tail: ScalarTail::new(),
            system_tail: ScalarTail::new(),
            log_tail: LineTail::new(),
            loaded: false,
        }
    }

    /// A run another program wrote, keyed by its logdir or CSV file.
    fn foreign(run: ForeignRun) -> RunData {
        let mut data = RunData::new(RunFolder::new(run.path.clone()));
        data.foreign = Some(run);
        data
    }

    /// The folder name; a foreign run's path under its root.
    pub fn id(&self) -> String {
        match &self.foreign {
            Some(f) => f.id.clone(),
            None => self.folder.id(),
        }
    }

    /// Plugin name from run.ron; a foreign run's format (`tensorboard`, `keras-csv`).
    pub fn plugin(&self) -> &str {
        if let Some(f) = &self.foreign {
            return f.kind.label();
        }
        self.record.as_ref().map_or("?", |r| r.plugin.name.as_str())
    }

    /// The dataset's folder name from run.ron.
    pub fn dataset(&self) -> String {
        if self.foreign.is_some() {
            return "-".into();
        }
        self.record
            .as_ref()
            .and_then(|r| r.spec.data.root.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "?".into())
    }

    pub fn liveness(&self, now: f64, host: &str) -> Option<Liveness> {
        if let Some(f) = &self.foreign {
            return Some(Liveness::External {
                live: f.is_live(now),
            });
        }
        let status = self.status.as_ref()?;
        let liveness = status.liveness(now, host);
        // A Slurm job that ended under a run still recorded as live: its runner is gone.
        Some(match self.slurm_job() {
            Some(job) => crate::control::slurm::job::liveness_with_job(status, liveness, job, now),
            None => liveness,
        })
    }

    /// The state of the run's current Slurm job, once Slurm has said it.
    pub fn slurm_job(&self) -> Option<&crate::control::slurm::JobStatus> {
        let seen = self.slurm.as_ref()?;
        let job = self.status.as_ref()?.slurm_job.as_ref()?;
        match &seen.state {
            Ok(Some(status)) if &seen.job == job => Some(status),
            _ => None,
        }
    }

    /// Unix time the run was created (record, else status start), for sorting by age.
    pub fn created(&self) -> f64 {
        if let Some(f) = &self.foreign {
            return f.created;
        }
        self.record
            .as_ref()
            .map(|r| r.created)
            .or_else(|| self.status.as_ref().and_then(|s| s.started))
            .unwrap_or(0.0)
    }

    /// What the Overview says of a foreign run: (label, value) lines.
    pub fn foreign_facts(&self) -> Vec<(&'static str, String)> {
        let Some(f) = &self.foreign else {
            return Vec::new();
        };
        let points: usize = self.series.values().map(Series::len).sum();
        let last_step = self.series.values().filter_map(|s| s.steps.last()).max();
        let mut facts = vec![
            ("format", f.kind.label().to_string()),
            ("path", f.path.display().to_string()),
            (
                "read",
                format!(
                    "{} file(s), {} tag(s), {points} value(s), last step {}",
                    f.files,
                    self.series.len(),
                    last_step.map_or("-".into(), |s| s.to_string())
                ),
            ),
        ];
        if !self.images.is_empty() {
            facts.push((
                "images",
                format!(
                    "{} image(s) of {} tag(s), newest {} kept per tag (5 Samples)",
                    self.samples.len(),
                    self.images.len(),
                    KEEP_IMAGE_STEPS
                ),
            ));
        }
        facts
    }

    /// Reads what a foreign run's files gained; see [`RunData::refresh`].
    fn refresh_foreign(&mut self) -> bool {
        let Some(run) = self.foreign.as_mut() else {
            return false;
        };
        let before = (run.modified, run.files);
        let read = run.refresh();
        let mut changed = read.restarted || !read.changes.is_empty() || !read.images.is_empty();
        changed |= before != (run.modified, run.files);
        if read.restarted {
            self.series.clear();
        }
        changed |= self.apply_images(&read);
        for change in read.changes {
            match change {
                Change::Row(row) => {
                    let s = self.series.entry(row.tag).or_default();
                    s.steps.push(row.step);
                    s.epochs.push(row.epoch);
                    s.walls.push(row.wall_time);
                    s.values.push(row.value);
                }
                Change::Purge { prefix, step } => {
                    for (_, s) in self
                        .series
                        .iter_mut()
                        .filter(|(t, _)| t.starts_with(&prefix))
                    {
                        drop_steps_from(s, step);
                    }
                    self.series.retain(|_, s| !s.is_empty());
                }
            }
        }
        changed |= read.errors != self.errors;
        self.errors = read.errors;
        changed
    }

    /// Brings a foreign run's images up to date with one read: its restarts void the
    /// images held before, its images join (the newest of each (tag, step) wins), then
    /// the oldest steps go until each tag has at most [`KEEP_IMAGE_STEPS`] and the run at
    /// most [`KEEP_IMAGE_BYTES`]; `samples` is listed again. Returns whether anything
    /// moved.
    fn apply_images(&mut self, read: &foreign::ForeignRead) -> bool {
        let mut moved = read.restarted && !self.images.is_empty();
        if read.restarted {
            self.images.clear();
        }
        for change in &read.changes {
            if let Change::Purge { prefix, step } = change {
                for (_, steps) in self
                    .images
                    .iter_mut()
                    .filter(|(t, _)| t.starts_with(prefix))
                {
                    let gone = steps.split_off(step);
                    moved |= !gone.is_empty();
                }
            }
        }
        for image in &read.images {
            moved = true;
            self.images
                .entry(image.tag.clone())
                .or_default()
                .insert(image.step, image.clone());
        }
        if !moved {
            return false;
        }
        self.images.retain(|_, steps| !steps.is_empty());
        for steps in self.images.values_mut() {
            while steps.len() > KEEP_IMAGE_STEPS {
                steps.pop_first();
            }
        }
        self.image_bytes = self
            .images
            .values()
            .flat_map(|s| s.values())
            .map(|i| i.png.len())
            .sum();
        // Over the byte budget: the oldest step of the tag holding the most goes first,
        // so every tag keeps its newest image as long as it can.
        while self.image_bytes > KEEP_IMAGE_BYTES {
            let Some(steps) = self
                .images
                .values_mut()
                .filter(|s| !s.is_empty())
                .max_by_key(|s| s.len())
            else {
                break;
            };
            if let Some((_, gone)) = steps.pop_first() {
                self.image_bytes -= gone.png.len();
            }
        }
        self.images.retain(|_, steps| !steps.is_empty());
        let dir = &self.folder.dir;
        let mut samples: Vec<SampleFile> = self
            .images
            .values()
            .flat_map(|s| s.values())
            .map(|i| SampleFile {
                epoch: u32::try_from(i.step).unwrap_or(u32::MAX),
                name: i.tag.clone(),
                // A key for the image cache, never opened (appended, not joined: a tag
                // may start with `/`).
                path: {
                    let mut key = dir.clone().into_os_string();
                    key.push(format!("#image:{}@step-{}", i.tag, i.step));
                    PathBuf::from(key)
                },
                png: Some(i.png.clone()),
            })
            .collect();
        samples.sort_by(|a, b| (a.epoch, &a.name).cmp(&(b.epoch, &b.name)));
        self.samples = samples;
        true
    }

    /// Reads status.ron and (with `record`) run.ron only: what the runs list shows of a
    /// run. The rest waits for [`RunData::refresh`] (the store's start-up backlog, or a
    /// change).
    fn refresh_summary(&mut self, errors: &mut Vec<String>, record: bool) -> bool {
        let mut changed = false;
        if record && (self.record.is_none() || !self.folder.run_file().exists()) {
            let record = match self.folder.read_record() {
                Ok(r) => Some(r),
                Err(e) => {
                    if self.folder.run_file().exists() {
                        errors.push(e.to_string());
                    }
                    None
                }
            };
            changed |= record != self.record;
            self.record = record;
        }
        match self.folder.read_status() {
            Ok(s) => {
                changed |= self.status.as_ref() != Some(&s);
                self.status = Some(s);
            }
            Err(e) => {
                if self.folder.status_file().exists() {
                    errors.push(e.to_string());
                }
            }
        }
        changed
    }

    /// Whether every file of the run has been read once (not just its summary).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Re-reads whatever changed. Returns whether anything the dashboard shows changed.
    pub fn refresh(&mut self) -> bool {
        self.loaded = true;
        if self.foreign.is_some() {
            return self.refresh_foreign();
        }
        let mut errors = Vec::new();
        let mut changed = self.refresh_summary(&mut errors, true);
        changed |= tail_series(
            &mut self.scalar_tail,
            &self.folder.scalars_file(),
            &mut self.series,
            &mut errors,
        );
        changed |= tail_series(
            &mut self.system_tail,
            &self.folder.system_file(),
            &mut self.system,
            &mut errors,
        );
        match self.log_tail.read_lines(&self.folder.log_file()) {
            Ok(read) => {
                if read.restarted {
                    self.log.clear();
                }
                changed |= !read.lines.is_empty();
                self.log.extend(read.lines);
                while self.log.len() > LOG_LINES {
                    self.log.pop_front();
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        let epochs = self.folder.score_epochs();
        changed |= epochs != self.score_epochs;
        self.score_epochs = epochs;
        let samples = self.folder.sample_files();
        changed |= samples != self.samples;
        self.samples = samples;
        if let Some(path) = self.folder.latest_embedding_file() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.as_deref() != self.embedding.as_ref().map(|e| e.0.as_str()) {
                match embedding::read(&path) {
                    Ok(points) => {
                        self.embedding = name.map(|n| (n, points));
                        changed = true;
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        if let Some(path) = self.folder.latest_confusion_file() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.as_deref() != self.confusion.as_ref().map(|c| c.0.as_str()) {
                match confusion::read(&path) {
                    Ok(c) => {
                        self.confusion = name.map(|n| (n, c));
                        changed = true;
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        changed |= errors != self.errors;
        self.errors = errors;
        changed
    }
}

/// All runs under the watched roots, keyed by folder path (a foreign run by its logdir or
/// CSV file).
#[derive(Debug, Default)]
pub struct RunStore {
    pub roots: Vec<PathBuf>,
    pub runs: BTreeMap<PathBuf, RunData>,
    /// Problems with the roots themselves (unreadable folder).
    pub root_errors: Vec<String>,
    /// What the watcher wants said once in the status bar (watch limit reached, runs
    /// polled instead).
    pub watch_note: Option<String>,
    /// Run refreshes done so far: the tests use it to see that nothing re-reads runs while
    /// nothing changes on disk.
    pub refreshes: u64,
}

impl RunStore {
    pub fn new(roots: Vec<PathBuf>) -> RunStore {
        RunStore {
            roots,
            ..RunStore::default()
        }
    }

    /// Finds added and removed run folders and refreshes every run. Returns whether
    /// anything changed.
    pub fn rescan(&mut self) -> bool {
        let (changed, _) = self.discover();
        self.refresh_all() || changed
    }

    /// The first look at the roots, quick at any run count: every run's status.ron, the
    /// run.ron of the newest [`FIRST_RECORDS`] (the rows on screen, sorted by age as the
    /// list starts), and foreign runs in full. The rest of each run is read later, newest
    /// first ([`RunStore::unloaded`]); a run whose record is not read yet sorts by its
    /// status's start time.
    pub fn scan_summaries(&mut self) -> bool {
        use rayon::prelude::*;
        let (changed, _) = self.discover();
        let summarise = |run: &mut RunData, record: bool| {
            if run.foreign.is_some() {
                return run.refresh();
            }
            let mut errors = Vec::new();
            let changed = run.refresh_summary(&mut errors, record);
            run.errors = errors;
            changed
        };
        let changed = self
            .runs
            .par_iter_mut()
            .map(|(_, run)| summarise(run, false))
            .reduce(|| false, |a, b| a | b)
            || changed;
        let newest: std::collections::HashSet<PathBuf> =
            self.unloaded().into_iter().take(FIRST_RECORDS).collect();
        self.runs
            .par_iter_mut()
            .filter(|(dir, _)| newest.contains(*dir))
            .map(|(_, run)| summarise(run, true))
            .reduce(|| false, |a, b| a | b)
            || changed
    }

    /// The runs not read in full yet, newest first (the list's default order, so what is
    /// on screen fills in first).
    pub fn unloaded(&self) -> Vec<PathBuf> {
        let mut runs: Vec<(&PathBuf, f64)> = self
            .runs
            .iter()
            .filter(|(_, r)| !r.loaded)
            .map(|(k, r)| (k, r.created()))
            .collect();
        runs.sort_by(|a, b| b.1.total_cmp(&a.1));
        runs.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// Finds added and removed run folders and reads only the added ones: what a folder
    /// created or deleted under a root needs, whatever the number of runs already known.
    pub fn rescan_new(&mut self) -> bool {
        let (changed, added) = self.discover();
        self.refresh_dirs(&added) || changed
    }

    /// Re-reads every run, in parallel (the first look at a root of thousands of runs).
    pub fn refresh_all(&mut self) -> bool {
        use rayon::prelude::*;
        self.refreshes += self.runs.len() as u64;
        self.runs
            .par_iter_mut()
            .map(|(_, run)| run.refresh())
            .reduce(|| false, |a, b| a | b)
    }

    /// Re-reads the runs keyed by `dirs` (those not in the store are skipped).
    pub fn refresh_dirs(&mut self, dirs: &[PathBuf]) -> bool {
        use rayon::prelude::*;
        // A file event names a run or two: look them up, whatever the number of runs.
        if dirs.len() <= 32 {
            let mut changed = false;
            for dir in dirs {
                if let Some(run) = self.runs.get_mut(dir) {
                    self.refreshes += 1;
                    changed |= run.refresh();
                }
            }
            return changed;
        }
        let mut runs: Vec<&mut RunData> = Vec::with_capacity(dirs.len());
        // Many runs (a start-up chunk, a poll): one pass over the map, then in parallel.
        let wanted: std::collections::HashSet<&PathBuf> = dirs.iter().collect();
        for (dir, run) in self.runs.iter_mut() {
            if wanted.contains(dir) {
                runs.push(run);
            }
        }
        self.refreshes += runs.len() as u64;
        runs.into_par_iter()
            .map(|run| run.refresh())
            .reduce(|| false, |a, b| a | b)
    }

    /// Lists the roots: adds the runs that appeared (unread) and drops those that went.
    /// Returns whether the set changed, and the keys added.
    fn discover(&mut self) -> (bool, Vec<PathBuf>) {
        let mut found = std::collections::HashSet::new();
        let mut foreign_found = Vec::new();
        let mut root_errors = Vec::new();
        for root in &self.roots {
            match foreign::list_root(root) {
                Ok(listing) => {
                    found.extend(listing.runs);
                    foreign_found.extend(listing.foreign);
                }
                Err(e) => root_errors.push(format!("{}: {e}", root.display())),
            }
        }
        let mut changed = root_errors != self.root_errors;
        self.root_errors = root_errors;
        let before = self.runs.len();
        self.runs.retain(|dir, run| match &run.foreign {
            None => found.contains(dir),
            Some(f) => foreign_found
                .iter()
                .any(|x| &x.path == dir && x.kind == f.kind),
        });
        changed |= self.runs.len() != before;
        let mut added = Vec::new();
        for found in foreign_found {
            if let Entry::Vacant(slot) = self.runs.entry(found.path.clone()) {
                added.push(found.path.clone());
                slot.insert(RunData::foreign(ForeignRun::new(&found)));
            }
        }
        for dir in found {
            if let Entry::Vacant(slot) = self.runs.entry(dir.clone()) {
                added.push(dir.clone());
                slot.insert(RunData::new(RunFolder::new(dir)));
            }
        }
        changed |= !added.is_empty();
        (changed, added)
    }

    /// Refreshes the runs containing `paths` (from the watcher); a path directly under a
    /// root (a run folder created or deleted) lists the roots again. Each path costs a few
    /// map look-ups, whatever the number of runs.
    pub fn refresh_paths(&mut self, paths: &[PathBuf]) -> bool {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut rescan = false;
        for path in paths {
            if let Some(dir) = self.foreign_run_of(path) {
                dirs.push(dir);
                continue;
            }
            match self.run_dir_of(path) {
                Some(dir) if self.runs.contains_key(&dir) => dirs.push(dir),
                // Hidden folders (`.cache`, `.data`) hold no runs of either kind.
                Some(dir)
                    if dir
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.')) => {}
                _ => rescan = true,
            }
        }
        dirs.sort();
        dirs.dedup();
        let mut changed = false;
        if rescan || dirs.iter().any(|d| !d.exists()) {
            changed |= self.rescan_new();
        }
        changed | self.refresh_dirs(&dirs)
    }

    /// Whether any run is recorded as queued or running (its liveness can change with
    /// time alone).
    pub fn has_live_runs(&self) -> bool {
        let now = crate::runfs::time::now();
        self.runs.values().any(|r| {
            r.status.as_ref().is_some_and(|s| !s.state.is_final())
                || r.foreign.as_ref().is_some_and(|f| f.is_live(now))
        })
    }

    /// The foreign run whose files include `path`: a CSV history itself before a logdir
    /// holding it. Looks up `path` and its ancestors below a root, not every run.
    fn foreign_run_of(&self, path: &Path) -> Option<PathBuf> {
        let root = self.roots.iter().find(|r| path.starts_with(r))?;
        path.ancestors()
            .take_while(|a| a.starts_with(root) && *a != root.as_path())
            .find(|a| {
                self.runs
                    .get(*a)
                    .and_then(|r| r.foreign.as_ref())
                    .is_some_and(|f| f.owns(path))
            })
            .map(Path::to_path_buf)
    }

    /// The run folder (a direct child of a root) that contains `path`.
    fn run_dir_of(&self, path: &Path) -> Option<PathBuf> {
        self.roots.iter().find_map(|root| {
            let rel = path.strip_prefix(root).ok()?;
            let first = rel.components().next()?;
            Some(root.join(first))
        })
    }
}

/// Reads the rows a scalars.csv-format file gained into `series` (all of it again when
/// the file was rewritten); returns whether anything changed. Read errors and the last
/// bad line go to `errors`.
fn tail_series(
    tail: &mut ScalarTail,
    path: &Path,
    series: &mut BTreeMap<String, Series>,
    errors: &mut Vec<String>,
) -> bool {
    let mut changed = false;
    match tail.read(path) {
        Ok((rows, restarted)) => {
            if restarted {
                series.clear();
                changed = true;
            }
            changed |= !rows.is_empty();
            for row in rows {
                let s = series.entry(row.tag).or_default();
                s.steps.push(row.step);
                s.epochs.push(row.epoch);
                s.walls.push(row.wall_time);
                s.values.push(row.value);
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    if let Some((line, message)) = tail.bad_lines.last() {
        errors.push(format!(
            "{}:{line}: {message} ({} bad lines skipped)",
            path.display(),
            tail.bad_lines.len()
        ));
    }
    changed
}

/// Drops the values at steps `>= step` (a restart in a foreign run's event file).
fn drop_steps_from(s: &mut Series, step: u64) {
    let old = std::mem::take(s);
    for i in (0..old.len()).filter(|&i| old.steps[i] < step) {
        s.steps.push(old.steps[i]);
        s.epochs.push(old.epochs[i]);
        s.walls.push(old.walls[i]);
        s.values.push(old.values[i]);
    }
}
