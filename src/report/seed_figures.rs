//! Figures across seeds, as PNG and SVG: validation accuracy against MAC reduction and test
//! accuracy against measured speedup, the mean line of each variant in its 95% band (steps
//! matched by index: every seed removes the same share of channels per step); Spearman ρ of each criterion with the oracle, the mean and
//! its interval, per row of the ρ table.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::across_seeds::{Curves, Merged, Step, CONFIDENCE};
use super::figure::{legend_and_present, write_figure, Figure};
use super::prune_figures::COLOURS;
use crate::stats::AcrossSeeds;
use crate::util::tables::FileError;

const SIZE: (u32, u32) = (900, 600);

/// One variant across seeds: per step, x and accuracy (mean, low, high), in %.
struct Band {
    label: String,
    coupled: bool,
    steps: Vec<(f64, f64, f64, f64)>,
}

/// What accuracy is drawn against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Against {
    /// Validation accuracy at every step against MAC reduction.
    Macs,
    /// Test accuracy at the tested and timed steps against measured speedup.
    Speedup,
}

struct BandsFigure {
    bands: Vec<(Band, RGBColor)>,
    seeds: usize,
    against: Against,
}

/// Writes `<stem>.png/.svg`: each variant's mean accuracy in its band, against MAC reduction
/// or measured speedup (steps every seed has).
pub(super) fn write_accuracy_bands(
    runs: &[Curves],
    against: Against,
    stem: &Path,
) -> Result<PathBuf, FileError> {
    let mut criteria: Vec<&str> = runs[0].keys().map(|(c, _)| c.as_str()).collect();
    criteria.dedup();
    let place = |step: &Step| -> Option<(f64, f64)> {
        match against {
            Against::Macs => Some((1.0 / step.macs_kept, step.val_accuracy)),
            Against::Speedup => step.timed.map(|(test, speedup)| (speedup, test)),
        }
    };
    let bands = runs[0]
        .keys()
        .map(|key| {
            let curves: Vec<&Vec<Step>> = runs.iter().filter_map(|r| r.get(key)).collect();
            let steps = (0..curves.iter().map(|c| c.len()).min().unwrap_or(0))
                .filter_map(|s| {
                    let placed: Vec<(f64, f64)> =
                        curves.iter().map(|c| place(&c[s])).collect::<Option<_>>()?;
                    let x: Vec<f64> = placed.iter().map(|p| p.0).collect();
                    let y: Vec<f64> = placed.iter().map(|p| 100.0 * p.1).collect();
                    let x = AcrossSeeds::of(&x, CONFIDENCE)?;
                    let y = AcrossSeeds::of(&y, CONFIDENCE)?;
                    Some((x.mean, y.mean, y.low, y.high))
                })
                .collect();
            let colour = criteria.iter().position(|c| *c == key.0).unwrap_or(0);
            let coupled = key.1 == "true";
            let band = Band {
                label: format!("{} (coupled {})", key.0, if coupled { "on" } else { "off" }),
                coupled,
                steps,
            };
            (band, COLOURS[colour % COLOURS.len()])
        })
        .collect();
    let figure = BandsFigure {
        bands,
        seeds: runs.len(),
        against,
    };
    write_figure(&figure, stem)?;
    Ok(stem.to_path_buf())
}

impl Figure for BandsFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<B: DrawingBackend>(&self, area: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        area.fill(&WHITE).map_err(e)?;
        let (y, x, x_desc, y_desc) = match self.against {
            Against::Macs => (
                "validation accuracy",
                "MAC reduction",
                "MAC reduction (unpruned / pruned MACs)",
                "validation accuracy (%)",
            ),
            Against::Speedup => (
                "test accuracy",
                "measured speedup",
                "speedup (unpruned / pruned median latency)",
                "test accuracy (%)",
            ),
        };
        let all = || self.bands.iter().flat_map(|(b, _)| b.steps.iter().copied());
        let x_max = all().map(|s| s.0).fold(1.0f64, f64::max);
        let y_min = all().map(|s| s.2).fold(100.0f64, f64::min).max(0.0);
        let y_max = all().map(|s| s.3).fold(0.0f64, f64::max).min(100.0);
        let (y_min, y_max) = if y_min >= y_max {
            (0.0, 100.0)
        } else {
            (y_min, y_max)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{y} against {x}: mean of {} seeds, {}% band",
                    self.seeds,
                    CONFIDENCE * 100.0
                ),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.95..x_max * 1.05, y_min..y_max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.2}×"))
            .draw()
            .map_err(e)?;
        for (band, colour) in &self.bands {
            let colour = *colour;
            let outline: Vec<(f64, f64)> = band
                .steps
                .iter()
                .map(|s| (s.0, s.3))
                .chain(band.steps.iter().rev().map(|s| (s.0, s.2)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(0.15).filled(),
                )))
                .map_err(e)?;
            let line = band.steps.iter().map(|s| (s.0, s.1));
            let style = colour.stroke_width(2);
            let series = if band.coupled {
                chart.draw_series(LineSeries::new(line, style)).map_err(e)?
            } else {
                chart
                    .draw_series(DashedLineSeries::new(line, 6, 4, style))
                    .map_err(e)?
            };
            series.label(band.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
        legend_and_present(&mut chart, SeriesLabelPosition::UpperRight, area)
    }
}

/// A criterion's ρ: its name, the mean and the interval.
type CriterionRho = (String, f64, f64, f64);

/// ρ per criterion and row: mean with its interval.
struct RhoFigure {
    /// Per row of the ρ table, its criteria.
    rows: Vec<(String, Vec<CriterionRho>)>,
    seeds: usize,
}

/// Writes `<stem>.png/.svg` from the merged ρ table.
pub(super) fn write_rho_intervals(rho: &Merged, stem: &Path) -> Result<PathBuf, FileError> {
    let spearman = rho.values.iter().position(|v| v == "spearman");
    let mut rows: Vec<(String, Vec<CriterionRho>)> = Vec::new();
    for (key, cells) in &rho.rows {
        let Some(s) = spearman.and_then(|i| cells[i]) else {
            continue;
        };
        let entry = (key[1].clone(), s.mean, s.low, s.high);
        match rows.iter_mut().find(|(row, _)| *row == key[0]) {
            Some((_, criteria)) => criteria.push(entry),
            None => rows.push((key[0].clone(), vec![entry])),
        }
    }
    let seeds = rho
        .rows
        .iter()
        .filter_map(|(_, c)| spearman.and_then(|i| c[i]))
        .map(|s| s.n)
        .max()
        .unwrap_or(0);
    write_figure(&RhoFigure { rows, seeds }, stem)?;
    Ok(stem.to_path_buf())
}

impl Figure for RhoFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<B: DrawingBackend>(&self, area: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        area.fill(&WHITE).map_err(e)?;
        let criteria: Vec<&str> = self
            .rows
            .first()
            .map(|(_, c)| c.iter().map(|c| c.0.as_str()).collect())
            .unwrap_or_default();
        let n = criteria.len().max(1);
        let rows = self.rows.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "Spearman ρ with the oracle: mean of {} seeds, {}% interval",
                    self.seeds,
                    CONFIDENCE * 100.0
                ),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(80)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, -1.0f64..1.0f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    criteria.get(i as usize).unwrap_or(&"").to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("Spearman ρ")
            .draw()
            .map_err(e)?;
        for (r, (row, values)) in self.rows.iter().enumerate() {
            let colour = COLOURS[r % COLOURS.len()];
            // The rows side by side within each criterion's slot.
            let offset = (r as f64 + 0.5) / rows as f64 - 0.5;
            let at = |i: usize| i as f64 + 0.6 * offset;
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    PathElement::new(vec![(at(i), v.2), (at(i), v.3)], colour.stroke_width(2))
                }))
                .map_err(e)?;
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Circle::new((at(i), v.1), 4, colour.filled())),
                )
                .map_err(e)?
                .label(row.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
        }
        legend_and_present(&mut chart, SeriesLabelPosition::LowerRight, area)
    }
}
