//! The budgets step: the pruned networks' accuracy at equal budgets beside each criterion's ρ
//! against the oracle (`results/<name>/budgets/budgets.{md,tex,csv}`, see
//! [`crate::report::write_budgets`]). It reads the finished prune and correlation stages and
//! runs no network; its fingerprint is theirs, so a changed `[oracle]` writes it again.

use std::path::Path;

use super::record::Stage;
use super::skeleton::StageRun;
use crate::report::{read_prune, read_study, write_budgets};
use crate::Error;

/// The budgets table of the run in `run_dir`.
pub struct BudgetsStage<'a> {
    pub run_dir: &'a Path,
}

impl StageRun for BudgetsStage<'_> {
    type Output = ();
    const STAGE: Stage = Stage::Budgets;

    /// Nothing to read: the record's digests already vouch for the table.
    fn read_back(&self, _dir: &Path) -> Result<(), Error> {
        Ok(())
    }

    fn run(&self, dir: &Path) -> Result<(), Error> {
        let study = read_study(&Stage::Correlation.dir(self.run_dir))?;
        let results = read_prune(&Stage::Prune.dir(self.run_dir))?;
        Ok(write_budgets(&study, &results, dir)?)
    }
}
