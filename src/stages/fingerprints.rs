//! What each stage is made from, side by side: the config sections it reads and the digests of
//! the stages it reads. Computed once per run, before any stage runs, so `--dry-run` and the
//! run compare the same values.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Experiment;
use crate::data::Dataset;
use crate::saliency;
use crate::util::fingerprint::{file_digest, hex, Fingerprint};
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
    /// What every stage of `e` is made from, with the digest of the `data` read; without data
    /// (a dry run before the download that brings it), the digest is left out.
    pub fn of(e: &Experiment, data: Option<&Dataset>) -> Result<Self, Error> {
        let with_data = |f: Fingerprint| match data {
            Some(data) => f.with_data(data),
            None => f,
        };
        let model = with_data(
            Fingerprint::of_training(e)
                .map_err(|err| Error::Input(format!("model.weights: {err}")))?,
        );
        let model_digest = model.digest();
        let scores = Self::scores(e, &model_digest, data);
        let oracle = e.oracle.as_ref().map(|config| {
            with_data(Fingerprint::of_stage(
                &json!({ "oracle": config }),
                [("model", &*model_digest)],
            ))
        });
        let correlation = match (e.correlation(), &oracle) {
            (Some(config), Some(oracle)) => Some(Fingerprint::of_stage(
                &json!({ "correlation": config }),
                [("scores", &*scores.digest()), ("oracle", &*oracle.digest())],
            )),
            _ => None,
        };
        let prune = e.prune.as_ref().map(|config| {
            with_data(Fingerprint::of_stage(
                &json!({ "prune": config, "latency": e.latency }),
                [("model", &*model_digest), ("scores", &*scores.digest())],
            ))
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

/// The key under which the data digest is recorded.
pub const DATA_CONTENTS: &str = "data.contents";

impl Fingerprint {
    /// What training reads: `seed`, `device`, `[data]` (but its folder), `[model]` and
    /// `[train]`, with `model.weights` and `model.onnx` replaced by the digests of the files'
    /// contents.
    pub fn of_training(experiment: &Experiment) -> std::io::Result<Self> {
        // An ONNX model's file is recorded by its contents (and its input size); a built-in
        // network by its name alone, as before ONNX models were read.
        let mut model = json!({ "arch": experiment.model.arch });
        if let Some(path) = &experiment.model.onnx {
            model["onnx"] = json!(format!("sha256:{}", file_digest(path)?));
            model["input"] = json!(experiment.model.input);
        }
        let sections = json!({
            "seed": experiment.seed,
            "device": experiment.device,
            "data": experiment.data,
            "model": model,
            "train": experiment.train,
        });
        let weights = match &experiment.model.weights {
            Some(path) => format!("sha256:{}", file_digest(path)?),
            None => "none".to_string(),
        };
        Ok(Self::of_stage(&sections, [("model.weights", &*weights)]).without("data.dir"))
    }

    /// Adds the digest of the images and labels actually read.
    pub fn with_data(self, data: &Dataset) -> Self {
        let mut hasher = Sha256::new();
        // An empty validation split adds nothing, so runs without one keep their digest.
        let validation = (!data.validation.is_empty()).then_some(&data.validation);
        for split in [Some(&data.train), Some(&data.test), validation]
            .into_iter()
            .flatten()
        {
            for n in [split.len(), split.channels, split.height, split.width] {
                hasher.update((n as u64).to_le_bytes());
            }
            hasher.update(&split.images);
            hasher.update(&split.labels);
        }
        self.with(
            DATA_CONTENTS,
            &format!("sha256:{}", hex(&hasher.finalize())),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn experiment(text: &str) -> Experiment {
        Experiment::parse(Path::new("x.toml"), text).unwrap()
    }

    const BASE: &str = "[data]\ndataset = \"synthetic\"\n[model]\narch = \"resnet8\"\n";

    #[test]
    fn changed_keys_are_named_with_both_values() {
        let a = Fingerprint::of_training(&experiment(&format!("{BASE}[train]\nlr = 0.1"))).unwrap();
        let b =
            Fingerprint::of_training(&experiment(&format!("{BASE}[train]\nlr = 0.2\nepochs = 4")))
                .unwrap();
        assert_eq!(
            a.differences(&b),
            ["train.epochs: 200 → 4", "train.lr: 0.1 → 0.2"]
        );
        assert!(a.differences(&a.clone()).is_empty());
    }

    #[test]
    fn defaults_written_out_are_the_same_fingerprint() {
        let a = Fingerprint::of_training(&experiment(BASE)).unwrap();
        let b = Fingerprint::of_training(&experiment(&format!(
            "{BASE}[train]\nlr = 0.1\nmomentum = 0.9"
        )))
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn round_trips_through_json() {
        let a = Fingerprint::of_training(&experiment(BASE)).unwrap();
        assert_eq!(Fingerprint::from_json(&a.to_json()), Some(a));
    }
}
