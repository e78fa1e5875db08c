//! `prunelab report`: every table and figure written again from stored results, running
//! nothing. A source folder is a run folder (`results/<name>`, whose stages keep their results
//! in `correlation/` and `prune/`) or a folder this command wrote (which holds them itself), so
//! a report rebuilds from its own committed raw results.

use std::path::{Path, PathBuf};

use super::{read_prune, read_study, rewrite_study, write_budgets, write_prune};
use crate::util::tables::FileError;

/// What was written for one source folder.
#[derive(Debug, Clone)]
pub struct Regenerated {
    pub source: PathBuf,
    pub out: PathBuf,
    pub study: bool,
    pub prune: bool,
}

/// Writes the reports of every source into `out/<source folder name>/`; with a `stamp`, the
/// Markdown and LaTeX tables start with it (a line saying what made them).
pub fn regenerate(
    sources: &[PathBuf],
    out: &Path,
    stamp: Option<&str>,
) -> Result<Vec<Regenerated>, FileError> {
    sources
        .iter()
        .map(|s| {
            let done = regenerate_one(s, out)?;
            if let Some(stamp) = stamp {
                stamp_tables(&done, stamp)?;
            }
            Ok(done)
        })
        .collect()
}

/// The text tables a report writes.
const TABLES: [&str; 3] = ["table", "headline", "budgets"];

fn stamp_tables(done: &Regenerated, stamp: &str) -> Result<(), FileError> {
    for stem in TABLES {
        for (extension, line) in [
            ("md", format!("{stamp}\n\n")),
            ("tex", format!("% {stamp}\n")),
        ] {
            let path = done.out.join(format!("{stem}.{extension}"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            crate::util::atomic_file::write(&path, (line + &text).as_bytes()).map_err(|e| {
                FileError {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        }
    }
    Ok(())
}

/// `dir/stage` when it holds `file`, else `dir` when it does, else None.
fn locate(dir: &Path, stage: &str, file: &str) -> Option<PathBuf> {
    [dir.join(stage), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(file).is_file())
}

fn regenerate_one(source: &Path, out: &Path) -> Result<Regenerated, FileError> {
    let fail = |message: String| FileError {
        path: source.to_path_buf(),
        message,
    };
    if !source.is_dir() {
        return Err(fail("not a folder of results".into()));
    }
    let name = std::fs::canonicalize(source)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()))
        .ok_or_else(|| fail("has no folder name".into()))?;
    let to = out.join(name);
    let study = locate(source, "correlation", "study.json");
    let prune = locate(source, "prune", "results.json");
    if study.is_none() && prune.is_none() {
        return Err(fail(
            "holds no stored results: neither correlation/study.json nor prune/results.json (nor study.json or results.json)".into(),
        ));
    }
    std::fs::create_dir_all(&to).map_err(|e| FileError {
        path: to.clone(),
        message: e.to_string(),
    })?;
    if let Some(dir) = &study {
        rewrite_study(dir, &to)?;
    }
    if let Some(dir) = &prune {
        let results = read_prune(dir)?;
        write_prune(&results, &to)?;
        if let Some(study) = &study {
            write_budgets(&read_study(study)?, &results, &to)?;
        }
    }
    Ok(Regenerated {
        source: source.to_path_buf(),
        out: to,
        study: study.is_some(),
        prune: prune.is_some(),
    })
}
