//! What a pruning schedule measured, typed and readable back (`prune/results.json`, with a
//! schema version): one [`Variant`] per criterion × coupled on/off, each a list of points.

use serde::{Deserialize, Serialize};

use crate::config::{CriterionName, PruneSchedule};
use crate::eval::BatchLatency;

/// The format of `results.json`; another is not read.
pub const SCHEMA: u32 = 1;

/// Accuracy and mean cross-entropy on one set of images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub accuracy: f64,
    pub loss: f64,
}

impl From<crate::eval::Evaluation> for Score {
    fn from(e: crate::eval::Evaluation) -> Self {
        Self {
            accuracy: e.accuracy,
            loss: e.loss,
        }
    }
}

/// The network after one step (step 0: unpruned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub step: usize,
    /// Channels this step removed.
    pub chunk: usize,
    /// Channels left in all DFCs.
    pub channels: usize,
    pub parameters: usize,
    pub macs: u64,
    /// On the schedule's validation images; absent where the schedule did not need it.
    pub validation: Option<Score>,
    /// On the whole test set, at reported points only.
    pub test: Option<Score>,
    /// Measured against the unpruned network, at reported points except the unpruned one.
    #[serde(default)]
    pub latency: Vec<BatchLatency>,
    /// The exported model's folder, relative to the variant's folder, at reported points.
    pub model: Option<String>,
}

/// Why a schedule stopped stepping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// The validation accuracy fell below the floor.
    Floor,
    /// The validation accuracy fell more than `max_drop` below the unpruned one.
    MaxDrop,
    /// The one-shot target was reached.
    Target,
    /// Every eligible DFC is down to one channel.
    Exhausted,
}

/// A headline point: the most pruned step within an accuracy drop on the validation images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub drop: f64,
    /// None when even the first step dropped more.
    pub step: Option<usize>,
}

/// One criterion with coupled channels on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub criterion: CriterionName,
    /// Whether DFCs with coupled channels were eligible.
    pub coupled: bool,
    /// Channels in the eligible DFCs of the unpruned network.
    pub eligible_channels: usize,
    pub stop: Stop,
    pub points: Vec<Point>,
    pub headline: Vec<Headline>,
    /// The step a one-shot or iterative schedule reports; None for a sweep.
    pub chosen: Option<usize>,
    /// The iterative schedule's final fine-tune of the chosen step's network.
    #[serde(default)]
    pub fine_tuned: Option<FineTuned>,
}

/// The final fine-tune: its epochs on the validation images, and the network after the last
/// epoch and after the best one (chosen on the validation images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuned {
    pub epochs: Vec<Score>,
    /// 1-based.
    pub best_epoch: usize,
    pub last: Point,
    pub best: Point,
}

impl Variant {
    /// `criterion-coupled` or `criterion-uncoupled`: the variant's folder and label.
    pub fn label(criterion: CriterionName, coupled: bool) -> String {
        format!(
            "{}-{}",
            criterion.as_str(),
            if coupled { "coupled" } else { "uncoupled" }
        )
    }

    pub fn point(&self, step: usize) -> Option<&Point> {
        self.points.iter().find(|p| p.step == step)
    }
}

/// Every variant of a pruning stage, and what they were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneResults {
    pub schema: u32,
    pub name: String,
    pub arch: String,
    pub dataset: String,
    pub schedule: PruneSchedule,
    /// Fraction of the eligible channels still present removed per step.
    pub chunk: f64,
    /// Every DFC's width stayed a multiple of this (`[prune] round_to`; 1 in records made
    /// before it existed).
    #[serde(default = "one")]
    pub round_to: usize,
    /// Validation images each step was evaluated on (what chose the points).
    pub validation_images: usize,
    /// Test images of the reported points (only reported).
    pub test_images: usize,
    /// Images per evaluation batch (`prunelab eval` uses the same).
    pub batch: usize,
    /// Where latency was measured (`cpu`, `cuda`), with how many threads.
    pub device: String,
    pub threads: usize,
    pub variants: Vec<Variant>,
}

/// The reported steps of a variant: the headline points, every `every`-th step, the one-shot
/// choice, and the unpruned network (step 0), in order.
pub fn reported_steps(
    headline: &[Headline],
    chosen: Option<usize>,
    last: usize,
    every: usize,
) -> Vec<usize> {
    let mut steps: Vec<usize> = headline.iter().filter_map(|h| h.step).collect();
    steps.extend(chosen);
    steps.push(0);
    if every > 0 {
        steps.extend((every..=last).step_by(every));
    }
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Per drop, the most pruned point whose validation accuracy is within it of the first
/// point's (up to rounding: accuracies are ratios of counts).
pub fn headline(points: &[Point], drops: &[f64]) -> Vec<Headline> {
    let accuracy = |p: &Point| p.validation.map(|v| v.accuracy);
    let base = points.first().and_then(accuracy);
    drops
        .iter()
        .map(|&drop| Headline {
            drop,
            step: base.and_then(|base| {
                points
                    .iter()
                    .filter(|p| accuracy(p).is_some_and(|a| base - a <= drop + 1e-12))
                    .map(|p| p.step)
                    .max()
            }),
        })
        .collect()
}

fn one() -> usize {
    1
}
