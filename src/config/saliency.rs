//! `[saliency]`: which criteria score the channels, and how a coupled DFC's members combine.

use serde::{Deserialize, Serialize};

use super::study::{check_batch, ImageRequest, ImageSet};

/// `[saliency]`: the criteria scored by the `scores` stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaliencyConfig {
    /// Criteria to score, each once. Data-free: `"dfpc"` (DFPC's BGSC, pairs in graph order),
    /// `"dfpc-name-order"` (the same, pairs ordered by layer name as the public DFPC code
    /// does), `"l1"`, `"l2"` (producer filter norms), `"bn-scale"` (|γ|), `"random"` (seeded
    /// by `seed`). On `images`, in one pass: `"act-mean"`, `"act-std"`, `"apoz"` (statistics
    /// of the channel where its consumers read it), `"taylor"` (Molchanov et al. 2017),
    /// `"obd"` (second order, Fisher approximation of the Hessian), `"tvs"` (TVSPrune's
    /// Hellinger bound on class separability) and `"tvs-mean"` (its mean-only variant).
    /// Default: all thirteen.
    #[serde(default = "default_criteria")]
    pub criteria: Vec<CriterionName>,
    /// How the members of a coupled DFC (producers, BatchNorms, producer→consumer pairs)
    /// combine into one score per channel: `"sum"` (as DFPC does), `"mean"` or `"max"`.
    /// Default `"sum"`.
    #[serde(default)]
    pub reduction: Reduction,
    /// The images the data-driven criteria read.
    #[serde(default)]
    pub images: ImageSet,
    /// Images per pass of the data-driven criteria. Default 128.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_batch() -> usize {
    128
}

impl Default for SaliencyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [saliency] key has a default")
    }
}

/// Declares [`CriterionName`] from the criteria's table.
macro_rules! criterion_names {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal => $make:expr,)*) => {
        /// A saliency criterion's name in the config and in every output.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum CriterionName {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)*
        }

        impl CriterionName {
            /// Every criterion, in the table's order.
            pub const ALL: [CriterionName; [$($name),*].len()] = [$(CriterionName::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(CriterionName::$variant => $name,)*
                }
            }
        }
    };
}

crate::saliency::registry::criteria!(criterion_names);

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
    pub fn image_request(&self) -> ImageRequest<'_> {
        ImageRequest {
            set: &self.images,
            key: "saliency.images",
            default_count: 1024,
        }
    }

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
        self.images.problems("saliency.images", fail);
        check_batch("saliency.batch", self.batch, fail);
    }
}
