//! Score histograms split by label: how the anomaly scores of normal and anomalous samples
//! are distributed, so the dashboard can show their overlap next to the chosen threshold.

/// Counts of normal and anomalous scores per bin over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHistogram {
    pub lo: f64,
    pub hi: f64,
    /// `[normal, anomalous]` counts per bin.
    pub counts: Vec<[u32; 2]>,
}

impl ScoreHistogram {
    /// `bins` equal-width bins over the finite scores' `[min, max]`; `anomalous` marks each
    /// score. A flat range is widened by ±0.5 when the value is 0 and by ±5% of |v|
    /// otherwise, so bins never have zero width. Non-finite scores are not counted. `None`
    /// if no score is finite or `bins == 0`. The max value falls in the last bin.
    pub fn new(scores: &[f64], anomalous: &[bool], bins: usize) -> Option<ScoreHistogram> {
        assert_eq!(scores.len(), anomalous.len(), "one label per score");
        if bins == 0 {
            return None;
        }
        let (min, max) =
            scores
                .iter()
                .filter(|s| s.is_finite())
                .fold(None, |acc: Option<(f64, f64)>, &s| match acc {
                    None => Some((s, s)),
                    Some((lo, hi)) => Some((lo.min(s), hi.max(s))),
                })?;
        let (lo, hi) = if max > min {
            (min, max)
        } else {
            let pad = if min == 0.0 { 0.5 } else { min.abs() * 0.05 };
            (min - pad, max + pad)
        };
        let mut hist = ScoreHistogram {
            lo,
            hi,
            counts: vec![[0, 0]; bins],
        };
        for (&s, &a) in scores.iter().zip(anomalous) {
            if s.is_finite() {
                let bin = hist.bin_of(s);
                hist.counts[bin][usize::from(a)] += 1;
            }
        }
        Some(hist)
    }

    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// The bin a value falls into, clamped to the range: values below `lo` (and NaN) land in
    /// the first bin, `hi` and above in the last, which is what makes `max` countable.
    pub fn bin_of(&self, x: f64) -> usize {
        let bins = self.bins();
        let t = (x - self.lo) / (self.hi - self.lo);
        // The float-to-int cast saturates (NaN and negatives give 0), so only the top needs
        // a clamp.
        ((t * bins as f64) as usize).min(bins.saturating_sub(1))
    }

    /// `(left, right)` edge of a bin. Computed from `lo` and `hi` directly rather than by
    /// accumulating a width, so the last right edge is exactly `hi`.
    pub fn edges(&self, bin: usize) -> (f64, f64) {
        let n = self.bins() as f64;
        let at = |i: usize| {
            if i as f64 >= n {
                self.hi
            } else {
                self.lo + (self.hi - self.lo) * (i as f64 / n)
            }
        };
        (at(bin), at(bin + 1))
    }

    /// Largest count of either class in any bin (0 for an empty histogram), for scaling the
    /// bars.
    pub fn max_count(&self) -> u32 {
        self.counts.iter().flatten().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_by_label_and_max_in_last_bin() {
        // Range [0, 4], 4 bins of width 1.
        let scores = [0.0, 0.5, 1.0, 2.5, 4.0, 4.0, f64::NAN];
        let labels = [false, false, true, false, true, false, true];
        let h = ScoreHistogram::new(&scores, &labels, 4).unwrap();
        assert_eq!((h.lo, h.hi), (0.0, 4.0));
        assert_eq!(h.counts, vec![[2, 0], [0, 1], [1, 0], [1, 1]]);
        assert_eq!(h.bins(), 4);
        assert_eq!(h.max_count(), 2);
    }

    #[test]
    fn bin_of_clamps_and_edges_tile_the_range() {
        let h = ScoreHistogram::new(&[0.0, 4.0], &[false, true], 4).unwrap();
        assert_eq!(h.bin_of(-10.0), 0);
        assert_eq!(h.bin_of(f64::NAN), 0);
        assert_eq!(h.bin_of(1.0), 1);
        assert_eq!(h.bin_of(3.999), 3);
        assert_eq!(h.bin_of(99.0), 3);
        assert_eq!(h.edges(0), (0.0, 1.0));
        assert_eq!(h.edges(2), (2.0, 3.0));
        assert_eq!(h.edges(3), (3.0, 4.0));
    }

    #[test]
    fn flat_range_is_widened() {
        let h = ScoreHistogram::new(&[2.0, 2.0], &[false, true], 2).unwrap();
        assert!((h.lo - 1.9).abs() < 1e-12 && (h.hi - 2.1).abs() < 1e-12);
        // 2.0 is the midpoint, so it is the left edge of bin 1.
        assert_eq!(h.counts, vec![[0, 0], [1, 1]]);
        let h = ScoreHistogram::new(&[0.0], &[true], 1).unwrap();
        assert_eq!((h.lo, h.hi, h.counts.clone()), (-0.5, 0.5, vec![[0, 1]]));
    }

    #[test]
    fn none_without_finite_scores_or_bins() {
        assert_eq!(ScoreHistogram::new(&[], &[], 4), None);
        assert_eq!(ScoreHistogram::new(&[f64::NAN], &[true], 4), None);
        assert_eq!(ScoreHistogram::new(&[1.0], &[true], 0), None);
    }
}
