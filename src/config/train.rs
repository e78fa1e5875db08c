//! `[train]`: the training recipe.

use serde::{Deserialize, Serialize};

use super::{number, MAX_BATCH, MAX_LR};

/// `[train]`: the recipe. The defaults are the DFPC paper's CIFAR recipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs to train. 0 only evaluates, and then needs `model.weights`. Default 200.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Images per training and evaluation batch. Default 128.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Base learning rate. Default 0.1.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum (PyTorch semantics: the first step's buffer is the gradient). Default 0.9.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Nesterov momentum. Default false.
    #[serde(default)]
    pub nesterov: bool,
    /// L2 weight decay added to every parameter's gradient, BN included, as PyTorch's SGD does.
    /// Default 5e-4.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Learning-rate schedule, stepped once per epoch: `"cosine"` (PyTorch
    /// CosineAnnealingLR over the epochs after warm-up), `"step"` or `"constant"`.
    #[serde(default)]
    pub schedule: ScheduleKind,
    /// Floor of the cosine schedule. Default 0. Only with `schedule = "cosine"`.
    pub min_lr: Option<f64>,
    /// Epochs at which the step schedule multiplies the rate by `gamma`. Only with `"step"`.
    pub milestones: Option<Vec<usize>>,
    /// Factor of the step schedule. Default 0.1. Only with `"step"`.
    pub gamma: Option<f64>,
    /// Epochs of linear warm-up from lr/warmup_epochs to lr before the schedule starts. Default 0.
    #[serde(default)]
    pub warmup_epochs: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        // Deserialising an empty table applies exactly the serde defaults above.
        toml::from_str("").expect("every [train] key has a default")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Cosine,
    Step,
    Constant,
}

impl TrainConfig {
    /// The rules serde cannot check; `has_weights`: `model.weights` is set.
    pub(super) fn problems(&self, has_weights: bool, fail: &mut impl FnMut(&str, String)) {
        let t = self;
        if t.epochs == 0 && !has_weights {
            fail(
                "train.epochs",
                "must be ≥ 1 unless model.weights or model.onnx is set (0 means: only evaluate the given weights)"
                    .into(),
            );
        }
        if t.epochs > 100_000 {
            fail(
                "train.epochs",
                format!("must be at most 100000 (got {})", t.epochs),
            );
        }
        if !(1..=MAX_BATCH).contains(&t.batch_size) {
            fail(
                "train.batch_size",
                format!("must be in 1..={MAX_BATCH} (got {})", t.batch_size),
            );
        }
        // SGD at a larger rate diverges in its first steps; the fine-tuning rates share the
        // bound.
        if !(t.lr > 0.0 && t.lr <= MAX_LR) {
            fail(
                "train.lr",
                format!("must be in (0, {MAX_LR}] (got {})", number(t.lr)),
            );
        }
        if !(0.0..1.0).contains(&t.momentum) {
            fail(
                "train.momentum",
                format!("must be in [0, 1) (got {})", number(t.momentum)),
            );
        }
        if t.nesterov && t.momentum == 0.0 {
            fail("train.nesterov", "needs momentum > 0".into());
        }
        // Decay of the whole weight at every step is already more than any recipe uses.
        if !(0.0..=1.0).contains(&t.weight_decay) {
            fail(
                "train.weight_decay",
                format!("must be in [0, 1] (got {})", number(t.weight_decay)),
            );
        }
        if t.warmup_epochs > 0 && t.warmup_epochs >= t.epochs {
            fail(
                "train.warmup_epochs",
                format!(
                    "must be < train.epochs = {} (got {})",
                    t.epochs, t.warmup_epochs
                ),
            );
        }
        let only = |key: &str, kind: &str| format!("{key} only applies to schedule = \"{kind}\"");
        if t.schedule != ScheduleKind::Cosine && t.min_lr.is_some() {
            fail("train.min_lr", only("min_lr", "cosine"));
        }
        if t.schedule != ScheduleKind::Step {
            if t.milestones.is_some() {
                fail("train.milestones", only("milestones", "step"));
            }
            if t.gamma.is_some() {
                fail("train.gamma", only("gamma", "step"));
            }
        }
        if let Some(min_lr) = t.min_lr {
            if !(min_lr >= 0.0 && min_lr < t.lr) {
                fail(
                    "train.min_lr",
                    format!("must be in [0, lr) (got {})", number(min_lr)),
                );
            }
        }
        if t.schedule == ScheduleKind::Step {
            match &t.milestones {
                None => fail(
                    "train.milestones",
                    "schedule = \"step\" needs milestones, e.g. [100, 150]".into(),
                ),
                Some(m) if m.is_empty() => fail(
                    "train.milestones",
                    "must list at least one epoch, e.g. [100, 150] (or use schedule = \"constant\")".into(),
                ),
                Some(m) if m.windows(2).any(|w| w[0] >= w[1]) => fail(
                    "train.milestones",
                    format!("must be strictly increasing (got {m:?})"),
                ),
                Some(m) if m.iter().any(|&e| e == 0 || e >= t.epochs) => fail(
                    "train.milestones",
                    format!(
                        "must lie in 1..{} (0-based epochs at which the rate drops, before the last epoch; got {m:?})",
                        t.epochs
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(gamma) = t.gamma {
            if !(gamma > 0.0 && gamma <= 1.0) {
                fail(
                    "train.gamma",
                    format!("must be in (0, 1] (got {})", number(gamma)),
                );
            }
        }
    }
}

fn default_epochs() -> usize {
    200
}
fn default_batch_size() -> usize {
    128
}
fn default_lr() -> f64 {
    0.1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_weight_decay() -> f64 {
    5e-4
}
