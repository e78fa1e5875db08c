//! `prunelab scores`: the scores stage alone, on the experiment's trained model (or its
//! `model.weights`).

use crate::cli::ExperimentArgs;
use crate::saliency;
use crate::stages::model_source::{model_of, ModelSource};
use crate::stages::record::Stage;
use crate::stages::scores::{ScoresOutcome, ScoresStage};
use crate::stages::{reuse_or_run, Fingerprints, Plan};
use crate::util::fingerprint::{file_digest, Fingerprint};
use crate::util::run_lock::RunLock;
use crate::util::threads::on_worker;
use crate::Error;

pub fn command(args: &ExperimentArgs) -> Result<(), Error> {
    let plan = Plan::new(super::load(&args.experiment, args.threads)?, &args.results)?;
    println!("{}", on_worker(|| scores(&plan))?);
    Ok(())
}

/// `prunelab scores`: the scores stage on the experiment's model, which must be trained (by a
/// run of the experiment) or given (`model.weights`): scores of an initialisation are noise.
pub fn scores(plan: &Plan) -> Result<ScoresOutcome, Error> {
    let device = crate::stages::device(plan.experiment.device)?;
    let (graph, params, source) = model_of(plan, &device)?;
    let digest = match &source {
        ModelSource::Trained(stem) => model_digest(stem)?,
        ModelSource::Weights(path) => format!(
            "weights:sha256:{}",
            file_digest(path).map_err(|source| Error::Io {
                path: path.clone(),
                source
            })?
        ),
        ModelSource::Initialisation(_) => {
            return Err(Error::Untrained(format!(
                "{}: no trained model in {} to score (scores of an initialisation are noise); run the experiment first to train it, or set model.weights",
                plan.experiment.name(),
                Stage::Model.dir(&plan.out_dir).display()
            )))
        }
    };
    let e = &plan.experiment;
    // Only the data-driven criteria read images: the others score a model without a dataset.
    let data = if saliency::needs_of(&e.saliency.criteria).activations {
        Some(e.data.load(e.synthetic(), e.seed)?)
    } else {
        None
    };
    let _lock = RunLock::acquire(&plan.out_dir)?;
    let stage = ScoresStage {
        plan,
        graph: &graph,
        params: &params,
        data: data.as_ref(),
    };
    let made_from = Fingerprints::scores(e, &digest, data.as_ref());
    reuse_or_run(&stage, &plan.out_dir, &made_from)
}

/// The digest the pipeline gives a trained model: that of the settings it was made from.
fn model_digest(stem: &std::path::Path) -> Result<String, Error> {
    let metadata = crate::graph::read_model_metadata(stem)
        .map_err(|e| crate::stages::model_source::unreadable_model(stem, e))?;
    let settings = metadata
        .get("settings")
        .and_then(|text| Fingerprint::from_json(text))
        .ok_or_else(|| Error::Stale(format!("{}: records no settings", stem.display())))?;
    Ok(settings.digest())
}
