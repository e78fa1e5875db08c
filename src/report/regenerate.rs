//! `prunelab report`: every table and figure written again from stored results, running
//! nothing. A source folder is a run folder (`results/<name>`, whose stages keep their results
//! in `correlation/` and `prune/`) or a folder this command wrote (which holds them itself), so
//! a report rebuilds from its own committed raw results. Every source is read whole before
//! anything is written.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{read_prune, write_budgets, write_prune, StoredStudy};
use crate::prune::PruneResults;
use crate::util::tables::FileError;

/// What was written for one source folder.
#[derive(Debug, Clone)]
pub struct Regenerated {
    pub source: PathBuf,
    pub out: PathBuf,
    pub study: bool,
    pub prune: bool,
}

/// One source folder's stored results, read and checked.
pub struct StoredResults {
    pub source: PathBuf,
    /// The source folder's own name: its report goes to `<out>/<name>/`.
    pub name: OsString,
    study: Option<StoredStudy>,
    prune: Option<PruneResults>,
}

/// `dir/stage` when it holds `file`, else `dir` when it does, else None.
fn locate(dir: &Path, stage: &str, file: &str) -> Option<PathBuf> {
    [dir.join(stage), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(file).is_file())
}

impl StoredResults {
    /// Reads every stored result in `source`; the error names the file and what was wrong.
    pub fn read(source: &Path) -> Result<Self, FileError> {
        let fail = |message: &str| FileError::new(source, message);
        if !source.exists() {
            return Err(fail("does not exist; expected a run folder (results/<name>) or a folder `prunelab report` wrote"));
        }
        if !source.is_dir() {
            return Err(fail("is a file; expected a run folder (results/<name>) or a folder `prunelab report` wrote"));
        }
        let name = std::fs::canonicalize(source)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string()))
            .ok_or_else(|| fail("has no folder name"))?;
        let study = locate(source, "correlation", "study.json");
        let prune = locate(source, "prune", "results.json");
        if study.is_none() && prune.is_none() && source.join("runs").is_dir() {
            return Err(fail(
                "is a grid's folder (its runs are under runs/): `prunelab collect <experiment> [key=value…]` merges them",
            ));
        }
        if study.is_none() && prune.is_none() {
            return Err(fail(
                "holds no stored results: neither correlation/study.json nor prune/results.json (nor study.json or results.json)",
            ));
        }
        Ok(Self {
            source: source.to_path_buf(),
            name,
            study: study.as_deref().map(StoredStudy::read).transpose()?,
            prune: prune.as_deref().map(read_prune).transpose()?,
        })
    }

    /// Writes the reports into `out/<name>/`; with a `stamp`, the Markdown and LaTeX tables
    /// start with it (a line saying what made them).
    pub fn write(&self, out: &Path, stamp: Option<&str>) -> Result<Regenerated, FileError> {
        let to = out.join(&self.name);
        std::fs::create_dir_all(&to).map_err(|e| FileError::new(&to, e))?;
        if let Some(study) = &self.study {
            study.write(&to)?;
        }
        if let Some(results) = &self.prune {
            write_prune(results, &to)?;
            if let Some(study) = &self.study {
                write_budgets(&study.study, results, &to)?;
            }
        }
        let done = Regenerated {
            source: self.source.clone(),
            out: to,
            study: self.study.is_some(),
            prune: self.prune.is_some(),
        };
        if let Some(stamp) = stamp {
            stamp_tables(&done, stamp)?;
        }
        Ok(done)
    }
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
            crate::util::atomic_file::write(&path, (line + &text).as_bytes())
                .map_err(|e| FileError::new(&path, e))?;
        }
    }
    Ok(())
}
