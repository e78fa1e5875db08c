//! Inference latency, measured: several models timed interleaved in one process (A B A B …,
//! so that drift of a shared machine falls on all of them alike), and a per-node breakdown.
//! Callers pass the fused inference form (`graph::fuse_for_inference`) of every model.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::exec::{forward, forward_timed, Mode};
use crate::graph::{ActShape, Graph, GraphError, Params};
use crate::kernels::{conv_backend, with_conv_backend, with_weights_packed_once};

/// Untimed passes per model, then timed passes per model.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    pub warmup: usize,
    pub repeats: usize,
}

/// Repeated wall times of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub median_ms: f64,
    /// Quartiles: the spread of the middle half of the runs.
    pub p25_ms: f64,
    pub p75_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
}

impl Timing {
    pub fn from_seconds(mut seconds: Vec<f64>) -> Self {
        assert!(!seconds.is_empty(), "at least one run");
        seconds.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between order statistics (numpy's default).
            let pos = q * (seconds.len() - 1) as f64;
            let (low, high) = (pos.floor() as usize, pos.ceil() as usize);
            1e3 * (seconds[low] + (seconds[high] - seconds[low]) * (pos - low as f64))
        };
        Self {
            median_ms: at(0.5),
            p25_ms: at(0.25),
            p75_ms: at(0.75),
            min_ms: 1e3 * seconds[0],
            max_ms: 1e3 * seconds[seconds.len() - 1],
            runs: seconds.len(),
        }
    }
}

/// A graph with its parameters.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    pub graph: &'a Graph,
    pub params: &'a Params,
}

/// End-to-end latency of the unpruned network and, if any, a pruned one at one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchLatency {
    pub batch: usize,
    pub unpruned: Timing,
    pub pruned: Option<Timing>,
    /// Unpruned median / pruned median.
    pub speedup: Option<f64>,
}

/// Times the unpruned network against a pruned one (both in their fused inference form) at
/// every batch size, interleaved in this process on `pool`'s threads: the measured speedup.
pub fn measure_speedup(
    unpruned: &Model,
    pruned: Option<&Model>,
    batch_sizes: &[usize],
    protocol: Protocol,
    pool: &rayon::ThreadPool,
    device: &Device,
) -> Result<Vec<BatchLatency>, GraphError> {
    let mut models = vec![*unpruned];
    models.extend(pruned.copied());
    // The pool's threads time the convolution this thread would run.
    let conv = conv_backend();
    batch_sizes
        .iter()
        .map(|&batch| {
            let timings = pool.install(|| {
                with_conv_backend(conv, || time_interleaved(&models, batch, protocol, device))
            })?;
            Ok(BatchLatency {
                batch,
                unpruned: timings[0],
                pruned: timings.get(1).copied(),
                speedup: timings.get(1).map(|p| timings[0].median_ms / p.median_ms),
            })
        })
        .collect()
}

/// Times one forward pass of each model at `batch`, interleaved, on the same random input.
/// All models must take the same input shape.
pub fn time_interleaved(
    models: &[Model],
    batch: usize,
    protocol: Protocol,
    device: &Device,
) -> Result<Vec<Timing>, GraphError> {
    // The models' weights stay as they are while they are timed: packed once, as a runtime
    // that loads a model prepares them.
    with_weights_packed_once(|| {
        let x = random_input(models[0].graph, batch, device)?;
        let run = |m: &Model| -> Result<f64, GraphError> {
            let started = Instant::now();
            let y = forward(m.graph, m.params, &x, Mode::EVAL)?.output;
            y.device().synchronize()?;
            Ok(started.elapsed().as_secs_f64())
        };
        for _ in 0..protocol.warmup {
            for m in models {
                run(m)?;
            }
        }
        let mut seconds = vec![Vec::with_capacity(protocol.repeats); models.len()];
        for _ in 0..protocol.repeats {
            for (m, times) in models.iter().zip(&mut seconds) {
                times.push(run(m)?);
            }
        }
        Ok(seconds.into_iter().map(Timing::from_seconds).collect())
    })
}

/// The median wall time of every node of `model` over `protocol.repeats` passes at `batch`,
/// in graph order.
pub fn node_times(
    model: &Model,
    batch: usize,
    protocol: Protocol,
    device: &Device,
) -> Result<Vec<Timing>, GraphError> {
    with_weights_packed_once(|| {
        let x = random_input(model.graph, batch, device)?;
        for _ in 0..protocol.warmup {
            forward(model.graph, model.params, &x, Mode::EVAL)?;
        }
        let mut per_node = vec![Vec::with_capacity(protocol.repeats); model.graph.nodes.len()];
        for _ in 0..protocol.repeats {
            let (_, times) = forward_timed(model.graph, model.params, &x)?;
            for (node, t) in per_node.iter_mut().zip(times) {
                node.push(t.as_secs_f64());
            }
        }
        Ok(per_node.into_iter().map(Timing::from_seconds).collect())
    })
}

fn random_input(graph: &Graph, batch: usize, device: &Device) -> Result<Tensor, GraphError> {
    match graph.input_shape()? {
        ActShape::Map {
            channels,
            height,
            width,
        } => Ok(Tensor::randn(
            0f32,
            1.0,
            (batch, channels, height, width),
            device,
        )?),
        ActShape::Vector(_) => Err(GraphError::Invalid("the input must be an image".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [25, 50, 75]) = [2, 3, 4]; of [1, 2, 3, 4]:
        // [1.75, 2.5, 3.25].
        let t = Timing::from_seconds(vec![0.004, 0.001, 0.010, 0.003, 0.002]);
        let ms = |v: f64| (v * 1e6).round() / 1e6;
        assert_eq!(
            (ms(t.p25_ms), ms(t.median_ms), ms(t.p75_ms)),
            (2.0, 3.0, 4.0)
        );
        assert_eq!((t.min_ms, t.max_ms, t.runs), (1.0, 10.0, 5));
        let t = Timing::from_seconds(vec![0.001, 0.002, 0.003, 0.004]);
        assert_eq!(
            (ms(t.p25_ms), ms(t.median_ms), ms(t.p75_ms)),
            (1.75, 2.5, 3.25)
        );
    }
}
