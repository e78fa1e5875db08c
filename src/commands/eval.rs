//! `prunelab eval`: a pruned model's folder (as the prune stage exports it: `model.json`,
//! `model.safetensors`, `prune_log.json`, `point.json`) evaluated on an experiment's test set,
//! without the experiment that made it.

use std::path::{Path, PathBuf};

use crate::config::Experiment;
use crate::eval::evaluate;
use candle_core::Device;

use crate::graph::{ActShape, Graph, Params};
use crate::prune::Score;
use crate::stages::model_source::load_saved_model;
use crate::stages::prune::ExportedPoint;
use crate::util::threads::on_worker;
use crate::Error;

/// Images per batch when the folder records none.
const DEFAULT_BATCH: usize = 256;

/// A pruned model evaluated again.
#[derive(Debug, Clone)]
pub struct Reevaluation {
    pub model: PathBuf,
    pub parameters: usize,
    pub test: Score,
    pub images: usize,
    pub batch: usize,
    /// The test score the prune stage recorded, when the folder has a `point.json`.
    pub recorded: Option<Score>,
}

impl Reevaluation {
    /// Whether the accuracy equals the recorded one exactly (true without a record).
    pub fn reproduces(&self) -> bool {
        self.recorded
            .is_none_or(|r| r.accuracy == self.test.accuracy)
    }
}

impl std::fmt::Display for Reevaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} parameters; test accuracy {:.2}%, loss {:.4} on {} images (batches of {})",
            self.model.display(),
            self.parameters,
            100.0 * self.test.accuracy,
            self.test.loss,
            self.images,
            self.batch
        )?;
        match self.recorded {
            Some(r) if self.reproduces() => write!(
                f,
                "; the recorded {:.2}% reproduced exactly",
                100.0 * r.accuracy
            ),
            Some(r) => write!(
                f,
                "; the prune stage recorded {:.4}%, a difference of {:+.4} points",
                100.0 * r.accuracy,
                100.0 * (self.test.accuracy - r.accuracy)
            ),
            None => write!(f, "; no recorded accuracy (no point.json)"),
        }
    }
}

/// The model in a model's folder (`model.json`, `model.safetensors`), refused by name when the
/// folder is not one.
pub fn load_folder(dir: &Path, device: &Device) -> Result<(Graph, Params), Error> {
    let stem = dir.join("model");
    let expected = "give the folder that holds model.json and model.safetensors (results/<name>/prune/<variant>/<point>, or a run's model/)";
    if dir.is_file() {
        return Err(Error::Input(format!(
            "{} is a file, not a model's folder; {expected}",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "{} does not exist; {expected}",
            dir.display()
        )));
    }
    if !stem.with_extension("json").is_file() {
        return Err(Error::Input(format!(
            "{}: not a model's folder (it holds no model.json); {expected}",
            dir.display()
        )));
    }
    load_saved_model(&stem, device)
}

/// Loads the model in `dir` and evaluates it on `experiment`'s test set, in the batch size the
/// prune stage recorded.
pub fn evaluate_exported(dir: &Path, experiment: &Experiment) -> Result<Reevaluation, Error> {
    let device = crate::stages::device(experiment.device)?;
    let (graph, params) = load_folder(dir, &device)?;
    let point_path = dir.join("point.json");
    let exported: Option<ExportedPoint> = match std::fs::read(&point_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Input(format!("{}: unreadable: {e}", point_path.display())))?,
        ),
        Err(_) => None,
    };
    let data = experiment
        .data
        .load(experiment.synthetic(), experiment.seed)?;
    let test = &data.test;
    let classes = graph.shapes()?.last().copied();
    let fits = matches!(graph.input_shape()?, ActShape::Map { channels, height, width }
        if (channels, height, width) == (test.channels, test.height, test.width))
        && classes == Some(ActShape::Vector(test.classes));
    if !fits {
        return Err(Error::Input(format!(
            "{}: the model does not take this experiment's data ({} images of {}×{}×{}, {} classes)",
            dir.display(),
            experiment.data.dataset.label(),
            test.channels,
            test.height,
            test.width,
            test.classes
        )));
    }
    let batch = exported.as_ref().map_or(DEFAULT_BATCH, |e| e.batch);
    let score = evaluate(
        &graph,
        &params,
        test,
        &experiment.data.normalizer(),
        batch,
        &device,
    )?;
    Ok(Reevaluation {
        model: dir.to_path_buf(),
        parameters: graph.parameter_count(),
        test: score.into(),
        images: test.len(),
        batch,
        recorded: exported.and_then(|e| e.point.test),
    })
}

pub fn command(model: &Path, experiment: &Path, threads: Option<usize>) -> Result<(), Error> {
    let experiment = super::load(experiment, threads)?;
    let result = on_worker(|| evaluate_exported(model, &experiment))?;
    println!("{result}");
    if result.reproduces() {
        Ok(())
    } else {
        Err(Error::Differs(
            "the accuracy differs from the one recorded when the model was exported".into(),
        ))
    }
}
