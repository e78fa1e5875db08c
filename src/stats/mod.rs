//! Comparing scorings: rank correlation (Spearman, Kendall τ-b), per-layer ℓ2 normalisation,
//! bootstrap intervals and the whole study against the oracle.

#![forbid(unsafe_code)]

mod across_seeds;
mod correlation;
mod ranks;

pub use across_seeds::{student_t_quantile, AcrossSeeds};
pub use correlation::{
    kendall_tau_b, l2_normalised, spearman, study, CriterionRow, DfcInfo, DfcRow, Estimate, Matrix,
    NullDistribution, Scoring, Study, StudySettings,
};
pub use ranks::average_ranks;
#[cfg(test)]
pub(crate) use ranks::spearman as reference_spearman;
