//! Top-1 accuracy and mean cross-entropy of a graph on a dataset split, in evaluation mode.

use candle_core::{DType, Device, Tensor, D};

use crate::data::{Batcher, Normalizer, Split};
use crate::exec::{forward, Mode};
use crate::graph::{fuse_for_inference, Graph, GraphError, Params};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy per image.
    pub loss: f64,
    /// Fraction of images whose largest logit is the label, in [0, 1].
    pub accuracy: f64,
}

/// Evaluates `graph` on every image of `split`, `batch_size` at a time, in its inference form
/// (BatchNorm folded into the convolutions).
pub fn evaluate(
    graph: &Graph,
    params: &Params,
    split: &Split,
    normalizer: &Normalizer,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation, GraphError> {
    let (graph, params) = &fuse_for_inference(graph, params)?;
    let batcher = Batcher {
        split,
        normalizer,
        device,
    };
    let indices: Vec<usize> = (0..split.len()).collect();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = batcher.batch(chunk, None)?;
        let logits = forward(graph, params, &batch.images, Mode::EVAL)?.output;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * chunk.len() as f64;
        correct += count_correct(&logits, &batch.labels)?;
    }
    let n = split.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
    })
}

/// How many rows of `logits` (`[N, classes]`) have their maximum at `labels` (`[N]`, u32).
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<usize> {
    let hits = logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()?;
    Ok(hits.to_scalar::<f32>()? as usize)
}
