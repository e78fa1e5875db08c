//! CIFAR-10 and CIFAR-100 in the standard binary format (`cifar-10-batches-bin`,
//! `cifar-100-binary`): each record is the label byte(s) then 3,072 pixel bytes, the red, green
//! and blue 32×32 planes in turn.

use std::path::Path;

use super::{read_file, DataError, Dataset, Split};

pub(super) const PIXELS: usize = 3 * 32 * 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    pub(super) fn files(self) -> (&'static [&'static str], &'static str) {
        match self {
            Variant::Cifar10 => (
                &[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            Variant::Cifar100 => (&["train.bin"], "test.bin"),
        }
    }

    /// CIFAR-100 records carry the coarse label then the fine one; we use the fine label.
    pub(super) fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    pub(super) fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Variant::Cifar10 => "CIFAR-10",
            Variant::Cifar100 => "CIFAR-100",
        }
    }

    /// The dataset on the Hugging Face hub that `[data] download` fetches.
    pub fn hub_id(self) -> &'static str {
        match self {
            Variant::Cifar10 => "uoft-cs/cifar10",
            Variant::Cifar100 => "uoft-cs/cifar100",
        }
    }

    /// About how many bytes the download is: the hub's parquet files (its dataset card gives
    /// CIFAR-10's as 143,646,105 bytes; CIFAR-100 holds the same 60,000 PNG images).
    pub fn download_bytes(self) -> u64 {
        match self {
            Variant::Cifar10 => 143_646_105,
            Variant::Cifar100 => 142_000_000,
        }
    }

    /// The bytes of the binary files it becomes: 60,000 records.
    pub fn installed_bytes(self) -> u64 {
        60_000 * (self.label_bytes() + PIXELS) as u64
    }
}

pub fn load(dir: &Path, variant: Variant, hint: &'static str) -> Result<Dataset, DataError> {
    let (train_files, test_file) = variant.files();
    let mut train = empty(variant);
    for file in train_files {
        append(&mut train, &dir.join(file), variant, hint)?;
    }
    let mut test = empty(variant);
    append(&mut test, &dir.join(test_file), variant, hint)?;
    Ok(Dataset::new(train, test))
}

fn empty(variant: Variant) -> Split {
    Split {
        images: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
        classes: variant.classes(),
    }
}

/// Parses one binary file and appends its records to `split`.
fn append(
    split: &mut Split,
    path: &Path,
    variant: Variant,
    hint: &'static str,
) -> Result<(), DataError> {
    let bytes = read_file(path, variant.label(), hint)?;
    let record = variant.label_bytes() + PIXELS;
    let malformed = |message: String| DataError::Malformed {
        path: path.to_path_buf(),
        message,
    };
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(malformed(format!(
            "{} bytes is not a whole number of {record}-byte {} records (truncated or not a {} binary file)",
            bytes.len(),
            variant.label(),
            variant.label()
        )));
    }
    for (i, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[variant.label_bytes() - 1];
        if label as usize >= variant.classes() {
            return Err(malformed(format!(
                "record {i} has label {label}, but {} has {} classes",
                variant.label(),
                variant.classes()
            )));
        }
        split.labels.push(label);
        split
            .images
            .extend_from_slice(&chunk[variant.label_bytes()..]);
    }
    Ok(())
}
