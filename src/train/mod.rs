//! Training: SGD, learning-rate schedules, the epoch loop, checkpoints.

#![forbid(unsafe_code)]

mod checkpoint;
mod epoch_loop;
mod progress;
mod schedule;
mod sgd;
mod step;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use checkpoint::{path_in as checkpoint_path, Checkpoint};
pub use epoch_loop::{TrainState, Trainer};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};
pub use step::{step_gradients, train_step, Backprop, StepGradients, StepOutcome};

/// What one epoch measured. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Wall time of the training part of the epoch (evaluation excluded).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "training diverged: {what} in epoch {epoch} (lr {lr}). Lower train.lr or add train.warmup_epochs. {next}"
    )]
    Diverged {
        epoch: usize,
        what: String,
        /// The rate, as [`crate::config::number`] writes it.
        lr: String,
        /// What is left to start again from, and how.
        next: String,
    },
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("after epoch {epoch}: {source}")]
    AfterEpoch {
        epoch: usize,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
