//! One file per run, rewritten atomically after every epoch: weights, BN statistics, momentum
//! buffers, the completed epoch count, the seed, the metrics so far and the fingerprint of the
//! settings and inputs it was made from. Random state needs no saving: each epoch's generator
//! is a pure function of (seed, epoch).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{EpochMetrics, TrainError};
use crate::graph::{read_safetensors, write_safetensors, Graph};
use crate::util::fingerprint::Fingerprint;

const FORMAT: &str = "prunelab-checkpoint-2";
const MODEL: &str = "model.";
const MOMENTUM: &str = "momentum.";

/// Everything needed to continue a run.
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: usize,
    pub seed: u64,
    pub graph: Graph,
    pub tensors: BTreeMap<String, Tensor>,
    pub momentum: BTreeMap<String, Tensor>,
    pub history: Vec<EpochMetrics>,
    /// What the run was started from (settings and input digests).
    pub settings: Fingerprint,
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut all = BTreeMap::new();
        for (prefix, map) in [(MODEL, &self.tensors), (MOMENTUM, &self.momentum)] {
            all.extend(map.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())));
        }
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("seed".to_string(), self.seed.to_string()),
            (
                "graph".to_string(),
                serde_json::to_string(&self.graph).expect("graphs serialise"),
            ),
            (
                "history".to_string(),
                serde_json::to_string(&self.history).expect("metrics serialise"),
            ),
            ("settings".to_string(), self.settings.to_json()),
        ]);
        write_safetensors(path, &all, metadata)?;
        Ok(())
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self, TrainError> {
        let (all, metadata) = read_safetensors(path, device)?;
        let bad = |what: &str| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("{what}; start over with --fresh"),
        };
        match metadata.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(other) if other.starts_with("prunelab-checkpoint-") => {
                return Err(bad(&format!(
                    "written by another version of prunelab ({other}, this one reads {FORMAT})"
                )))
            }
            _ => return Err(bad("not a prunelab checkpoint")),
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| bad(&format!("metadata lacks {key:?}")))
        };
        let epoch = field("epoch")?
            .parse()
            .map_err(|_| bad("unreadable epoch"))?;
        let seed = field("seed")?.parse().map_err(|_| bad("unreadable seed"))?;
        let graph = serde_json::from_str(field("graph")?).map_err(|_| bad("unreadable graph"))?;
        let history =
            serde_json::from_str(field("history")?).map_err(|_| bad("unreadable history"))?;
        let settings =
            Fingerprint::from_json(field("settings")?).ok_or_else(|| bad("unreadable settings"))?;
        let (mut tensors, mut momentum) = (BTreeMap::new(), BTreeMap::new());
        for (name, tensor) in all {
            if let Some(rest) = name.strip_prefix(MODEL) {
                tensors.insert(rest.to_string(), tensor);
            } else if let Some(rest) = name.strip_prefix(MOMENTUM) {
                momentum.insert(rest.to_string(), tensor);
            }
        }
        Ok(Self {
            epoch,
            seed,
            graph,
            tensors,
            momentum,
            history,
            settings,
        })
    }
}

/// Where a run's checkpoint lives.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}
