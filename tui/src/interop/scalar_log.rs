//! The runner's scalar output: every row goes to `scalars.csv` (the run folder's record,
//! through [`crate::runfs::scalars`]) and, unless turned off, to a TensorBoard event file
//! beside it, so `tensorboard --logdir RUNS` shows the run while it trains.
//!
//! Each runner process writes a new event file (TensorBoard merges the files of a
//! folder). A resume or a NaN rollback rewrites scalars.csv without the rows past its
//! checkpoint; the event file then gets a `SessionLog START` at that step, which makes
//! TensorBoard drop what was logged at and after it, followed by the rows scalars.csv
//! kept at that step. A torn last record left by a crashed runner is cut before a new
//! file is started. The event file is a copy: a failure to write it is logged in
//! train.log and ends the copy, never the training.

use std::path::{Path, PathBuf};

use super::tfevents::{self, EventWriter};
use crate::runfs::scalars::{ScalarRow, ScalarTail, ScalarWriter};
use crate::runfs::{RunFolder, RunFsError, time};

/// Appends a run's scalars to scalars.csv and its event file.
pub struct ScalarLog {
    csv_path: PathBuf,
    csv: ScalarWriter,
    events: Option<EventWriter>,
}

impl ScalarLog {
    /// Opens scalars.csv for appending and, with `tfevents`, starts a new event file in
    /// the run folder.
    pub fn open(folder: &RunFolder, tfevents: bool) -> Result<ScalarLog, RunFsError> {
        let csv_path = folder.scalars_file();
        let csv = ScalarWriter::open(&csv_path)?;
        let events = if tfevents {
            start_event_file(&folder.dir)
        } else {
            None
        };
        Ok(ScalarLog {
            csv_path,
            csv,
            events,
        })
    }

    /// The event file being written, if any.
    pub fn event_file(&self) -> Option<&Path> {
        self.events.as_ref().map(|e| e.path())
    }

    /// Queues a row; [`ScalarLog::flush`] writes it.
    pub fn push(&mut self, row: &ScalarRow) -> Result<(), RunFsError> {
        self.csv.push(row)?;
        if let Some(events) = &mut self.events {
            events.scalar(row.wall_time, row.step, &row.tag, row.value);
        }
        Ok(())
    }

    /// Writes the queued rows to both files.
    pub fn flush(&mut self) -> Result<(), RunFsError> {
        self.csv.flush()?;
        self.flush_events();
        Ok(())
    }

    fn flush_events(&mut self) {
        if let Some(events) = &mut self.events
            && let Err(e) = events.flush()
        {
            tracing::warn!("{e}: no more TensorBoard events are written for this run");
            self.events = None;
        }
    }

    /// After scalars.csv was rewritten to drop the rows past `step` (resume, rollback):
    /// appends to the rewritten file from now on, and restarts the event file at `step`
    /// with the rows the rewrite kept there, so TensorBoard shows what scalars.csv holds.
    pub fn reopen_after(&mut self, step: u64) -> Result<(), RunFsError> {
        self.csv = ScalarWriter::open(&self.csv_path)?;
        if let Some(events) = &mut self.events {
            events.restart(time::now(), step);
            let kept = ScalarTail::new().read_new(&self.csv_path)?;
            for row in kept.iter().filter(|r| r.step == step) {
                events.scalar(row.wall_time, row.step, &row.tag, row.value);
            }
        }
        self.flush_events();
        Ok(())
    }
}

/// Cuts torn records off earlier runners' event files, then starts this one's.
fn start_event_file(dir: &Path) -> Option<EventWriter> {
    for file in tfevents::gantry_event_files(dir) {
        match tfevents::record::cut_torn_tail(&file) {
            Ok(0) => {}
            Ok(cut) => tracing::info!(
                "{}: cut {cut} bytes of a record a crash left incomplete",
                file.display()
            ),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    match EventWriter::create(dir, time::now()) {
        Ok(w) => {
            tracing::info!("TensorBoard events: {}", w.path().display());
            Some(w)
        }
        Err(e) => {
            tracing::warn!("{e}: this run writes no TensorBoard event file");
            None
        }
    }
}

/// Whether a run folder holds event files gantry wrote (a resume then writes one too).
pub fn has_event_files(folder: &RunFolder) -> bool {
    !tfevents::gantry_event_files(&folder.dir).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, tag: &str, value: f64) -> ScalarRow {
        ScalarRow {
            wall_time: 100.0 + step as f64,
            step,
            epoch: 1,
            tag: tag.into(),
            value,
        }
    }

    #[test]
    fn rows_reach_both_files_and_a_rewrite_restarts_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path());
        let mut log = ScalarLog::open(&folder, true).unwrap();
        for s in 1..=4 {
            log.push(&row(s, "train/loss", 1.0 / s as f64)).unwrap();
        }
        log.push(&row(4, "val/loss", 0.5)).unwrap();
        log.flush().unwrap();
        let file = log.event_file().unwrap().to_path_buf();
        let points = tfevents::read_scalars(&file).unwrap();
        assert_eq!(points.len(), 5);
        assert_eq!(points[2].tag, "train/loss");
        assert_eq!(points[2].value, f64::from((1.0f64 / 3.0) as f32));
        // A rollback to step 2: scalars.csv keeps steps <= 2, the events follow.
        crate::runfs::scalars::truncate_after(&folder.scalars_file(), 2).unwrap();
        log.reopen_after(2).unwrap();
        log.push(&row(3, "train/loss", 9.0)).unwrap();
        log.flush().unwrap();
        let steps: Vec<(i64, f64)> = tfevents::read_scalars(&file)
            .unwrap()
            .iter()
            .map(|p| (p.step, p.value))
            .collect();
        assert_eq!(steps, vec![(1, 1.0), (2, 0.5), (3, 9.0)]);
        assert!(has_event_files(&folder));
        let off = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(off.path());
        let log = ScalarLog::open(&folder, false).unwrap();
        assert!(log.event_file().is_none() && !has_event_files(&folder));
    }
}
