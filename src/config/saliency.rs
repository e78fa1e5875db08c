//! `[saliency]`: which criteria score the channels, and how a coupled DFC's members combine.

use serde::{Deserialize, Serialize};

/// `[saliency]`: the criteria scored by the `scores` stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaliencyConfig {
    /// Criteria to score, each once: `"dfpc"` (DFPC's data-free BGSC, pairs in graph order),
    /// `"dfpc-name-order"` (the same, pairs ordered by layer name as the public DFPC code
    /// does), `"l1"`, `"l2"` (producer filter norms), `"bn-scale"` (|γ|), `"random"` (seeded
    /// by `seed`). Default: all six.
    #[serde(default = "default_criteria")]
    pub criteria: Vec<CriterionName>,
    /// How the members of a coupled DFC (producers, BatchNorms, producer→consumer pairs)
    /// combine into one score per channel: `"sum"` (as DFPC does), `"mean"` or `"max"`.
    /// Default `"sum"`.
    #[serde(default)]
    pub reduction: Reduction,
}

impl Default for SaliencyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [saliency] key has a default")
    }
}

/// A saliency criterion's name in the config and in every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CriterionName {
    Dfpc,
    DfpcNameOrder,
    L1,
    L2,
    BnScale,
    Random,
}

impl CriterionName {
    pub const ALL: [CriterionName; 6] = [
        CriterionName::Dfpc,
        CriterionName::DfpcNameOrder,
        CriterionName::L1,
        CriterionName::L2,
        CriterionName::BnScale,
        CriterionName::Random,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CriterionName::Dfpc => "dfpc",
            CriterionName::DfpcNameOrder => "dfpc-name-order",
            CriterionName::L1 => "l1",
            CriterionName::L2 => "l2",
            CriterionName::BnScale => "bn-scale",
            CriterionName::Random => "random",
        }
    }
}

/// How the scores of a DFC's members combine, channel by channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    #[default]
    Sum,
    Mean,
    Max,
}

impl Reduction {
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::Max => "max",
        }
    }
}

fn default_criteria() -> Vec<CriterionName> {
    CriterionName::ALL.to_vec()
}

impl SaliencyConfig {
    /// The rules serde cannot check.
    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        if self.criteria.is_empty() {
            fail(
                "saliency.criteria",
                "must name at least one criterion, e.g. [\"dfpc\", \"l1\"]".into(),
            );
        }
        let mut seen = Vec::new();
        for c in &self.criteria {
            if seen.contains(c) {
                fail("saliency.criteria", format!("names {:?} twice", c.as_str()));
            }
            seen.push(*c);
        }
    }
}
