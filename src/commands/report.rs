//! `prunelab report`: every table and figure written again from stored results. Every source
//! is read and every destination checked before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::report::StoredResults;
use crate::util::output_path::check_output_folder;
use crate::util::run_lock::run_folder_holding;
use crate::Error;

pub fn command(sources: &[PathBuf], out: &Path, stamp: Option<&str>) -> Result<(), Error> {
    let stored = sources
        .iter()
        .map(|s| StoredResults::read(s).map_err(|e| Error::Input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_name: BTreeMap<&std::ffi::OsStr, &Path> = BTreeMap::new();
    for s in &stored {
        if let Some(first) = by_name.insert(&s.name, &s.source) {
            return Err(Error::Input(format!(
                "{} and {} are both named {:?}: both reports would be written to {}; copy one to a folder of another name",
                first.display(),
                s.source.display(),
                s.name,
                out.join(&s.name).display()
            )));
        }
    }
    check_output_folder("--out", out)?;
    for s in &stored {
        let to = out.join(&s.name);
        if let Some(run) = run_folder_holding(&to) {
            return Err(Error::Input(format!(
                "--out: {} would be written inside the run folder {}, which runs of its experiment write into; write the report to a folder of its own (e.g. paper_figures/<name>)",
                to.display(),
                run.display()
            )));
        }
    }
    for s in &stored {
        let r = s.write(out, stamp)?;
        let what: Vec<&str> = [(r.study, "correlation study"), (r.prune, "pruning")]
            .into_iter()
            .filter_map(|(done, what)| done.then_some(what))
            .collect();
        println!(
            "{}: {} tables and figures written to {}",
            r.source.display(),
            what.join(" and "),
            r.out.display()
        );
    }
    Ok(())
}
