//! Area under the ROC curve, computed exactly as scikit-learn's `roc_auc_score` for binary
//! labels: the Mann-Whitney U statistic with tied scores counting one half.

/// AUROC of `scores` where `positive[i]` marks the positive class (anomalous). `None` when
/// either class is absent (the area is undefined) or a score is not finite.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    if scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (average, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverse_and_random_rankings() {
        let pos = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &pos), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &pos), Some(0.0));
    }

    #[test]
    fn matches_sklearn_on_its_doc_example_and_ties() {
        // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let pos = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &pos), Some(0.75));
        // All scores tied: every pair counts one half.
        assert_eq!(auroc(&[0.5; 4], &pos), Some(0.5));
        // sklearn: roc_auc_score([0, 1, 0, 1, 1], [0.2, 0.2, 0.3, 0.3, 0.9]) == 0.6666...
        let got = auroc(
            &[0.2, 0.2, 0.3, 0.3, 0.9],
            &[false, true, false, true, true],
        )
        .unwrap();
        assert!((got - 4.0 / 6.0).abs() < 1e-12, "{got}");
    }

    #[test]
    fn undefined_without_both_classes() {
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[f64::NAN, 0.2], &[true, false]), None);
    }
}
