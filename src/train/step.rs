//! One optimisation step; the epoch loop and the benchmarks run exactly this.

use candle_core::{Device, Var};
use candle_nn::loss::cross_entropy;

use super::{Sgd, TrainError};
use crate::data::Batch;
use crate::eval::count_correct;
use crate::exec::{forward, forward_for_backward, Forward, Gradients, Mode};
use crate::graph::{Graph, GraphError, Params};

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
    let how = Backprop::for_device(batch.images.device());
    let step = step_gradients(graph, params, batch, how)?;
    let correct = count_correct(&step.forward.output, &batch.labels)?;
    if let Some(grads) = &step.grads {
        sgd.step(params, grads, lr)?;
        params.update_running_stats(&step.forward.batch_stats)?;
    }
    Ok(StepOutcome {
        loss: step.loss,
        correct,
    })
}

/// Which backward pass computes a step's gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backprop {
    /// The executor's own ([`crate::exec::Tape`]): it frees each value as soon as the
    /// gradients behind it are out. The CPU's.
    Executor,
    /// candle's autograd over the whole forward pass: other devices', where it runs their own
    /// kernels.
    Autograd,
}

impl Backprop {
    pub fn for_device(device: &Device) -> Self {
        match device.is_cpu() {
            true => Backprop::Executor,
            false => Backprop::Autograd,
        }
    }
}

/// What one step's forward and backward passes give.
pub struct StepGradients {
    /// The logits and the BatchNorms' batch statistics.
    pub forward: Forward,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// The trainable parameters' gradients; `None` when the loss is not finite.
    pub grads: Option<Gradients>,
}

/// The forward pass in training mode, the cross-entropy of `batch`, and the parameters'
/// gradients computed `how`.
pub fn step_gradients(
    graph: &Graph,
    params: &Params,
    batch: &Batch,
    how: Backprop,
) -> Result<StepGradients, TrainError> {
    let (forward, loss, tape) = match how {
        Backprop::Executor => {
            let (forward, tape) = forward_for_backward(graph, params, &batch.images)?;
            let logits = Var::from_tensor(&forward.output)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            (forward, loss, Some((tape, logits)))
        }
        Backprop::Autograd => {
            let forward = forward(graph, params, &batch.images, Mode::TRAIN)?;
            let loss = cross_entropy(&forward.output, &batch.labels)?;
            (forward, loss, None)
        }
    };
    let value = loss.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Ok(StepGradients {
            forward,
            loss: value,
            grads: None,
        });
    }
    let store = loss.backward()?;
    let grads = match tape {
        None => Gradients::from_autograd(params, &store),
        Some((tape, logits)) => {
            let d_logits = store.get(&logits).cloned().ok_or_else(|| {
                GraphError::Invalid("the loss has no gradient for the logits".into())
            })?;
            tape.backward(graph, params, d_logits)?
        }
    };
    Ok(StepGradients {
        forward,
        loss: value,
        grads: Some(grads),
    })
}
