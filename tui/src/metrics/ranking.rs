//! Ranking quality of anomaly scores (higher = more anomalous) beyond the AUROC: average
//! precision, the ROC curve for the dashboard to draw, and one report bundling them with
//! the best-F1 and Youden operating points. Computed exactly as scikit-learn does, so a
//! number in the dashboard can be checked against a notebook; tests/fixtures/metrics/
//! holds sklearn's own values.
//!
//! Like [`auroc`], everything here is `None` when a score is not finite (sklearn refuses
//! such input; a NaN score means a broken model, not a ranking worth drawing).

use super::auroc::auroc;
use super::threshold::{OperatingPoint, ThresholdRule, choose};

/// Cumulative counts at one threshold: everything scoring `>=` it is predicted positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    fp: usize,
    tp: usize,
}

/// Counts at every distinct score, from the highest down (sklearn's `_binary_clf_curve`):
/// lowering the threshold past a group of equal scores adds the whole group at once, which
/// is how both curves handle ties. `None` when a score is not finite.
fn counts_per_threshold(scores: &[f64], positive: &[bool]) -> Option<Vec<Counts>> {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    if scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut order: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(positive.iter().copied())
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::new();
    let mut now = Counts { fp: 0, tp: 0 };
    for (i, &(s, p)) in order.iter().enumerate() {
        if p {
            now.tp += 1;
        } else {
            now.fp += 1;
        }
        // Close the group at its last member. (-0.0 and 0.0 compare equal, as in numpy.)
        if order.get(i + 1).is_none_or(|next| next.0 != s) {
            out.push(now);
        }
    }
    Some(out)
}

/// Average precision, as sklearn's `average_precision_score`: the sum over thresholds of
/// (recall gained) x (precision there), a step function with no interpolation, which is why
/// it can differ from the trapezoidal area under the PR curve (that one is optimistic).
/// `None` when there is no positive (sklearn answers 0 with a warning; undefined is more
/// honest) or a score is not finite. All positives gives 1.
pub fn auprc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let counts = counts_per_threshold(scores, positive)?;
    let n_pos = counts.last().map_or(0, |c| c.tp);
    if n_pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_tp = 0;
    for c in counts {
        let recall_gain = (c.tp - prev_tp) as f64 / n_pos as f64;
        ap += recall_gain * c.tp as f64 / (c.tp + c.fp) as f64;
        prev_tp = c.tp;
    }
    Some(ap)
}

/// The ROC curve as `(fpr, tpr)` points, as sklearn's `roc_curve(drop_intermediate=False)`:
/// `(0, 0)` first, then one point per distinct score from the highest down, ending at
/// `(1, 1)`; a tie group mixing both classes is one diagonal step. `None` when either
/// class is absent (a rate would divide by zero) or a score is not finite.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Option<Vec<(f64, f64)>> {
    let counts = counts_per_threshold(scores, positive)?;
    let total = *counts.last()?;
    if total.tp == 0 || total.fp == 0 {
        return None;
    }
    let rate = |c: &Counts| (c.fp as f64 / total.fp as f64, c.tp as f64 / total.tp as f64);
    Some(
        std::iter::once((0.0, 0.0))
            .chain(counts.iter().map(rate))
            .collect(),
    )
}

/// Everything the dashboard shows about an anomaly score on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyReport {
    /// sklearn's `roc_auc_score` (ties count 1/2).
    pub auroc: f64,
    /// sklearn's `average_precision_score`.
    pub auprc: f64,
    /// The threshold maximising F1 (ties to the higher threshold).
    pub best_f1: OperatingPoint,
    /// The threshold maximising Youden's J = TPR - FPR (ties to the higher threshold).
    pub youden: OperatingPoint,
}

/// [`auroc`], [`auprc`] and both operating points of [`choose`] at once. `None` when either
/// class is absent or a score is not finite: then the AUROC is undefined, and a report
/// with holes would be easy to misread.
pub fn anomaly_report(scores: &[f64], positive: &[bool]) -> Option<AnomalyReport> {
    Some(AnomalyReport {
        auroc: auroc(scores, positive)?,
        auprc: auprc(scores, positive)?,
        best_f1: choose(scores, positive, ThresholdRule::BestF1)?,
        youden: choose(scores, positive, ThresholdRule::Youden)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::threshold::at_threshold;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../../../tests/fixtures/metrics/reference.json");

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    /// The binary cases of reference.json, as (name, scores, positive, case).
    fn binary_cases() -> Vec<(String, Vec<f64>, Vec<bool>, Value)> {
        let all: Value = serde_json::from_str(REFERENCE).unwrap();
        all["binary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| {
                let scores = floats(&case["scores"]);
                let positive = case["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_u64().unwrap() == 1)
                    .collect();
                (
                    case["name"].as_str().unwrap().to_owned(),
                    scores,
                    positive,
                    case.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn matches_sklearn_reference() {
        let cases = binary_cases();
        assert!(cases.len() >= 5);
        for (name, scores, positive, case) in cases {
            let ap = auprc(&scores, &positive).unwrap();
            let want = case["auprc"].as_f64().unwrap();
            assert!(close(ap, want), "{name}: auprc {ap} != {want}");

            let curve = roc_curve(&scores, &positive).unwrap();
            let (fpr, tpr) = (floats(&case["roc_fpr"]), floats(&case["roc_tpr"]));
            assert_eq!(curve.len(), fpr.len(), "{name}: roc points");
            for (i, &(f, t)) in curve.iter().enumerate() {
                assert!(close(f, fpr[i]) && close(t, tpr[i]), "{name}: roc[{i}]");
            }

            let report = anomaly_report(&scores, &positive).unwrap();
            let want = case["auroc"].as_f64().unwrap();
            assert!(
                close(report.auroc, want),
                "{name}: auroc {} != {want}",
                report.auroc
            );
            assert_eq!(report.auprc, ap);
        }
    }

    #[test]
    fn report_bundles_the_threshold_choices() {
        let scores = [0.1, 0.4, 0.35, 0.8];
        let positive = [false, false, true, true];
        let r = anomaly_report(&scores, &positive).unwrap();
        assert_eq!(r.auroc, 0.75);
        assert!(close(r.auprc, 5.0 / 6.0)); // sklearn's documentation example
        assert_eq!(r.best_f1.threshold, 0.35);
        assert_eq!(r.youden.threshold, 0.8);
        assert_eq!(r.best_f1, at_threshold(&scores, &positive, 0.35));
    }

    #[test]
    fn ties_are_one_step() {
        // All equal: one threshold, AP = prevalence, ROC the diagonal in one step.
        let positive = [true, false, false, true, false];
        let scores = [2.0; 5];
        assert!(close(auprc(&scores, &positive).unwrap(), 0.4));
        assert_eq!(
            roc_curve(&scores, &positive).unwrap(),
            vec![(0.0, 0.0), (1.0, 1.0)]
        );
        // The top group {T, F} counts as precision 1/2 for its whole recall gain.
        let ap = auprc(&[3.0, 3.0, 1.0, 0.0], &[true, false, true, false]).unwrap();
        assert!(close(ap, 0.5 * 0.5 + 0.5 * (2.0 / 3.0)), "{ap}");
    }

    #[test]
    fn no_positive_or_non_finite_is_none() {
        assert_eq!(auprc(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(auprc(&[], &[]), None);
        assert_eq!(auprc(&[0.1, f64::NAN], &[true, false]), None);
        assert_eq!(auprc(&[0.1, f64::INFINITY], &[true, false]), None);
        assert_eq!(roc_curve(&[], &[]), None);
        assert_eq!(roc_curve(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_curve(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(roc_curve(&[f64::NAN, 0.2], &[true, false]), None);
        assert_eq!(anomaly_report(&[], &[]), None);
        assert_eq!(anomaly_report(&[0.3, 0.2], &[true, true]), None);
        assert_eq!(anomaly_report(&[0.3, f64::NAN], &[true, false]), None);
    }

    #[test]
    fn single_class_positive_only() {
        // AP is defined with positives alone (precision is 1 everywhere); the ROC is not.
        assert_eq!(auprc(&[0.5, 0.1, 0.5], &[true; 3]), Some(1.0));
        assert_eq!(auprc(&[0.5], &[true]), Some(1.0));
        assert_eq!(roc_curve(&[0.5], &[true]), None);
    }
}
