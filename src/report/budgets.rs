//! Does a criterion that ranks channels closer to the oracle also prune better? At equal
//! budgets — a sweep's step k removes the same number of channels whatever the criterion — the
//! accuracy each criterion's network reached, beside Spearman's ρ across the criteria between
//! their ρ with the oracle (all layers) and that accuracy.

use std::path::Path;

use polars::prelude::*;

use super::text::{latex_escape, latex_table, markdown_table};
use super::{write_csv, ReportError};
use crate::eval::{spearman, Study};
use crate::prune::{PruneResults, Variant};

/// Most budgets shown per coupled setting.
const ROWS: usize = 12;

/// One budget: a step, for one coupled setting.
struct Budget {
    coupled: bool,
    step: usize,
    /// Channels removed, as a fraction of all channels.
    removed: f64,
    /// Per criterion (in `criteria` order), the validation accuracy reached.
    accuracy: Vec<f64>,
    /// Spearman ρ across the criteria between oracle ρ and accuracy.
    rho: f64,
}

/// The criteria pruned that the study also compared, with their all-layer ρ.
fn criteria(study: &Study, results: &PruneResults) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for v in &results.variants {
        let name = v.criterion.as_str();
        if out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(row) = study.rows.iter().find(|r| r.criterion == name) {
            out.push((name.to_string(), row.all_layers.value));
        }
    }
    out
}

fn budgets(study: &Study, results: &PruneResults) -> (Vec<(String, f64)>, Vec<Budget>) {
    let criteria = criteria(study, results);
    let mut rows = Vec::new();
    for coupled in [true, false] {
        let variants: Vec<&Variant> = criteria
            .iter()
            .filter_map(|(name, _)| {
                results
                    .variants
                    .iter()
                    .find(|v| v.coupled == coupled && v.criterion.as_str() == name)
            })
            .collect();
        if variants.len() != criteria.len() || variants.len() < 2 {
            continue;
        }
        // Steps every variant took, with a validation accuracy.
        let last = variants
            .iter()
            .map(|v| v.points.iter().filter(|p| p.validation.is_some()).count())
            .min()
            .unwrap_or(0);
        let every = last.div_ceil(ROWS).max(1);
        for step in (every..last).step_by(every) {
            let points: Vec<_> = variants.iter().filter_map(|v| v.point(step)).collect();
            if points.len() != variants.len() {
                continue;
            }
            let all = variants[0].points[0].channels as f64;
            let accuracy: Vec<f64> = points
                .iter()
                .map(|p| p.validation.map_or(f64::NAN, |s| s.accuracy))
                .collect();
            let oracle: Vec<f64> = criteria.iter().map(|(_, rho)| *rho).collect();
            rows.push(Budget {
                coupled,
                step,
                removed: 1.0 - points[0].channels as f64 / all,
                rho: spearman(&oracle, &accuracy),
                accuracy,
            });
        }
    }
    (criteria, rows)
}

/// Writes `budgets.md`, `budgets.tex` and `budgets.csv` into `dir`, when the results hold a
/// sweep with at least two criteria the study compared.
pub fn write_budgets(study: &Study, results: &PruneResults, dir: &Path) -> Result<(), ReportError> {
    let (criteria, rows) = budgets(study, results);
    if rows.is_empty() {
        return Ok(());
    }
    let mut header = vec!["coupled".to_string(), "step".into(), "removed %".into()];
    header.extend(criteria.iter().map(|(n, rho)| format!("{n} (ρ {rho:.2})")));
    header.push("ρ(oracle ρ, acc.)".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            let mut row = vec![
                if b.coupled { "on" } else { "off" }.to_string(),
                b.step.to_string(),
                format!("{:.1}", 100.0 * b.removed),
            ];
            row.extend(b.accuracy.iter().map(|a| format!("{:.2}", 100.0 * a)));
            row.push(if b.rho.is_nan() {
                "–".into()
            } else {
                format!("{:.2}", b.rho)
            });
            row
        })
        .collect();
    let note = format!(
        "{}: validation accuracy (%) after pruning to equal budgets (a sweep's step removes the \
         same number of channels for every criterion), without fine-tuning. In brackets each \
         criterion's Spearman ρ with the oracle over all layers; last column: Spearman ρ across \
         the {} criteria between that ρ and the accuracy reached.",
        results.name,
        criteria.len()
    );
    let write = |file: &str, text: String| {
        crate::atomic_file::write(&dir.join(file), text.as_bytes()).map_err(|e| ReportError {
            path: dir.join(file),
            message: e.to_string(),
        })
    };
    write(
        "budgets.md",
        format!(
            "# {}: accuracy at equal budgets\n\n{note}\n\n{}",
            results.name,
            markdown_table(&header, &cells)
        ),
    )?;
    write(
        "budgets.tex",
        format!(
            "% {}\n{}",
            latex_escape(&note),
            latex_table(&header, &cells)
        ),
    )?;
    let mut columns = vec![
        Column::new(
            "coupled".into(),
            rows.iter().map(|b| b.coupled).collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            rows.iter().map(|b| b.step as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "removed".into(),
            rows.iter().map(|b| b.removed).collect::<Vec<_>>(),
        ),
    ];
    for (i, (name, _)) in criteria.iter().enumerate() {
        columns.push(Column::new(
            name.as_str().into(),
            rows.iter().map(|b| b.accuracy[i]).collect::<Vec<_>>(),
        ));
    }
    columns.push(Column::new(
        "rho".into(),
        rows.iter().map(|b| b.rho).collect::<Vec<_>>(),
    ));
    let mut table = DataFrame::new(rows.len(), columns).map_err(|e| ReportError {
        path: dir.join("budgets.csv"),
        message: e.to_string(),
    })?;
    write_csv(&mut table, &dir.join("budgets.csv"))
}
