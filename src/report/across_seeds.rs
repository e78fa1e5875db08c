//! A grid's runs that differ only in their seeds, merged: every table of a run (the ρ table,
//! the headline points, the budgets) with each number as mean ± std and its 95% interval
//! across the seeds, in CSV, Parquet, Markdown and LaTeX; figures with bands; one index.html.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::seed_figures::{write_accuracy_bands, write_rho_intervals, Against};
use super::text::{latex_escape, latex_table, markdown_table};
use crate::stats::AcrossSeeds;
use crate::util::tables::{write_csv, write_parquet, FileError};

/// Coverage of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// A table every run writes, and the columns that name a row of it.
struct Source {
    /// The run's file, relative to its folder.
    file: &'static str,
    /// The merged table's name.
    name: &'static str,
    keys: &'static [&'static str],
    /// Columns left out (per-run intervals, which the interval across seeds replaces).
    skip: &'static [&'static str],
    caption: &'static str,
}

const SOURCES: [Source; 3] = [
    Source {
        file: "correlation/table.csv",
        name: "rho",
        keys: &["row", "criterion"],
        skip: &["low", "high"],
        caption: "Spearman ρ and Kendall τ of each criterion with the oracle",
    },
    Source {
        file: "prune/headline.csv",
        name: "headline",
        keys: &["criterion", "coupled", "drop"],
        skip: &[],
        caption: "the headline points (largest pruning within each accuracy drop): ratios unpruned / pruned, measured speedups, accuracies",
    },
    Source {
        file: "budgets/budgets.csv",
        name: "budgets",
        keys: &["coupled", "step", "after"],
        skip: &[],
        caption: "accuracy at equal budgets (the same channels removed per step for every criterion)",
    },
];

/// A CSV file as rows of named cells.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read_csv(path: &Path) -> Result<Csv, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::new(path, e))?;
    if text.contains('"') {
        return Err(FileError::new(
            path,
            "quoted cells: not a table prunelab wrote",
        ));
    }
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| FileError::new(path, "empty"))?
        .split(',')
        .map(str::to_string)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    if let Some(bad) = rows.iter().position(|r| r.len() != header.len()) {
        return Err(FileError::new(
            path,
            format!(
                "row {} has {} cells, the header {}",
                bad + 2,
                rows[bad].len(),
                header.len()
            ),
        ));
    }
    Ok(Csv { header, rows })
}

/// A merged table: per row key, per value column, the value across seeds.
pub struct Merged {
    pub name: &'static str,
    pub keys: Vec<String>,
    pub values: Vec<String>,
    pub rows: Vec<(Vec<String>, Vec<Option<AcrossSeeds>>)>,
    pub caption: String,
}

/// Merges `source` over the runs in `dirs` (each has it, or none does: `None`).
fn merge(source: &Source, dirs: &[PathBuf]) -> Result<Option<Merged>, FileError> {
    let present: Vec<PathBuf> = dirs.iter().map(|d| d.join(source.file)).collect();
    if present.iter().all(|p| !p.exists()) {
        return Ok(None);
    }
    let tables = present
        .iter()
        .map(|p| read_csv(p))
        .collect::<Result<Vec<_>, _>>()?;
    // Columns by name: a run may lack one another has (a speedup no point of it was timed for).
    let is_number = |t: &Csv, i: usize| {
        t.rows
            .iter()
            .all(|r| r[i].is_empty() || r[i].parse::<f64>().is_ok())
    };
    let mut values: Vec<String> = Vec::new();
    for table in &tables {
        for (i, h) in table.header.iter().enumerate() {
            let wanted = !source.keys.contains(&h.as_str()) && !source.skip.contains(&h.as_str());
            if wanted && is_number(table, i) && !values.contains(h) {
                values.push(h.clone());
            }
        }
    }
    // Rows in the order first seen; each value column's numbers per row.
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut numbers: BTreeMap<Vec<String>, Vec<Vec<f64>>> = BTreeMap::new();
    for (table, path) in tables.iter().zip(&present) {
        let at = |name: &str| table.header.iter().position(|h| h == name);
        let key_at: Vec<usize> = source
            .keys
            .iter()
            .map(|k| at(k))
            .collect::<Option<_>>()
            .ok_or_else(|| FileError::new(path, format!("lacks a column of {:?}", source.keys)))?;
        let value_at: Vec<Option<usize>> = values.iter().map(|v| at(v)).collect();
        for row in &table.rows {
            let key: Vec<String> = key_at.iter().map(|&i| row[i].clone()).collect();
            let cells = numbers.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                vec![Vec::new(); values.len()]
            });
            for (cell, i) in cells.iter_mut().zip(&value_at) {
                if let Some(v) = i.and_then(|i| row[i].parse::<f64>().ok()) {
                    cell.push(v);
                }
            }
        }
    }
    let rows = order
        .into_iter()
        .map(|key| {
            let cells = numbers[&key]
                .iter()
                .map(|v| AcrossSeeds::of(v, CONFIDENCE))
                .collect();
            (key, cells)
        })
        .collect();
    Ok(Some(Merged {
        name: source.name,
        keys: source.keys.iter().map(|k| k.to_string()).collect(),
        values,
        rows,
        caption: format!(
            "{}: mean ± std across {} seeds, [{}% interval of the mean, Student t]",
            source.caption,
            dirs.len(),
            CONFIDENCE * 100.0
        ),
    }))
}

impl Merged {
    /// `0.52 ± 0.04 [0.42, 0.62]`, or `—` where no seed has the value.
    fn cell(value: &Option<AcrossSeeds>) -> String {
        match value {
            Some(s) => format!(
                "{} ± {} [{}, {}]",
                short(s.mean),
                short(s.std),
                short(s.low),
                short(s.high)
            ),
            None => "—".into(),
        }
    }

    fn text_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = self.keys.iter().chain(&self.values).cloned().collect();
        let rows = self
            .rows
            .iter()
            .map(|(key, cells)| {
                key.iter()
                    .cloned()
                    .chain(cells.iter().map(Self::cell))
                    .collect()
            })
            .collect();
        (header, rows)
    }

    /// The table as Markdown, with its caption.
    pub fn markdown(&self, stamp: &str) -> String {
        let (header, rows) = self.text_rows();
        format!(
            "{stamp}# {}\n\n{}.\n\n{}",
            self.name,
            self.caption,
            markdown_table(&header, &rows)
        )
    }

    /// The table as HTML (for index.html).
    pub fn html(&self) -> String {
        let (header, rows) = self.text_rows();
        let cells = |tag: &str, cells: &[String]| -> String {
            cells
                .iter()
                .map(|c| format!("<{tag}>{}</{tag}>", html_escape(c)))
                .collect()
        };
        let mut html = format!(
            "<table><caption>{}</caption>\n<tr>{}</tr>\n",
            html_escape(&self.caption),
            cells("th", &header)
        );
        for row in &rows {
            html.push_str(&format!("<tr>{}</tr>\n", cells("td", row)));
        }
        html + "</table>\n"
    }

    /// Writes `<name>.csv`, `.parquet`, `.md` and `.tex` into `dir`.
    fn write(&self, dir: &Path, stamp: &str) -> Result<(), FileError> {
        let mut columns: Vec<Column> = self
            .keys
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let cells: Vec<&str> = self.rows.iter().map(|(key, _)| key[k].as_str()).collect();
                Column::new(name.into(), cells)
            })
            .collect();
        for (v, name) in self.values.iter().enumerate() {
            let part = |f: fn(&AcrossSeeds) -> f64| -> Vec<Option<f64>> {
                self.rows
                    .iter()
                    .map(|(_, cells)| cells[v].as_ref().map(f))
                    .collect()
            };
            columns.push(Column::new(format!("{name}_mean").into(), part(|s| s.mean)));
            columns.push(Column::new(format!("{name}_std").into(), part(|s| s.std)));
            columns.push(Column::new(format!("{name}_low").into(), part(|s| s.low)));
            columns.push(Column::new(format!("{name}_high").into(), part(|s| s.high)));
            let n: Vec<Option<u32>> = self
                .rows
                .iter()
                .map(|(_, cells)| Some(cells[v].map_or(0, |s| s.n as u32)))
                .collect();
            columns.push(Column::new(format!("{name}_n").into(), n));
        }
        let stem = dir.join(self.name);
        let mut frame =
            DataFrame::new(self.rows.len(), columns).map_err(|e| FileError::new(&stem, e))?;
        write_csv(&mut frame, &stem.with_extension("csv"))?;
        write_parquet(&mut frame, &stem.with_extension("parquet"))?;
        let write_text = |ext: &str, text: String| {
            let path = stem.with_extension(ext);
            crate::util::atomic_file::write(&path, text.as_bytes())
                .map_err(|e| FileError::new(&path, e))
        };
        write_text("md", self.markdown(stamp))?;
        let (header, rows) = self.text_rows();
        let tex = format!(
            "% {}\n% {}\n{}",
            stamp.trim(),
            latex_escape(&self.caption),
            latex_table(
                &header.iter().map(|h| latex_escape(h)).collect::<Vec<_>>(),
                &rows
                    .iter()
                    .map(|r| r.iter().map(|c| latex_escape(c)).collect())
                    .collect::<Vec<_>>()
            )
        );
        write_text("tex", tex)
    }
}

/// A number in 4 significant digits.
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
    format!("{x:.digits$}")
}

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What [`write_group`] wrote.
pub struct GroupReport {
    pub tables: Vec<Merged>,
    /// Figure stems written (PNG and SVG each).
    pub figures: Vec<PathBuf>,
}

/// Merges the runs in `dirs` (one group: the same settings but the seeds) into `out`.
pub fn write_group(dirs: &[PathBuf], out: &Path, stamp: &str) -> Result<GroupReport, FileError> {
    std::fs::create_dir_all(out).map_err(|e| FileError::new(out, e))?;
    let mut tables = Vec::new();
    for source in &SOURCES {
        if let Some(merged) = merge(source, dirs)? {
            merged.write(out, stamp)?;
            tables.push(merged);
        }
    }
    let mut figures = Vec::new();
    if let Some(rho) = tables.iter().find(|t| t.name == "rho") {
        figures.push(write_rho_intervals(rho, &out.join("rho_intervals"))?);
    }
    let points: Vec<PathBuf> = dirs.iter().map(|d| d.join("prune/points.csv")).collect();
    if points.iter().all(|p| p.exists()) {
        let runs = points
            .iter()
            .map(|p| read_points(p))
            .collect::<Result<Vec<_>, _>>()?;
        figures.push(write_accuracy_bands(
            &runs,
            Against::Macs,
            &out.join("accuracy_macs"),
        )?);
        figures.push(write_accuracy_bands(
            &runs,
            Against::Speedup,
            &out.join("accuracy_speedup"),
        )?);
    }
    Ok(GroupReport { tables, figures })
}

/// One step of a run's sweep.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Pruned / unpruned MACs.
    pub macs_kept: f64,
    pub val_accuracy: f64,
    /// Where the step was tested and timed: test accuracy and measured speedup (at the largest
    /// timed batch).
    pub timed: Option<(f64, f64)>,
}

/// One run's sweep: per (criterion, coupled), its steps.
pub type Curves = BTreeMap<(String, String), Vec<Step>>;

fn read_points(path: &Path) -> Result<Curves, FileError> {
    let csv = read_csv(path)?;
    let at = |name: &str| {
        csv.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| FileError::new(path, format!("lacks the column {name}")))
    };
    let (criterion, coupled, step, macs, accuracy, test) = (
        at("criterion")?,
        at("coupled")?,
        at("step")?,
        at("macs")?,
        at("val_accuracy")?,
        at("test_accuracy")?,
    );
    // The largest batch timed: `speedup_b<batch>`.
    let speedup = csv
        .header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((h.strip_prefix("speedup_b")?.parse::<usize>().ok()?, i)))
        .max()
        .map(|(_, i)| i);
    let mut curves = Curves::new();
    let mut first_macs: BTreeMap<(String, String), f64> = BTreeMap::new();
    for row in &csv.rows {
        let key = (row[criterion].clone(), row[coupled].clone());
        let number = |i: usize| {
            row[i]
                .parse::<f64>()
                .map_err(|e| FileError::new(path, format!("{}: {e}", csv.header[i])))
        };
        let (m, a) = (number(macs)?, number(accuracy)?);
        let unpruned = *first_macs.entry(key.clone()).or_insert(m);
        let steps = curves.entry(key).or_default();
        if number(step)? as usize != steps.len() {
            return Err(FileError::new(path, "steps out of order"));
        }
        let timed = speedup.and_then(|i| {
            let speedup = match row[step].as_str() {
                // The unpruned network is timed against itself.
                "0" => 1.0,
                _ => row[i].parse::<f64>().ok()?,
            };
            Some((row[test].parse::<f64>().ok()?, speedup))
        });
        steps.push(Step {
            macs_kept: m / unpruned,
            val_accuracy: a,
            timed,
        });
    }
    Ok(curves)
}
