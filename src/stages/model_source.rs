//! "The model of this experiment": the run's trained model, `model.weights`, or (for commands
//! that only need shapes, like timing) the seeded initialisation.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::graph::{load_model, load_state_dict, read_model_metadata, Graph, GraphError, Params};
use crate::stages::fingerprints::DATA_CONTENTS;
use crate::stages::record::Stage;
use crate::stages::Plan;
use crate::util::fingerprint::Fingerprint;
use crate::Error;

/// The weights a run starts from: `model.weights` or `model.onnx` when given, else a seeded
/// initialisation.
pub(crate) fn initial_params(plan: &Plan, device: &Device) -> Result<Params, Error> {
    let e = &plan.experiment;
    match (&e.model.weights, &e.model.onnx) {
        (Some(path), _) => {
            check_is_file(path, "model.weights")?;
            load_state_dict(path, &plan.graph, device)
                .map_err(|err| Error::Input(format!("model.weights: {err}")))
        }
        (None, Some(path)) => Ok(
            crate::onnx::load(path, e.model.input, &plan.dataset, device)
                .map_err(|why| Error::Input(format!("model.onnx: {why}")))?
                .1,
        ),
        (None, None) => Ok(Params::init(&plan.graph, e.seed, device)?),
    }
}

/// A file named by the experiment must exist and be a file.
pub(crate) fn check_is_file(path: &Path, key: &str) -> Result<(), Error> {
    if path.is_file() {
        Ok(())
    } else if path.is_dir() {
        Err(Error::Input(format!(
            "{key}: {} is a folder, not a file",
            path.display()
        )))
    } else {
        Err(Error::Input(format!(
            "{key}: {} does not exist (convert a PyTorch checkpoint with scripts/pth_to_safetensors.py)",
            path.display()
        )))
    }
}

/// Where the network of [`model_of`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The run folder's trained model (`<stem>.json` + `<stem>.safetensors`).
    Trained(PathBuf),
    /// `model.weights`.
    Weights(PathBuf),
    /// The seeded initialisation: no run has trained this experiment yet.
    Initialisation(u64),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Trained(stem) => write!(f, "{}.{{json,safetensors}}", stem.display()),
            ModelSource::Weights(path) => write!(f, "{}", path.display()),
            ModelSource::Initialisation(seed) => write!(f, "initialisation (seed {seed})"),
        }
    }
}

/// The network this experiment describes, for commands that use it without training: the run
/// folder's trained model when a run has written one (refused when the experiment file no
/// longer describes it), else `model.weights`, else the seeded initialisation.
pub fn model_of(plan: &Plan, device: &Device) -> Result<(Graph, Params, ModelSource), Error> {
    let e = &plan.experiment;
    let stem = model_stem(&plan.out_dir);
    if !stem.with_extension("json").is_file() {
        let source = match (&e.model.weights, &e.model.onnx) {
            (Some(path), _) | (None, Some(path)) => ModelSource::Weights(path.clone()),
            (None, None) => ModelSource::Initialisation(e.seed),
        };
        return Ok((plan.graph.clone(), initial_params(plan, device)?, source));
    }
    let stale = |why: String| {
        Error::Stale(format!(
            "{}.{{json,safetensors}} is not the model of this experiment: {why}. Rerun the experiment (with --fresh) or give it another name.",
            stem.display()
        ))
    };
    let recorded = read_model_metadata(&stem)
        .map_err(|e| unreadable_model(&stem, e))?
        .get("settings")
        .and_then(|text| Fingerprint::from_json(text))
        .ok_or_else(|| stale("it records no settings (written by another version)".into()))?;
    // The data is not read here, so its digest is not compared.
    let now = Fingerprint::of_training(e)
        .map_err(|err| Error::Input(format!("model.weights: {err}")))?
        .without(DATA_CONTENTS);
    let changed = recorded.without(DATA_CONTENTS).differences(&now);
    if !changed.is_empty() {
        return Err(stale(format!(
            "the settings changed since it was trained ({})",
            changed.join("; ")
        )));
    }
    let (graph, params) = load_saved_model(&stem, device)?;
    if graph != plan.graph {
        return Err(stale("its architecture differs".into()));
    }
    Ok((graph, params, ModelSource::Trained(stem)))
}

/// A saved model a command reads (`<stem>.json` and `<stem>.safetensors`, as [`save_model`]
/// writes them): files that are not one are the user's input, refused naming the file.
///
/// [`save_model`]: crate::graph::save_model
pub fn load_saved_model(stem: &Path, device: &Device) -> Result<(Graph, Params), Error> {
    load_model(stem, device).map_err(|e| unreadable_model(stem, e))
}

/// The refusal for a saved model that cannot be read.
pub fn unreadable_model(stem: &Path, error: GraphError) -> Error {
    Error::Input(format!(
        "{error}\n  expected a model saved by prunelab: {}.json and {}.safetensors as a run or the prune stage wrote them",
        stem.display(),
        stem.display()
    ))
}

/// Where the model stage keeps the trained network: `results/<name>/model/model.{json,safetensors}`.
pub fn model_stem(run_dir: &Path) -> PathBuf {
    Stage::Model.dir(run_dir).join("model")
}
