//! The correlation study's outputs: its table in the layout of Molchanov et al. (2019), table 1
//! (Markdown and LaTeX), long-form CSV/Parquet tables, the study as JSON, and its figures.

use std::fmt::Write as _;
use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::study_figures::{heatmap, per_dfc_bars, rank_scatter};
use super::text::latex_escape;
use crate::stats::{Estimate, Scoring, Study};
use crate::util::tables::{write_csv, write_parquet, FileError};

/// The table's three rows: label, long-form name, the row's Spearman estimate and Kendall τ-b.
const ROWS: [(&str, &str); 3] = [
    ("Per layer", "per_layer"),
    ("All layers", "all_layers"),
    ("(w/ ℓ2-norm)", "all_layers_l2"),
];

fn row_values(row: &crate::stats::CriterionRow) -> [(Estimate, f64); 3] {
    [
        (row.per_layer, row.kendall_per_layer),
        (row.all_layers, row.kendall_all_layers),
        (row.all_layers_l2, row.kendall_all_layers_l2),
    ]
}

/// Writes, atomically, into `dir` (created if missing):
///  - `table.md`: Spearman's ρ against the reference, a column per criterion and the rows "Per
///    layer", "All layers", "(w/ ℓ2-norm)", each cell `0.65 [0.60, 0.70]` (bootstrap interval);
///    the same for Kendall's τ-b (no intervals); the reference and its numbers of DFCs and
///    channels; the null distribution;
///  - `table.tex`: the same as a LaTeX tabular (booktabs);
///  - `table.csv`/`.parquet`: long form `row, criterion, spearman, low, high, kendall`;
///  - `per_dfc.csv`/`.parquet` (`dfc, coupled, channels, criterion, spearman, kendall`),
///    `matrix.csv`/`.parquet` (`criterion`, then one column per name), `null.csv`
///    (`seed, per_layer, all_layers`; no rows without a null distribution);
///  - `study.json`: the study, read back by [`read_study`]; `scorings.json`: the title and the
///    scorings, from which [`rewrite_study`] draws the figures again;
///  - `heatmap`, `per_dfc`, `scatter` as `.png` and `.svg`: the criterion × criterion matrix,
///    per-DFC ρ as grouped bars (coupled DFCs starred), and per criterion in `scorings` its rank
///    against the reference's rank over all channels.
///
/// `reference` and `scorings` are the scorings the study was made from (`scorings` may be any
/// of the matrix's). The same inputs give byte-identical files.
pub fn write_study(
    study: &Study,
    scorings: &[Scoring],
    reference: &Scoring,
    title: &str,
    dir: &Path,
) -> Result<(), FileError> {
    let fail = |file: &str, message: String| FileError {
        path: dir.join(file),
        message,
    };
    if reference.name != study.reference {
        let message = format!(
            "the reference is `{}`, not `{}`",
            study.reference, reference.name
        );
        return Err(fail("scatter.png", message));
    }
    let json =
        serde_json::to_string_pretty(study).map_err(|e| fail("study.json", e.to_string()))?;
    let write = |file: &str, text: &str| {
        crate::util::atomic_file::write(&dir.join(file), text.as_bytes())
            .map_err(|e| fail(file, e.to_string()))
    };
    write("study.json", &(json + "\n"))?;
    let inputs = StudyInputs {
        title: title.to_string(),
        reference: NamedScoring::of(reference),
        scorings: scorings.iter().map(NamedScoring::of).collect(),
    };
    let json = serde_json::to_string(&inputs).map_err(|e| fail("scorings.json", e.to_string()))?;
    write("scorings.json", &(json + "\n"))?;
    write("table.md", &markdown(study, reference, title))?;
    write("table.tex", &latex(study, title))?;
    let tables = [
        ("table", long_table(study)),
        ("per_dfc", per_dfc_table(study)),
        ("matrix", matrix_table(study)),
    ];
    for (stem, table) in tables {
        let mut table = table.map_err(|e| fail(&format!("{stem}.csv"), e.to_string()))?;
        write_csv(&mut table, &dir.join(format!("{stem}.csv")))?;
        write_parquet(&mut table, &dir.join(format!("{stem}.parquet")))?;
    }
    let mut null = null_table(study).map_err(|e| fail("null.csv", e.to_string()))?;
    write_csv(&mut null, &dir.join("null.csv"))?;
    heatmap(study, title, &dir.join("heatmap"))?;
    per_dfc_bars(study, title, &dir.join("per_dfc"))?;
    rank_scatter(study, scorings, reference, title, &dir.join("scatter"))
}

/// What the figures are drawn from besides the study (`scorings.json`): the title and the
/// scorings compared.
#[derive(Debug, Serialize, Deserialize)]
pub struct StudyInputs {
    pub title: String,
    pub reference: NamedScoring,
    pub scorings: Vec<NamedScoring>,
}

/// A scoring that owns its values.
#[derive(Debug, Serialize, Deserialize)]
pub struct NamedScoring {
    pub name: String,
    pub dfcs: Vec<Vec<f64>>,
}

impl NamedScoring {
    fn of(s: &Scoring) -> Self {
        Self {
            name: s.name.to_string(),
            dfcs: s.dfcs.to_vec(),
        }
    }

    fn scoring(&self) -> Scoring<'_> {
        Scoring {
            name: &self.name,
            dfcs: &self.dfcs,
        }
    }
}

/// A study as [`write_study`] stored it (`study.json` and `scorings.json`), read back.
pub struct StoredStudy {
    pub study: Study,
    inputs: StudyInputs,
}

impl StoredStudy {
    /// Reads `study.json` and `scorings.json` from `dir`, and checks that they fit together
    /// as [`write_study`] would have written them.
    pub fn read(dir: &Path) -> Result<Self, FileError> {
        let study = read_study(dir)?;
        let path = dir.join("scorings.json");
        let fail = |message: String| FileError {
            path: path.clone(),
            message,
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let inputs: StudyInputs = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let m = &study.matrix;
        if m.rho.len() != m.names.len() || m.rho.iter().any(|row| row.len() != m.names.len()) {
            return Err(FileError::new(
                &dir.join("study.json"),
                format!(
                    "its matrix is not {n} × {n}, one row and column per name",
                    n = m.names.len()
                ),
            ));
        }
        if inputs.reference.name != study.reference {
            return Err(fail(format!(
                "its reference is `{}`, but study.json's is `{}`",
                inputs.reference.name, study.reference
            )));
        }
        if let Some(s) = inputs.scorings.iter().find(|s| !m.names.contains(&s.name)) {
            return Err(fail(format!(
                "`{}` is not among study.json's scorings",
                s.name
            )));
        }
        Ok(Self { study, inputs })
    }

    /// Writes its tables and figures again into `to`.
    pub fn write(&self, to: &Path) -> Result<(), FileError> {
        let scorings: Vec<Scoring> = self
            .inputs
            .scorings
            .iter()
            .map(NamedScoring::scoring)
            .collect();
        write_study(
            &self.study,
            &scorings,
            &self.inputs.reference.scoring(),
            &self.inputs.title,
            to,
        )
    }
}

/// Reads back the `study.json` that [`write_study`] wrote into `dir`.
pub fn read_study(dir: &Path) -> Result<Study, FileError> {
    let path = dir.join("study.json");
    let fail = |message: String| FileError {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
}

/// Two decimals, "–" for NaN, no "-0.00".
fn two(x: f64) -> String {
    if x.is_nan() {
        return "–".into();
    }
    let s = format!("{x:.2}");
    if s == "-0.00" {
        "0.00".into()
    } else {
        s
    }
}

fn cell(e: Estimate) -> String {
    if e.low.is_nan() || e.high.is_nan() {
        two(e.value)
    } else {
        format!("{} [{}, {}]", two(e.value), two(e.low), two(e.high))
    }
}

fn interval_note(study: &Study) -> String {
    let s = &study.settings;
    if s.bootstrap == 0 {
        "no bootstrap intervals".into()
    } else {
        format!(
            "in brackets the {}% bootstrap percentile interval ({} resamples of channels, seed {})",
            100.0 * s.confidence,
            s.bootstrap,
            s.seed
        )
    }
}

fn null_line(study: &Study) -> String {
    match &study.null {
        Some(n) => format!(
            "random over {} seeds: all layers ρ {:.3} ± {:.3}, {}% within [{:.3}, {:.3}]",
            n.seeds,
            n.all_layers_mean,
            n.all_layers_sd,
            100.0 * study.settings.confidence,
            n.all_layers_low,
            n.all_layers_high
        ),
        None => "random: no seeds given, no null distribution".into(),
    }
}

fn markdown(study: &Study, reference: &Scoring, title: &str) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut md = format!("# {title}\n\n");
    let header: String = study
        .rows
        .iter()
        .map(|r| format!(" {} |", escape(&r.criterion)))
        .collect();
    let rule = "---|".repeat(study.rows.len());
    let table = |md: &mut String, value: &dyn Fn((Estimate, f64)) -> String| {
        let _ = writeln!(md, "| |{header}\n|---|{rule}");
        for (k, (label, _)) in ROWS.iter().enumerate() {
            let cells: String = study
                .rows
                .iter()
                .map(|r| format!(" {} |", value(row_values(r)[k])))
                .collect();
            let _ = writeln!(md, "| {label} |{cells}");
        }
    };
    let _ = writeln!(
        md,
        "Spearman's ρ against `{}`; {}.\n",
        study.reference,
        interval_note(study)
    );
    table(&mut md, &|(e, _)| cell(e));
    let _ = writeln!(md, "\nKendall's τ-b against `{}`.\n", study.reference);
    table(&mut md, &|(_, tau)| two(tau));
    let channels: usize = reference.dfcs.iter().map(Vec::len).sum();
    let _ = write!(
        md,
        "\nReference `{}`: {} DFCs, {} channels. Per layer: the mean over DFCs of the ρ within each DFC",
        study.reference,
        reference.dfcs.len(),
        channels
    );
    let undefined: Vec<String> = study
        .rows
        .iter()
        .filter(|r| r.undefined_dfcs > 0)
        .map(|r| format!("{} {}", escape(&r.criterion), r.undefined_dfcs))
        .collect();
    if !undefined.is_empty() {
        let _ = write!(
            md,
            "; DFCs where it is undefined (a constant side, one channel) are left out ({})",
            undefined.join(", ")
        );
    }
    let _ = writeln!(md, ".\n\n{}", null_line(study));
    md
}

fn latex(study: &Study, title: &str) -> String {
    let columns = study.rows.len() + 1;
    let mut tex = format!("% {}\n", latex_escape(title));
    let _ = writeln!(
        tex,
        "\\begin{{tabular}}{{l{}}}\n\\toprule",
        "c".repeat(study.rows.len())
    );
    let header: String = study
        .rows
        .iter()
        .map(|r| format!(" & {}", latex_escape(&r.criterion)))
        .collect();
    let _ = writeln!(tex, "{header} \\\\");
    let labels = ["Per layer", "All layers", "(w/ $\\ell_2$-norm)"];
    let sections: [(&str, &dyn Fn((Estimate, f64)) -> String); 2] = [
        ("Spearman's $\\rho$", &|(e, _)| cell(e)),
        ("Kendall's $\\tau_b$", &|(_, tau)| two(tau)),
    ];
    for (name, value) in sections {
        let _ = writeln!(
            tex,
            "\\midrule\n\\multicolumn{{{columns}}}{{l}}{{{name}}} \\\\"
        );
        for (k, label) in labels.iter().enumerate() {
            let cells: String = study
                .rows
                .iter()
                .map(|r| format!(" & {}", latex_escape(&value(row_values(r)[k]))))
                .collect();
            let _ = writeln!(tex, "{label}{cells} \\\\");
        }
    }
    let _ = writeln!(tex, "\\bottomrule\n\\end{{tabular}}");
    let _ = writeln!(
        tex,
        "% reference {}; {}",
        latex_escape(&study.reference),
        latex_escape(&interval_note(study))
    );
    let _ = writeln!(tex, "% {}", latex_escape(&null_line(study)));
    tex
}

fn long_table(study: &Study) -> PolarsResult<DataFrame> {
    let mut cols: (Vec<&str>, Vec<&str>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) =
        Default::default();
    for (k, (_, name)) in ROWS.iter().enumerate() {
        for r in &study.rows {
            let (e, tau) = row_values(r)[k];
            cols.0.push(*name);
            cols.1.push(&r.criterion);
            cols.2.push(e.value);
            cols.3.push(e.low);
            cols.4.push(e.high);
            cols.5.push(tau);
        }
    }
    df!("row" => cols.0, "criterion" => cols.1, "spearman" => cols.2, "low" => cols.3,
        "high" => cols.4, "kendall" => cols.5)
}

fn per_dfc_table(study: &Study) -> PolarsResult<DataFrame> {
    let rows = &study.per_dfc;
    df!(
        "dfc" => rows.iter().map(|r| r.dfc.as_str()).collect::<Vec<_>>(),
        "coupled" => rows.iter().map(|r| r.coupled).collect::<Vec<_>>(),
        "channels" => rows.iter().map(|r| r.channels as u64).collect::<Vec<_>>(),
        "criterion" => rows.iter().map(|r| r.criterion.as_str()).collect::<Vec<_>>(),
        "spearman" => rows.iter().map(|r| r.spearman).collect::<Vec<_>>(),
        "kendall" => rows.iter().map(|r| r.kendall).collect::<Vec<_>>(),
    )
}

fn matrix_table(study: &Study) -> PolarsResult<DataFrame> {
    let m = &study.matrix;
    let mut columns = vec![Column::new("criterion".into(), &m.names)];
    for (j, name) in m.names.iter().enumerate() {
        let values: Vec<f64> = m.rho.iter().map(|row| row[j]).collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    DataFrame::new(m.names.len(), columns)
}

fn null_table(study: &Study) -> PolarsResult<DataFrame> {
    let (per_layer, all_layers) = match &study.null {
        Some(n) => (n.per_layer.clone(), n.all_layers.clone()),
        None => (vec![], vec![]),
    };
    df!(
        "seed" => (0..per_layer.len() as u64).collect::<Vec<_>>(),
        "per_layer" => per_layer,
        "all_layers" => all_layers,
    )
}
