//! The study's sections: which images data-driven scoring and the oracle read (`[saliency.images]`,
//! `[oracle.images]`), the oracle's passes (`[oracle]`) and the correlation study (`[correlation]`).

use serde::{Deserialize, Serialize};

use super::{number, MAX_BATCH};

/// Most images a scoring pass or the oracle reads.
const MAX_IMAGES: usize = 1_000_000;
/// Most bootstrap resamples and null seeds.
const MAX_RESAMPLES: usize = 100_000;

/// Which split a fixed image set is drawn from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitChoice {
    #[default]
    Train,
    /// The split held out of the training images (`[data] validation`).
    Validation,
    Test,
}

impl SplitChoice {
    /// The split's name as written in the experiment file.
    pub fn label(self) -> &'static str {
        match self {
            SplitChoice::Train => "train",
            SplitChoice::Validation => "validation",
            SplitChoice::Test => "test",
        }
    }
}

/// A fixed, seeded set of images: `count` images drawn without replacement from `split`
/// (unaugmented, normalised as for evaluation), kept in file order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSet {
    /// How many images; more than the split holds is an error. Default: 1024
    /// (`[saliency.images]`) or 512 (`[oracle.images]`), or the whole split when it holds fewer.
    pub count: Option<usize>,
    /// Seed of the draw. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `"train"` (default), `"validation"` or `"test"`.
    #[serde(default)]
    pub split: SplitChoice,
}

impl ImageSet {
    pub(super) fn problems(&self, key: &str, fail: &mut impl FnMut(&str, String)) {
        if let Some(n) = self.count.filter(|n| !(1..=MAX_IMAGES).contains(n)) {
            fail(
                &format!("{key}.count"),
                format!("must be in 1..={MAX_IMAGES} (got {n})"),
            );
        }
    }
}

/// An image set with the key that names it in errors and the count it stands for when it
/// names none.
#[derive(Debug, Clone, Copy)]
pub struct ImageRequest<'a> {
    pub set: &'a ImageSet,
    pub key: &'static str,
    pub default_count: usize,
}

pub(super) fn check_batch(key: &str, batch: usize, fail: &mut impl FnMut(&str, String)) {
    if !(1..=MAX_BATCH).contains(&batch) {
        fail(key, format!("must be in 1..={MAX_BATCH} (got {batch})"));
    }
}

/// `[oracle]`: the reference every criterion is compared with. For each channel of each DFC,
/// the change of the mean cross-entropy on `images` when the channel is zeroed in every member
/// (what removing it does), BatchNorm in evaluation mode. Present → the oracle and correlation
/// stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    #[serde(default)]
    pub images: ImageSet,
    /// Images per pass of the network's prefix. Default 64.
    #[serde(default = "default_oracle_batch")]
    pub batch: usize,
    /// Channels zeroed at once in one run of the suffix: the batch is repeated `tile` times,
    /// each copy with its own channel masked. Default 8.
    #[serde(default = "default_tile")]
    pub tile: usize,
    /// Tasks the oracle's channels are split over (contiguous runs of channels of equal cost),
    /// each a task of a grid's executor; the results do not depend on it, so it is no part of
    /// what the stage is made from. Default 1.
    #[serde(default = "default_shards", skip_serializing)]
    pub shards: usize,
}

fn default_shards() -> usize {
    1
}

fn default_oracle_batch() -> usize {
    64
}

fn default_tile() -> usize {
    8
}

impl OracleConfig {
    pub fn image_request(&self) -> ImageRequest<'_> {
        ImageRequest {
            set: &self.images,
            key: "oracle.images",
            default_count: 512,
        }
    }

    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        self.images.problems("oracle.images", fail);
        if self.shards == 0 {
            fail("oracle.shards", "must be ≥ 1 (got 0)".into());
        }
        check_batch("oracle.batch", self.batch, fail);
        if !(1..=4096).contains(&self.tile) {
            fail(
                "oracle.tile",
                format!("must be in 1..=4096 (got {})", self.tile),
            );
        } else if self.batch.saturating_mul(self.tile) > MAX_BATCH {
            fail(
                "oracle.tile",
                format!(
                    "oracle.batch × oracle.tile images run at once must be at most {MAX_BATCH} (got {} × {})",
                    self.batch, self.tile
                ),
            );
        }
    }
}

/// `[correlation]`: how each criterion's ranking is compared with the oracle's (`oracle-abs`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Bootstrap resamples of the channels for the intervals; 0 for none. Default 1000.
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    /// Coverage of the bootstrap intervals, in (0, 1). Default 0.95.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Seeds of the random criterion scored as the null distribution; 0 for none. Default 20.
    #[serde(default = "default_null_seeds")]
    pub null_seeds: usize,
    /// Seed of the bootstrap resampling. Default 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_bootstrap() -> usize {
    1000
}

fn default_confidence() -> f64 {
    0.95
}

fn default_null_seeds() -> usize {
    20
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [correlation] key has a default")
    }
}

impl CorrelationConfig {
    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        if self.bootstrap > MAX_RESAMPLES {
            fail(
                "correlation.bootstrap",
                format!("must be at most {MAX_RESAMPLES} (got {})", self.bootstrap),
            );
        }
        if self.null_seeds > MAX_RESAMPLES {
            fail(
                "correlation.null_seeds",
                format!("must be at most {MAX_RESAMPLES} (got {})", self.null_seeds),
            );
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            fail(
                "correlation.confidence",
                format!("must be in (0, 1) (got {})", number(self.confidence)),
            );
        }
    }
}
