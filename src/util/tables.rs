//! Tables written as CSV or Parquet, atomically, and the error of a file that could not be
//! written or read.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// A file that could not be written or read, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, why: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: why.to_string(),
        }
    }
}

/// Writes `table` as CSV to `path`, atomically.
pub fn write_csv(table: &mut DataFrame, path: &Path) -> Result<(), FileError> {
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(table)
        .map_err(|e| FileError::new(path, e))?;
    super::atomic_file::write(path, &bytes).map_err(|e| FileError::new(path, e))
}

/// Writes `table` as Parquet to `path`, atomically.
pub fn write_parquet(table: &mut DataFrame, path: &Path) -> Result<(), FileError> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(table)
        .map_err(|e| FileError::new(path, e))?;
    super::atomic_file::write(path, &bytes).map_err(|e| FileError::new(path, e))
}
