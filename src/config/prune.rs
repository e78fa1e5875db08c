//! `[prune]`: which schedule removes channels, with which criteria, and what it measures.

use serde::{Deserialize, Serialize};

use super::saliency::CriterionName;
use super::train::ScheduleKind;
use super::DatasetInfo;
use super::{number, MAX_BATCH, MAX_LR};

/// `[prune]`: the pruning stage. Every schedule ranks channels by a criterion of `[saliency]`
/// across all eligible DFCs, removes them physically, and evaluates the pruned graph in its
/// fused inference form. Whatever it chooses, it chooses on the validation split
/// (`[data] validation`); the test set is only reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// `"sweep"` (remove chunk after chunk of one ranking, evaluating each, down to `floor` or
    /// `max_drop`), `"one-shot"` (remove chunks until `[prune.target]` is met) or
    /// `"iterative"` (score the current network, remove a chunk, fine-tune, repeat until the
    /// target, or the floor or `max_drop`, is reached; then a final fine-tune).
    pub schedule: PruneSchedule,
    /// The criteria to prune with, each also listed in `[saliency] criteria`.
    /// Default: `["dfpc", "l1", "random", "taylor"]`.
    #[serde(default = "default_criteria")]
    pub criteria: Vec<CriterionName>,
    /// Variants to run: `true` prunes every DFC, `false` only DFCs with one producer and one
    /// consumer (coupled channels left alone, the DFPC paper's ablation). Default both.
    #[serde(default = "default_coupled")]
    pub coupled: Vec<bool>,
    /// Fraction of the (eligible) channels still present removed per step. Default 0.01.
    #[serde(default = "default_chunk")]
    pub chunk: f64,
    /// Every DFC's remaining width stays a multiple of this (a step removes fewer channels
    /// where a width would fall between multiples), so that the pruned network runs whole
    /// kernel tiles. Default 1 (no rounding; then not written, so that earlier runs' records
    /// still match).
    #[serde(default = "default_round_to", skip_serializing_if = "is_one")]
    pub round_to: usize,
    /// A sweep stops after the first step whose validation accuracy is below this.
    /// Default: chance (1 / classes) + 0.005.
    pub floor: Option<f64>,
    /// A sweep also stops after the first step whose validation accuracy is more than this
    /// below the unpruned network's. Default: no such limit.
    pub max_drop: Option<f64>,
    /// The headline points: per drop, the most pruned step whose validation accuracy is within
    /// it of the unpruned network's. Default `[0.01, 0.025, 0.05]`.
    #[serde(default = "default_drops")]
    pub drops: Vec<f64>,
    /// Besides the headline points, test, time and save every k-th step; 0 for none.
    /// Default 0.
    #[serde(default)]
    pub report_every: usize,
    /// Validation images evaluated after each step: a seeded subset (`eval_seed`) of this many.
    /// Default: the whole validation split.
    pub eval_images: Option<usize>,
    /// Seed of the `eval_images` draw. Default 0.
    #[serde(default)]
    pub eval_seed: u64,
    /// Images per evaluation batch. Default 256.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// `[prune.target]`: where a one-shot schedule stops (required), or an iterative one
    /// (optional).
    pub target: Option<TargetConfig>,
    /// `[prune.fine_tune]`: the iterative schedule's fine-tuning.
    pub fine_tune: Option<FineTune>,
    /// Under a grid's executor, each variant (criterion × coupled) is a task of its own; the
    /// results do not depend on it, so it is no part of what the stage is made from.
    /// Default false.
    #[serde(default, skip_serializing)]
    pub variant_tasks: bool,
}

impl PruneConfig {
    /// The variants, in the order they run: each criterion with coupled on and off.
    pub fn variants(&self) -> Vec<(CriterionName, bool)> {
        self.criteria
            .iter()
            .flat_map(|&c| self.coupled.iter().map(move |&coupled| (c, coupled)))
            .collect()
    }
}

/// `[prune.fine_tune]`: after every step one epoch at each of `step_lrs`, then `final_epochs`
/// at `final_lr` on the `final_schedule`. Momentum, Nesterov, weight decay, batch size and
/// augmentation are `[train]`'s. Momentum buffers start afresh for every epoch of a step (the
/// shapes change at every removal) and carry through the final fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTune {
    /// Default `[1e-3, 1e-4, 1e-5]`.
    #[serde(default = "default_step_lrs")]
    pub step_lrs: Vec<f64>,
    /// Default 10.
    #[serde(default = "default_final_epochs")]
    pub final_epochs: usize,
    /// Default 1e-3.
    #[serde(default = "default_final_lr")]
    pub final_lr: f64,
    /// `"cosine"` (default), `"step"` (×0.1 at half the epochs) or `"constant"`.
    #[serde(default)]
    pub final_schedule: ScheduleKind,
    /// Training images every fine-tuning epoch reads: a draw of this many seeded by the
    /// experiment's `seed`, the same draw for every step and the final fine-tune. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<usize>,
}

impl Default for FineTune {
    fn default() -> Self {
        toml::from_str("").expect("every [prune.fine_tune] key has a default")
    }
}

fn default_step_lrs() -> Vec<f64> {
    vec![1e-3, 1e-4, 1e-5]
}
fn default_final_epochs() -> usize {
    10
}
fn default_final_lr() -> f64 {
    1e-3
}

/// `[prune] schedule`: how each variant prunes (the stage runs each with its own file under
/// `stages/prune/`). What the rest of the harness needs to know of a schedule is here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneSchedule {
    Sweep,
    OneShot,
    Iterative,
}

impl PruneSchedule {
    /// Whether every step is fine-tuned (and the last network fine-tuned again).
    pub fn fine_tunes(self) -> bool {
        match self {
            PruneSchedule::Sweep | PruneSchedule::OneShot => false,
            PruneSchedule::Iterative => true,
        }
    }

    /// The schedule in the words of the tables' captions.
    pub fn description(self) -> &'static str {
        match self {
            PruneSchedule::Sweep => "sweep",
            PruneSchedule::OneShot => "one-shot",
            PruneSchedule::Iterative => "iterative (fine-tuned after every step)",
        }
    }
}

/// `[prune.target]`: exactly one key, a fraction in (0, 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// This fraction of the eligible channels removed.
    pub channels: Option<f64>,
    /// This fraction of the parameters removed.
    pub params: Option<f64>,
    /// This fraction of the multiply-accumulates removed.
    pub macs: Option<f64>,
    /// The most pruned step whose validation accuracy is within this of the unpruned one's.
    pub drop: Option<f64>,
}

impl TargetConfig {
    /// The keys given.
    fn given(&self) -> Vec<Target> {
        [
            self.channels.map(Target::Channels),
            self.params.map(Target::Params),
            self.macs.map(Target::Macs),
            self.drop.map(Target::Drop),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Where a schedule stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Channels(f64),
    Params(f64),
    Macs(f64),
    Drop(f64),
}

impl Target {
    pub fn value(self) -> f64 {
        match self {
            Target::Channels(v) | Target::Params(v) | Target::Macs(v) | Target::Drop(v) => v,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Target::Channels(_) => "channels",
            Target::Params(_) => "params",
            Target::Macs(_) => "macs",
            Target::Drop(_) => "drop",
        }
    }
}

fn default_criteria() -> Vec<CriterionName> {
    use CriterionName::*;
    vec![Dfpc, L1, Random, Taylor]
}
fn default_coupled() -> Vec<bool> {
    vec![true, false]
}
fn default_chunk() -> f64 {
    0.01
}
fn default_round_to() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}
fn default_drops() -> Vec<f64> {
    vec![0.01, 0.025, 0.05]
}
fn default_batch() -> usize {
    256
}

/// The fraction `value` is in (0, 1).
fn is_fraction(value: f64) -> bool {
    value > 0.0 && value < 1.0
}

impl PruneConfig {
    /// The rules serde cannot check. `scored` is `[saliency] criteria`; `data` the dataset's
    /// split sizes.
    pub(super) fn problems(
        &self,
        scored: &[CriterionName],
        data: &DatasetInfo,
        fail: &mut impl FnMut(&str, String),
    ) {
        let validation = data.validation;
        if validation == 0 {
            fail(
                "prune",
                "chooses its points on a validation split: hold training images out with [data] validation (e.g. 5000)".into(),
            );
        }
        if self.criteria.is_empty() {
            fail("prune.criteria", "must name at least one criterion".into());
        }
        for (i, c) in self.criteria.iter().enumerate() {
            if self.criteria[..i].contains(c) {
                fail("prune.criteria", format!("names {} twice", c.as_str()));
            } else if !scored.contains(c) {
                fail(
                    "prune.criteria",
                    format!(
                        "{} is not scored: add it to [saliency] criteria",
                        c.as_str()
                    ),
                );
            }
        }
        if self.coupled.is_empty()
            || (self.coupled.len() == 2 && self.coupled[0] == self.coupled[1])
            || self.coupled.len() > 2
        {
            fail(
                "prune.coupled",
                "must be [true], [false] or [true, false]".into(),
            );
        }
        if !is_fraction(self.chunk) {
            fail(
                "prune.chunk",
                format!("must be a fraction in (0, 1) (got {})", number(self.chunk)),
            );
        }
        if !(1..=1024).contains(&self.round_to) {
            fail(
                "prune.round_to",
                format!(
                    "must be a channel count in 1..=1024 (got {})",
                    self.round_to
                ),
            );
        }
        for (key, value) in [
            ("prune.floor", self.floor),
            ("prune.max_drop", self.max_drop),
        ] {
            if let Some(v) = value.filter(|v| !is_fraction(*v)) {
                fail(
                    key,
                    format!("must be a fraction in (0, 1) (got {})", number(v)),
                );
            }
        }
        if self.drops.is_empty() || self.drops.iter().any(|d| !is_fraction(*d)) {
            fail(
                "prune.drops",
                format!("must list accuracy drops in (0, 1) (got {:?})", self.drops),
            );
        } else if self.drops.windows(2).any(|w| w[0] >= w[1]) {
            fail(
                "prune.drops",
                format!("must be increasing (got {:?})", self.drops),
            );
        }
        if self.eval_images == Some(0)
            || self.eval_images.is_some_and(|n| n > validation) && validation > 0
        {
            fail(
                "prune.eval_images",
                format!(
                    "must be in 1..={validation}, the validation images (got {})",
                    self.eval_images.unwrap_or(0)
                ),
            );
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            fail(
                "prune.batch",
                format!("must be in 1..={MAX_BATCH} (got {})", self.batch),
            );
        }
        let given = self.target.map(|t| t.given());
        match (self.schedule, given.as_deref()) {
            (PruneSchedule::OneShot, None) => fail(
                "prune.target",
                "a one-shot schedule needs a target: one of channels, params, macs (fractions removed) or drop".into(),
            ),
            (PruneSchedule::Sweep, Some(_)) => fail(
                "prune.target",
                "does not apply to schedule = \"sweep\" (a sweep stops at floor or max_drop)".into(),
            ),
            (_, Some(keys)) if keys.len() != 1 => fail(
                "prune.target",
                format!(
                    "must have exactly one of channels, params, macs or drop (got {})",
                    keys.iter().map(|t| t.key()).collect::<Vec<_>>().join(", ")
                ),
            ),
            (_, Some([t])) if !is_fraction(t.value()) => fail(
                &format!("prune.target.{}", t.key()),
                format!("must be a fraction in (0, 1) (got {})", number(t.value())),
            ),
            _ => {}
        }
        self.fine_tune_problems(data.train, fail);
    }

    /// The rules of `[prune.fine_tune]`.
    fn fine_tune_problems(&self, train: usize, fail: &mut impl FnMut(&str, String)) {
        let Some(f) = &self.fine_tune else { return };
        if self.schedule != PruneSchedule::Iterative {
            fail(
                "prune.fine_tune",
                "only applies to schedule = \"iterative\"".into(),
            );
        }
        let rate = |lr: f64| lr > 0.0 && lr <= MAX_LR;
        if f.step_lrs.len() > 100 || !f.step_lrs.iter().all(|&lr| rate(lr)) {
            fail(
                "prune.fine_tune.step_lrs",
                format!(
                    "must be at most 100 rates in (0, {MAX_LR}] (got {:?})",
                    f.step_lrs
                ),
            );
        }
        if !rate(f.final_lr) {
            fail(
                "prune.fine_tune.final_lr",
                format!("must be in (0, {MAX_LR}] (got {})", number(f.final_lr)),
            );
        }
        if let Some(n) = f.images.filter(|&n| n == 0 || n > train) {
            fail(
                "prune.fine_tune.images",
                format!("must be in 1..={train}, the training images (got {n})"),
            );
        }
        if f.final_epochs > 100_000 {
            fail(
                "prune.fine_tune.final_epochs",
                format!("must be at most 100000 (got {})", f.final_epochs),
            );
        }
    }

    /// The fine-tuning of an iterative schedule (its defaults when the section is absent).
    pub fn fine_tuning(&self) -> FineTune {
        self.fine_tune.clone().unwrap_or_default()
    }

    /// The target, when `[prune.target]` names exactly one.
    pub fn target(&self) -> Option<Target> {
        match self.target.map(|t| t.given()).as_deref() {
            Some(&[t]) => Some(t),
            _ => None,
        }
    }

    /// The accuracy below which a sweep stops, for `classes` classes.
    pub fn floor_for(&self, classes: usize) -> f64 {
        self.floor.unwrap_or(1.0 / classes as f64 + 0.005)
    }
}
