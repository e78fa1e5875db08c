//! The subcommands, one file each: what each reads from the command line, what it asks of the
//! pipeline and the library, and what it prints. `main.rs` only parses and dispatches here.

#![forbid(unsafe_code)]

mod bench;
mod collect;
pub mod eval;
mod export;
pub mod inspect;
pub mod latency;
mod oracle_bench;
mod report;
mod run;
mod scores;
mod status;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::config::Experiment;
use crate::util::threads::set_threads;
use crate::Error;

/// Runs the command `cli` names.
pub fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Some(Command::Inspect {
            experiment,
            results,
        }) => inspect::command(&experiment, &results),
        Some(Command::Scores(args)) => scores::command(&args),
        Some(Command::Latency(args)) => latency::command(&args),
        Some(Command::Bench(args)) => bench::command(&args),
        Some(Command::OracleBench { run, dfcs }) => oracle_bench::command(&run, dfcs),
        Some(Command::Eval {
            model,
            experiment,
            threads,
        }) => eval::command(&model, &experiment, threads),
        Some(Command::Export {
            model,
            onnx,
            fold_batchnorm,
        }) => export::command(&model, &onnx, fold_batchnorm),
        Some(Command::Status(args)) => status::command(&args),
        Some(Command::Collect(args)) => collect::command(&args),
        Some(Command::Report {
            sources,
            out,
            stamp,
        }) => report::command(&sources, &out, stamp.as_deref()),
        None => run::command(&cli.run),
    }
}

/// The experiment file and the overrides among a command's words (an override has a `=`).
fn experiment_and_overrides(words: &[PathBuf]) -> Result<(&Path, Vec<String>), Error> {
    let (overrides, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = words
        .iter()
        .partition(|w| w.to_str().is_some_and(|t| t.contains('=')));
    let overrides = overrides
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    match paths.as_slice() {
        [path] => Ok((path.as_path(), overrides)),
        [] => Err(Error::Input(
            "give the experiment file first, then its overrides key=value".into(),
        )),
        more => {
            let names: Vec<String> = more.iter().map(|p| p.display().to_string()).collect();
            Err(Error::Input(format!(
                "give one experiment file (got {}: {}); run prunelab once per experiment, and give overrides as key=value",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

/// The experiment at `path`; a grid is refused (only the run command runs its points).
fn one_experiment(path: &Path) -> Result<Experiment, Error> {
    let experiment = Experiment::load(path)?;
    if experiment.grid.is_some() {
        return Err(Error::Input(format!(
            "{} has a [grid]: run it as `prunelab {}` (its points run there); this command takes one experiment",
            path.display(),
            path.display()
        )));
    }
    Ok(experiment)
}

/// Loads the experiment and gives the tensor kernels the threads it and `--threads` ask for.
fn load(path: &Path, threads: Option<usize>) -> Result<Experiment, Error> {
    let experiment = one_experiment(path)?;
    if let Some(n) = experiment.kernel_threads(threads) {
        set_threads(n);
    }
    Ok(experiment)
}
