//! Measuring a model: accuracy and loss on a split, latency, throughput and memory.

mod accuracy;
mod latency;
mod memory;
mod throughput;

pub use accuracy::{count_correct, evaluate, Evaluation};
pub use latency::{node_times, time_interleaved, Model, Protocol, Timing};
pub use memory::{reset_peak, resident_mib};
pub use throughput::{bench_model, BenchBudget, BenchRow};
