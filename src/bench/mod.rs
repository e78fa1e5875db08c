//! Benchmarks: training and inference throughput with peak memory, the criteria's scoring
//! time, and the oracle against a full forward pass per channel.

#![forbid(unsafe_code)]

mod criteria;
mod memory;
mod oracle;
mod throughput;

pub use criteria::{bench_criteria, CriterionTiming, OrderAgreement};
pub use memory::{reset_peak, resident_mib};
pub use oracle::{compare_oracles, DfcOracleTiming, OracleComparison};
pub use throughput::{bench_model, BenchBudget, BenchRow};
