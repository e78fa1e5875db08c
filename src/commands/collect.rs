//! `prunelab collect <experiment> [key=value]...`: a grid's finished runs merged across seeds.

use crate::cli::GridArgs;
use crate::grid::Grid;
use crate::Error;

pub fn command(args: &GridArgs) -> Result<(), Error> {
    let (path, overrides) = super::experiment_and_overrides(&args.experiment)?;
    let grid = Grid::load(path, &overrides, &args.results)?;
    let missing: Vec<String> = grid
        .runs
        .iter()
        .filter(|r| !crate::grid::status::finished(r))
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
    println!(
        "collect: {} runs finished in {}",
        grid.runs.len(),
        grid.dir.display()
    );
    Ok(())
}
