//! `prunelab status <experiment> [key=value]...`: every run of the experiment (or grid), stage
//! by stage, from the stage records.

use crate::cli::GridArgs;
use crate::grid::{status, Grid};
use crate::Error;

pub fn command(args: &GridArgs) -> Result<(), Error> {
    let (path, overrides) = super::experiment_and_overrides(&args.experiment)?;
    let grid = Grid::load(path, &overrides, &args.results)?;
    println!("{}", status::report(&grid));
    Ok(())
}
