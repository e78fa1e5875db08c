//! The per-channel constants images are normalised with: each dataset's own statistics, or a
//! preset, or the experiment's own values.

use super::Normalizer;
use crate::config::{
    DataConfig, DatasetKind, Normalization, NormalizationPreset, PerChannel, SyntheticConfig,
};

/// Per-channel mean and standard deviation of the training images, in [0, 1] units.
fn statistics(dataset: DatasetKind) -> (&'static [f32], &'static [f32]) {
    match dataset {
        DatasetKind::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]),
        DatasetKind::Cifar100 => (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]),
        DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
        DatasetKind::Synthetic => (&[0.5, 0.5, 0.5], &[0.25, 0.25, 0.25]),
    }
}

const IMAGENET: (&[f32], &[f32]) = (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);
/// The CIFAR-10 constants of pytorch-cifar's training script (kuangliu): the mean is the
/// dataset's, the std values are not its population std (0.2470, 0.2435, 0.2616).
const KUANGLIU: (&[f32], &[f32]) = (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]);

impl DataConfig {
    /// The normaliser for this dataset and setting.
    pub fn normalizer(&self) -> Normalizer {
        let (mean, std) = match &self.normalization {
            Normalization::Preset(NormalizationPreset::Dataset) => statistics(self.dataset),
            Normalization::Preset(NormalizationPreset::Kuangliu) => KUANGLIU,
            Normalization::Preset(NormalizationPreset::Imagenet) => IMAGENET,
            Normalization::Preset(NormalizationPreset::None) => {
                return Normalizer::identity(self.info(SyntheticConfig::default()).channels)
            }
            Normalization::PerChannel(PerChannel { mean, std }) => (&mean[..], &std[..]),
        };
        Normalizer::new(mean, std)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Experiment;

    fn normalizer_of(data: &str) -> Normalizer {
        let text = format!("[data]\n{data}\n[model]\narch = \"resnet20\"\n");
        Experiment::parse(Path::new("x.toml"), &text)
            .unwrap()
            .data
            .normalizer()
    }

    #[test]
    fn the_kuangliu_preset_is_pytorch_cifars_constants() {
        let kuangliu = normalizer_of("dataset = \"cifar10\"\nnormalization = \"kuangliu\"");
        let expected = Normalizer::new(&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]);
        assert_eq!(kuangliu, expected);
        // Its std is not the population std that "dataset" uses.
        assert_ne!(normalizer_of("dataset = \"cifar10\""), expected);
    }

    #[test]
    fn explicit_constants_are_used_as_given() {
        let given = normalizer_of(
            "dataset = \"cifar100\"\nnormalization = { mean = [0.5, 0.25, 0.0], std = [0.5, 1.0, 0.25] }",
        );
        assert_eq!(given, Normalizer::new(&[0.5, 0.25, 0.0], &[0.5, 1.0, 0.25]));
        let table = normalizer_of(
            "dataset = \"fashion-mnist\"\n[data.normalization]\nmean = [0.25]\nstd = [0.5]",
        );
        assert_eq!(table, Normalizer::new(&[0.25], &[0.5]));
    }
}
