//! Measuring a model: accuracy and loss on a split, and the latency protocol (warm-up,
//! interleaved repeats, medians) that every speedup is read from.

#![forbid(unsafe_code)]

mod accuracy;
mod latency;

pub use accuracy::{count_correct, evaluate, Evaluation};
pub use latency::{
    measure_speedup, node_times, time_interleaved, BatchLatency, Model, Protocol, Timing,
};
