//! Tables as text: Markdown and LaTeX (booktabs) from rows of cells.

use std::fmt::Write as _;

/// `s` with LaTeX's special characters escaped (and ρ, τ, ±, ≤, × as math).
pub fn latex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            'ρ' => out.push_str("$\\rho$"),
            'τ' => out.push_str("$\\tau$"),
            '±' => out.push_str("$\\pm$"),
            '≤' => out.push_str("$\\le$"),
            '×' => out.push_str("$\\times$"),
            c => out.push(c),
        }
        out
    })
}

/// A Markdown table: the header row, a rule, then the rows.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| -> String {
        let cells: String = cells
            .iter()
            .map(|c| format!(" {} |", c.replace('|', "\\|")))
            .collect();
        format!("|{cells}\n")
    };
    let mut md = line(header);
    let _ = writeln!(md, "|{}", "---|".repeat(header.len()));
    for row in rows {
        md.push_str(&line(row));
    }
    md
}

/// A LaTeX tabular (booktabs), first column left-aligned, the others right-aligned.
pub fn latex_table(header: &[String], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| -> String {
        let cells: Vec<String> = cells.iter().map(|c| latex_escape(c)).collect();
        format!("{} \\\\\n", cells.join(" & "))
    };
    let mut tex = format!(
        "\\begin{{tabular}}{{l{}}}\n\\toprule\n",
        "r".repeat(header.len().saturating_sub(1))
    );
    tex.push_str(&line(header));
    tex.push_str("\\midrule\n");
    for row in rows {
        tex.push_str(&line(row));
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    tex
}
