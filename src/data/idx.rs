//! The idx format of MNIST and Fashion-MNIST, gzipped or not: a big-endian magic number
//! (0x801 labels, 0x803 images), the dimension sizes, then the `u8` values.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{read_file, DataError, Dataset, Split};

const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Fashion-MNIST's images: 28×28 pixels, one channel.
const SIDE: usize = 28;

pub fn load_fashion_mnist(dir: &Path, hint: &'static str) -> Result<Dataset, DataError> {
    let split = |prefix: &str| -> Result<Split, DataError> {
        let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"));
        let (images, count) = read_images(&images_path, hint)?;
        let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"));
        let labels = read_labels(&labels_path, hint)?;
        if labels.len() != count {
            return Err(DataError::Malformed {
                path: labels_path,
                message: format!(
                    "{} labels for the {count} images of {}",
                    labels.len(),
                    images_path.display()
                ),
            });
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= 10) {
            return Err(DataError::Malformed {
                path: labels_path,
                message: format!("label {bad} outside 0..10"),
            });
        }
        Ok(Split {
            images,
            labels,
            channels: 1,
            height: SIDE,
            width: SIDE,
            classes: 10,
        })
    };
    Ok(Dataset::new(split("train")?, split("t10k")?))
}

/// `name.gz` if it exists, else `name` (the error then names the uncompressed file).
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(name)
    }
}

/// The file's contents, decompressed when it is gzip.
fn read_maybe_gz(path: &Path, hint: &'static str) -> Result<Vec<u8>, DataError> {
    let raw = read_file(path, "Fashion-MNIST", hint)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| DataError::Malformed {
            path: path.to_path_buf(),
            message: format!("corrupt gzip data: {e}"),
        })?;
    Ok(out)
}

/// Parses the header and checks that the payload is exactly as long as the header says.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    dims: usize,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let malformed = |message: String| DataError::Malformed {
        path: path.to_path_buf(),
        message,
    };
    let word = |i: usize| {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| {
        malformed(format!(
            "{} bytes is too short for an idx header",
            bytes.len()
        ))
    })?;
    if found != magic {
        return Err(malformed(format!("wrong magic number {found:#010x}, expected {magic:#010x} (not an idx file of this kind)")));
    }
    let sizes: Vec<usize> = (1..=dims)
        .map(|i| {
            word(i)
                .map(|w| w as usize)
                .ok_or_else(|| malformed("truncated idx header".into()))
        })
        .collect::<Result<_, _>>()?;
    let payload = &bytes[4 * (dims + 1)..];
    let expected = sizes
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| malformed(format!("header sizes {sizes:?} overflow")))?;
    if payload.len() != expected {
        return Err(malformed(format!(
            "header promises {expected} values {sizes:?}, file holds {}",
            payload.len()
        )));
    }
    Ok((sizes, payload))
}

fn read_labels(path: &Path, hint: &'static str) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path, hint)?;
    let (_, payload) = parse(&bytes, path, LABELS_MAGIC, 1)?;
    Ok(payload.to_vec())
}

/// The pixels and the image count; the file must hold at least one 28×28 image.
fn read_images(path: &Path, hint: &'static str) -> Result<(Vec<u8>, usize), DataError> {
    let bytes = read_maybe_gz(path, hint)?;
    let (sizes, payload) = parse(&bytes, path, IMAGES_MAGIC, 3)?;
    let malformed = |message: String| DataError::Malformed {
        path: path.to_path_buf(),
        message,
    };
    if sizes[1..] != [SIDE, SIDE] {
        return Err(malformed(format!(
            "images are {}×{}; Fashion-MNIST images are {SIDE}×{SIDE}",
            sizes[1], sizes[2]
        )));
    }
    if sizes[0] == 0 {
        return Err(malformed("holds no images".into()));
    }
    Ok((payload.to_vec(), sizes[0]))
}
