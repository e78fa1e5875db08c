//! The model stage: train (or resume, or evaluate `model.weights`) the experiment's network and
//! save it under `results/<name>/model/`, or load it when the stage finished earlier from the
//! same settings and data.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use super::model_source::{initial_params, model_stem};
use super::record::{self, Stage, Status};
use super::skeleton::Context;
use super::Plan;
use crate::data::Augment;
use crate::eval::evaluate;
use crate::graph::{load_model, save_model, Params};
use crate::train::{checkpoint_path, Checkpoint, EpochMetrics, TrainState, Trainer};
use crate::util::fingerprint::Fingerprint;
use crate::{report, Error};

/// Where training starts.
pub enum Start {
    /// Nowhere: the model stage finished from these very settings and data.
    Finished,
    /// From `model.weights` or the seeded initialisation (`--fresh` also lands here).
    Fresh { params: Params, overwrites: bool },
    /// From the run's checkpoint, made from the same settings.
    Resume(Box<Checkpoint>),
}

impl Start {
    /// The epochs left to train of `epochs`.
    pub fn epochs_left(&self, epochs: usize) -> usize {
        match self {
            Start::Finished => 0,
            Start::Resume(c) => epochs.saturating_sub(c.epoch),
            Start::Fresh { .. } => epochs,
        }
    }
}

/// Where the model stage starts, given where its record stands (`status`): finished (its
/// record matches and its outputs are intact), from the run's checkpoint (which must have been
/// made from the same settings: a run whose outputs were lost rebuilds them from it), or afresh
/// (`fresh`, or nothing to resume).
pub fn start(
    plan: &Plan,
    fingerprint: &Fingerprint,
    status: &Status,
    device: &Device,
    fresh: bool,
) -> Result<Start, Error> {
    let checkpoint = checkpoint_path(&Stage::Model.dir(&plan.out_dir));
    let start = if matches!(status, Status::Done(_)) && !fresh {
        Start::Finished
    } else if checkpoint.exists() && !fresh {
        Start::Resume(Box::new(resumable(plan, &checkpoint, fingerprint, device)?))
    } else {
        Start::Fresh {
            params: initial_params(plan, device)?,
            overwrites: checkpoint.exists(),
        }
    };
    Ok(start)
}

/// The run's checkpoint, if it can be resumed with these settings.
fn resumable(
    plan: &Plan,
    path: &Path,
    fingerprint: &Fingerprint,
    device: &Device,
) -> Result<Checkpoint, Error> {
    let fresh = "run with --fresh to start over (the checkpoint will be overwritten)";
    let saved =
        Checkpoint::load(path, device).map_err(|err| Error::Resume(format!("{err}; {fresh}")))?;
    let changed = saved.settings.differences(fingerprint);
    if !changed.is_empty() {
        return Err(Error::Resume(format!(
            "{} was made with other settings than {}:\n  {}\nRestore them to resume, or {fresh}.",
            path.display(),
            plan.experiment.name(),
            changed.join("\n  ")
        )));
    }
    if saved.graph != plan.graph || saved.seed != plan.experiment.seed {
        return Err(Error::Resume(format!(
            "{} was written by a different model or seed; {fresh}",
            path.display()
        )));
    }
    Ok(saved)
}

/// What the model stage records in `model/summary.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub arch: String,
    pub dataset: String,
    pub parameters: usize,
    pub epochs: usize,
    pub test_loss: f64,
    pub test_accuracy: f64,
    #[serde(skip)]
    pub resumed_after_epoch: usize,
    #[serde(skip)]
    pub cached: bool,
}

/// Trains (or resumes, or evaluates `model.weights`), saves the network and records the stage;
/// when it finished earlier from the same settings and data, loads what it saved.
pub fn model_stage(context: &Context, start: Start) -> Result<(Params, ModelRecord), Error> {
    let (plan, data, device) = (context.plan, context.data, context.device);
    let fingerprint = &context.made_from.model;
    let started = Instant::now();
    let e = &plan.experiment;
    let dir = Stage::Model.dir(&plan.out_dir);
    let summary_path = dir.join("summary.json");
    let (mut params, state) = match start {
        Start::Finished => {
            let (graph, params) = load_model(&model_stem(&plan.out_dir), device)?;
            let unreadable = |why: String| Error::Io {
                path: summary_path.clone(),
                source: std::io::Error::other(why),
            };
            let bytes = std::fs::read(&summary_path).map_err(|e| unreadable(e.to_string()))?;
            let mut record: ModelRecord =
                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
            if graph != plan.graph {
                return Err(Error::Stale(format!(
                    "{}: the saved model's architecture differs from the experiment's; rerun with --fresh",
                    dir.display()
                )));
            }
            record.cached = true;
            return Ok((params, record));
        }
        Start::Resume(saved) => (
            Params::from_tensors(&plan.graph, saved.tensors.clone(), device)?,
            TrainState::resumed(&e.train, *saved),
        ),
        Start::Fresh { params, .. } => (params, TrainState::fresh(&e.train)),
    };
    record::invalidate(&plan.out_dir, Stage::Model)?;
    let resumed_after_epoch = state.history.len();

    let normalizer = e.data.normalizer();
    let trainer = Trainer {
        graph: &plan.graph,
        data,
        evaluated_on: "test",
        normalizer: &normalizer,
        augment: Augment {
            crop_padding: e.data.crop_padding,
            flip: e.data.flip,
        },
        device,
        config: &e.train,
        seed: e.seed,
        checkpoint: checkpoint_path(&dir),
        settings: fingerprint,
    };
    let history = trainer.run(&mut params, state, &mut |history| {
        write_history(plan, history)?;
        Ok(())
    })?;
    // Also when no epoch ran in this invocation: outputs that lag the checkpoint (a run killed
    // after its last checkpoint) are rebuilt from it.
    write_history(plan, &history)?;

    let test = match history.last() {
        Some(last) => crate::eval::Evaluation {
            loss: last.test_loss,
            accuracy: last.test_accuracy,
        },
        None => {
            let test = evaluate(
                &plan.graph,
                &params,
                &data.test,
                &normalizer,
                e.train.batch_size,
                device,
            )?;
            if !test.loss.is_finite() {
                return Err(Error::Input(format!(
                    "model.weights: the test loss of these weights is {}; the weights or the normalisation do not suit this data",
                    test.loss
                )));
            }
            test
        }
    };
    let metadata = [("settings".to_string(), fingerprint.to_json())].into();
    let stem = model_stem(&plan.out_dir);
    save_model(&plan.graph, &params, &stem, metadata)?;
    let batchnorm = e.model.onnx_batchnorm;
    crate::onnx::save(
        &stem.with_extension("onnx"),
        &plan.graph,
        &params,
        batchnorm,
    )?;
    let record = ModelRecord {
        name: e.name().to_string(),
        arch: e.model.label(),
        dataset: e.data.dataset.label().to_string(),
        parameters: plan.graph.parameter_count(),
        epochs: history.len(),
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        resumed_after_epoch,
        cached: false,
    };
    crate::util::atomic_file::write_json(&summary_path, &record)?;
    record::finish(
        &plan.out_dir,
        Stage::Model,
        fingerprint,
        started.elapsed().as_secs_f64(),
    )?;
    Ok((params, record))
}

/// The metrics table, the timing table and the training curves, from the whole history.
fn write_history(
    plan: &Plan,
    history: &[EpochMetrics],
) -> Result<(), crate::util::tables::FileError> {
    let e = &plan.experiment;
    let out = &Stage::Model.dir(&plan.out_dir);
    report::write_train_metrics(history, &out.join("train_metrics.csv"))?;
    crate::util::safe_point::safe_point("after-metrics", history.len());
    report::write_train_timing(history, &out.join("train_timing.csv"))?;
    let title = format!(
        "{}: {} on {}",
        e.name(),
        e.model.label(),
        e.data.dataset.label()
    );
    report::training_curves(history, &title, &out.join("training_curves"))
}
