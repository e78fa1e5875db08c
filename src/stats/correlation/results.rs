//! What the study computes, typed and readable back (`study.json`): the settings, each
//! criterion's three rows with intervals, the per-DFC values, the criterion × criterion matrix
//! and the null distribution.

use serde::{Deserialize, Serialize};

use super::nan_as_null;

/// How the study resamples for its intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySettings {
    /// Bootstrap resamples for the intervals; 0: no intervals (NaN bounds).
    pub bootstrap: usize,
    /// Coverage of the percentile intervals and of the null distribution's range, in (0, 1).
    pub confidence: f64,
    /// Seed of the resampling (ChaCha8): the same seed and inputs give the same study.
    pub seed: u64,
}

impl Default for StudySettings {
    fn default() -> Self {
        Self {
            bootstrap: 1000,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// A statistic with its bootstrap percentile interval (NaN bounds without resamples). NaN is
/// written to JSON as `null` and read back as NaN, in every float of a [`Study`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    #[serde(with = "nan_as_null")]
    pub value: f64,
    #[serde(with = "nan_as_null")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    pub high: f64,
}

/// One criterion against the oracle: the three rows of Molchanov et al.'s table, as Spearman's
/// ρ with intervals and as Kendall's τ-b.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionRow {
    pub criterion: String,
    /// Spearman per DFC, averaged over the DFCs whose ρ is defined (not NaN).
    pub per_layer: Estimate,
    /// All channels of all DFCs in one ranking.
    pub all_layers: Estimate,
    /// The same after dividing the criterion's scores by their ℓ2 norm within each DFC (the
    /// oracle is not normalised).
    pub all_layers_l2: Estimate,
    #[serde(with = "nan_as_null")]
    pub kendall_per_layer: f64,
    #[serde(with = "nan_as_null")]
    pub kendall_all_layers: f64,
    #[serde(with = "nan_as_null")]
    pub kendall_all_layers_l2: f64,
    /// DFCs whose per-DFC ρ is undefined (a constant side, one channel), left out of the mean.
    pub undefined_dfcs: usize,
}

/// One criterion against the oracle within one DFC of `channels` channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DfcRow {
    pub dfc: String,
    pub coupled: bool,
    pub channels: usize,
    pub criterion: String,
    #[serde(with = "nan_as_null")]
    pub spearman: f64,
    #[serde(with = "nan_as_null")]
    pub kendall: f64,
}

/// Spearman ρ (all layers, raw) between every pair of scorings, oracle included: `rho[i][j]`
/// between `names[i]` and `names[j]`; symmetric, 1 on the diagonal (NaN for a constant scoring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub names: Vec<String>,
    #[serde(with = "nan_as_null::rows")]
    pub rho: Vec<Vec<f64>>,
}

/// The random criterion's ρ against the oracle over several seeds: the null distribution.
/// `per_layer[k]`, `all_layers[k]`: seed `k`'s ρ as in [`CriterionRow`]; sd with n − 1 (NaN
/// for one seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NullDistribution {
    pub seeds: usize,
    #[serde(with = "nan_as_null::list")]
    pub per_layer: Vec<f64>,
    #[serde(with = "nan_as_null::list")]
    pub all_layers: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub per_layer_mean: f64,
    #[serde(with = "nan_as_null")]
    pub per_layer_sd: f64,
    #[serde(with = "nan_as_null")]
    pub all_layers_mean: f64,
    #[serde(with = "nan_as_null")]
    pub all_layers_sd: f64,
    /// The (1 − confidence)/2 and 1 − (1 − confidence)/2 quantiles of `all_layers` (linear
    /// interpolation between order statistics).
    #[serde(with = "nan_as_null")]
    pub all_layers_low: f64,
    #[serde(with = "nan_as_null")]
    pub all_layers_high: f64,
}

/// What [`study`] finds: the table's rows, the per-DFC values, the matrix and the null
/// distribution, with the settings that made them. Serialisable (JSON, NaN as `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// 1.
    pub schema: u32,
    /// The oracle's name, e.g. `oracle-abs`.
    pub reference: String,
    pub settings: StudySettings,
    /// One per criterion, in the order given.
    pub rows: Vec<CriterionRow>,
    /// DFC-major: for each DFC in order, one row per criterion in order.
    pub per_dfc: Vec<DfcRow>,
    /// Names: the reference, then every criterion, then the extra scorings.
    pub matrix: Matrix,
    pub null: Option<NullDistribution>,
}
