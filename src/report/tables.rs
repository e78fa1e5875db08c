//! Per-epoch training metrics as a CSV table.

use std::path::Path;

use polars::prelude::*;

use super::ReportError;
use crate::commands::latency::LayerTime;
use crate::train::EpochMetrics;

/// Writes `history` to `path` (one row per epoch, accuracies in [0, 1]), atomically. Only
/// what training computes, no wall times: a resumed run writes the same bytes as an
/// uninterrupted one.
pub fn write_train_metrics(history: &[EpochMetrics], path: &Path) -> Result<(), ReportError> {
    let column = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<f64>>();
    let mut table = df!(
        "epoch" => epochs(history),
        "lr" => column(|m| m.lr),
        "train_loss" => column(|m| m.train_loss),
        "train_accuracy" => column(|m| m.train_accuracy),
        "test_loss" => column(|m| m.test_loss),
        "test_accuracy" => column(|m| m.test_accuracy),
    )
    .map_err(|e| failure(path, e))?;
    write_csv(&mut table, path)
}

/// Writes each epoch's training wall time and images/s to `path`, atomically.
pub fn write_train_timing(history: &[EpochMetrics], path: &Path) -> Result<(), ReportError> {
    let mut table = df!(
        "epoch" => epochs(history),
        "seconds" => history.iter().map(|m| m.seconds).collect::<Vec<f64>>(),
        "images_per_second" => history.iter().map(|m| m.images_per_second).collect::<Vec<f64>>(),
    )
    .map_err(|e| failure(path, e))?;
    write_csv(&mut table, path)
}

fn epochs(history: &[EpochMetrics]) -> Vec<u32> {
    history.iter().map(|m| m.epoch as u32).collect()
}

/// Writes the per-layer latency breakdown to `path`, one row per (model, batch, node).
pub fn write_layer_times(rows: &[LayerTime], path: &Path) -> Result<(), ReportError> {
    let mut table = df!(
        "model" => rows.iter().map(|r| r.model).collect::<Vec<_>>(),
        "batch" => rows.iter().map(|r| r.batch as u32).collect::<Vec<_>>(),
        "node" => rows.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
        "kind" => rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        "macs" => rows.iter().map(|r| r.macs).collect::<Vec<_>>(),
        "coupled" => rows.iter().map(|r| r.coupled).collect::<Vec<_>>(),
        "median_ms" => rows.iter().map(|r| r.median_ms).collect::<Vec<_>>(),
    )
    .map_err(|e| failure(path, e))?;
    write_csv(&mut table, path)
}

fn failure(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `table` as CSV to `path`, atomically.
pub fn write_csv(table: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(table)
        .map_err(|e| failure(path, e))?;
    crate::util::atomic_file::write(path, &bytes).map_err(|e| failure(path, e))
}

/// Writes `table` as Parquet to `path`, atomically.
pub fn write_parquet(table: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(table)
        .map_err(|e| failure(path, e))?;
    crate::util::atomic_file::write(path, &bytes).map_err(|e| failure(path, e))
}
