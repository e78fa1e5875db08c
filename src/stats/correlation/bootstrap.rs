//! Bootstrap percentile intervals of the study's three Spearman statistics, resampling channels
//! with replacement: within each DFC for the per-layer mean, over the pooled channels for all
//! layers (raw, and ℓ2-normalised per DFC on the full data first). One resample of channels is
//! shared by every criterion (a paired bootstrap).
//!
//! Ranking every resample with polars would sort each scoring anew, 2 × criteria × 3 times per
//! resample. Here each scoring is sorted once; a resample is held as how many times it drew each
//! channel, so the average ranks of the resampled vector (a channel drawn twice ties with
//! itself) follow from one pass over the sorted order, and ρ is the draw-weighted Pearson
//! correlation of those ranks: the same number as ranking the resampled vectors, in O(n) per
//! resample. The point values come from polars ([`super::spearman`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::results::StudySettings;
use super::study::Scoring;
use super::{l2_normalised, mean_defined, percentile_interval};

/// A scoring's channels in ascending order of score, cut into runs of equal scores.
struct Sorted {
    order: Vec<u32>,
    /// Where each run of equal scores ends in `order`.
    run_ends: Vec<u32>,
}

impl Sorted {
    /// `values` must hold no NaN.
    fn new(values: &[f64]) -> Self {
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        let value = |i: &u32| values[*i as usize];
        order.sort_unstable_by(|i, j| value(i).partial_cmp(&value(j)).expect("no NaN"));
        let mut run_ends: Vec<u32> = (1..order.len())
            .filter(|&p| value(&order[p]) != value(&order[p - 1]))
            .map(|p| p as u32)
            .collect();
        if !order.is_empty() {
            run_ends.push(order.len() as u32);
        }
        Self { order, run_ends }
    }

    /// Writes into `ranks[i]` the 1-based average rank, in the resample that drew channel `i`
    /// `draws[i]` times, of channel `i` (meaningful where `draws[i] > 0`).
    fn resample_ranks(&self, draws: &[u32], ranks: &mut [f64]) {
        let (mut start, mut below) = (0usize, 0u64);
        for &end in &self.run_ends {
            let run = &self.order[start..end as usize];
            let drawn: u64 = run.iter().map(|&i| draws[i as usize] as u64).sum();
            // Draws below+1 ..= below+drawn tie: their mean rank.
            let rank = below as f64 + (drawn as f64 + 1.0) / 2.0;
            run.iter().for_each(|&i| ranks[i as usize] = rank);
            below += drawn;
            start = end as usize;
        }
    }
}

/// Pearson's correlation of `x` and `y` weighted by `draws`: the correlation of the resampled
/// ranks, whose mean is (drawn + 1) / 2 on both sides. NaN when a side is constant.
fn weighted_rho(x: &[f64], y: &[f64], draws: &[u32], drawn: usize) -> f64 {
    let mean = (drawn as f64 + 1.0) / 2.0;
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for ((&a, &b), &w) in x.iter().zip(y).zip(draws) {
        if w > 0 {
            let (dx, dy, w) = (a - mean, b - mean, w as f64);
            xy += w * dx * dy;
            xx += w * dx * dx;
            yy += w * dy * dy;
        }
    }
    if xx * yy > 0.0 {
        xy / (xx * yy).sqrt()
    } else {
        f64::NAN
    }
}

/// A criterion sorted three ways: pooled raw, pooled ℓ2-normalised, within each DFC.
struct Criterion {
    pooled: Sorted,
    pooled_l2: Sorted,
    dfcs: Vec<Sorted>,
}

struct Prepared {
    /// DFC `d` holds pooled channels `offsets[d]..offsets[d + 1]`.
    offsets: Vec<usize>,
    reference: Criterion,
    criteria: Vec<Criterion>,
}

impl Prepared {
    fn new(reference: &[Vec<f64>], criteria: &[Scoring]) -> Self {
        let prepare = |dfcs: &[Vec<f64>]| Criterion {
            pooled: Sorted::new(&dfcs.concat()),
            pooled_l2: Sorted::new(
                &dfcs
                    .iter()
                    .flat_map(|v| l2_normalised(v))
                    .collect::<Vec<_>>(),
            ),
            dfcs: dfcs.iter().map(|v| Sorted::new(v)).collect(),
        };
        let mut offsets = vec![0];
        offsets.extend(reference.iter().scan(0, |end, v| {
            *end += v.len();
            Some(*end)
        }));
        Self {
            offsets,
            reference: prepare(reference),
            criteria: criteria.iter().map(|c| prepare(c.dfcs)).collect(),
        }
    }

    /// Resample `index` of the stream seeded by `seed`: per criterion, [per layer, all layers,
    /// all layers ℓ2]. Its draws depend only on (`seed`, `index`), not on the thread running it.
    fn resample(&self, seed: u64, index: usize) -> Vec<[f64; 3]> {
        let n = *self.offsets.last().expect("offsets start at 0");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        let mut pooled = vec![0u32; n];
        for _ in 0..n {
            pooled[rng.random_range(0..n as u32) as usize] += 1;
        }
        let mut within = vec![0u32; n];
        for d in self.dfcs() {
            for _ in 0..d.len() {
                within[d.start + rng.random_range(0..d.len() as u32) as usize] += 1;
            }
        }
        let mut reference_pooled = vec![0.0; n];
        self.reference
            .pooled
            .resample_ranks(&pooled, &mut reference_pooled);
        let mut reference_within = vec![0.0; n];
        for (d, sorted) in self.dfcs().zip(&self.reference.dfcs) {
            sorted.resample_ranks(&within[d.clone()], &mut reference_within[d]);
        }
        let mut ranks = vec![0.0; n];
        let mut all_layers = |sorted: &Sorted| {
            sorted.resample_ranks(&pooled, &mut ranks);
            weighted_rho(&ranks, &reference_pooled, &pooled, n)
        };
        let mut out = Vec::with_capacity(self.criteria.len());
        for c in &self.criteria {
            out.push([f64::NAN, all_layers(&c.pooled), all_layers(&c.pooled_l2)]);
        }
        for (c, row) in self.criteria.iter().zip(&mut out) {
            row[0] = mean_defined(self.dfcs().zip(&c.dfcs).map(|(d, sorted)| {
                sorted.resample_ranks(&within[d.clone()], &mut ranks[d.clone()]);
                weighted_rho(
                    &ranks[d.clone()],
                    &reference_within[d.clone()],
                    &within[d.clone()],
                    d.len(),
                )
            }));
        }
        out
    }

    fn dfcs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.offsets.windows(2).map(|w| w[0]..w[1])
    }
}

/// Per criterion, the percentile intervals of [per layer, all layers, all layers ℓ2] over
/// `settings.bootstrap` resamples (NaN bounds for none; resamples where a statistic is
/// undefined are left out of its interval). Scores must be finite. The resamples run in
/// parallel and are gathered in order: the result does not depend on the thread count.
pub(super) fn intervals(
    reference: &[Vec<f64>],
    criteria: &[Scoring],
    settings: &StudySettings,
) -> Vec<[(f64, f64); 3]> {
    if settings.bootstrap == 0 {
        return vec![[(f64::NAN, f64::NAN); 3]; criteria.len()];
    }
    let prepared = Prepared::new(reference, criteria);
    let resamples: Vec<Vec<[f64; 3]>> = (0..settings.bootstrap)
        .into_par_iter()
        .map(|r| prepared.resample(settings.seed, r))
        .collect();
    (0..criteria.len())
        .map(|c| {
            std::array::from_fn(|s| {
                percentile_interval(resamples.iter().map(|r| r[c][s]), settings.confidence)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reference_spearman;

    #[test]
    fn resample_ranks_equal_the_ranks_of_the_resampled_vector() {
        let x = [0.5, 0.0, 2.0, 0.5, 1.5, 0.0, 3.0];
        let y = [1.0, 2.0, 2.0, 0.0, 5.0, 4.0, 4.0];
        // Draws of channels 2, 0, 0, 4, 6, 3, 3, 3, 1 (channel 5 not drawn).
        let picked = [2usize, 0, 0, 4, 6, 3, 3, 3, 1];
        let mut draws = vec![0u32; x.len()];
        picked.iter().for_each(|&i| draws[i] += 1);
        let (mut rx, mut ry) = (vec![0.0; x.len()], vec![0.0; y.len()]);
        Sorted::new(&x).resample_ranks(&draws, &mut rx);
        Sorted::new(&y).resample_ranks(&draws, &mut ry);
        let resampled = |v: &[f64]| picked.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let expected_x = crate::stats::average_ranks(&resampled(&x));
        for (k, &i) in picked.iter().enumerate() {
            assert_eq!(rx[i], expected_x[k], "channel {i}");
        }
        let weighted = weighted_rho(&rx, &ry, &draws, picked.len());
        let direct = reference_spearman(&resampled(&x), &resampled(&y));
        assert!((weighted - direct).abs() < 1e-12, "{weighted} vs {direct}");
    }

    #[test]
    fn a_constant_resample_has_no_rho() {
        let draws = [0, 3, 0];
        let (mut rx, mut ry) = (vec![0.0; 3], vec![0.0; 3]);
        Sorted::new(&[1.0, 2.0, 3.0]).resample_ranks(&draws, &mut rx);
        Sorted::new(&[3.0, 2.0, 1.0]).resample_ranks(&draws, &mut ry);
        assert_eq!(rx[1], 2.0);
        assert!(weighted_rho(&rx, &ry, &draws, 3).is_nan());
    }
}
