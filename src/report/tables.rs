//! Per-epoch training metrics as a CSV table.

use std::path::Path;

use polars::prelude::*;

use super::ReportError;
use crate::train::EpochMetrics;

/// Writes `history` to `path` (one row per epoch, accuracies in [0, 1]), atomically.
pub fn write_train_metrics(history: &[EpochMetrics], path: &Path) -> Result<(), ReportError> {
    let fail = |message: String| ReportError {
        path: path.to_path_buf(),
        message,
    };
    let column = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<f64>>();
    let mut table = df!(
        "epoch" => history.iter().map(|m| m.epoch as u32).collect::<Vec<u32>>(),
        "lr" => column(|m| m.lr),
        "train_loss" => column(|m| m.train_loss),
        "train_accuracy" => column(|m| m.train_accuracy),
        "test_loss" => column(|m| m.test_loss),
        "test_accuracy" => column(|m| m.test_accuracy),
        "seconds" => column(|m| m.seconds),
        "images_per_second" => column(|m| m.images_per_second),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(&mut table)
        .map_err(|e| fail(e.to_string()))?;
    crate::atomic_file::write(path, &bytes).map_err(|e| fail(e.to_string()))
}
