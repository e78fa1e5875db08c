//! A prune log: the plans that turn the original network into a pruned one, in order, each in
//! the channel indices of the network it applies to (a sweep's single cumulative plan is in
//! the original indices). Replaying it from the original model gives the pruned model.

use serde::{Deserialize, Serialize};

use crate::graph::{prune, ChannelPlan, Graph, GraphError, Params};

/// The format of `prune_log.json`; another is not read.
const FORMAT: &str = "prunelab-prune-log-1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneLog {
    pub format: String,
    /// The architecture of the original network.
    pub arch: String,
    /// The digest of the settings the original model was made from.
    pub model: String,
    pub plans: Vec<ChannelPlan>,
}

impl PruneLog {
    pub fn new(arch: &str, model: &str, plans: Vec<ChannelPlan>) -> Self {
        Self {
            format: FORMAT.into(),
            arch: arch.into(),
            model: model.into(),
            plans,
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let log: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not a prune log: {e}"))?;
        if log.format != FORMAT {
            return Err(format!("written in {}, not {FORMAT}", log.format));
        }
        Ok(log)
    }

    /// Applies every plan in order to the original network.
    pub fn replay(&self, graph: &Graph, params: &Params) -> Result<(Graph, Params), GraphError> {
        let mut current = (graph.clone(), params.clone());
        for plan in &self.plans {
            current = prune(&current.0, &current.1, plan)?;
        }
        Ok(current)
    }
}
