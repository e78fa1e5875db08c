//! `prunelab report`: every table and figure written again from stored results.

use std::path::{Path, PathBuf};

use crate::Error;

pub fn command(sources: &[PathBuf], out: &Path, stamp: Option<&str>) -> Result<(), Error> {
    for r in crate::report::regenerate(sources, out, stamp)? {
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
