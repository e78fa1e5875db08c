//! Measuring a model: accuracy and loss on a split.

mod accuracy;

pub use accuracy::{count_correct, evaluate, Evaluation};
