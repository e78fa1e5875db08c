//! CIFAR-10/100 on demand: the dataset's parquet files through candle-datasets' hub access,
//! converted into the standard binary layout under `[data] dir`, checked, then put in place in
//! one rename, so that every later run (and every other tool) reads the same files.

use std::fs::File;
use std::path::Path;

use candle_datasets::hub::FileReader;
use parquet::file::reader::SerializedFileReader;

use super::cifar::Variant;
use super::hub_cifar;

/// Training and test images of CIFAR-10 and CIFAR-100 alike.
const TRAIN_IMAGES: usize = 50_000;
const TEST_IMAGES: usize = 10_000;
/// CIFAR-10's training records come in five files of 10,000.
const CIFAR10_BATCH: usize = 10_000;

/// Downloads `variant` (or takes it from the hub cache) and installs it as `dir`.
pub fn download(variant: Variant, dir: &Path) -> Result<(), String> {
    eprintln!(
        "data        {} is not in {}: downloading {} from the Hugging Face hub",
        variant.label(),
        dir.display(),
        variant.hub_id()
    );
    let api = hf_hub::HFClientSync::new().map_err(|e| said_once(&e.to_string()))?;
    let files = candle_datasets::hub::from_hub(&api, variant.hub_id().to_string())
        .map_err(|e| said_once(&e.to_string()))?;
    install(variant, &files, dir)
}

/// `reason` without the parenthesised addresses it already gave: the hub client's errors
/// wrap the HTTP client's, and both name the address.
fn said_once(reason: &str) -> String {
    let mut text = reason.to_string();
    let mut from = 0;
    while let Some(start) = text[from..].find(" (http").map(|i| from + i) {
        let Some(end) = text[start..].find(')').map(|i| start + i) else {
            break;
        };
        let address = &text[start + 2..end];
        if text[..start].contains(address) {
            text.replace_range(start..=end, "");
            from = start;
        } else {
            from = end;
        }
    }
    text
}

/// Converts the hub's parquet `files` (the training and the test split, in any order) into
/// the binary layout and renames the finished folder to `dir`. Nothing is left behind when a
/// file is not what CIFAR's should be.
pub fn install(
    variant: Variant,
    files: &[SerializedFileReader<File>],
    dir: &Path,
) -> Result<(), String> {
    let (train, test) = split_files(variant, files)?;
    let train = hub_cifar::records(train, variant).map_err(|e| format!("training file: {e}"))?;
    let test = hub_cifar::records(test, variant).map_err(|e| format!("test file: {e}"))?;
    let outputs = binary_files(variant, &train, &test);
    crate::util::atomic_file::write_dir_with(dir, |temporary| {
        for (name, bytes) in &outputs {
            std::fs::write(temporary.join(name), bytes)?;
            File::open(temporary.join(name))?.sync_all()?;
        }
        Ok(())
    })
    .map_err(|e| format!("writing {}: {e}", dir.display()))
}

/// Which file is which: the hub names none, so the record counts tell (and are checked).
fn split_files(
    variant: Variant,
    files: &[SerializedFileReader<File>],
) -> Result<(&SerializedFileReader<File>, &SerializedFileReader<File>), String> {
    let rows = |f: &SerializedFileReader<File>| f.metadata().file_metadata().num_rows();
    let with = |n: usize| files.iter().find(|f| rows(f) == n as i64);
    match (files.len(), with(TRAIN_IMAGES), with(TEST_IMAGES)) {
        (2, Some(train), Some(test)) => Ok((train, test)),
        _ => Err(format!(
            "{} on the hub holds parquet files of {:?} rows; expected one of {TRAIN_IMAGES} \
             (training) and one of {TEST_IMAGES} (test)",
            variant.hub_id(),
            files.iter().map(rows).collect::<Vec<_>>()
        )),
    }
}

/// The files of the standard binary layout, with their contents.
fn binary_files<'a>(variant: Variant, train: &'a [u8], test: &'a [u8]) -> Vec<(String, &'a [u8])> {
    let (train_names, test_name) = variant.files();
    let per_file = match variant {
        Variant::Cifar10 => CIFAR10_BATCH * hub_cifar::record_len(variant),
        Variant::Cifar100 => train.len(),
    };
    let mut files: Vec<(String, &[u8])> = train_names
        .iter()
        .zip(train.chunks(per_file))
        .map(|(name, bytes)| (name.to_string(), bytes))
        .collect();
    files.push((test_name.to_string(), test));
    files
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_is_said_once() {
        let url = "http://127.0.0.1:9/api/datasets/uoft-cs/cifar10";
        let reason = format!("HTTP request error: error sending request for url ({url}) ({url})");
        assert_eq!(
            super::said_once(&reason),
            format!("HTTP request error: error sending request for url ({url})")
        );
        assert_eq!(super::said_once("no address (here)"), "no address (here)");
    }
}
