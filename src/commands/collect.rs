//! `prunelab collect <experiment> [key=value]...`: a grid's finished runs merged across seeds.
//! Runs whose settings differ only in seeds (`seed`, `*.seed`, `*_seed`) form a group; each
//! group's tables and figures go to a folder of its own, and `index.html` shows them all.

use std::path::{Path, PathBuf};

use crate::cli::CollectArgs;
use crate::grid::{status, Grid};
use crate::report::across_seeds::write_group;
use crate::report::grid_index::{write_index, IndexGroup};
use crate::util::output_path::check_output_folder;
use crate::Error;

pub fn command(args: &CollectArgs) -> Result<(), Error> {
    let (path, overrides) = super::experiment_and_overrides(&args.grid.experiment)?;
    let grid = Grid::load(path, &overrides, &args.grid.results)?;
    let missing: Vec<String> = grid
        .runs
        .iter()
        .filter(|r| !status::finished(r))
        .map(|r| format!("  {} [{}]", r.dir.display(), r.label))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Input(format!(
            "collect: {} of {} runs are not finished (nothing written):\n{}",
            missing.len(),
            grid.runs.len(),
            missing.join("\n")
        )));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| grid.dir.join("collected"));
    check_output_folder("--out", &out)?;
    let mut words = vec!["prunelab collect".to_string(), path.display().to_string()];
    words.extend(overrides.iter().cloned());
    let stamp = match &args.stamp {
        Some(s) => format!("{s}\n\n"),
        None => format!("Produced by: {}\n\n", words.join(" ")),
    };
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, run) in grid.runs.iter().enumerate() {
        let shared = shared_settings(&run.label);
        match groups.iter_mut().find(|(s, _)| *s == shared) {
            Some((_, members)) => members.push(i),
            None => groups.push((shared, vec![i])),
        }
    }
    let mut index = Vec::new();
    for (shared, members) in &groups {
        let folder = match groups.len() {
            1 => "across_seeds".to_string(),
            _ => slug(shared),
        };
        let dirs: Vec<PathBuf> = members.iter().map(|&i| grid.runs[i].dir.clone()).collect();
        let report = write_group(&dirs, &out.join(&folder), &stamp)?;
        let runs = members
            .iter()
            .map(|&i| {
                let run = &grid.runs[i];
                (run.label.clone(), relative_link(&out, &run.dir))
            })
            .collect();
        println!(
            "collect: {} runs [{}] → {} tables, {} figures in {}",
            members.len(),
            if shared.is_empty() { "all" } else { shared },
            report.tables.len(),
            report.figures.len(),
            out.join(&folder).display()
        );
        index.push(IndexGroup {
            title: if shared.is_empty() {
                "all runs".into()
            } else {
                shared.clone()
            },
            folder,
            report,
            runs,
        });
    }
    let name = grid.runs[0].experiment.name().to_string();
    write_index(
        &out,
        &format!("{name}: {} runs", grid.runs.len()),
        &stamp,
        &index,
    )?;
    println!(
        "collect: {} runs finished; {}",
        grid.runs.len(),
        out.join("index.html").display()
    );
    Ok(())
}

/// A run's settings without its seeds.
fn shared_settings(label: &str) -> String {
    let is_seed = |key: &str| key == "seed" || key.ends_with(".seed") || key.ends_with("_seed");
    let kept: Vec<&str> = label
        .split(' ')
        .filter(|w| !w.is_empty() && !is_seed(w.split('=').next().unwrap_or("")))
        .collect();
    kept.join(" ")
}

/// `settings` as a folder name.
fn slug(settings: &str) -> String {
    settings
        .chars()
        .filter(|c| !"[]\"'".contains(*c))
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `to` relative to `from` (both under the same results folder), for a link in the index.
fn relative_link(from: &Path, to: &Path) -> String {
    let (Ok(from), Ok(to)) = (std::path::absolute(from), std::path::absolute(to)) else {
        return to.display().to_string();
    };
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let up = from.components().count() - common;
    let mut parts: Vec<String> = vec!["..".into(); up];
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}
