//! The correlation study's figures, each as PNG and SVG: the criterion × criterion heat map,
//! per-DFC ρ as grouped bars, and rank-against-rank scatter panels.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{write_figure, Figure};
use crate::stats::{average_ranks, Scoring, Study};
use crate::util::tables::FileError;

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// A rough width in pixels of `chars` characters at `size` pixels (DejaVu Sans averages about
/// 0.6 em), for laying out labels before anything is drawn.
fn text_width(chars: usize, size: u32) -> u32 {
    (chars as u32 * size * 3).div_ceil(5)
}

fn longest<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
}

/// Blue (−1) through white (0) to red (+1); grey for NaN.
fn diverging(rho: f64) -> RGBColor {
    if rho.is_nan() {
        return RGBColor(200, 200, 200);
    }
    let (end, t) = if rho < 0.0 {
        ((33.0, 102.0, 172.0), -rho.max(-1.0))
    } else {
        ((178.0, 24.0, 43.0), rho.min(1.0))
    };
    let mix = |e: f64| (255.0 + t * (e - 255.0)).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

struct Heatmap<'a> {
    study: &'a Study,
    title: &'a str,
    cell: u32,
    label: u32,
}

const TITLE: u32 = 44;

impl Figure for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let k = self.study.matrix.names.len() as u32;
        (
            self.label + k * self.cell + 110,
            TITLE + self.label + k * self.cell + 24,
        )
    }

    fn draw<B: DrawingBackend>(&self, area: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        let m = &self.study.matrix;
        let (cell, left, top) = (
            self.cell as i32,
            self.label as i32,
            (TITLE + self.label) as i32,
        );
        area.fill(&WHITE).map_err(e)?;
        let width = self.size().0 as i32;
        let centred = Pos::new(HPos::Center, VPos::Center);
        let title = format!("{}: Spearman ρ over all channels", self.title);
        area.draw(&Text::new(
            title,
            (width / 2, 14),
            font(20).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(e)?;
        for (i, name) in m.names.iter().enumerate() {
            let at = left + i as i32 * cell + cell / 2;
            let row = font(14).pos(Pos::new(HPos::Right, VPos::Center));
            area.draw(&Text::new(
                name.as_str(),
                (left - 8, top + i as i32 * cell + cell / 2),
                row,
            ))
            .map_err(e)?;
            let column = font(14)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(name.as_str(), (at, top - 8), column))
                .map_err(e)?;
            for (j, &rho) in m.rho[i].iter().enumerate() {
                let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    diverging(rho).filled(),
                ))
                .map_err(e)?;
                let ink = if rho.abs() > 0.6 { WHITE } else { BLACK };
                let label = if rho.is_nan() {
                    "–".to_string()
                } else {
                    format!("{rho:.2}")
                };
                let style = ("sans-serif", 15).into_font().color(&ink).pos(centred);
                area.draw(&Text::new(label, (x + cell / 2, y + cell / 2), style))
                    .map_err(e)?;
            }
        }
        // The colour scale: a bar from +1 (top) to −1 (bottom).
        let (x, height) = (
            left + m.names.len() as i32 * cell + 24,
            (m.names.len() as i32 * cell).max(60),
        );
        for p in 0..height {
            let rho = 1.0 - 2.0 * p as f64 / (height - 1) as f64;
            let bar = Rectangle::new(
                [(x, top + p), (x + 18, top + p + 1)],
                diverging(rho).filled(),
            );
            area.draw(&bar).map_err(e)?;
        }
        for (label, p) in [("1", 0), ("0", height / 2), ("−1", height - 1)] {
            let style = font(13).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(label, (x + 24, top + p), style))
                .map_err(e)?;
        }
        area.present().map_err(e)
    }
}

/// The criterion × criterion matrix as `<stem>.png`/`.svg`.
pub(super) fn heatmap(study: &Study, title: &str, stem: &Path) -> Result<(), FileError> {
    let names = study.matrix.names.iter().map(String::as_str);
    let label = (text_width(longest(names), 14) + 16).clamp(60, 320);
    write_figure(
        &Heatmap {
            study,
            title,
            cell: 64,
            label,
        },
        stem,
    )
}

struct Bars<'a> {
    study: &'a Study,
    title: &'a str,
    /// Per DFC: its label (starred when coupled) and per criterion ρ.
    dfcs: Vec<(String, Vec<f64>)>,
    bottom: u32,
    legend: u32,
    group: u32,
}

impl Bars<'_> {
    fn title(&self) -> String {
        let reference = &self.study.reference;
        format!(
            "{}: Spearman ρ against {reference} within each DFC (* coupled)",
            self.title
        )
    }
}

impl Figure for Bars<'_> {
    fn size(&self) -> (u32, u32) {
        let bars = 90 + self.dfcs.len() as u32 * self.group + self.legend;
        let title = text_width(self.title().chars().count(), 20) + 40;
        (bars.max(title), TITLE + 380 + self.bottom)
    }

    fn draw<B: DrawingBackend>(&self, root: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        root.fill(&WHITE).map_err(e)?;
        let (width, _) = self.size();
        root.draw(&Text::new(
            self.title(),
            (width as i32 / 2, 14),
            font(20).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(e)?;
        let (plot, _) = root.split_horizontally(width - self.legend);
        let plot = plot.margin(TITLE, self.bottom, 10, 10);
        let n = self.dfcs.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n - 0.5, -1.0..1.0)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(11)
            .max_light_lines(1)
            .y_desc(format!("ρ against {}", self.study.reference))
            .draw()
            .map_err(e)?;
        let k = self.study.rows.len();
        let width_of_bar = 0.8 / k.max(1) as f64;
        for (c, row) in self.study.rows.iter().enumerate() {
            let color = Palette99::pick(c).to_rgba();
            let bars = self
                .dfcs
                .iter()
                .enumerate()
                .filter(|(_, (_, rho))| !rho[c].is_nan())
                .map(|(d, (_, rho))| {
                    let x = d as f64 - 0.4 + c as f64 * width_of_bar;
                    Rectangle::new([(x, 0.0), (x + width_of_bar, rho[c])], color.filled())
                });
            chart.draw_series(bars).map_err(e)?;
            let (x, y) = (
                width as i32 - self.legend as i32 + 10,
                TITLE as i32 + 20 + 22 * c as i32,
            );
            root.draw(&Rectangle::new(
                [(x, y - 7), (x + 16, y + 7)],
                color.filled(),
            ))
            .map_err(e)?;
            let style = font(14).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(row.criterion.as_str(), (x + 22, y), style))
                .map_err(e)?;
        }
        chart
            .draw_series(LineSeries::new([(-0.5, 0.0), (n - 0.5, 0.0)], BLACK))
            .map_err(e)?;
        let below = font(12)
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (d, (label, _)) in self.dfcs.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(d as f64, -1.0));
            root.draw(&Text::new(label.as_str(), (x, y + 8), below.clone()))
                .map_err(e)?;
        }
        root.present().map_err(e)
    }
}

/// Per-DFC ρ against the reference: a group of bars per DFC, a bar per criterion.
pub(super) fn per_dfc_bars(study: &Study, title: &str, stem: &Path) -> Result<(), FileError> {
    let k = study.rows.len();
    let dfcs: Vec<(String, Vec<f64>)> = study
        .per_dfc
        .chunks(k.max(1))
        .filter(|rows| k > 0 && rows.len() == k)
        .map(|rows| {
            let star = if rows[0].coupled { "*" } else { "" };
            (
                format!("{}{star}", rows[0].dfc),
                rows.iter().map(|r| r.spearman).collect(),
            )
        })
        .collect();
    let bottom = (text_width(longest(dfcs.iter().map(|d| d.0.as_str())), 12) + 20).clamp(40, 260);
    let legend =
        (text_width(longest(study.rows.iter().map(|r| r.criterion.as_str())), 14) + 50).max(120);
    let group = (k as u32 * 8 + 8).max(24);
    write_figure(
        &Bars {
            study,
            title,
            dfcs,
            bottom,
            legend,
            group,
        },
        stem,
    )
}

struct Scatter<'a> {
    title: String,
    reference: &'a str,
    /// Per panel: the criterion's name, its ρ against the reference, (its rank, the reference's
    /// rank) of the channels drawn.
    panels: Vec<(&'a str, f64, Vec<(f64, f64)>)>,
    channels: usize,
    columns: usize,
}

const PANEL: u32 = 380;

impl Figure for Scatter<'_> {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.columns).max(1) as u32;
        (self.columns as u32 * PANEL, TITLE + rows * PANEL)
    }

    fn draw<B: DrawingBackend>(&self, root: &DrawingArea<B, Shift>) -> Result<(), String> {
        let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
        root.fill(&WHITE).map_err(e)?;
        let area = root.titled(&self.title, ("sans-serif", 20)).map_err(e)?;
        let rows = self.panels.len().div_ceil(self.columns).max(1);
        let top = self.channels as f64 + 1.0;
        for ((name, rho, points), panel) in self
            .panels
            .iter()
            .zip(area.split_evenly((rows, self.columns)))
        {
            let mut chart = ChartBuilder::on(&panel)
                .caption(
                    format!(
                        "{name}: ρ = {}",
                        if rho.is_nan() {
                            "–".into()
                        } else {
                            format!("{rho:.2}")
                        }
                    ),
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..top, 0.0..top)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_labels(5)
                .y_labels(5)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .x_desc(format!("rank by {name}"))
                .y_desc(format!("rank by {}", self.reference))
                .draw()
                .map_err(e)?;
            let (color, radius) = (BLUE.mix(0.4), if points.len() > 500 { 1 } else { 2 });
            let dots = points
                .iter()
                .map(|&p| Circle::new(p, radius, color.filled()));
            chart.draw_series(dots).map_err(e)?;
        }
        root.present().map_err(e)
    }
}

/// At most this many channels are drawn per panel (every k-th channel beyond it).
const MAX_POINTS: usize = 2500;

/// Per scoring, its rank (x) against the reference's rank (y) over all channels pooled, with
/// its ρ from the study's matrix in the panel's title.
pub(super) fn rank_scatter(
    study: &Study,
    scorings: &[Scoring],
    reference: &Scoring,
    title: &str,
    stem: &Path,
) -> Result<(), FileError> {
    let reference_ranks = average_ranks(&reference.dfcs.concat());
    let channels = reference_ranks.len();
    let stride = channels.div_ceil(MAX_POINTS).max(1);
    let mut panels = Vec::with_capacity(scorings.len());
    for s in scorings {
        let Some(j) = study.matrix.names.iter().position(|n| n == s.name) else {
            return Err(FileError {
                path: stem.with_extension("png"),
                message: format!("`{}` is not among the study's scorings", s.name),
            });
        };
        let ranks = average_ranks(&s.dfcs.concat());
        let points = ranks
            .iter()
            .zip(&reference_ranks)
            .step_by(stride)
            .map(|(&x, &y)| (x, y))
            .collect();
        panels.push((s.name, study.matrix.rho[0][j], points));
    }
    let thinned = if stride > 1 {
        format!(" (one channel in {stride} drawn)")
    } else {
        String::new()
    };
    let title = format!("{title}: ranks over all {channels} channels{thinned}");
    let columns = panels.len().clamp(1, 4);
    write_figure(
        &Scatter {
            title,
            reference: reference.name,
            panels,
            channels,
            columns,
        },
        stem,
    )
}
