//! A 2-D principal component projection of per-sample vectors (latent codes), for the
//! Embedding view: the top two eigenvectors of the covariance by power iteration with
//! deflation. Latent sizes are small (tens to hundreds), so the covariance fits easily.

/// Projects each row onto the first two principal components (centred). Rows must share
/// one length; returns None for fewer than two rows or an empty or non-finite input.
pub fn project2(rows: &[Vec<f32>]) -> Option<Vec<(f64, f64)>> {
    let n = rows.len();
    let d = rows.first()?.len();
    if n < 2
        || d == 0
        || rows
            .iter()
            .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
    {
        return None;
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / n as f64)
        .collect();
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(v, m)| *v as f64 - m).collect())
        .collect();
    let cov: Vec<Vec<f64>> = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| centred.iter().map(|r| r[i] * r[j]).sum())
                .collect()
        })
        .collect();
    let mut cov = cov;
    let first = top_eigenvector(&cov);
    let lambda = rayleigh(&cov, &first);
    // Deflate: remove the first component's variance, then find the next.
    for (row, fi) in cov.iter_mut().zip(&first) {
        for (c, fj) in row.iter_mut().zip(&first) {
            *c -= lambda * fi * fj;
        }
    }
    let second = top_eigenvector(&cov);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    Some(
        centred
            .iter()
            .map(|r| (dot(r, &first), dot(r, &second)))
            .collect(),
    )
}

/// The unit eigenvector of the largest eigenvalue of a symmetric PSD matrix, with a sign
/// fixed so that its largest-magnitude entry is positive (stable plots across epochs).
fn top_eigenvector(m: &[Vec<f64>]) -> Vec<f64> {
    let d = m.len();
    // A fixed, generic start: not orthogonal to any axis-aligned eigenvector.
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    for _ in 0..500 {
        let mut w: Vec<f64> = m
            .iter()
            .map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-300 {
            return vec![0.0; d];
        }
        w.iter_mut().for_each(|x| *x /= norm);
        let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = w;
        if delta < 1e-12 {
            break;
        }
    }
    let (at, _) = v.iter().enumerate().fold((0, 0.0f64), |best, (i, x)| {
        if x.abs() > best.1 { (i, x.abs()) } else { best }
    });
    if v[at] < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

fn rayleigh(m: &[Vec<f64>], v: &[f64]) -> f64 {
    m.iter()
        .zip(v)
        .map(|(row, vi)| vi * row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_two_directions_of_largest_variance() {
        // Points spread 10 along (1, 1, 0)/sqrt2, 3 along z, 0.1 along (1, -1, 0)/sqrt2.
        let mut rows = Vec::new();
        for i in 0..40 {
            let a = (i as f32 - 19.5) / 2.0;
            let b = ((i * 7) % 11) as f32 / 3.0 - 1.5;
            let c = ((i * 3) % 5) as f32 * 0.05;
            rows.push(vec![a + c, a - c, b]);
        }
        let p = project2(&rows).unwrap();
        // The first coordinate is the position along (1, 1, 0): a * sqrt(2) (centred).
        for (i, (x, _)) in p.iter().enumerate() {
            let a = (i as f64 - 19.5) / 2.0;
            assert!(
                (x.abs() - a.abs() * 2f64.sqrt()).abs() < 0.05,
                "{i}: {x} vs {a}"
            );
        }
        // The second captures z, uncorrelated with the first.
        let var = |f: &dyn Fn(&(f64, f64)) -> f64| p.iter().map(|q| f(q).powi(2)).sum::<f64>();
        assert!(var(&|q| q.1) > 10.0 * 0.0025 * 40.0);
        assert!(var(&|q| q.0) > var(&|q| q.1));
    }

    #[test]
    fn degenerate_input_is_none() {
        assert!(project2(&[]).is_none());
        assert!(project2(&[vec![1.0, 2.0]]).is_none());
        assert!(project2(&[vec![1.0], vec![f32::NAN]]).is_none());
        assert!(project2(&[vec![1.0, 2.0], vec![1.0]]).is_none());
    }
}
