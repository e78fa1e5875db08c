//! `[data]`: which dataset, where it is, and how it is prepared.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::MAX_SYNTHETIC_BYTES;

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
    /// Training images held out as the validation split, a seeded draw (`validation_seed`)
    /// that is never trained on: what a pruning schedule looks at when it chooses (a stop
    /// point, a headline point, a best epoch). Default 0 (no validation split).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validation: usize,
    /// Seed of the validation draw. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validation_seed: u64,
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

fn default_true() -> bool {
    true
}
// Absent and zero mean the same, so experiments without a validation split keep the
// fingerprints they had before the key existed.
fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
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

impl DataConfig {
    /// The rules serde cannot check.
    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        let synthetic = self.dataset == DatasetKind::Synthetic;
        if let (false, Some(_)) = (synthetic, &self.synthetic) {
            fail(
                "data.synthetic",
                "only applies to dataset = \"synthetic\"".into(),
            );
        }
        if synthetic && self.dir.is_some() {
            fail(
                "data.dir",
                "dataset = \"synthetic\" is generated and reads no folder".into(),
            );
        }
        if let Some(s) = &self.synthetic {
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
        let classes = self.info(self.synthetic.unwrap_or_default()).classes;
        for (key, value) in [
            ("data.train_subset", self.train_subset),
            ("data.test_subset", self.test_subset),
        ] {
            match value {
                Some(0) => fail(
                    key,
                    "must be ≥ 1 (got 0); leave it out to use every image".into(),
                ),
                Some(n) if self.subset_mode == SubsetMode::PerClass && n < classes => fail(
                    key,
                    format!("must be ≥ the {classes} classes with subset_mode = \"per-class\" (got {n})"),
                ),
                _ => {}
            }
        }
        let info = self.info(self.synthetic.unwrap_or_default());
        let available = info.train + info.validation;
        if self.validation > 0 && self.validation >= available {
            fail(
                "data.validation",
                format!(
                    "must leave images to train on: at most {} of the {} training images (got {})",
                    available.saturating_sub(1),
                    available,
                    self.validation
                ),
            );
        }
        if self.validation == 0 && self.validation_seed != 0 {
            fail(
                "data.validation_seed",
                "only applies with data.validation > 0".into(),
            );
        }
        let size = info.size;
        if self.crop_padding > size {
            fail(
                "data.crop_padding",
                format!(
                    "must be at most the image size, {size} (got {})",
                    self.crop_padding
                ),
            );
        }
        if self.normalization == Normalization::Imagenet
            && self.dataset == DatasetKind::FashionMnist
        {
            fail(
                "data.normalization",
                "\"imagenet\" needs RGB images; fashion-mnist has one channel".into(),
            );
        }
    }
}
