//! What the long stages will cost, measured on this machine before they run: one forward pass
//! and one training step of the initialised network on a few blank images. Counts come from
//! the dataset's known sizes, so the cost is known before the data is there.

use std::time::Instant;

use candle_core::Device;

use crate::config::{OracleConfig, PruneConfig};
use crate::data::Batch;
use crate::exec::{forward, Mode};
use crate::graph::Params;
use crate::stages::oracle::OracleEstimate;
use crate::stages::Plan;
use crate::train::{train_step, Sgd, SgdConfig};
use crate::Error;

/// The oracle's work, and its time at the speed measured on this machine.
pub struct OracleCost {
    pub estimate: OracleEstimate,
    pub seconds: f64,
}

/// What one step of the prune stage costs at the speed measured on this machine.
pub struct PruneCost {
    /// A validation pass.
    pub validation_pass: f64,
    /// An iterative schedule's fine-tuning epoch.
    pub fine_tune_epoch: Option<f64>,
}

/// Images in a timed batch, at most: per image, a larger batch runs at about the same speed,
/// and a dry run of a large network stays short.
const TIMED_ROWS: usize = 32;

/// `rows` blank images of the plan's input shape.
fn blank_images(plan: &Plan, rows: usize, device: &Device) -> Result<candle_core::Tensor, Error> {
    let d = &plan.dataset;
    let shape = (rows, d.channels, d.size, d.size);
    Ok(
        candle_core::Tensor::zeros(shape, candle_core::DType::F32, device)
            .map_err(crate::graph::GraphError::from)?,
    )
}

/// The time of one image's forward pass, from one batch of `rows` images (at most
/// [`TIMED_ROWS`]) through the initialised network.
fn seconds_per_image(plan: &Plan, rows: usize, device: &Device) -> Result<f64, Error> {
    let rows = rows.clamp(1, TIMED_ROWS);
    let params = Params::init(&plan.graph, 0, device)?;
    let x = blank_images(plan, rows, device)?;
    let started = Instant::now();
    forward(&plan.graph, &params, &x, Mode::EVAL)?;
    Ok(started.elapsed().as_secs_f64() / rows as f64)
}

/// Seconds per image of a training step (forward, backward, update) on `rows` blank images
/// (at most [`TIMED_ROWS`]).
fn seconds_per_training_image(plan: &Plan, rows: usize, device: &Device) -> Result<f64, Error> {
    let rows = rows.clamp(1, TIMED_ROWS);
    let mut params = Params::init(&plan.graph, 0, device)?;
    let batch = Batch {
        images: blank_images(plan, rows, device)?,
        labels: candle_core::Tensor::zeros(rows, candle_core::DType::U32, device)
            .map_err(crate::graph::GraphError::from)?,
    };
    let mut sgd = Sgd::new(SgdConfig::of(&plan.experiment.train));
    // The first step also allocates what later steps reuse.
    train_step(&plan.graph, &mut params, &mut sgd, &batch, 0.0)?;
    let started = Instant::now();
    train_step(&plan.graph, &mut params, &mut sgd, &batch, 0.0)?;
    Ok(started.elapsed().as_secs_f64() / rows as f64)
}

/// One training epoch here: a training step per training image, then the evaluation of the
/// test images.
pub fn epoch_seconds(plan: &Plan, device: &Device) -> Result<f64, Error> {
    let d = &plan.dataset;
    let batch = plan.experiment.train.batch_size;
    let train = d.train as f64 * seconds_per_training_image(plan, batch, device)?;
    let evaluated = d.test as f64 * seconds_per_image(plan, batch, device)?;
    Ok(train + evaluated)
}

/// The oracle's runs on `images` images, and their time here.
pub fn oracle_cost(
    plan: &Plan,
    config: &OracleConfig,
    images: usize,
    device: &Device,
) -> Result<OracleCost, Error> {
    let estimate = crate::stages::oracle::estimate(&plan.graph, config, images)?;
    let rows = config.batch * config.tile;
    let seconds = estimate.image_passes * seconds_per_image(plan, rows, device)?;
    Ok(OracleCost { estimate, seconds })
}

/// A prune step's validation pass (and fine-tuning epoch), timed here.
pub fn prune_cost(plan: &Plan, config: &PruneConfig, device: &Device) -> Result<PruneCost, Error> {
    let d = &plan.dataset;
    let images = config.eval_images.unwrap_or(d.validation).min(d.validation);
    let validation_pass = images as f64 * seconds_per_image(plan, config.batch, device)?;
    let fine_tune_epoch = match config.schedule.fine_tunes() {
        true => {
            let images = config.fine_tuning().images.unwrap_or(d.train);
            let rows = plan.experiment.train.batch_size.min(images);
            Some(images as f64 * seconds_per_training_image(plan, rows, device)?)
        }
        false => None,
    };
    Ok(PruneCost {
        validation_pass,
        fine_tune_epoch,
    })
}
