//! Loss-chart data prepared before drawing, so a frame costs the same with a thousand
//! points or a million. Per (run, tag) it keeps the smoothed series, extended
//! incrementally as rows arrive, and a first decimation to at most [`LEVEL1`] points (min
//! and max per index bucket, so spikes survive), rebuilt only when the series or the chart
//! settings change. Drawing then decimates those few thousand points to its pixel width.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::app::{LossSettings, XAxis};
use super::series::Ema;
use super::store::{RunData, Series};

/// Points kept per series after the first decimation: more than any terminal is wide.
const LEVEL1: usize = 4096;

/// Points ready to decimate to a chart's width: raw (drawn faint) and smoothed.
#[derive(Debug, Default)]
pub struct ChartPoints {
    pub raw: Vec<(f64, f64)>,
    pub smooth: Vec<(f64, f64)>,
}

/// What the prepared points depend on.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    len: usize,
    smoothing: f64,
    axis: XAxis,
    last_n: Option<usize>,
    log_y: bool,
    steps_per_epoch: Option<f64>,
    start: f64,
}

#[derive(Debug)]
struct Entry {
    smoothing: f64,
    ema: Ema,
    smoothed: Vec<f64>,
    key: Option<Key>,
    points: ChartPoints,
}

#[derive(Debug, Default)]
pub struct ChartCache {
    entries: HashMap<(PathBuf, String), Entry>,
}

impl ChartCache {
    /// Brings every series of `runs` up to date; forgets runs no longer shown.
    pub fn update(&mut self, runs: &[&RunData], settings: &LossSettings) {
        self.entries
            .retain(|(dir, _), _| runs.iter().any(|r| &r.folder.dir == dir));
        for run in runs {
            let steps_per_epoch = run
                .status
                .as_ref()
                .filter(|s| s.epochs > 0 && s.total_steps > 0)
                .map(|s| s.total_steps as f64 / s.epochs as f64);
            for (tag, series) in &run.series {
                let start = run
                    .status
                    .as_ref()
                    .and_then(|s| s.started)
                    .or(series.walls.first().copied())
                    .unwrap_or(0.0);
                let entry = self
                    .entries
                    .entry((run.folder.dir.clone(), tag.clone()))
                    .or_insert_with(|| Entry {
                        smoothing: settings.smoothing,
                        ema: Ema::new(settings.smoothing),
                        smoothed: Vec::new(),
                        key: None,
                        points: ChartPoints::default(),
                    });
                if entry.smoothing != settings.smoothing || entry.smoothed.len() > series.len() {
                    entry.smoothing = settings.smoothing;
                    entry.ema = Ema::new(settings.smoothing);
                    entry.smoothed.clear();
                }
                let ema = &mut entry.ema;
                entry.smoothed.extend(
                    series.values[entry.smoothed.len()..]
                        .iter()
                        .map(|&y| ema.push(y)),
                );
                let key = Key {
                    len: series.len(),
                    smoothing: settings.smoothing,
                    axis: settings.x_axis,
                    last_n: settings.last_n,
                    log_y: settings.log_y,
                    steps_per_epoch,
                    start,
                };
                if entry.key.as_ref() != Some(&key) {
                    let x = |i: usize| x_of(series, i, settings.x_axis, steps_per_epoch, start);
                    let from = settings
                        .last_n
                        .map_or(0, |n| series.len().saturating_sub(n));
                    entry.points.raw = decimate_by_index(from, &series.values, &x, settings.log_y);
                    entry.points.smooth = if settings.smoothing > 0.0 {
                        decimate_by_index(from, &entry.smoothed, &x, settings.log_y)
                    } else {
                        Vec::new()
                    };
                    entry.key = Some(key);
                }
            }
        }
    }

    pub fn get(&self, dir: &Path, tag: &str) -> Option<&ChartPoints> {
        self.entries
            .get(&(dir.to_path_buf(), tag.to_string()))
            .map(|e| &e.points)
    }
}

/// The x value of point `i` on the chosen axis.
fn x_of(series: &Series, i: usize, axis: XAxis, steps_per_epoch: Option<f64>, start: f64) -> f64 {
    match axis {
        XAxis::Step => series.steps[i] as f64,
        // Fractional epochs from the step, so per-step series do not stack up.
        XAxis::Epoch => match steps_per_epoch {
            Some(p) => series.steps[i] as f64 / p,
            None => series.epochs[i] as f64,
        },
        XAxis::WallTime => series.walls[i] - start,
    }
}

/// Keeps the min and max of each of about `LEVEL1 / 2` equal index buckets of
/// `values[from..]`, in index order, skipping values a log axis cannot show.
fn decimate_by_index(
    from: usize,
    values: &[f64],
    x: &dyn Fn(usize) -> f64,
    log_y: bool,
) -> Vec<(f64, f64)> {
    let y_of = |v: f64| {
        if !v.is_finite() || (log_y && v <= 0.0) {
            None
        } else {
            Some(if log_y { v.log10() } else { v })
        }
    };
    let n = values.len().saturating_sub(from);
    let bucket = n.div_ceil(LEVEL1 / 2).max(1);
    let mut out = Vec::with_capacity(LEVEL1.min(n));
    let mut i = from;
    while i < values.len() {
        let end = (i + bucket).min(values.len());
        let mut lo: Option<(usize, f64)> = None;
        let mut hi: Option<(usize, f64)> = None;
        for (j, &v) in values.iter().enumerate().take(end).skip(i) {
            let Some(y) = y_of(v) else { continue };
            if lo.is_none_or(|(_, l)| y < l) {
                lo = Some((j, y));
            }
            if hi.is_none_or(|(_, h)| y > h) {
                hi = Some((j, y));
            }
        }
        match (lo, hi) {
            (Some(a), Some(b)) if a.0 == b.0 => out.push((x(a.0), a.1)),
            (Some(a), Some(b)) => {
                let (first, second) = if a.0 < b.0 { (a, b) } else { (b, a) };
                out.push((x(first.0), first.1));
                out.push((x(second.0), second.1));
            }
            _ => {}
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_decimation_keeps_spikes_and_bounds_size() {
        let mut values: Vec<f64> = (0..1_000_000).map(|i| (i as f64 * 1e-3).sin()).collect();
        values[123_457] = 50.0;
        let pts = decimate_by_index(0, &values, &|i| i as f64, false);
        assert!(pts.len() <= LEVEL1);
        assert!(pts.iter().any(|&(x, y)| x == 123_457.0 && y == 50.0));
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "x ascending");
    }

    #[test]
    fn log_axis_skips_non_positive_values() {
        let pts = decimate_by_index(0, &[1.0, 0.0, -1.0, 100.0], &|i| i as f64, true);
        assert_eq!(pts, vec![(0.0, 0.0), (3.0, 2.0)]);
    }
}
