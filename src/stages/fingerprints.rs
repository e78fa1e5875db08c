//! What each stage is made from, side by side: the config sections it reads and the digests of
//! the stages it reads. Computed once per run, before any stage runs, so `--dry-run` and the
//! run compare the same values.

use serde_json::json;

use super::fingerprint::Fingerprint;
use crate::config::Experiment;
use crate::data::Dataset;
use crate::saliency;
use crate::Error;

/// Every stage's fingerprint; a stage absent from the experiment has none.
#[derive(Debug, Clone)]
pub struct Fingerprints {
    /// `seed`, `device`, `[data]` (but its folder), `[model]`, `[train]`, the weights file and
    /// the images read.
    pub model: Fingerprint,
    /// `seed`, `[saliency]`, the model, and the images when a criterion reads them.
    pub scores: Fingerprint,
    /// `[oracle]`, the model and the images.
    pub oracle: Option<Fingerprint>,
    /// `[correlation]`, the scores and the oracle.
    pub correlation: Option<Fingerprint>,
    /// `[prune]`, `[latency]`, the model, the scores and the images.
    pub prune: Option<Fingerprint>,
    /// The prune and correlation stages it puts side by side.
    pub budgets: Option<Fingerprint>,
}

impl Fingerprints {
    pub fn of(e: &Experiment, data: &Dataset) -> Result<Self, Error> {
        let model = Fingerprint::of_training(e)
            .map_err(|err| Error::Input(format!("model.weights: {err}")))?
            .with_data(data);
        let model_digest = model.digest();
        let scores = Self::scores(e, &model_digest, Some(data));
        let oracle = e.oracle.as_ref().map(|config| {
            Fingerprint::of_stage(&json!({ "oracle": config }), [("model", &*model_digest)])
                .with_data(data)
        });
        let correlation = match (e.correlation(), &oracle) {
            (Some(config), Some(oracle)) => Some(Fingerprint::of_stage(
                &json!({ "correlation": config }),
                [("scores", &*scores.digest()), ("oracle", &*oracle.digest())],
            )),
            _ => None,
        };
        let prune = e.prune.as_ref().map(|config| {
            Fingerprint::of_stage(
                &json!({ "prune": config, "latency": e.latency }),
                [("model", &*model_digest), ("scores", &*scores.digest())],
            )
            .with_data(data)
        });
        let budgets = match (&prune, &correlation) {
            (Some(prune), Some(correlation)) => Some(Fingerprint::from_pairs([
                ("prune", &*prune.digest()),
                ("correlation", &*correlation.digest()),
            ])),
            _ => None,
        };
        Ok(Self {
            model,
            scores,
            oracle,
            correlation,
            prune,
            budgets,
        })
    }

    /// What the scores stage of the model with `model_digest` is made from (`prunelab scores`
    /// scores a model given by its weights file, too).
    pub fn scores(e: &Experiment, model_digest: &str, data: Option<&Dataset>) -> Fingerprint {
        let sections = json!({ "seed": e.seed, "saliency": e.saliency });
        let fingerprint = Fingerprint::of_stage(&sections, [("model", model_digest)]);
        match data {
            Some(data) if saliency::needs_of(&e.saliency.criteria).activations => {
                fingerprint.with_data(data)
            }
            _ => fingerprint,
        }
    }
}
