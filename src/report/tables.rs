//! Per-epoch training metrics as a CSV table.

use std::path::Path;

use polars::prelude::*;

use crate::train::EpochMetrics;
use crate::util::tables::{write_csv, FileError};

/// Writes `history` to `path` (one row per epoch, accuracies in [0, 1]), atomically. Only
/// what training computes, no wall times: a resumed run writes the same bytes as an
/// uninterrupted one.
pub fn write_train_metrics(history: &[EpochMetrics], path: &Path) -> Result<(), FileError> {
    let column = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<f64>>();
    let mut table = df!(
        "epoch" => epochs(history),
        "lr" => column(|m| m.lr),
        "train_loss" => column(|m| m.train_loss),
        "train_accuracy" => column(|m| m.train_accuracy),
        "test_loss" => column(|m| m.test_loss),
        "test_accuracy" => column(|m| m.test_accuracy),
    )
    .map_err(|e| FileError::new(path, e))?;
    write_csv(&mut table, path)
}

/// Writes each epoch's training wall time and images/s to `path`, atomically.
pub fn write_train_timing(history: &[EpochMetrics], path: &Path) -> Result<(), FileError> {
    let mut table = df!(
        "epoch" => epochs(history),
        "seconds" => history.iter().map(|m| m.seconds).collect::<Vec<f64>>(),
        "images_per_second" => history.iter().map(|m| m.images_per_second).collect::<Vec<f64>>(),
    )
    .map_err(|e| FileError::new(path, e))?;
    write_csv(&mut table, path)
}

fn epochs(history: &[EpochMetrics]) -> Vec<u32> {
    history.iter().map(|m| m.epoch as u32).collect()
}
