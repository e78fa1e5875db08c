//! The training-curve figure: loss and accuracy per epoch, train and test, as PNG and SVG.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::train::EpochMetrics;
use crate::util::tables::FileError;

const SIZE: (u32, u32) = (1200, 480);

/// Draws `<stem>.png` and `<stem>.svg`, each written atomically.
pub fn training_curves(
    history: &[EpochMetrics],
    title: &str,
    stem: &Path,
) -> Result<(), FileError> {
    register_fonts();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &Path, message: String| FileError {
        path: path.to_path_buf(),
        message,
    };
    // The bitmap backend encodes by the file's extension, so it draws into a temporary `.png`.
    crate::util::atomic_file::write_with(&png, |temporary| {
        draw(
            &BitMapBackend::new(temporary, SIZE).into_drawing_area(),
            history,
            title,
        )
        .map_err(std::io::Error::other)
    })
    .map_err(|e| fail(&png, e.to_string()))?;
    let mut text = String::new();
    draw(
        &SVGBackend::with_string(&mut text, SIZE).into_drawing_area(),
        history,
        title,
    )
    .map_err(|e| fail(&svg, e))?;
    crate::util::atomic_file::write(&svg, text.as_bytes())
        .map_err(|e| fail(&svg, e.to_string()))?;
    Ok(())
}

/// Plotters finds fonts by family name; we ship DejaVu Sans so figures never depend on the
/// fonts a machine happens to have.
pub(super) fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the bundled DejaVu Sans font is valid"));
    });
}

fn draw<B: DrawingBackend>(
    area: &DrawingArea<B, Shift>,
    history: &[EpochMetrics],
    title: &str,
) -> Result<(), String> {
    let e = |err: DrawingAreaErrorKind<B::ErrorType>| err.to_string();
    area.fill(&WHITE).map_err(e)?;
    let area = area.titled(title, ("sans-serif", 22)).map_err(e)?;
    let (left, right) = area.split_horizontally(SIZE.0 / 2);
    let last = history.last().map_or(1, |m| m.epoch).max(1);
    let epochs = || history.iter().map(|m| m.epoch as f64);
    let series = |f: fn(&EpochMetrics) -> f64| {
        epochs()
            .zip(history.iter().map(f))
            .collect::<Vec<(f64, f64)>>()
    };

    let max_loss = history
        .iter()
        .flat_map(|m| [m.train_loss, m.test_loss])
        .fold(0.0f64, f64::max);
    let loss = [
        ("train", series(|m| m.train_loss), BLUE),
        ("test", series(|m| m.test_loss), RED),
    ];
    panel(&left, "loss", last, 0.0..(max_loss * 1.05).max(1e-3), &loss).map_err(e)?;
    let accuracy = [
        ("train", series(|m| 100.0 * m.train_accuracy), BLUE),
        ("test", series(|m| 100.0 * m.test_accuracy), RED),
    ];
    panel(&right, "accuracy (%)", last, 0.0..100.0, &accuracy).map_err(e)?;
    area.present().map_err(e)
}

fn panel<B: DrawingBackend>(
    area: &DrawingArea<B, Shift>,
    label: &str,
    last_epoch: usize,
    y: std::ops::Range<f64>,
    lines: &[(&str, Vec<(f64, f64)>, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<B::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            if last_epoch > 1 {
                1.0..last_epoch as f64
            } else {
                0.5..1.5
            },
            y,
        )?;
    chart
        .configure_mesh()
        .x_labels(last_epoch.clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("epoch")
        .y_desc(label)
        .draw()?;
    for (name, points, color) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}
