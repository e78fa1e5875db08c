//! Measuring a model: accuracy and loss on a split, latency, throughput and memory; comparing
//! scorings by rank correlation.

mod accuracy;
mod latency;
mod memory;
mod rank_correlation;
mod saliency_bench;
mod throughput;

pub use accuracy::{count_correct, evaluate, Evaluation};
pub use latency::{node_times, time_interleaved, Model, Protocol, Timing};
pub use memory::{reset_peak, resident_mib};
pub use rank_correlation::{average_ranks, spearman};
pub use saliency_bench::{bench_criteria, CriterionTiming, OrderAgreement};
pub use throughput::{bench_model, BenchBudget, BenchRow};
