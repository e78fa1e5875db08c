//! The pruning figures, as PNG and SVG: test accuracy against measured speedup at the reported
//! points, and validation accuracy against MAC reduction at every step (each line up to its
//! first point at its lowest accuracy); one colour per criterion, solid with coupled channels
//! pruned, dashed without.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figure::{legend_and_present, write_figure, Figure};
use crate::prune::{Point, PruneResults};
use crate::util::tables::FileError;

const SIZE: (u32, u32) = (900, 600);
/// Points within this many accuracy points of a line's lowest are at its floor, where the
/// lowest is below half the first (a network that collapsed).
const FLOOR_BAND: f64 = 2.0;
pub(super) const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes `accuracy_speedup` and `accuracy_macs` into `dir`.
pub(super) fn accuracy_figures(results: &PruneResults, dir: &Path) -> Result<(), FileError> {
    let batch = largest_timed_batch(results);
    let speedup = AccuracyFigure {
        results,
        title: format!(
            "{}: test accuracy against measured speedup (batch {})",
            results.name,
            batch.map_or("–".into(), |b| b.to_string())
        ),
        x_desc: "speedup (unpruned / pruned median latency)".into(),
        y_desc: "test accuracy (%)".into(),
        point: Box::new(move |base, p| {
            let speedup = match p.step {
                0 => Some(1.0),
                _ => batch.and_then(|b| p.latency.iter().find(|l| l.batch == b)?.speedup),
            };
            speedup
                .zip(p.test)
                .map(|(s, t)| (s, 100.0 * t.accuracy))
                .filter(|_| base.test.is_some())
        }),
    };
    write_figure(&speedup, &dir.join("accuracy_speedup"))?;
    let macs = AccuracyFigure {
        results,
        title: format!(
            "{}: validation accuracy against MAC reduction",
            results.name
        ),
        x_desc: "MAC reduction (unpruned / pruned MACs)".into(),
        y_desc: "validation accuracy (%)".into(),
        point: Box::new(|base, p| {
            p.validation
                .map(|v| (base.macs as f64 / p.macs as f64, 100.0 * v.accuracy))
        }),
    };
    write_figure(&macs, &dir.join("accuracy_macs"))
}

fn largest_timed_batch(results: &PruneResults) -> Option<usize> {
    results
        .variants
        .iter()
        .flat_map(|v| &v.points)
        .flat_map(|p| p.latency.iter().map(|l| l.batch))
        .max()
}

/// Where `point` goes, given the variant's unpruned point; None leaves it out.
type Place<'a> = Box<dyn Fn(&Point, &Point) -> Option<(f64, f64)> + 'a>;

struct AccuracyFigure<'a> {
    results: &'a PruneResults,
    title: String,
    x_desc: String,
    y_desc: String,
    point: Place<'a>,
}

/// One variant's line.
struct Line {
    label: String,
    colour: RGBColor,
    coupled: bool,
    points: Vec<(f64, f64)>,
}

impl AccuracyFigure<'_> {
    /// Per variant, its placed points by step.
    fn lines(&self) -> Vec<Line> {
        let mut criteria: Vec<_> = self.results.variants.iter().map(|v| v.criterion).collect();
        criteria.dedup();
        self.results
            .variants
            .iter()
            .map(|v| {
                let colour = criteria.iter().position(|&c| c == v.criterion).unwrap_or(0);
                let points: Vec<(f64, f64)> = v
                    .points
                    .iter()
                    .filter_map(|p| (self.point)(&v.points[0], p))
                    .collect();
                // A sweep can go on at the floor for many steps (a network that predicts one
                // class); the line ends at its first point there, the tables keep the rest.
                // A line that stops well above it (at `max_drop`) keeps every point.
                let bottom = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let top = points.first().map_or(bottom, |p| p.1);
                let end = points
                    .iter()
                    .position(|p| bottom < top / 2.0 && p.1 <= bottom + FLOOR_BAND)
                    .map_or(points.len(), |i| i + 1);
                let points = points[..end].to_vec();
                Line {
                    label: format!(
                        "{} (coupled {})",
                        v.criterion.as_str(),
                        if v.coupled { "on" } else { "off" }
                    ),
                    colour: COLOURS[colour % COLOURS.len()],
                    coupled: v.coupled,
                    points,
                }
            })
            .collect()
    }
}

impl Figure for AccuracyFigure<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<B: DrawingBackend>(&self, area: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        area.fill(&WHITE).map_err(e)?;
        let lines = self.lines();
        let all = || lines.iter().flat_map(|l| l.points.iter().copied());
        let x_max = all().map(|p| p.0).fold(1.0f64, f64::max);
        let (y_min, y_max) =
            all().fold((100.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let (y_min, y_max) = if y_min > y_max {
            (0.0, 100.0)
        } else {
            ((y_min - 2.0).max(0.0), (y_max + 2.0).min(100.0))
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.95..x_max * 1.05, y_min..y_max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&|x| format!("{x:.2}×"))
            .draw()
            .map_err(e)?;
        for Line {
            label,
            colour,
            coupled,
            points,
        } in &lines
        {
            let style = colour.stroke_width(2);
            let (colour, coupled) = (*colour, *coupled);
            let legend = move |(x, y): (i32, i32)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            };
            if coupled {
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), style))
                    .map_err(e)?
                    .label(label.as_str())
                    .legend(legend);
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(e)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, style))
                    .map_err(e)?
                    .label(label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 8, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 4, colour.filled())),
                    )
                    .map_err(e)?;
            }
        }
        legend_and_present(&mut chart, SeriesLabelPosition::UpperRight, area)
    }
}
