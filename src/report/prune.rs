//! The prune stage's outputs: `results.json` (read back by [`read_prune`]), every point as a
//! long table, the headline table in Markdown and LaTeX, and the accuracy figures.
//!
//! Every table shows the four ratios side by side — channels, parameters, MACs (each unpruned
//! / pruned) and the measured speedup (unpruned / pruned median latency) — because they are
//! not interchangeable.

use std::path::Path;

use polars::prelude::*;

use super::prune_figures::accuracy_figures;
use super::text::{latex_escape, markdown_table};
use crate::prune::{Point, PruneResults, Variant, SCHEMA};
use crate::util::tables::{write_csv, write_parquet, FileError};

/// Writes, atomically, into `dir`: `results.json`; `points.csv`/`.parquet` (every step of
/// every variant); `headline.md`, `headline.tex`, `headline.csv`/`.parquet` (per variant and
/// accuracy drop, or the one-shot choice); `accuracy_speedup` and `accuracy_macs` as PNG and
/// SVG. The same results give byte-identical files.
pub fn write_prune(results: &PruneResults, dir: &Path) -> Result<(), FileError> {
    let fail = |file: &str, message: String| FileError {
        path: dir.join(file),
        message,
    };
    let write = |file: &str, text: &str| {
        crate::util::atomic_file::write(&dir.join(file), text.as_bytes())
            .map_err(|e| fail(file, e.to_string()))
    };
    let json =
        serde_json::to_string_pretty(results).map_err(|e| fail("results.json", e.to_string()))?;
    write("results.json", &(json + "\n"))?;
    let rows = headline_rows(results);
    write("headline.md", &headline_markdown(results))?;
    write("headline.tex", &headline_latex(results, &rows))?;
    for (stem, table) in [
        ("points", points_table(results)),
        ("headline", headline_table(results, &rows)),
    ] {
        let mut table = table.map_err(|e| fail(&format!("{stem}.csv"), e.to_string()))?;
        write_csv(&mut table, &dir.join(format!("{stem}.csv")))?;
        write_parquet(&mut table, &dir.join(format!("{stem}.parquet")))?;
    }
    accuracy_figures(results, dir)
}

/// Reads back the `results.json` that [`write_prune`] wrote into `dir`.
pub fn read_prune(dir: &Path) -> Result<PruneResults, FileError> {
    let path = dir.join("results.json");
    let fail = |message: String| FileError {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let results: PruneResults = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    if results.schema != SCHEMA {
        return Err(fail(format!(
            "schema {} (this build reads {SCHEMA})",
            results.schema
        )));
    }
    // Every table starts from a variant's first point, the unpruned network.
    if let Some(v) = results.variants.iter().find(|v| v.points.is_empty()) {
        return Err(fail(format!(
            "the variant {} (coupled {}) has no points",
            v.criterion.as_str(),
            if v.coupled { "on" } else { "off" }
        )));
    }
    Ok(results)
}

/// One reported row: a variant at a headline drop (or its one-shot choice).
struct Row<'a> {
    variant: &'a Variant,
    /// "≤ 1.0%" or the one-shot target.
    within: String,
    drop: Option<f64>,
    point: Option<&'a Point>,
}

fn headline_rows(results: &PruneResults) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for v in &results.variants {
        for h in &v.headline {
            rows.push(Row {
                variant: v,
                within: format!("≤ {}%", percent(h.drop)),
                drop: Some(h.drop),
                point: h.step.and_then(|s| v.point(s)),
            });
        }
        if let Some(step) = v.chosen {
            let before = match v.fine_tuned {
                Some(_) => "last step",
                None => "target",
            };
            rows.push(Row {
                variant: v,
                within: before.into(),
                drop: None,
                point: v.point(step),
            });
        }
        if let Some(f) = &v.fine_tuned {
            rows.push(Row {
                variant: v,
                within: "fine-tuned, last epoch".into(),
                drop: None,
                point: Some(&f.last),
            });
            rows.push(Row {
                variant: v,
                within: format!("fine-tuned, best epoch ({})", f.best_epoch),
                drop: None,
                point: Some(&f.best),
            });
        }
    }
    rows
}

/// `0.025` → `2.5`, `0.01` → `1`.
fn percent(x: f64) -> String {
    let s = format!("{:.2}", 100.0 * x);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn ratio(unpruned: f64, pruned: f64) -> f64 {
    unpruned / pruned
}

/// The batch sizes timed anywhere in the results, in order.
fn timed_batches(results: &PruneResults) -> Vec<usize> {
    let mut batches: Vec<usize> = results
        .variants
        .iter()
        .flat_map(|v| &v.points)
        .flat_map(|p| p.latency.iter().map(|l| l.batch))
        .collect();
    batches.sort_unstable();
    batches.dedup();
    batches
}

fn speedup_at(point: &Point, batch: usize) -> Option<f64> {
    point
        .latency
        .iter()
        .find(|l| l.batch == batch)
        .and_then(|l| l.speedup)
}

fn cells(results: &PruneResults, row: &Row) -> Vec<String> {
    let v = row.variant;
    let base = &v.points[0];
    let mut out = vec![
        v.criterion.as_str().to_string(),
        if v.coupled { "on" } else { "off" }.to_string(),
        row.within.clone(),
    ];
    let Some(p) = row.point else {
        out.push("none".into());
        let blanks = 7 + timed_batches(results).len();
        out.extend(std::iter::repeat_n("–".to_string(), blanks));
        return out;
    };
    let times = |x: f64| format!("{x:.2}×");
    let pct = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.2}", 100.0 * x));
    out.push(p.step.to_string());
    out.push(times(ratio(base.channels as f64, p.channels as f64)));
    out.push(times(ratio(base.parameters as f64, p.parameters as f64)));
    out.push(times(ratio(base.macs as f64, p.macs as f64)));
    for b in timed_batches(results) {
        out.push(speedup_at(p, b).map_or("–".into(), times));
    }
    let acc = |s: Option<crate::prune::Score>| s.map(|s| s.accuracy);
    out.push(pct(acc(p.validation)));
    out.push(pct(acc(p.test)));
    out.push(pct(acc(base.test).zip(acc(p.test)).map(|(b, t)| b - t)));
    out.push(pct(acc(base.test)));
    out
}

fn header(results: &PruneResults) -> Vec<String> {
    let mut h: Vec<String> = [
        "criterion",
        "coupled",
        "point",
        "step",
        "channels ×",
        "params ×",
        "MACs ×",
    ]
    .map(String::from)
    .to_vec();
    h.extend(
        timed_batches(results)
            .iter()
            .map(|b| format!("speedup b={b}")),
    );
    h.extend(["val. acc %", "test acc %", "test drop", "unpruned test %"].map(String::from));
    h
}

fn note(results: &PruneResults) -> String {
    format!(
        "{} on {}, {} schedule in steps of {}% of the eligible channels left, {}. Points are chosen on \
         the validation split ({} images); test accuracy ({} images) is only reported. \
         Channels, params and MACs: unpruned / pruned. Speedup: unpruned / pruned median latency, \
         measured interleaved in one process ({}, {} threads) at batch size b. Coupled off: only \
         DFCs with one producer and one consumer are pruned.",
        results.arch,
        results.dataset,
        results.schedule.description(),
        percent(results.chunk),
        match results.round_to {
            1 => "widths not rounded (round_to = 1)".to_string(),
            n => format!("every DFC's width kept a multiple of {n} (round_to = {n})"),
        },
        results.validation_images,
        results.test_images,
        results.device,
        results.threads
    )
}

/// The headline table in Markdown, with its note.
pub fn headline_markdown(results: &PruneResults) -> String {
    let rows: Vec<Vec<String>> = headline_rows(results)
        .iter()
        .map(|r| cells(results, r))
        .collect();
    format!(
        "# {}: pruning\n\n{}\n\n{}",
        results.name,
        note(results),
        markdown_table(&header(results), &rows)
    )
}

fn headline_latex(results: &PruneResults, rows: &[Row]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| cells(results, r)).collect();
    format!(
        "% {}: pruning\n% {}\n{}",
        latex_escape(&results.name),
        latex_escape(&note(results)),
        super::text::latex_table(&header(results), &rows)
    )
}

fn headline_table(results: &PruneResults, rows: &[Row]) -> PolarsResult<DataFrame> {
    let batches = timed_batches(results);
    let get = |f: &dyn Fn(&Row, &Point) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter().map(|r| r.point.and_then(|p| f(r, p))).collect()
    };
    let base = |r: &Row| r.variant.points[0].clone();
    let mut columns = vec![
        Column::new(
            "criterion".into(),
            rows.iter()
                .map(|r| r.variant.criterion.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "coupled".into(),
            rows.iter().map(|r| r.variant.coupled).collect::<Vec<_>>(),
        ),
        Column::new(
            "drop".into(),
            rows.iter().map(|r| r.drop).collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            rows.iter()
                .map(|r| r.point.map(|p| p.step as u32))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "channels_ratio".into(),
            get(&|r, p| Some(ratio(base(r).channels as f64, p.channels as f64))),
        ),
        Column::new(
            "params_ratio".into(),
            get(&|r, p| Some(ratio(base(r).parameters as f64, p.parameters as f64))),
        ),
        Column::new(
            "macs_ratio".into(),
            get(&|r, p| Some(ratio(base(r).macs as f64, p.macs as f64))),
        ),
    ];
    for &b in &batches {
        columns.push(Column::new(
            format!("speedup_b{b}").into(),
            get(&|_, p| speedup_at(p, b)),
        ));
    }
    columns.push(Column::new(
        "val_accuracy".into(),
        get(&|_, p| p.validation.map(|s| s.accuracy)),
    ));
    columns.push(Column::new(
        "test_accuracy".into(),
        get(&|_, p| p.test.map(|s| s.accuracy)),
    ));
    DataFrame::new(rows.len(), columns)
}

fn points_table(results: &PruneResults) -> PolarsResult<DataFrame> {
    let all: Vec<(&Variant, &Point)> = results
        .variants
        .iter()
        .flat_map(|v| v.points.iter().map(move |p| (v, p)))
        .collect();
    let col = |name: &str, f: &dyn Fn(&Variant, &Point) -> Option<f64>| {
        Column::new(
            name.into(),
            all.iter().map(|(v, p)| f(v, p)).collect::<Vec<_>>(),
        )
    };
    let mut columns = vec![
        Column::new(
            "criterion".into(),
            all.iter()
                .map(|(v, _)| v.criterion.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "coupled".into(),
            all.iter().map(|(v, _)| v.coupled).collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            all.iter().map(|(_, p)| p.step as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "chunk".into(),
            all.iter().map(|(_, p)| p.chunk as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "channels".into(),
            all.iter()
                .map(|(_, p)| p.channels as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "parameters".into(),
            all.iter()
                .map(|(_, p)| p.parameters as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "macs".into(),
            all.iter().map(|(_, p)| p.macs).collect::<Vec<_>>(),
        ),
        col("val_accuracy", &|_, p| p.validation.map(|s| s.accuracy)),
        col("val_loss", &|_, p| p.validation.map(|s| s.loss)),
        col("test_accuracy", &|_, p| p.test.map(|s| s.accuracy)),
        col("test_loss", &|_, p| p.test.map(|s| s.loss)),
    ];
    for b in timed_batches(results) {
        columns.push(col(&format!("speedup_b{b}"), &|_, p| speedup_at(p, b)));
    }
    columns.push(Column::new(
        "model".into(),
        all.iter().map(|(_, p)| p.model.clone()).collect::<Vec<_>>(),
    ));
    DataFrame::new(all.len(), columns)
}
