//! Measuring a model: accuracy and loss on a split, throughput and memory.

mod accuracy;
mod memory;
mod throughput;

pub use accuracy::{count_correct, evaluate, Evaluation};
pub use memory::{reset_peak, resident_mib};
pub use throughput::{bench_model, BenchBudget, BenchRow};
