//! The experiment schema: one TOML file → one typed [`Experiment`].
//!
//! Every key is defined once, here, with its doc comment and its default; the README's TOML
//! reference repeats these. Parsing (`Experiment::parse`) touches no files besides the TOML
//! itself, so `--dry-run` works without the dataset. Unknown keys are rejected with a
//! "did you mean" hint, and every error names the file, line, column and key path.

mod locate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use locate::{ConfigError, ConfigErrors};

/// Most worker threads accepted (from the file or the command line).
pub const MAX_THREADS: usize = 1024;
/// Longest run name: it becomes a folder name.
const MAX_NAME: usize = 100;
/// Most images in one batch (training, evaluation or latency timing).
const MAX_BATCH: usize = 65_536;
/// Largest generated dataset, in bytes of pixels.
const MAX_SYNTHETIC_BYTES: usize = 4 << 30;

/// A whole experiment file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name of the run; outputs go to `results/<name>/`. Default: the file name without `.toml`.
    pub name: Option<String>,
    /// Seed of every random choice: initialisation, shuffling, augmentation. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `"cpu"`, `"cuda"` (needs a build with `--features cuda`) or `"auto"` (cuda when present).
    #[serde(default)]
    pub device: DeviceChoice,
    /// Worker threads for tensor kernels. Default: every core. `--threads` overrides it.
    pub threads: Option<usize>,
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub latency: LatencyConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
    Auto,
}

/// `[data]`: which dataset, where it is, and how it is prepared.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `"cifar10"`, `"cifar100"`, `"fashion-mnist"` or `"synthetic"`.
    pub dataset: DatasetKind,
    /// Folder holding the files. Default: `data/cifar-10-batches-bin`, `data/cifar-100-binary`,
    /// `/usr/share/datasets/fashion-mnist`. Relative paths are taken from the working directory.
    pub dir: Option<PathBuf>,
    /// Per-channel normalisation: `"dataset"` (the dataset's own mean/std), `"imagenet"` (the
    /// ImageNet constants, as the public DFPC CIFAR checkpoints expect) or `"none"`.
    #[serde(default)]
    pub normalization: Normalization,
    /// Zero padding, in pixels, before the random crop of training images; 0 turns cropping off.
    #[serde(default = "default_crop_padding")]
    pub crop_padding: usize,
    /// Random horizontal flip of training images.
    #[serde(default = "default_true")]
    pub flip: bool,
    /// Use only this many training images (see `subset_mode`). Default: all.
    pub train_subset: Option<usize>,
    /// Use only this many test images (see `subset_mode`). Default: all.
    pub test_subset: Option<usize>,
    /// How subsets are taken: `"first"` (the first N in file order) or `"per-class"` (the first
    /// N/classes of every class).
    #[serde(default)]
    pub subset_mode: SubsetMode,
    /// `[data.synthetic]`: sizes of the generated dataset; only with `dataset = "synthetic"`.
    pub synthetic: Option<SyntheticConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Cifar10,
    Cifar100,
    FashionMnist,
    Synthetic,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    #[default]
    Dataset,
    Imagenet,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubsetMode {
    #[default]
    First,
    PerClass,
}

/// `[data.synthetic]`: a deterministic dataset with learnable class structure, for smoke tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Training images. Default 512.
    #[serde(default = "default_synthetic_train")]
    pub train: usize,
    /// Test images. Default 256.
    #[serde(default = "default_synthetic_test")]
    pub test: usize,
    /// Number of classes. Default 10.
    #[serde(default = "default_synthetic_classes")]
    pub classes: usize,
    /// Side of the square RGB images, in pixels. Default 16.
    #[serde(default = "default_synthetic_size")]
    pub image_size: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            train: default_synthetic_train(),
            test: default_synthetic_test(),
            classes: default_synthetic_classes(),
            image_size: default_synthetic_size(),
        }
    }
}

/// `[model]`: the architecture and where its weights come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// One of [`crate::models::ARCHITECTURES`]: `resnet8 … resnet110` (He et al. CIFAR ResNets),
    /// `resnet18 … resnet152` (kuangliu CIFAR ResNets), `vgg11 … vgg19` (with BatchNorm),
    /// `mobilenetv2` (kuangliu CIFAR MobileNetV2).
    pub arch: String,
    /// A PyTorch-style state dict (kuangliu names) in safetensors format to start from, e.g. made
    /// by `scripts/pth_to_safetensors.py`. With `train.epochs = 0` the run only evaluates it.
    pub weights: Option<PathBuf>,
}

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

/// `[latency]`: how inference time is measured. Both sides of a comparison run their fused
/// inference form, interleaved (A B A B …) so that machine drift hits both alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Batch sizes to time, each separately. Default [1, 64].
    #[serde(default = "default_latency_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Worker threads while timing. Default: the experiment's `threads` (every core if unset).
    pub threads: Option<usize>,
    /// Untimed forward passes of each model before timing. Default 3.
    #[serde(default = "default_latency_warmup")]
    pub warmup: usize,
    /// Timed forward passes of each model; the median is reported. Default 20.
    #[serde(default = "default_latency_repeats")]
    pub repeats: usize,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [latency] key has a default")
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

fn default_true() -> bool {
    true
}
fn default_crop_padding() -> usize {
    4
}
fn default_synthetic_train() -> usize {
    512
}
fn default_synthetic_test() -> usize {
    256
}
fn default_synthetic_classes() -> usize {
    10
}
fn default_synthetic_size() -> usize {
    16
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
fn default_latency_batch_sizes() -> Vec<usize> {
    vec![1, 64]
}
fn default_latency_warmup() -> usize {
    3
}
fn default_latency_repeats() -> usize {
    20
}

impl Experiment {
    /// Reads and validates an experiment file. Touches no other file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(path, format!("cannot read the experiment file: {e}"))
        })?;
        Self::parse(path, &source)
    }

    /// Parses and validates `source`; `path` only labels the errors and names the default run.
    pub fn parse(path: &Path, source: &str) -> Result<Self, ConfigErrors> {
        let mut experiment: Experiment =
            toml::from_str(source).map_err(|e| locate::from_toml_error(path, source, &e))?;
        if experiment.name.is_none() {
            experiment.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        let problems = experiment.problems();
        if problems.is_empty() {
            Ok(experiment)
        } else {
            Err(locate::from_problems(path, source, problems))
        }
    }

    /// The run's name (validated: letters, digits, `-`, `_`, `.`).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("experiment")
    }

    /// The synthetic dataset's sizes (defaults when `[data.synthetic]` is absent).
    pub fn synthetic(&self) -> SyntheticConfig {
        self.data.synthetic.unwrap_or_default()
    }

    /// Every rule the types alone cannot express, as (key path, message) pairs.
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut fail = |key: &str, msg: String| out.push((key.to_string(), msg));
        let name = self.name();
        if name.len() > MAX_NAME {
            fail(
                "name",
                format!("must be at most {MAX_NAME} characters (got {})", name.len()),
            );
        } else if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            fail(
                "name",
                format!("must be letters, digits, '-', '_' or '.', not starting with '.' (got {name:?})"),
            );
        }
        for (key, threads) in [
            ("threads", self.threads),
            ("latency.threads", self.latency.threads),
        ] {
            if let Some(n) = threads.filter(|n| !(1..=MAX_THREADS).contains(n)) {
                fail(key, format!("must be in 1..={MAX_THREADS} (got {n})"));
            }
        }
        if self.device == DeviceChoice::Cuda && !cfg!(feature = "cuda") {
            fail(
                "device",
                "\"cuda\" needs a build with CUDA: `cargo build --release --features cuda` (see README), or use device = \"cpu\"".into(),
            );
        }
        let synthetic = self.data.dataset == DatasetKind::Synthetic;
        if let (false, Some(_)) = (synthetic, &self.data.synthetic) {
            fail(
                "data.synthetic",
                "only applies to dataset = \"synthetic\"".into(),
            );
        }
        if synthetic && self.data.dir.is_some() {
            fail(
                "data.dir",
                "dataset = \"synthetic\" is generated and reads no folder".into(),
            );
        }
        if let Some(s) = &self.data.synthetic {
            let mut sizes_ok = true;
            for (key, value, range) in [
                ("data.synthetic.train", s.train, 1..=10_000_000),
                ("data.synthetic.test", s.test, 1..=10_000_000),
                ("data.synthetic.classes", s.classes, 2..=256),
                ("data.synthetic.image_size", s.image_size, 8..=512),
            ] {
                if !range.contains(&value) {
                    fail(
                        key,
                        format!(
                            "must be in {}..={} (got {value})",
                            range.start(),
                            range.end()
                        ),
                    );
                    sizes_ok = false;
                }
            }
            let bytes = (s.train + s.test) * 3 * s.image_size * s.image_size;
            if sizes_ok && bytes > MAX_SYNTHETIC_BYTES {
                fail(
                    "data.synthetic",
                    format!(
                        "(train + test) × 3 × image_size² = {bytes} bytes of pixels; at most {MAX_SYNTHETIC_BYTES} are generated"
                    ),
                );
            }
        }
        let classes = self.data.info(self.synthetic()).classes;
        for (key, value) in [
            ("data.train_subset", self.data.train_subset),
            ("data.test_subset", self.data.test_subset),
        ] {
            match value {
                Some(0) => fail(
                    key,
                    "must be ≥ 1 (got 0); leave it out to use every image".into(),
                ),
                Some(n) if self.data.subset_mode == SubsetMode::PerClass && n < classes => fail(
                    key,
                    format!("must be ≥ the {classes} classes with subset_mode = \"per-class\" (got {n})"),
                ),
                _ => {}
            }
        }
        let size = self.data.info(self.synthetic()).size;
        if self.data.crop_padding > size {
            fail(
                "data.crop_padding",
                format!(
                    "must be at most the image size, {size} (got {})",
                    self.data.crop_padding
                ),
            );
        }
        if self.data.normalization == Normalization::Imagenet
            && self.data.dataset == DatasetKind::FashionMnist
        {
            fail(
                "data.normalization",
                "\"imagenet\" needs RGB images; fashion-mnist has one channel".into(),
            );
        }
        if crate::models::ARCHITECTURES.contains(&self.model.arch.as_str()) {
            // Building the graph is pure computation; it catches inputs too small for the model.
            let info = self.data.info(self.synthetic());
            if let Err(crate::graph::GraphError::Invalid(why)) =
                crate::models::build(&self.model.arch, info.channels, info.size, info.classes)
            {
                fail("model.arch", format!("does not fit the data: {why}"));
            }
        } else {
            let hint = locate::did_you_mean(&self.model.arch, crate::models::ARCHITECTURES);
            let known = crate::models::ARCHITECTURES.join(", ");
            fail(
                "model.arch",
                format!(
                    "unknown architecture {:?} (known: {known}){hint}",
                    self.model.arch
                ),
            );
        }
        self.train_problems(&mut fail);
        let l = &self.latency;
        if l.batch_sizes.is_empty() || l.batch_sizes.iter().any(|b| !(1..=MAX_BATCH).contains(b)) {
            fail(
                "latency.batch_sizes",
                format!(
                    "must list batch sizes in 1..={MAX_BATCH} (got {:?})",
                    l.batch_sizes
                ),
            );
        }
        if l.warmup > 10_000 {
            fail(
                "latency.warmup",
                format!("must be at most 10000 (got {})", l.warmup),
            );
        }
        if !(1..=100_000).contains(&l.repeats) {
            fail(
                "latency.repeats",
                format!("must be in 1..=100000 (got {})", l.repeats),
            );
        }
        out
    }

    fn train_problems(&self, fail: &mut impl FnMut(&str, String)) {
        let t = &self.train;
        if t.epochs == 0 && self.model.weights.is_none() {
            fail(
                "train.epochs",
                "must be ≥ 1 unless model.weights is set (0 means: only evaluate the given weights)"
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
        if !(t.lr.is_finite() && t.lr > 0.0) {
            fail(
                "train.lr",
                format!("must be a finite number > 0 (got {})", t.lr),
            );
        }
        if !(0.0..1.0).contains(&t.momentum) {
            fail(
                "train.momentum",
                format!("must be in [0, 1) (got {})", t.momentum),
            );
        }
        if t.nesterov && t.momentum == 0.0 {
            fail("train.nesterov", "needs momentum > 0".into());
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            fail(
                "train.weight_decay",
                format!("must be ≥ 0 (got {})", t.weight_decay),
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
                fail("train.min_lr", format!("must be in [0, lr) (got {min_lr})"));
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
                fail("train.gamma", format!("must be in (0, 1] (got {gamma})"));
            }
        }
    }
}
