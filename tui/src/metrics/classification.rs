//! Multiclass classification metrics from per-sample class probabilities, computed as
//! scikit-learn does (tests/fixtures/metrics/ holds its values) so that the numbers in the
//! dashboard match a notebook's.
//!
//! Every per-class metric is over ALL classes `0..num_classes`, present or not: a class
//! the model never predicts, or one the evaluation set lacks, still counts (as zero) in the
//! macro F1, as sklearn's `f1_score(average='macro', labels=range(K))`. Averaging only over
//! the classes that happen to appear would flatter a model that ignores a rare class.
//!
//! NaN probabilities do not panic: a NaN is never a row's maximum (a row of only NaN
//! predicts class 0, so every sample still lands in the confusion matrix), and a class
//! whose probability column holds a non-finite value has no OvR AUROC (`None`, as
//! [`auroc`] answers), which leaves it out of the macro AUROC.

use super::auroc::auroc;

/// Per-class and averaged metrics of one evaluation. Vectors are indexed by class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    /// Fraction of samples whose argmax is their label; 0 for no samples.
    pub accuracy: f64,
    /// Unweighted mean of `f1` over all classes (0 when `num_classes` is 0).
    pub macro_f1: f64,
    /// tp / predicted; 0 for a class never predicted (sklearn's `zero_division=0`).
    pub precision: Vec<f64>,
    /// tp / support; 0 for a class absent from the labels.
    pub recall: Vec<f64>,
    /// 2tp / (2tp + fp + fn); 0 when the class is neither present nor predicted.
    pub f1: Vec<f64>,
    /// Number of samples labelled with each class.
    pub support: Vec<usize>,
    /// `confusion[true][pred]`: counts, `num_classes` x `num_classes`.
    pub confusion: Vec<Vec<usize>>,
    /// One-vs-rest AUROC of each class's probability column; `None` when the class is
    /// absent, is every label, or its column holds a non-finite value.
    pub auroc_ovr: Vec<Option<f64>>,
    /// Mean of the defined `auroc_ovr` (sklearn's macro OvR averages only the classes
    /// where it is defined); `None` when none is.
    pub macro_auroc_ovr: Option<f64>,
}

/// Metrics of `probs[i]` (one probability, or any score, per class) against `labels[i]`.
/// The prediction is the argmax, the first one on ties (as `numpy.argmax`).
///
/// Panics when the lengths disagree (`probs` and `labels`, or a row and `num_classes`) or a
/// label is `>= num_classes`: those are caller bugs, not data to report on.
pub fn classification_report(
    probs: &[Vec<f64>],
    labels: &[u32],
    num_classes: usize,
) -> ClassificationReport {
    assert_eq!(probs.len(), labels.len(), "one label per sample");
    let k = num_classes;
    let mut confusion = vec![vec![0usize; k]; k];
    for (row, &label) in probs.iter().zip(labels) {
        assert_eq!(row.len(), k, "one probability per class");
        let label = label as usize;
        assert!(label < k, "label {label} out of range for {k} classes");
        confusion[label][argmax(row)] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let support: Vec<usize> = confusion.iter().map(|row| row.iter().sum()).collect();
    let predicted: Vec<usize> = (0..k)
        .map(|c| confusion.iter().map(|row| row[c]).sum())
        .collect();
    let tp = |c: usize| confusion[c][c];
    let precision: Vec<f64> = (0..k).map(|c| ratio(tp(c), predicted[c])).collect();
    let recall: Vec<f64> = (0..k).map(|c| ratio(tp(c), support[c])).collect();
    // 2PR/(P+R) written with counts: exact, and no 0/0 when P = R = 0.
    let f1: Vec<f64> = (0..k)
        .map(|c| ratio(2 * tp(c), support[c] + predicted[c]))
        .collect();
    let auroc_ovr: Vec<Option<f64>> = (0..k).map(|c| one_vs_rest(probs, labels, c)).collect();
    ClassificationReport {
        accuracy: ratio(correct, labels.len()),
        macro_f1: mean(f1.iter().copied()).unwrap_or(0.0),
        precision,
        recall,
        f1,
        support,
        macro_auroc_ovr: mean(auroc_ovr.iter().flatten().copied()),
        auroc_ovr,
        confusion,
    }
}

/// Index of the first maximum, skipping NaN (`>` is false against NaN); 0 for an all-NaN
/// row. Ties keep the first: only a strictly greater value moves the argmax.
fn argmax(row: &[f64]) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for (i, &p) in row.iter().enumerate() {
        if !p.is_nan() && best.is_none_or(|(_, b)| p > b) {
            best = Some((i, p));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// AUROC of class `c`'s probability column, with class `c` as the positive class.
fn one_vs_rest(probs: &[Vec<f64>], labels: &[u32], c: usize) -> Option<f64> {
    let scores: Vec<f64> = probs.iter().map(|row| row[c]).collect();
    let positive: Vec<bool> = labels.iter().map(|&l| l as usize == c).collect();
    auroc(&scores, &positive)
}

/// `num / den`, 0 when `den` is 0 (sklearn's `zero_division=0`).
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Arithmetic mean; `None` for no values.
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn counts(v: &Value) -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    }

    fn assert_close_all(name: &str, what: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{name}: {what} length");
        for (c, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(close(*g, *w), "{name}: {what}[{c}] {g} != {w}");
        }
    }

    fn optional(v: &Value) -> Option<f64> {
        v.as_f64()
    }

    #[test]
    fn matches_sklearn_reference() {
        let all: Value = serde_json::from_str(REFERENCE).unwrap();
        let cases = all["multiclass"].as_array().unwrap();
        assert!(cases.len() >= 3);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let k = case["num_classes"].as_u64().unwrap() as usize;
            let probs: Vec<Vec<f64>> = case["probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            let labels: Vec<u32> = counts(&case["labels"]).iter().map(|&l| l as u32).collect();
            let r = classification_report(&probs, &labels, k);

            assert!(
                close(r.accuracy, case["accuracy"].as_f64().unwrap()),
                "{name}: accuracy"
            );
            assert!(
                close(r.macro_f1, case["macro_f1"].as_f64().unwrap()),
                "{name}: macro F1"
            );
            assert_close_all(name, "precision", &r.precision, &floats(&case["precision"]));
            assert_close_all(name, "recall", &r.recall, &floats(&case["recall"]));
            assert_close_all(name, "f1", &r.f1, &floats(&case["f1"]));
            assert_eq!(r.support, counts(&case["support"]), "{name}: support");
            let confusion: Vec<Vec<usize>> = case["confusion"]
                .as_array()
                .unwrap()
                .iter()
                .map(counts)
                .collect();
            assert_eq!(r.confusion, confusion, "{name}: confusion");

            let want: Vec<Option<f64>> = case["auroc_ovr"]
                .as_array()
                .unwrap()
                .iter()
                .map(optional)
                .collect();
            assert_eq!(r.auroc_ovr.len(), want.len(), "{name}: auroc_ovr length");
            for (c, (g, w)) in r.auroc_ovr.iter().zip(&want).enumerate() {
                match (g, w) {
                    (Some(g), Some(w)) => assert!(close(*g, *w), "{name}: auroc[{c}] {g} != {w}"),
                    (None, None) => {}
                    _ => panic!("{name}: auroc[{c}] {g:?} != {w:?}"),
                }
            }
            match (r.macro_auroc_ovr, optional(&case["macro_auroc_ovr"])) {
                (Some(g), Some(w)) => assert!(close(g, w), "{name}: macro auroc {g} != {w}"),
                (None, None) => {}
                (g, w) => panic!("{name}: macro auroc {g:?} != {w:?}"),
            }
        }
    }

    #[test]
    fn hand_computed_three_class() {
        // true 0 0 1 2 ; pred 0 1 1 1 (class 2 never predicted).
        let probs = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.3, 0.6, 0.1],
            vec![0.2, 0.7, 0.1],
            vec![0.1, 0.5, 0.4],
        ];
        let r = classification_report(&probs, &[0, 0, 1, 2], 3);
        assert_eq!(
            r.confusion,
            vec![vec![1, 1, 0], vec![0, 1, 0], vec![0, 1, 0]]
        );
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.support, vec![2, 1, 1]);
        assert_eq!(r.precision, vec![1.0, 1.0 / 3.0, 0.0]);
        assert_eq!(r.recall, vec![0.5, 1.0, 0.0]);
        assert_eq!(r.f1, vec![2.0 / 3.0, 0.5, 0.0]);
        assert!(close(r.macro_f1, (2.0 / 3.0 + 0.5) / 3.0));
        // Class 2 scores 0.4 against 0.1s: perfectly ranked.
        assert_eq!(r.auroc_ovr, vec![Some(1.0), Some(1.0), Some(1.0)]);
        assert_eq!(r.macro_auroc_ovr, Some(1.0));
    }

    #[test]
    fn ties_take_the_first_class() {
        let probs = vec![vec![0.4, 0.4, 0.2], vec![0.1, 0.45, 0.45]];
        let r = classification_report(&probs, &[0, 2], 3);
        assert_eq!(
            r.confusion,
            vec![vec![1, 0, 0], vec![0, 0, 0], vec![0, 1, 0]]
        );
    }

    #[test]
    fn single_class_labels_have_no_auroc() {
        let probs = vec![vec![0.9, 0.1], vec![0.2, 0.8]];
        let r = classification_report(&probs, &[0, 0], 2);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.auroc_ovr, vec![None, None]);
        assert_eq!(r.macro_auroc_ovr, None);
        // Class 1: predicted once, never present: precision, recall and F1 all 0.
        assert_eq!((r.precision[1], r.recall[1], r.f1[1]), (0.0, 0.0, 0.0));
        assert!(close(r.macro_f1, (2.0 / 3.0) / 2.0));
        // One class in all: always right, AUROC undefined.
        let r = classification_report(&[vec![0.3], vec![0.7]], &[0, 0], 1);
        assert_eq!((r.accuracy, r.macro_f1), (1.0, 1.0));
        assert_eq!(r.auroc_ovr, vec![None]);
    }

    #[test]
    fn empty_input_is_all_zero_not_nan() {
        let r = classification_report(&[], &[], 3);
        assert_eq!((r.accuracy, r.macro_f1), (0.0, 0.0));
        assert_eq!(r.precision, vec![0.0; 3]);
        assert_eq!(r.support, vec![0; 3]);
        assert_eq!(r.confusion, vec![vec![0; 3]; 3]);
        assert_eq!(r.auroc_ovr, vec![None; 3]);
        assert_eq!(r.macro_auroc_ovr, None);
        let r = classification_report(&[], &[], 0);
        assert_eq!(
            (r.accuracy, r.macro_f1, r.macro_auroc_ovr),
            (0.0, 0.0, None)
        );
        assert!(r.confusion.is_empty());
    }

    #[test]
    fn nan_probabilities_do_not_panic() {
        let nan = f64::NAN;
        let probs = vec![
            vec![nan, 0.2, 0.1], // NaN skipped: predicts 1
            vec![nan, nan, nan], // predicts 0
            vec![0.1, 0.8, 0.1],
            vec![0.1, 0.1, 0.8],
        ];
        let r = classification_report(&probs, &[0, 0, 1, 2], 3);
        assert_eq!(
            r.confusion,
            vec![vec![1, 1, 0], vec![0, 1, 0], vec![0, 0, 1]]
        );
        assert_eq!(r.auroc_ovr[0], None);
        assert_eq!(r.auroc_ovr[1], None);
        assert_eq!(r.auroc_ovr[2], None);
        assert_eq!(r.macro_auroc_ovr, None);
        // Only the NaN column loses its AUROC.
        let probs = vec![vec![nan, 0.9], vec![0.5, 0.1]];
        let r = classification_report(&probs, &[1, 0], 2);
        assert_eq!(r.auroc_ovr, vec![None, Some(1.0)]);
        assert_eq!(r.macro_auroc_ovr, Some(1.0));
        assert!(r.macro_f1.is_finite() && r.accuracy.is_finite());
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn label_out_of_range_panics() {
        classification_report(&[vec![0.5, 0.5]], &[2], 2);
    }
}
