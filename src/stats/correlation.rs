//! Rank correlation between scorings of the same channels, and the study that compares saliency
//! criteria with an oracle in the layout of Molchanov et al. (2019), table 1: Spearman's ρ per
//! layer (averaged over layers), over all layers in one ranking, and over all layers after
//! ℓ2-normalising each layer's scores; Kendall's τ-b beside it, bootstrap percentile intervals,
//! the criterion × criterion matrix and the random criterion's null distribution.
//!
//! A *scoring* gives one score per channel of each DFC, `dfcs[d][c]` (DFC `d`, channel `c`), in
//! a DFC order shared by every scoring of a study. Scores are unitless; only their order within
//! a ranking matters, except for the ℓ2 normalisation.

mod bootstrap;
mod nan_as_null;
mod results;
mod study;

use polars::prelude::{NamedFrom, RankMethod, RankOptions, Series, SeriesRank};
use polars_ops::chunked_array::cov::pearson_corr;

pub use results::{CriterionRow, DfcRow, Estimate, Matrix, NullDistribution, Study, StudySettings};
pub use study::{study, DfcInfo, Scoring};

/// Spearman's ρ, tie-aware (average ranks), computed with polars: rank each side
/// (`RankMethod::Average`), then polars' Pearson correlation of the ranks, as scipy's
/// `spearmanr`. `a` and `b` score the same channels (`a[i]` and `b[i]` are channel `i`).
/// NaN when a side is constant, the lengths differ, n < 2 or a score is NaN.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let options = RankOptions {
        method: RankMethod::Average,
        descending: false,
    };
    let (ra, rb) = (
        Series::new("a".into(), a).rank(options, None),
        Series::new("b".into(), b).rank(options, None),
    );
    match (ra.f64(), rb.f64()) {
        (Ok(x), Ok(y)) => pearson_corr(x, y).unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// Kendall's τ-b: (concordant − discordant pairs) / √((n₀ − n₁)(n₀ − n₂)), n₀ = n(n−1)/2 and
/// n₁, n₂ the pairs tied in `a`, in `b` (scipy's `kendalltau` default). Knight's algorithm,
/// O(n log n): sort by (a, b), then count the swaps a merge sort of `b` makes. NaN when a side
/// is constant, the lengths differ, n < 2 or a score is NaN.
pub fn kendall_tau_b(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    if n != b.len() || n < 2 || a.iter().chain(b).any(|x| x.is_nan()) {
        return f64::NAN;
    }
    // No NaN is left, so `partial_cmp` is total (and -0 ties with +0, as `==` says).
    let cmp = |x: &f64, y: &f64| x.partial_cmp(y).expect("no NaN");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&i, &j| cmp(&a[i], &a[j]).then(cmp(&b[i], &b[j])));
    let pairs = |t: u64| t * t.saturating_sub(1) / 2;
    // Pairs tied in a (n₁) and tied in both (n₃), from runs of the sorted order.
    let (mut tied_a, mut tied_both) = (0u64, 0u64);
    let (mut run_a, mut run_both) = (1u64, 1u64);
    for w in order.windows(2) {
        let (i, j) = (w[0], w[1]);
        if a[i] == a[j] && b[i] == b[j] {
            run_a += 1;
            run_both += 1;
            continue;
        }
        tied_both += pairs(run_both);
        run_both = 1;
        if a[i] == a[j] {
            run_a += 1;
        } else {
            tied_a += pairs(run_a);
            run_a = 1;
        }
    }
    tied_a += pairs(run_a);
    tied_both += pairs(run_both);
    let mut sorted_b: Vec<f64> = order.iter().map(|&i| b[i]).collect();
    let swaps = sort_counting_swaps(&mut sorted_b);
    let mut tied_b = 0u64;
    let mut run = 1u64;
    for w in sorted_b.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            tied_b += pairs(run);
            run = 1;
        }
    }
    tied_b += pairs(run);
    let total = pairs(n as u64);
    if tied_a == total || tied_b == total {
        return f64::NAN;
    }
    let s = total as i64 - tied_a as i64 - tied_b as i64 + tied_both as i64 - 2 * swaps as i64;
    // Divided as scipy divides, then clipped to [-1, 1] against rounding.
    let tau = s as f64 / ((total - tied_a) as f64).sqrt() / ((total - tied_b) as f64).sqrt();
    tau.clamp(-1.0, 1.0)
}

/// Sorts `v` ascending by a bottom-up merge sort; returns the number of pairs `i < j` with
/// `v[i] > v[j]` (equal values are not swapped).
fn sort_counting_swaps(v: &mut Vec<f64>) -> u64 {
    let n = v.len();
    let mut buffer = vec![0.0; n];
    let mut swaps = 0u64;
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if v[j] < v[i] {
                    buffer[k] = v[j];
                    j += 1;
                    swaps += (mid - i) as u64;
                } else {
                    buffer[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buffer[k..k + mid - i].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buffer[k..k + end - j].copy_from_slice(&v[j..end]);
        }
        std::mem::swap(v, &mut buffer);
        width *= 2;
    }
    swaps
}

/// `v / ‖v‖₂` (Molchanov et al.'s per-layer ℓ2 normalisation of one DFC's scores); an all-zero
/// `v` stays zero.
pub fn l2_normalised(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}

/// The mean of the values that are not NaN; NaN when there are none.
fn mean_defined(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The `q`-quantile of `sorted` (ascending, no NaN), interpolating linearly between the two
/// nearest order statistics (numpy's default); NaN when `sorted` is empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (below, fraction) = (position.floor() as usize, position - position.floor());
    match sorted.get(below + 1) {
        Some(&above) if fraction > 0.0 => sorted[below] + fraction * (above - sorted[below]),
        _ => sorted[below],
    }
}

/// The central `confidence` interval of `values` by percentiles, NaN values left out (NaN
/// bounds when nothing is left).
fn percentile_interval(values: impl IntoIterator<Item = f64>, confidence: f64) -> (f64, f64) {
    let mut sorted: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    (quantile(&sorted, tail), quantile(&sorted, 1.0 - tail))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::stats::reference_spearman;

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() < 1e-12
    }

    #[test]
    fn spearman_and_kendall_with_ties_by_hand() {
        let a = [1.0, 2.0, 2.0, 3.0, 4.0];
        let b = [1.0, 3.0, 2.0, 2.0, 5.0];
        // Ranks a = [1, 2.5, 2.5, 4, 5], b = [1, 4, 2.5, 2.5, 5]; both have mean 3 and
        // deviations [-2, -.5, -.5, 1, 2], [-2, 1, -.5, -.5, 2]: covariance 4 - .5 + .25 - .5 + 4
        // = 7.25, variances 9.5 and 9.5, so ρ = 7.25 / 9.5 = 29/38.
        assert!(close(spearman(&a, &b), 29.0 / 38.0), "{}", spearman(&a, &b));
        // Of the 10 pairs: (1,2) tied in a, (2,3) tied in b, (1,3) discordant, 7 concordant.
        // τ-b = (7 - 1) / √((10 - 1)(10 - 1)) = 2/3.
        assert!(
            close(kendall_tau_b(&a, &b), 2.0 / 3.0),
            "{}",
            kendall_tau_b(&a, &b)
        );
        assert!(close(kendall_tau_b(&b, &a), 2.0 / 3.0));
        // Reversed order, no ties: -1 for both.
        let c = [3.0, 2.0, 1.0, 0.0];
        assert!(close(spearman(&[1.0, 2.0, 3.0, 4.0], &c), -1.0));
        assert!(close(kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &c), -1.0));
        // -0 ties with +0: a = [0, -0, 1] ranks [1.5, 1.5, 3], as does [5, 5, 7].
        assert!(close(spearman(&[0.0, -0.0, 1.0], &[5.0, 5.0, 7.0]), 1.0));
        assert!(close(
            kendall_tau_b(&[0.0, -0.0, 1.0], &[5.0, 5.0, 7.0]),
            1.0
        ));
    }

    #[test]
    fn identical_rankings_give_exactly_one() {
        // Equal ranks give equal sums on both sides, and √(x·x) = x in floating point.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [2, 10, 3000] {
            let a: Vec<f64> = (0..n).map(|_| rng.random_range(0..50) as f64).collect();
            let b: Vec<f64> = a.iter().map(|x| 3.0 * x + 1.0).collect();
            assert_eq!(spearman(&a, &a), 1.0);
            assert_eq!(spearman(&a, &b), 1.0);
            assert_eq!(kendall_tau_b(&a, &b), 1.0);
        }
    }

    #[test]
    fn undefined_cases_are_nan() {
        for (a, b) in [
            (&[1.0, 1.0, 1.0][..], &[1.0, 2.0, 3.0][..]),
            (&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]),
            (&[1.0], &[2.0]),
            (&[], &[]),
            (&[1.0, 2.0], &[1.0, 2.0, 3.0]),
            (&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]),
        ] {
            assert!(spearman(a, b).is_nan(), "{a:?} {b:?}");
            assert!(kendall_tau_b(a, b).is_nan(), "{a:?} {b:?}");
        }
    }

    #[test]
    fn polars_spearman_matches_the_hand_written_one_on_random_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [2, 3, 10, 100, 1000, 5000] {
            // Few distinct values: many ties, as dead channels give.
            let a: Vec<f64> = (0..n).map(|_| rng.random_range(0..7) as f64).collect();
            let b: Vec<f64> = (0..n)
                .map(|i| a[i] * 0.5 + rng.random_range(0..5) as f64)
                .collect();
            let (ours, reference) = (spearman(&a, &b), reference_spearman(&a, &b));
            assert!(
                close(ours, reference) || (ours.is_nan() && reference.is_nan()),
                "n {n}: {ours} vs {reference}"
            );
        }
    }

    #[test]
    fn spearman_and_kendall_match_scipy() {
        // from scipy.stats import spearmanr, kendalltau   (scipy 1.17.1)
        // a = [0.0, 0.0, 0.5, 1.25, 1.25, 1.25, 2.0, 3.5, 3.5, 4.0, 0.0, 2.0]
        // b = [0.3, 0.1, 0.1, 0.9, 2.0, 0.9, 0.9, 1.7, 3.0, 3.0, 0.0, 0.3]
        // print(repr(spearmanr(a, b).statistic), repr(kendalltau(a, b).statistic))
        // c = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
        // d = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3]
        // print(repr(spearmanr(c, d).statistic), repr(kendalltau(c, d).statistic))
        let a = [
            0.0, 0.0, 0.5, 1.25, 1.25, 1.25, 2.0, 3.5, 3.5, 4.0, 0.0, 2.0,
        ];
        let b = [0.3, 0.1, 0.1, 0.9, 2.0, 0.9, 0.9, 1.7, 3.0, 3.0, 0.0, 0.3];
        assert!(close(spearman(&a, &b), 0.82163362512238));
        assert!(close(kendall_tau_b(&a, &b), 0.6950150912113305));
        let c = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4].map(f64::from);
        let d = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3].map(f64::from);
        assert!(close(spearman(&c, &d), 0.19073187020980284));
        assert!(close(kendall_tau_b(&c, &d), 0.1502915281630456));
    }

    #[test]
    fn kendall_matches_the_quadratic_count() {
        let tau_by_pairs = |a: &[f64], b: &[f64]| {
            let (mut s, mut untied_a, mut untied_b) = (0i64, 0i64, 0i64);
            for i in 0..a.len() {
                for j in i + 1..a.len() {
                    let (da, db) = ((a[i] - a[j]).signum(), (b[i] - b[j]).signum());
                    let (da, db) = (
                        if a[i] == a[j] { 0.0 } else { da },
                        if b[i] == b[j] { 0.0 } else { db },
                    );
                    s += (da * db) as i64;
                    untied_a += (da != 0.0) as i64;
                    untied_b += (db != 0.0) as i64;
                }
            }
            s as f64 / ((untied_a * untied_b) as f64).sqrt()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for n in [2, 5, 17, 300] {
            let a: Vec<f64> = (0..n).map(|_| rng.random_range(0..6) as f64).collect();
            let b: Vec<f64> = (0..n).map(|_| rng.random_range(0..4) as f64).collect();
            let (fast, slow) = (kendall_tau_b(&a, &b), tau_by_pairs(&a, &b));
            assert!(
                close(fast, slow) || (fast.is_nan() && slow.is_nan()),
                "n {n}: {fast} vs {slow}"
            );
        }
    }

    #[test]
    fn l2_normalised_divides_by_the_norm() {
        assert_eq!(l2_normalised(&[3.0, 4.0]), [0.6, 0.8]);
        assert_eq!(l2_normalised(&[0.0, 0.0]), [0.0, 0.0]);
        assert!(l2_normalised(&[]).is_empty());
        let v = l2_normalised(&[1.0, -2.0, 2.0]);
        assert_eq!(v, [1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0]);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.1), 1.4);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert!(quantile(&[], 0.5).is_nan());
        let (low, high) = percentile_interval([5.0, f64::NAN, 1.0, 3.0], 0.5);
        assert_eq!((low, high), (2.0, 4.0));
    }
}
