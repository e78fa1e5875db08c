//! Datasets in memory, as raw `u8` pixels, plus what turns them into training batches.

mod batch;
mod cifar;
mod idx;
mod image_set;
mod synthetic;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use batch::{epoch_rng, shuffled, Augment, Batch, Batcher, Normalizer};

use crate::config::{DataConfig, DatasetKind, Normalization, SubsetMode, SyntheticConfig};

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
        let (mean, std) = match self.normalization {
            Normalization::Dataset => self.dataset.statistics(),
            Normalization::Imagenet => IMAGENET,
            Normalization::None => {
                return Normalizer::identity(self.info(SyntheticConfig::default()).channels)
            }
        };
        Normalizer::new(mean, std)
    }

    /// Reads (or generates) both splits and applies the subsets.
    pub fn load(&self, synthetic: SyntheticConfig, seed: u64) -> Result<Dataset, DataError> {
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
            DatasetKind::Cifar10 => {
                check_dir(CIFAR_HINT)?;
                cifar::load(&dir, cifar::Variant::Cifar10, CIFAR_HINT)?
            }
            DatasetKind::Cifar100 => {
                check_dir(CIFAR_HINT)?;
                cifar::load(&dir, cifar::Variant::Cifar100, CIFAR_HINT)?
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
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut drawn = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        drawn.sort_unstable();
        let mut is_drawn = vec![false; self.len()];
        for &i in &drawn {
            is_drawn[i] = true;
        }
        let rest: Vec<usize> = (0..self.len()).filter(|&i| !is_drawn[i]).collect();
        Ok((self.take(&rest), self.take(&drawn)))
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
    }
}
