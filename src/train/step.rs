//! One optimisation step; the epoch loop and the benchmarks run exactly this.

use super::{Sgd, TrainError};
use crate::data::Batch;
use crate::eval::count_correct;
use crate::graph::{forward, Graph, Mode, Params};

/// What one step saw (before its update).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch. When it is not finite, nothing was updated.
    pub loss: f32,
    /// Images of the batch classified correctly.
    pub correct: usize,
}

/// Forward in training mode, cross-entropy, backward, SGD update at `lr`, BN running statistics.
pub fn train_step(
    graph: &Graph,
    params: &mut Params,
    sgd: &mut Sgd,
    batch: &Batch,
    lr: f64,
) -> Result<StepOutcome, TrainError> {
    let out = forward(graph, params, &batch.images, Mode::TRAIN)?;
    let loss = candle_nn::loss::cross_entropy(&out.output, &batch.labels)?;
    let value = loss.to_scalar::<f32>()?;
    let correct = count_correct(&out.output, &batch.labels)?;
    if value.is_finite() {
        sgd.step(params, &loss.backward()?, lr)?;
        params.update_running_stats(&out.batch_stats)?;
    }
    Ok(StepOutcome {
        loss: value,
        correct,
    })
}
