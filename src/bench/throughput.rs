//! Throughput benchmarks of a model on random data: training images/s (the exact training
//! step), inference images/s at two batch sizes (fused inference form), and memory.

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::memory;
use crate::data::Batch;
use crate::exec::{forward, Mode};
use crate::graph::{fuse_for_inference, Graph, GraphError, Params};
use crate::kernels::{conv_backend, with_weights_packed_once};
use crate::train::{train_step, Sgd, SgdConfig, TrainError};

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchBudget {
    /// Untimed runs first (page faults, allocator warm-up).
    pub warmup: usize,
    /// Timed runs: at least this many ...
    pub min_runs: usize,
    /// ... and more until this much time has passed (capped by `max_runs`).
    pub min_time: Duration,
    pub max_runs: usize,
}

impl Default for BenchBudget {
    fn default() -> Self {
        Self {
            warmup: 2,
            min_runs: 5,
            min_time: Duration::from_secs(5),
            max_runs: 200,
        }
    }
}

/// One model's measurements. Rates are medians over the timed runs.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub model: String,
    pub conv: String,
    pub threads: usize,
    pub train_batch: usize,
    pub train_images_per_second: f64,
    pub infer_batch1_images_per_second: f64,
    pub infer_batch_images_per_second: f64,
    /// Peak resident memory during this model's measurements, MiB.
    pub peak_rss_mib: f64,
    /// Multiply-accumulates of one image's forward pass.
    pub macs_per_image: u64,
    /// Achieved GFLOP/s: training counts 3 × 2 × MACs per image (forward, input gradient,
    /// weight gradient), inference 2 × MACs (at the large batch).
    pub train_gflops: f64,
    pub infer_gflops: f64,
    /// Resident memory after the last training step minus halfway through the timed steps,
    /// MiB: near zero when nothing is kept across steps.
    pub train_rss_growth_mib: f64,
}

/// Median seconds per run of `f` under `budget`.
fn median_seconds(
    budget: BenchBudget,
    mut f: impl FnMut() -> Result<(), TrainError>,
) -> Result<f64, TrainError> {
    for _ in 0..budget.warmup {
        f()?;
    }
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < budget.min_runs
        || (started.elapsed() < budget.min_time && times.len() < budget.max_runs)
    {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn random_batch(graph: &Graph, batch: usize, classes: usize) -> Result<Batch, GraphError> {
    let (c, h, w) = match graph.input_shape()? {
        crate::graph::ActShape::Map {
            channels,
            height,
            width,
        } => (channels, height, width),
        crate::graph::ActShape::Vector(_) => {
            return Err(GraphError::Invalid("the input must be an image".into()))
        }
    };
    let images = Tensor::randn(0f32, 1.0, (batch, c, h, w), &Device::Cpu)?;
    let labels: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
    Ok(Batch {
        images,
        labels: Tensor::from_vec(labels, batch, &Device::Cpu)?,
    })
}

/// Measures `arch` on `[3, size, size]` inputs with 10 classes, with the current conv backend.
pub fn bench_model(
    arch: &str,
    size: usize,
    batch: usize,
    budget: BenchBudget,
) -> Result<BenchRow, TrainError> {
    let graph = crate::models::build(arch, 3, size, 10)?;
    let mut params = Params::init(&graph, 0, &Device::Cpu)?;
    memory::reset_peak();

    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    });
    let train_batch = random_batch(&graph, batch, 10)?;
    let mut rss = Vec::new();
    let step_seconds = median_seconds(budget, || {
        // A tiny rate keeps the weights finite however long the benchmark runs.
        train_step(&graph, &mut params, &mut sgd, &train_batch, 1e-4)?;
        rss.push(memory::resident_mib().map_or(0.0, |m| m.0));
        Ok(())
    })?;
    // From halfway through the timed steps to the end: the allocator has settled by then, so
    // growth here is memory kept across steps.
    let rss_growth = rss.last().copied().unwrap_or(0.0)
        - rss
            .get((rss.len() + budget.warmup) / 2)
            .copied()
            .unwrap_or(0.0);

    // Inference runs the fused form (BatchNorm folded into the convolutions).
    let (graph, params) = fuse_for_inference(&graph, &params)?;
    let inference = |n: usize| -> Result<f64, TrainError> {
        let x = random_batch(&graph, n, 10)?.images;
        let seconds = with_weights_packed_once(|| {
            median_seconds(budget, || {
                forward(&graph, &params, &x, Mode::EVAL)?;
                Ok(())
            })
        })?;
        Ok(n as f64 / seconds)
    };
    let infer_batch1 = inference(1)?;
    let infer_batch = inference(batch)?;
    let macs = crate::graph::macs(&graph)?;
    let train_images_per_second = batch as f64 / step_seconds;
    Ok(BenchRow {
        model: arch.to_string(),
        conv: format!("{:?}", conv_backend()).to_lowercase(),
        threads: rayon::current_num_threads(),
        train_batch: batch,
        train_images_per_second,
        infer_batch1_images_per_second: infer_batch1,
        infer_batch_images_per_second: infer_batch,
        macs_per_image: macs,
        train_gflops: 6.0 * macs as f64 * train_images_per_second / 1e9,
        infer_gflops: 2.0 * macs as f64 * infer_batch / 1e9,
        peak_rss_mib: memory::resident_mib().map_or(0.0, |m| m.1),
        train_rss_growth_mib: rss_growth,
    })
}
