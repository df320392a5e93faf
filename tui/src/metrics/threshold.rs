//! Operating point of an anomaly score: the confusion counts and rates at a threshold, and
//! the choice of a threshold by best F1 or Youden's J. Runs on every redraw, so the choice
//! is one sort and one sweep.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdRule {
    BestF1,
    Youden,
}

/// Predict anomalous when `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub fpr: f64,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

impl OperatingPoint {
    /// Rates from counts; every undefined ratio is 0, as sklearn's `zero_division=0`.
    fn from_counts(threshold: f64, tp: usize, fp: usize, tn: usize, fn_: usize) -> Self {
        let ratio = |num: usize, den: usize| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        OperatingPoint {
            threshold,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            // 2PR/(P+R) simplified to counts: no 0/0 from a zero precision.
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            fpr: ratio(fp, fp + tn),
            tp,
            fp,
            tn,
            fn_,
        }
    }
}

/// The operating point at a given threshold. precision is 0 when nothing is predicted
/// positive (as sklearn's `zero_division=0`). A NaN score is never `>=` the threshold, so it
/// counts as predicted normal.
pub fn at_threshold(scores: &[f64], anomalous: &[bool], threshold: f64) -> OperatingPoint {
    assert_eq!(scores.len(), anomalous.len(), "one label per score");
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (&s, &a) in scores.iter().zip(anomalous) {
        match (s >= threshold, a) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    OperatingPoint::from_counts(threshold, tp, fp, tn, fn_)
}

/// The threshold, among the distinct finite scores, maximising F1 (`BestF1`) or Youden's
/// J = TPR - FPR (`Youden`); ties broken by the higher threshold (fewer alarms). `None`
/// when either class is absent or no score is finite. The returned point equals
/// `at_threshold(scores, anomalous, point.threshold)`: non-finite scores still count.
///
/// O(n log n): sort once by descending score, then sweep; lowering the threshold past a
/// group of equal scores moves exactly that group to predicted-positive.
pub fn choose(scores: &[f64], anomalous: &[bool], rule: ThresholdRule) -> Option<OperatingPoint> {
    assert_eq!(scores.len(), anomalous.len(), "one label per score");
    let pos = anomalous.iter().filter(|&&a| a).count();
    let neg = anomalous.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // NaN is never predicted positive, so it never enters the sweep; +inf enters first
    // and -inf last, matching `>=` for every finite threshold.
    let mut order: Vec<(f64, bool)> = scores
        .iter()
        .zip(anomalous)
        .filter(|(s, _)| !s.is_nan())
        .map(|(&s, &a)| (s, a))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));

    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<(Score, f64, usize, usize)> = None;
    let mut i = 0;
    while i < order.len() {
        let s = order[i].0;
        while i < order.len() && order[i].0 == s {
            if order[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        if !s.is_finite() {
            continue;
        }
        let score = Score::of(rule, tp, fp, pos, neg);
        // Strictly better only: the sweep descends, so an earlier tie has the higher
        // threshold.
        if best.is_none_or(|(b, ..)| score.cmp(&b) == Ordering::Greater) {
            best = Some((score, s, tp, fp));
        }
    }
    let (_, threshold, tp, fp) = best?;
    Some(OperatingPoint::from_counts(
        threshold,
        tp,
        fp,
        neg - fp,
        pos - tp,
    ))
}

/// A rule's objective as an exact fraction `num / den` (den > 0), compared by
/// cross-multiplying so that equal values tie exactly; float rounding would otherwise break
/// ties arbitrarily (e.g. Youden's 1/2 - 1/4 against 3/4 - 2/4).
#[derive(Debug, Clone, Copy)]
struct Score {
    num: i128,
    den: i128,
}

impl Score {
    fn of(rule: ThresholdRule, tp: usize, fp: usize, pos: usize, neg: usize) -> Self {
        let (tp, fp, pos, neg) = (tp as i128, fp as i128, pos as i128, neg as i128);
        match rule {
            // F1 = 2tp / (2tp + fp + fn) with fn = pos - tp; the sweep only evaluates
            // thresholds with at least one prediction, but pos > 0 keeps den > 0 anyway.
            ThresholdRule::BestF1 => Score {
                num: 2 * tp,
                den: tp + fp + pos,
            },
            // J = tp/pos - fp/neg = (tp*neg - fp*pos) / (pos*neg).
            ThresholdRule::Youden => Score {
                num: tp * neg - fp * pos,
                den: pos * neg,
            },
        }
    }

    fn cmp(&self, other: &Score) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_separation_gives_f1_one_at_min_anomalous_score() {
        let scores = [0.1, 0.9, 0.2, 0.8, 0.3];
        let labels = [false, true, false, true, false];
        for rule in [ThresholdRule::BestF1, ThresholdRule::Youden] {
            let p = choose(&scores, &labels, rule).unwrap();
            assert_eq!(p.threshold, 0.8);
            assert_eq!((p.tp, p.fp, p.tn, p.fn_), (2, 0, 3, 0));
            assert_eq!((p.precision, p.recall, p.f1, p.fpr), (1.0, 1.0, 1.0, 0.0));
        }
    }

    #[test]
    fn mixed_example_both_rules() {
        // Descending: .9T .8F .7F .6F .5T .4F .3F .2F .1F .05F (pos 2, neg 8).
        // t=.9: tp1 fp0 -> F1 2/3, J 1/2.  t=.5: tp2 fp3 -> F1 4/7, J 1 - 3/8 = 5/8.
        // Every other threshold is worse on both.
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
        let mut labels = [false; 10];
        labels[0] = true;
        labels[4] = true;
        let f1 = choose(&scores, &labels, ThresholdRule::BestF1).unwrap();
        assert_eq!(f1.threshold, 0.9);
        assert_eq!((f1.tp, f1.fp, f1.tn, f1.fn_), (1, 0, 8, 1));
        assert!((f1.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((f1.precision, f1.recall, f1.fpr), (1.0, 0.5, 0.0));
        let j = choose(&scores, &labels, ThresholdRule::Youden).unwrap();
        assert_eq!(j.threshold, 0.5);
        assert_eq!((j.tp, j.fp, j.tn, j.fn_), (2, 3, 5, 0));
        assert_eq!((j.recall, j.fpr), (1.0, 0.375));
        assert!((j.f1 - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn ties_go_to_the_higher_threshold() {
        // sklearn's classic: [.1 F, .4 F, .35 T, .8 T]. J is 1/2 at both .8 (tp1 fp0) and
        // .35 (tp2 fp1); F1 is 2/3 at .8, 1/2 at .4, 4/5 at .35, 2/3 at .1.
        let scores = [0.1, 0.4, 0.35, 0.8];
        let labels = [false, false, true, true];
        assert_eq!(
            choose(&scores, &labels, ThresholdRule::Youden)
                .unwrap()
                .threshold,
            0.8
        );
        let f1 = choose(&scores, &labels, ThresholdRule::BestF1).unwrap();
        assert_eq!(f1.threshold, 0.35);
        assert!((f1.f1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn absent_class_or_no_finite_score_is_none() {
        assert_eq!(
            choose(&[0.1, 0.2], &[true, true], ThresholdRule::BestF1),
            None
        );
        assert_eq!(
            choose(&[0.1, 0.2], &[false, false], ThresholdRule::Youden),
            None
        );
        assert_eq!(choose(&[], &[], ThresholdRule::BestF1), None);
        let inf = [f64::NAN, f64::INFINITY];
        assert_eq!(choose(&inf, &[true, false], ThresholdRule::BestF1), None);
    }

    #[test]
    fn at_threshold_counts_and_zero_division() {
        let scores = [0.1, 0.4, 0.35, 0.8, f64::NAN];
        let labels = [false, false, true, true, true];
        let p = at_threshold(&scores, &labels, 0.4);
        assert_eq!((p.tp, p.fp, p.tn, p.fn_), (1, 1, 1, 2));
        assert_eq!((p.precision, p.recall, p.fpr), (0.5, 1.0 / 3.0, 0.5));
        assert!((p.f1 - 0.4).abs() < 1e-12); // 2*1 / (2 + 1 + 2)
        let none = at_threshold(&scores, &labels, 5.0);
        assert_eq!(
            (none.precision, none.recall, none.f1, none.fpr),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn sweep_matches_brute_force_with_ties_and_non_finite() {
        // Deterministic LCG; scores on a coarse grid so there are many ties.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        let mut scores: Vec<f64> = (0..300).map(|_| (next() % 40) as f64 / 40.0).collect();
        let labels: Vec<bool> = (0..300)
            .map(|i| next() % 3 == 0 || scores[i] > 0.8)
            .collect();
        scores[7] = f64::NAN;
        scores[11] = f64::INFINITY;
        scores[13] = f64::NEG_INFINITY;
        for rule in [ThresholdRule::BestF1, ThresholdRule::Youden] {
            let got = choose(&scores, &labels, rule).unwrap();
            let mut best: Option<OperatingPoint> = None;
            let mut candidates: Vec<f64> =
                scores.iter().copied().filter(|s| s.is_finite()).collect();
            candidates.sort_by(|a, b| b.total_cmp(a));
            candidates.dedup();
            for t in candidates {
                let p = at_threshold(&scores, &labels, t);
                let value = |p: &OperatingPoint| match rule {
                    ThresholdRule::BestF1 => p.f1,
                    ThresholdRule::Youden => p.recall - p.fpr,
                };
                if best.is_none_or(|b| value(&p) > value(&b) + 1e-12) {
                    best = Some(p);
                }
            }
            assert_eq!(Some(got), best, "{rule:?}");
            assert_eq!(got, at_threshold(&scores, &labels, got.threshold));
        }
    }
}
