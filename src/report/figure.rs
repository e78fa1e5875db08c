//! A figure drawn the same way on every backend, written as PNG and SVG.

use std::path::Path;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::curves::register_fonts;
use crate::util::tables::FileError;

/// A figure drawn the same way on every backend.
pub(super) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<B: DrawingBackend>(&self, area: &DrawingArea<B, Shift>) -> Result<(), String>;
}

/// Draws `figure` into `<stem>.png` and `<stem>.svg`, each written atomically.
pub(super) fn write_figure(figure: &impl Figure, stem: &Path) -> Result<(), FileError> {
    register_fonts();
    let (png, svg) = (stem.with_extension("png"), stem.with_extension("svg"));
    let fail = |path: &Path, message: String| FileError {
        path: path.to_path_buf(),
        message,
    };
    // The bitmap backend encodes by the file's extension, so it draws into a temporary `.png`.
    crate::util::atomic_file::write_with(&png, |temporary| {
        let area = BitMapBackend::new(temporary, figure.size()).into_drawing_area();
        figure.draw(&area).map_err(std::io::Error::other)
    })
    .map_err(|e| fail(&png, e.to_string()))?;
    let mut text = String::new();
    figure
        .draw(&SVGBackend::with_string(&mut text, figure.size()).into_drawing_area())
        .map_err(|e| fail(&svg, e))?;
    crate::util::atomic_file::write(&svg, text.as_bytes()).map_err(|e| fail(&svg, e.to_string()))
}

/// Draws the series' legend at `position` on a translucent white box, then presents `area`.
pub(super) fn legend_and_present<'a, B: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, B, CT>,
    position: SeriesLabelPosition,
    area: &DrawingArea<B, Shift>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    area.present().map_err(|e| e.to_string())
}
