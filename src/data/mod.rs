//! Datasets in memory, as raw `u8` pixels, plus what turns them into training batches.

#![forbid(unsafe_code)]

mod batch;
mod cifar;
#[cfg(feature = "download")]
pub mod download;
#[cfg(feature = "download")]
mod hub_cifar;
mod idx;
mod image_set;
mod normalization;
mod split;
mod synthetic;

use std::path::{Path, PathBuf};

pub use batch::{epoch_rng, shuffled, Augment, Batch, Batcher, Normalizer};
pub use cifar::Variant as CifarVariant;
pub use image_set::expected_image_count;
pub use split::Split;

use crate::config::{DataConfig, DatasetInfo, DatasetKind, SyntheticConfig};

/// The splits of one dataset. `validation` is held out of the training images
/// (`[data] validation`) and is empty when none is asked for.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub validation: Split,
    pub test: Split,
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
}

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

    /// Reads (or generates) both splits and applies the subsets, after downloading a missing
    /// CIFAR folder as `[data] download` allows.
    pub fn load(&self, synthetic: SyntheticConfig, seed: u64) -> Result<Dataset, DataError> {
        if let Some((variant, dir)) = self.cifar_to_fetch() {
            self.fetch_cifar(variant, &dir)?;
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
                check_dir(CIFAR_HINT)?;
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

/// A dataset a run will download before it starts: what `--dry-run` announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDownload {
    pub dataset: &'static str,
    pub hub_id: &'static str,
    pub dir: PathBuf,
    /// About how many bytes are fetched, and how many are written to `dir`.
    pub download_bytes: u64,
    pub installed_bytes: u64,
}

impl std::fmt::Display for PendingDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |bytes: u64| bytes as f64 / 1e6;
        write!(
            f,
            "will download about {:.0} MB ({} from the Hugging Face hub) to {}, {:.0} MB once converted to the binary files",
            mb(self.download_bytes),
            self.hub_id,
            self.dir.display(),
            mb(self.installed_bytes)
        )
    }
}

impl DataConfig {
    /// The download [`load`](Self::load) will make first: a CIFAR folder that does not exist,
    /// with `[data] download` not off, in a build that can download.
    pub fn pending_download(&self) -> Option<PendingDownload> {
        if !cfg!(feature = "download") {
            return None;
        }
        let (variant, dir) = self.cifar_to_fetch()?;
        Some(PendingDownload {
            dataset: variant.label(),
            hub_id: variant.hub_id(),
            dir,
            download_bytes: variant.download_bytes(),
            installed_bytes: variant.installed_bytes(),
        })
    }

    /// A CIFAR folder that does not exist, with `[data] download` not off: what
    /// [`load`](Self::load) fetches first.
    fn cifar_to_fetch(&self) -> Option<(cifar::Variant, PathBuf)> {
        let variant = self.cifar_variant()?;
        let dir = self.resolved_dir();
        (self.download != Some(false) && !dir.exists()).then_some((variant, dir))
    }

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
