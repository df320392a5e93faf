//! Pure functions that turn raw loss series into what the loss charts draw: smoothing,
//! decimation to the chart's width, the visible window and the y-axis bounds. No terminal
//! types here, so every rule is unit-tested on plain numbers.

/// TensorBoard's smoothing: debiased exponential moving average with weight in [0, 1).
///
/// `last = last*w + (1-w)*y; count += 1; out = last / (1 - w^count)`. The debiasing keeps
/// the first points from being dragged towards the zero the average starts at. Non-finite
/// values are passed through unchanged and do not update the average, so one diverged step
/// shows as a gap instead of poisoning the rest of the curve. A weight of 0 (or below, or
/// NaN) returns the input; a weight of 1 or more is clamped just below 1, where the
/// average would otherwise never move.
pub fn smooth_ema(values: &[f64], weight: f64) -> Vec<f64> {
    let mut ema = Ema::new(weight);
    values.iter().map(|&y| ema.push(y)).collect()
}

/// The state of [`smooth_ema`], so a growing series is smoothed incrementally: pushing
/// the new values continues exactly where the last call stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    /// Clamped weight; `None` means smoothing is off (values pass through).
    weight: Option<f64>,
    last: f64,
    count: i32,
}

impl Ema {
    pub fn new(weight: f64) -> Ema {
        Ema {
            weight: (!weight.is_nan() && weight > 0.0).then(|| weight.min(0.999)),
            last: 0.0,
            count: 0,
        }
    }

    /// Smooths the next value. Non-finite values pass through without updating.
    pub fn push(&mut self, y: f64) -> f64 {
        let Some(w) = self.weight else {
            return y;
        };
        if !y.is_finite() {
            return y;
        }
        self.last = self.last * w + (1.0 - w) * y;
        self.count = self.count.saturating_add(1);
        self.last / (1.0 - w.powi(self.count))
    }
}

/// Decimates points (sorted by x ascending) for a chart `columns` cells wide, keeping the
/// shape a human would see: min-y and max-y of each bucket, so a one-point spike always
/// survives (plain striding would drop it).
///
/// The first and last points are always kept, so the line spans the same x range. The
/// points between them go into `columns - 1` equal-width buckets over `[x_first, x_last]`,
/// each keeping its min-y and max-y point (one if they coincide), in x order; at most
/// `2 * columns` points come out. With `columns == 1` the single bucket keeps the overall
/// min-y and max-y points instead. Returns the input unchanged if
/// `points.len() <= 2 * columns`; `columns == 0` gives an empty vector. Points with a
/// non-finite y are never picked as a bucket's extreme.
pub fn decimate_min_max(points: &[(f64, f64)], columns: usize) -> Vec<(f64, f64)> {
    if columns == 0 {
        return Vec::new();
    }
    if points.len() <= columns.saturating_mul(2) {
        return points.to_vec();
    }
    if columns == 1 {
        return min_max_of(points).into_iter().map(|i| points[i]).collect();
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let interior = &points[1..points.len() - 1];
    let buckets = columns - 1;
    let span = last.0 - first.0;
    let mut out = Vec::with_capacity(2 * columns);
    out.push(first);
    // x is sorted, so each bucket is a contiguous run: walk the runs once.
    let mut start = 0;
    while start < interior.len() {
        let b = bucket_of(interior[start].0, first.0, span, buckets);
        let mut end = start + 1;
        while end < interior.len() && bucket_of(interior[end].0, first.0, span, buckets) == b {
            end += 1;
        }
        let run = &interior[start..end];
        out.extend(min_max_of(run).into_iter().map(|i| run[i]));
        start = end;
    }
    out.push(last);
    out
}

/// Index of the bucket `x` falls into; a zero or non-finite span puts everything in bucket
/// 0, and the float-to-int cast saturates, so the clamp covers both ends.
fn bucket_of(x: f64, x0: f64, span: f64, buckets: usize) -> usize {
    let t = if span > 0.0 && span.is_finite() {
        (x - x0) / span
    } else {
        0.0
    };
    ((t * buckets as f64) as usize).min(buckets - 1)
}

/// Indices of the min-y and max-y finite points, in index order, one if they coincide.
fn min_max_of(points: &[(f64, f64)]) -> Vec<usize> {
    let mut lo: Option<usize> = None;
    let mut hi: Option<usize> = None;
    for (i, p) in points.iter().enumerate() {
        if !p.1.is_finite() {
            continue;
        }
        if lo.is_none_or(|j| p.1 < points[j].1) {
            lo = Some(i);
        }
        if hi.is_none_or(|j| p.1 > points[j].1) {
            hi = Some(i);
        }
    }
    match (lo, hi) {
        (Some(a), Some(b)) if a == b => vec![a],
        (Some(a), Some(b)) => vec![a.min(b), a.max(b)],
        _ => Vec::new(),
    }
}

/// Points (sorted by x ascending) with x inside `[lo, hi]` plus the nearest point outside
/// on each side, so lines reach the chart edge instead of stopping at the last visible
/// point. Empty when `lo > hi` or either bound is NaN.
pub fn window(points: &[(f64, f64)], lo: f64, hi: f64) -> &[(f64, f64)] {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return &[];
    }
    let start = points.partition_point(|p| p.0 < lo).saturating_sub(1);
    let end = (points.partition_point(|p| p.0 <= hi) + 1).min(points.len());
    &points[start..end]
}

/// (min, max) of the finite y values, padded by 5% of the span so the extremes do not sit
/// on the chart border. A flat series is padded by ±0.5 when it is 0 and by ±5% of |v|
/// otherwise, so the axis never has zero height. `None` if no finite value. With `log_y`
/// the bounds are computed over log10 of the positive values instead (the chart then plots
/// log10 y).
pub fn y_bounds(points: &[(f64, f64)], log_y: bool) -> Option<(f64, f64)> {
    let ys = points.iter().filter_map(|&(_, y)| {
        let v = if log_y {
            (y > 0.0).then(|| y.log10())?
        } else {
            y
        };
        v.is_finite().then_some(v)
    });
    let (min, max) = ys.fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    let span = max - min;
    let pad = if span > 0.0 {
        span * 0.05
    } else if min == 0.0 {
        0.5
    } else {
        min.abs() * 0.05
    };
    Some((min - pad, max + pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ema_matches_hand_values() {
        // w=0.5: last=0.5 -> 0.5/0.5=1; last=1.25 -> 1.25/0.75=5/3; last=2.125 -> 2.125/0.875=17/7.
        let out = smooth_ema(&[1.0, 2.0, 3.0], 0.5);
        let want = [1.0, 5.0 / 3.0, 17.0 / 7.0];
        assert_eq!(out.len(), 3);
        for (o, w) in out.iter().zip(want) {
            assert!(close(*o, w), "{o} != {w}");
        }
    }

    #[test]
    fn ema_weight_zero_is_identity_and_constant_stays_constant() {
        let v = [3.0, -1.0, 7.5];
        assert_eq!(smooth_ema(&v, 0.0), v.to_vec());
        // Debiasing means a constant series is smoothed to itself from the first point.
        for o in smooth_ema(&[4.0; 5], 0.9) {
            assert!(close(o, 4.0));
        }
    }

    #[test]
    fn ema_passes_non_finite_through_without_updating() {
        let out = smooth_ema(&[1.0, f64::NAN, 2.0, f64::INFINITY, 3.0], 0.5);
        assert!(close(out[0], 1.0));
        assert!(out[1].is_nan());
        assert!(close(out[2], 5.0 / 3.0));
        assert_eq!(out[3], f64::INFINITY);
        assert!(close(out[4], 17.0 / 7.0));
    }

    fn ramp_with_spike(n: usize, spike_at: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let y = if i == spike_at {
                    100.0
                } else {
                    1.0 + (i % 7) as f64 * 0.01
                };
                (i as f64, y)
            })
            .collect()
    }

    #[test]
    fn decimation_keeps_spike_ends_and_budget() {
        let pts = ramp_with_spike(10_000, 6_123);
        let out = decimate_min_max(&pts, 50);
        assert!(out.len() <= 100, "len {}", out.len());
        assert!(out.contains(&(6_123.0, 100.0)));
        assert_eq!(out.first(), pts.first());
        assert_eq!(out.last(), pts.last());
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");
    }

    #[test]
    fn decimation_small_inputs_and_zero_columns() {
        let pts = ramp_with_spike(10, 3);
        assert_eq!(decimate_min_max(&pts, 5), pts);
        assert!(decimate_min_max(&pts, 0).is_empty());
        // One column: the overall min (first point, y=1.0) and the spike, in x order.
        assert_eq!(decimate_min_max(&pts, 1), vec![(0.0, 1.0), (3.0, 100.0)]);
    }

    #[test]
    fn decimation_hand_example() {
        // 3 columns -> endpoints + 2 buckets over [0, 8]: [0, 4) and [4, 8].
        let pts = [
            (0.0, 5.0),
            (1.0, 2.0),
            (2.0, 9.0),
            (3.0, 4.0),
            (4.0, 3.0),
            (5.0, 3.0),
            (6.0, 3.0),
            (7.0, 3.0),
            (8.0, 1.0),
        ];
        let out = decimate_min_max(&pts, 3);
        // Bucket 0 (x=1..3): min (1,2), max (2,9). Bucket 1 (x=4..7): flat, one point (4,3).
        assert_eq!(
            out,
            vec![(0.0, 5.0), (1.0, 2.0), (2.0, 9.0), (4.0, 3.0), (8.0, 1.0)]
        );
    }

    #[test]
    fn window_includes_one_neighbour_each_side() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 0.0)).collect();
        let w = window(&pts, 3.5, 6.0);
        assert_eq!(w.first().unwrap().0, 3.0);
        assert_eq!(w.last().unwrap().0, 7.0);
        assert_eq!(w.len(), 5);
        // Nothing inside: still the two points the line crosses the window between.
        assert_eq!(window(&pts, 4.2, 4.8), &pts[4..6]);
        assert_eq!(window(&pts, -5.0, 100.0), &pts[..]);
        assert!(window(&pts, 5.0, 4.0).is_empty());
        assert!(window(&[], 0.0, 1.0).is_empty());
    }

    #[test]
    fn y_bounds_pad_and_log() {
        let pts = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)];
        let (lo, hi) = y_bounds(&pts, false).unwrap();
        assert!(close(lo, 0.9) && close(hi, 3.1));
        // log10: [0, 2] padded by 0.1; the non-positive value is ignored.
        let pts = [(0.0, 1.0), (1.0, 100.0), (2.0, -3.0), (3.0, 0.0)];
        let (lo, hi) = y_bounds(&pts, true).unwrap();
        assert!(close(lo, -0.1) && close(hi, 2.1));
        let (lo, hi) = y_bounds(&[(0.0, 2.0), (1.0, 2.0)], false).unwrap();
        assert!(close(lo, 1.9) && close(hi, 2.1));
        assert_eq!(y_bounds(&[(0.0, 0.0)], false), Some((-0.5, 0.5)));
        assert_eq!(y_bounds(&[(0.0, f64::NAN)], false), None);
        assert_eq!(y_bounds(&[(0.0, -1.0)], true), None);
    }
}
