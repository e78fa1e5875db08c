//! Measuring a model: accuracy and loss on a split, latency, throughput and memory; comparing
//! scorings by rank correlation.

mod accuracy;
mod correlation;
mod latency;
mod memory;
mod oracle_bench;
mod rank_correlation;
mod saliency_bench;
mod throughput;

pub use accuracy::{count_correct, evaluate, Evaluation};
pub use correlation::{
    kendall_tau_b, l2_normalised, spearman, study, CriterionRow, DfcInfo, DfcRow, Estimate, Matrix,
    NullDistribution, Scoring, Study, StudySettings,
};
pub use latency::{
    measure_speedup, node_times, time_interleaved, BatchLatency, Model, Protocol, Timing,
};
pub use memory::{reset_peak, resident_mib};
pub use oracle_bench::{compare_oracles, DfcOracleTiming, OracleComparison};
pub use rank_correlation::average_ranks;
#[cfg(test)]
pub(crate) use rank_correlation::spearman as reference_spearman;
pub use saliency_bench::{bench_criteria, CriterionTiming, OrderAgreement};
pub use throughput::{bench_model, BenchBudget, BenchRow};
