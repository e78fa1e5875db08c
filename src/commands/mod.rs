//! The subcommands, one file each: what each reads from the command line, what it asks of the
//! pipeline and the library, and what it prints. `main.rs` only parses and dispatches here.

#![forbid(unsafe_code)]

mod bench;
pub mod eval;
pub mod inspect;
pub mod latency;
mod oracle_bench;
mod report;
mod run;
mod scores;

use std::path::Path;

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
        Some(Command::Report {
            sources,
            out,
            stamp,
        }) => report::command(&sources, &out, stamp.as_deref()),
        None => run::command(&cli.run),
    }
}

/// Loads the experiment and gives the tensor kernels the threads it and `--threads` ask for.
fn load(path: &Path, threads: Option<usize>) -> Result<Experiment, Error> {
    let experiment = Experiment::load(path)?;
    if let Some(n) = experiment.kernel_threads(threads) {
        set_threads(n);
    }
    Ok(experiment)
}
