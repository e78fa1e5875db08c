//! Datasets in memory, as raw `u8` pixels, plus what turns them into training batches.

mod batch;
mod cifar;
#[cfg(feature = "download")]
pub mod download;
#[cfg(feature = "download")]
mod hub_cifar;
mod idx;
mod image_set;
mod synthetic;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use batch::{epoch_rng, shuffled, Augment, Batch, Batcher, Normalizer};
pub use cifar::Variant as CifarVariant;

use crate::config::{
    DataConfig, DatasetKind, Normalization, NormalizationPreset, PerChannel, SubsetMode,
    SyntheticConfig,
};

/// One split of a dataset: `images` is `[N, C, H, W]` row-major `u8`, `labels` is `[N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

/// The splits of one dataset. `validation` is held out of the training images
/// (`[data] validation`) and is empty when none is asked for.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub validation: Split,
    pub test: Split,
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

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data.dir: {dataset} not found: {} does not exist.\n  {hint}", path.display())]
    Missing {
        dataset: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("data.dir: {dataset} not found: {} does not exist, and downloading it failed: {reason}\n  {}\n  ([data] download = false skips the download.)", path.display(), CIFAR_HINT)]
    DownloadFailed {
        dataset: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("data.download: is false, and {dataset} is not in {}: the folder does not exist.\n  {}\n  (Or set [data] download = true to download it there.)", path.display(), CIFAR_HINT)]
    DownloadOff {
        dataset: &'static str,
        path: PathBuf,
    },
    #[error("data.dir: {} is a file, not a folder; set it to the folder holding the {dataset} files", path.display())]
    NotAFolder {
        dataset: &'static str,
        path: PathBuf,
    },
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    /// A subset the data cannot provide.
    #[error("{key}: {message}")]
    Subset { key: &'static str, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const CIFAR_HINT: &str =
    "Download it with `scripts/get_data.sh cifar10` (or cifar100) on a machine with internet, \
     or set [data] dir to the folder holding the binary files.";
/// A folder is only missing after `load` on a dry run, which downloads nothing.
const CIFAR_DRY_RUN_HINT: &str =
    "A run without --dry-run downloads it there ([data] download = true, the default); or \
     download it with `scripts/get_data.sh cifar10` (or cifar100), or set [data] dir to the \
     folder holding the binary files.";
const FASHION_HINT: &str = "Install it with `scripts/get_data.sh fashion-mnist` (on Debian: \
     `apt-get install dataset-fashion-mnist`), or set [data] dir to the folder of the idx files.";

impl DatasetKind {
    pub fn label(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// Where the files are looked for when `[data] dir` is not set.
    pub fn default_dir(self) -> PathBuf {
        PathBuf::from(match self {
            DatasetKind::Cifar10 => "data/cifar-10-batches-bin",
            DatasetKind::Cifar100 => "data/cifar-100-binary",
            DatasetKind::FashionMnist => "/usr/share/datasets/fashion-mnist",
            DatasetKind::Synthetic => "",
        })
    }

    /// Per-channel mean and standard deviation of the training images, in [0, 1] units.
    fn statistics(self) -> (&'static [f32], &'static [f32]) {
        match self {
            DatasetKind::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]),
            DatasetKind::Cifar100 => (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]),
            DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
            DatasetKind::Synthetic => (&[0.5, 0.5, 0.5], &[0.25, 0.25, 0.25]),
        }
    }
}

const IMAGENET: (&[f32], &[f32]) = (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);
/// The CIFAR-10 constants of pytorch-cifar's training script (kuangliu): the mean is the
/// dataset's, the std values are not its population std (0.2470, 0.2435, 0.2616).
const KUANGLIU: (&[f32], &[f32]) = (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]);

impl DataConfig {
    /// The folder the files are read from.
    pub fn resolved_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| self.dataset.default_dir())
    }

    /// Shapes and sizes after subsetting, without touching any file.
    pub fn info(&self, synthetic: SyntheticConfig) -> DatasetInfo {
        let (channels, size, classes, train, test) = match self.dataset {
            DatasetKind::Cifar10 => (3, 32, 10, 50_000, 10_000),
            DatasetKind::Cifar100 => (3, 32, 100, 50_000, 10_000),
            DatasetKind::FashionMnist => (1, 28, 10, 60_000, 10_000),
            DatasetKind::Synthetic => (
                3,
                synthetic.image_size,
                synthetic.classes,
                synthetic.train,
                synthetic.test,
            ),
        };
        let cap = |n: usize, subset: Option<usize>| subset.map_or(n, |s| s.min(n));
        let train = cap(train, self.train_subset);
        let validation = self.validation.min(train);
        DatasetInfo {
            channels,
            size,
            classes,
            train: train - validation,
            validation,
            test: cap(test, self.test_subset),
        }
    }

    /// The normaliser for this dataset and setting.
    pub fn normalizer(&self) -> Normalizer {
        let (mean, std) = match &self.normalization {
            Normalization::Preset(NormalizationPreset::Dataset) => self.dataset.statistics(),
            Normalization::Preset(NormalizationPreset::Kuangliu) => KUANGLIU,
            Normalization::Preset(NormalizationPreset::Imagenet) => IMAGENET,
            Normalization::Preset(NormalizationPreset::None) => {
                return Normalizer::identity(self.info(SyntheticConfig::default()).channels)
            }
            Normalization::PerChannel(PerChannel { mean, std }) => (&mean[..], &std[..]),
        };
        Normalizer::new(mean, std)
    }

    /// Reads (or generates) both splits and applies the subsets, after downloading a missing
    /// CIFAR folder as `[data] download` allows.
    pub fn load(&self, synthetic: SyntheticConfig, seed: u64) -> Result<Dataset, DataError> {
        if let Some(variant) = self.cifar_variant() {
            let dir = self.resolved_dir();
            if !dir.exists() && self.download != Some(false) {
                self.fetch_cifar(variant, &dir)?;
            }
        }
        self.read(synthetic, seed)
    }

    /// [`load`](Self::load) without downloading anything.
    pub fn read(&self, synthetic: SyntheticConfig, seed: u64) -> Result<Dataset, DataError> {
        let dir = self.resolved_dir();
        let check_dir = |hint| {
            if dir.is_dir() {
                Ok(())
            } else if dir.exists() {
                Err(DataError::NotAFolder {
                    dataset: self.dataset.label(),
                    path: dir.clone(),
                })
            } else {
                Err(DataError::Missing {
                    dataset: self.dataset.label(),
                    path: dir.clone(),
                    hint,
                })
            }
        };
        let mut data = match self.dataset {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                let variant = self.cifar_variant().expect("a CIFAR dataset");
                if self.download == Some(false) && !dir.exists() {
                    return Err(DataError::DownloadOff {
                        dataset: variant.label(),
                        path: dir,
                    });
                }
                check_dir(CIFAR_DRY_RUN_HINT)?;
                cifar::load(&dir, variant, CIFAR_HINT)?
            }
            DatasetKind::FashionMnist => {
                check_dir(FASHION_HINT)?;
                idx::load_fashion_mnist(&dir, FASHION_HINT)?
            }
            DatasetKind::Synthetic => synthetic::generate(synthetic, seed),
        };
        let source = match self.dataset {
            DatasetKind::Synthetic => "the generated data".to_string(),
            _ => dir.display().to_string(),
        };
        if let Some(n) = self.train_subset {
            data.train = data
                .train
                .subset(n, self.subset_mode, "data.train_subset", &source)?;
        }
        if let Some(n) = self.test_subset {
            data.test = data
                .test
                .subset(n, self.subset_mode, "data.test_subset", &source)?;
        }
        if self.validation > 0 {
            let (train, validation) =
                data.train
                    .hold_out(self.validation, self.validation_seed, &source)?;
            data.train = train;
            data.validation = validation;
        }
        Ok(data)
    }
}

impl DataConfig {
    fn cifar_variant(&self) -> Option<cifar::Variant> {
        match self.dataset {
            DatasetKind::Cifar10 => Some(cifar::Variant::Cifar10),
            DatasetKind::Cifar100 => Some(cifar::Variant::Cifar100),
            _ => None,
        }
    }

    /// Downloads CIFAR into `dir`, which does not exist.
    fn fetch_cifar(&self, variant: cifar::Variant, dir: &Path) -> Result<(), DataError> {
        let dataset = self.dataset.label();
        #[cfg(feature = "download")]
        let fetched = download::download(variant, dir);
        #[cfg(not(feature = "download"))]
        let fetched = Err::<(), _>(format!(
            "this build cannot download {} (built without the `download` feature)",
            variant.label()
        ));
        fetched.map_err(|reason| DataError::DownloadFailed {
            dataset,
            path: dir.to_path_buf(),
            reason,
        })
    }
}

impl Dataset {
    /// A dataset without a validation split.
    pub fn new(train: Split, test: Split) -> Self {
        let validation = train.empty_like();
        Self {
            train,
            validation,
            test,
        }
    }
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The first `n` images, or `n` images spread over the classes (the first `n / classes`
    /// of every class, one more of the first `n % classes` classes; file order kept). Refused
    /// when the split cannot provide them: a subset is never silently smaller than asked.
    pub fn subset(
        &self,
        n: usize,
        mode: SubsetMode,
        key: &'static str,
        source: &str,
    ) -> Result<Split, DataError> {
        let short = |message: String| DataError::Subset { key, message };
        let keep: Vec<usize> = match mode {
            SubsetMode::First => {
                if n > self.len() {
                    return Err(short(format!(
                        "asks for {n} images, but {source} holds {}",
                        self.len()
                    )));
                }
                (0..n).collect()
            }
            SubsetMode::PerClass => {
                let wanted = |c: usize| n / self.classes + usize::from(c < n % self.classes);
                let mut taken = vec![0usize; self.classes];
                let keep: Vec<usize> = (0..self.len())
                    .filter(|&i| {
                        let c = self.labels[i] as usize;
                        taken[c] += 1;
                        taken[c] <= wanted(c)
                    })
                    .collect();
                if let Some(c) = (0..self.classes).find(|&c| taken[c] < wanted(c)) {
                    return Err(short(format!(
                        "asks for {} images of class {c}, but {source} holds {}",
                        wanted(c),
                        taken[c]
                    )));
                }
                keep
            }
        };
        Ok(self.take(&keep))
    }

    /// Splits off `n` images drawn at random from `seed` (both parts keep file order): the
    /// rest, and the images drawn.
    pub fn hold_out(&self, n: usize, seed: u64, source: &str) -> Result<(Split, Split), DataError> {
        if n >= self.len() {
            return Err(DataError::Subset {
                key: "data.validation",
                message: format!(
                    "holds out {n} images, but {source} has {} training images to hold them out of",
                    self.len()
                ),
            });
        }
        let is_drawn = self.drawn(n, seed);
        let (drawn, rest): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| is_drawn[i]);
        Ok((self.take(&rest), self.take(&drawn)))
    }

    /// `n` images drawn at random from `seed`, in file order: the images `hold_out` would hold
    /// out, and all of them when `n` is the split's size. `key` names the setting that asks.
    pub fn draw(
        &self,
        n: usize,
        seed: u64,
        key: &'static str,
        source: &str,
    ) -> Result<Split, DataError> {
        if n > self.len() {
            return Err(DataError::Subset {
                key,
                message: format!("draws {n} images, but {source} holds {}", self.len()),
            });
        }
        let is_drawn = self.drawn(n, seed);
        let drawn: Vec<usize> = (0..self.len()).filter(|&i| is_drawn[i]).collect();
        Ok(self.take(&drawn))
    }

    /// Which images a seeded draw of `n` (at most the split's size) takes.
    fn drawn(&self, n: usize, seed: u64) -> Vec<bool> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut is_drawn = vec![false; self.len()];
        for i in rand::seq::index::sample(&mut rng, self.len(), n) {
            is_drawn[i] = true;
        }
        is_drawn
    }

    /// The images at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Split {
        Split {
            images: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.empty_like()
        }
    }

    /// A split with no images, of this one's image shape and classes.
    pub fn empty_like(&self) -> Split {
        Split {
            images: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
        }
    }
}

/// Reads a whole file, naming it in the error.
fn read_file(path: &Path, dataset: &'static str, hint: &'static str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            dataset,
            path: path.to_path_buf(),
            hint,
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
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
            "dataset = \"cifar100\"\nnormalization = { mean = [0.5, 0.25, 0.0], std = [0.5, 1.0, 2.0] }",
        );
        assert_eq!(given, Normalizer::new(&[0.5, 0.25, 0.0], &[0.5, 1.0, 2.0]));
        let table = normalizer_of(
            "dataset = \"fashion-mnist\"\n[data.normalization]\nmean = [0.25]\nstd = [0.5]",
        );
        assert_eq!(table, Normalizer::new(&[0.25], &[0.5]));
    }

    #[test]
    fn a_held_out_split_is_seeded_disjoint_and_keeps_file_order() {
        let config = SyntheticConfig {
            train: 200,
            test: 10,
            classes: 4,
            image_size: 8,
        };
        let data = synthetic::generate(config, 1);
        let (rest, drawn) = data.train.hold_out(50, 3, "here").unwrap();
        assert_eq!((rest.len(), drawn.len()), (150, 50));
        // Every training image lands in exactly one part, each part in file order.
        let position = |image: &[u8]| (0..200).find(|&i| data.train.image(i) == image).unwrap();
        let rest_at: Vec<usize> = (0..150).map(|i| position(rest.image(i))).collect();
        let drawn_at: Vec<usize> = (0..50).map(|i| position(drawn.image(i))).collect();
        assert!(rest_at.windows(2).all(|w| w[0] < w[1]));
        assert!(drawn_at.windows(2).all(|w| w[0] < w[1]));
        assert!(rest_at.iter().all(|i| !drawn_at.contains(i)));
        assert_eq!(data.train.hold_out(50, 3, "here").unwrap().1, drawn);
        assert_ne!(data.train.hold_out(50, 4, "here").unwrap().1, drawn);
        assert!(data.train.hold_out(200, 3, "here").is_err());
        let train = &data.train;
        assert_eq!(train.draw(50, 3, "key", "here").unwrap(), drawn);
        assert_eq!(train.draw(train.len(), 3, "key", "here").unwrap(), *train);
        let too_many = train.draw(train.len() + 1, 3, "key", "here").unwrap_err();
        assert!(too_many.to_string().contains("key"), "{too_many}");
    }
}
