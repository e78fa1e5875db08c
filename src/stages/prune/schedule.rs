//! The pruning schedules behind one trait, and the table that names them: a new schedule is
//! its own file and one line here (with its name in `[prune] schedule`).

use std::path::Path;

use super::iterative::Iterative;
use super::ranked::Ranked;
use super::{one_shot, sweep, Bench};
use crate::config::PruneSchedule;
use crate::data::Dataset;
use crate::prune::Variant;
use crate::Error;

/// A pruning schedule: how one variant (a criterion, coupled channels on or off) is stepped,
/// measured and reported.
pub(super) trait Schedule {
    /// Runs (or resumes) the variant, which may prune the DFCs marked in `eligible`, filling
    /// in `variant`; its files go under `dir` (the stage folder).
    fn run_variant(
        &self,
        bench: &Bench,
        eligible: &[bool],
        variant: &mut Variant,
        dir: &Path,
    ) -> Result<(), Error>;
}

/// The schedule `[prune] schedule` names, with what its variants share read once from `data`.
pub(super) fn schedule(
    kind: PruneSchedule,
    bench: &Bench,
    data: &Dataset,
) -> Result<Box<dyn Schedule>, Error> {
    Ok(match kind {
        PruneSchedule::Sweep => Box::new(Ranked(sweep::report)),
        PruneSchedule::OneShot => Box::new(Ranked(one_shot::report)),
        PruneSchedule::Iterative => Box::new(Iterative::new(bench, data)?),
    })
}
