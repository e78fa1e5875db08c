//! `[data]`: which dataset, where it is, and how it is prepared.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{number, MAX_SYNTHETIC_BYTES};

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
    /// CIFAR-10/100 only: when `dir` does not exist, download the dataset from the Hugging Face
    /// hub and convert it into the binary layout there. Default true. How the files were got
    /// does not change them, so it is not part of any fingerprint.
    #[serde(default, skip_serializing)]
    pub download: Option<bool>,
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

/// `[data] normalization`: a preset name, or the per-channel constants themselves as
/// `{ mean = [...], std = [...] }` (in [0, 1] pixel units, one value per channel).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Normalization {
    Preset(NormalizationPreset),
    PerChannel(PerChannel),
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization::Preset(NormalizationPreset::Dataset)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationPreset {
    /// The dataset's own training-set mean and population standard deviation.
    Dataset,
    /// The CIFAR-10 constants pytorch-cifar (kuangliu) trained with; its std values are not
    /// the population std.
    Kuangliu,
    /// The ImageNet constants, which the public DFPC CIFAR checkpoints expect.
    Imagenet,
    None,
}

impl NormalizationPreset {
    /// The name an experiment file uses.
    pub fn name(self) -> &'static str {
        match self {
            NormalizationPreset::Dataset => "dataset",
            NormalizationPreset::Kuangliu => "kuangliu",
            NormalizationPreset::Imagenet => "imagenet",
            NormalizationPreset::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerChannel {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

// A string is a preset and a table the constants; serde's untagged enums would answer a typo
// with "did not match any variant", so the two cases are told apart here.
impl<'de> Deserialize<'de> for Normalization {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{value::MapAccessDeserializer, IntoDeserializer, MapAccess, Visitor};
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Normalization;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "\"dataset\", \"kuangliu\", \"imagenet\", \"none\" or { mean = [...], std = [...] }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Normalization, E> {
                NormalizationPreset::deserialize(name.into_deserializer())
                    .map(Normalization::Preset)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Normalization, A::Error> {
                PerChannel::deserialize(MapAccessDeserializer::new(map))
                    .map(Normalization::PerChannel)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl std::fmt::Display for Normalization {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Normalization::Preset(preset) => f.write_str(preset.name()),
            Normalization::PerChannel(c) => write!(f, "mean {:?}, std {:?}", c.mean, c.std),
        }
    }
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

fn channel_count(channels: usize) -> String {
    match channels {
        1 => "1 channel".into(),
        n => format!("{n} channels"),
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
        let cifar = matches!(self.dataset, DatasetKind::Cifar10 | DatasetKind::Cifar100);
        if let (false, Some(_)) = (cifar, self.download) {
            fail(
                "data.download",
                "only applies to dataset = \"cifar10\" or \"cifar100\"".into(),
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
        self.normalization_problems(info.channels, fail);
    }

    fn normalization_problems(&self, channels: usize, fail: &mut impl FnMut(&str, String)) {
        match &self.normalization {
            Normalization::Preset(
                preset @ (NormalizationPreset::Imagenet | NormalizationPreset::Kuangliu),
            ) if channels != 3 => fail(
                "data.normalization",
                format!(
                    "\"{}\" needs RGB images; {} has {}",
                    preset.name(),
                    self.dataset.label(),
                    channel_count(channels)
                ),
            ),
            Normalization::PerChannel(PerChannel { mean, std }) => {
                for (key, values) in [
                    ("data.normalization.mean", mean),
                    ("data.normalization.std", std),
                ] {
                    if values.len() != channels {
                        fail(
                            key,
                            format!(
                                "has {} values, but {} has {}: one value per channel",
                                values.len(),
                                self.dataset.label(),
                                channel_count(channels)
                            ),
                        );
                    }
                }
                // Pixels are scaled to [0, 1] before they are normalised: constants in 0–255
                // units leave every input near one value, and the network trains at chance.
                let units = "pixels are scaled to [0, 1] before normalising: give the constants in those units (a mean of 125.3 on 0–255 is 0.491, i.e. divide by 255)";
                if let Some(m) = mean.iter().find(|m| !(0.0..=1.0).contains(*m)) {
                    fail(
                        "data.normalization.mean",
                        format!(
                            "every value must be in [0, 1] (got {}); {units}",
                            number(*m)
                        ),
                    );
                }
                if let Some(s) = std.iter().find(|s| !(**s > 0.0 && **s <= 1.0)) {
                    fail(
                        "data.normalization.std",
                        format!(
                            "every value must be in (0, 1] (got {}); {units}",
                            number(*s)
                        ),
                    );
                }
            }
            Normalization::Preset(_) => {}
        }
    }
}

/// What is known of a dataset without reading it: used by `--dry-run` and to build models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetInfo {
    pub channels: usize,
    pub size: usize,
    pub classes: usize,
    /// Training images, without the validation split.
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}
