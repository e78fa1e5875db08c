//! `prunelab <experiment.toml>`: parse the command line, call the library, report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use prunelab::{experiment, Experiment, Plan, RunOptions};

/// Train, evaluate and (later) prune the network an experiment file describes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The experiment file, e.g. experiments/quick.toml.
    experiment: PathBuf,
    /// Start from scratch even if a checkpoint of this experiment exists (it is overwritten).
    #[arg(long)]
    fresh: bool,
    /// Validate the experiment and print the plan; read no data, train nothing.
    #[arg(long)]
    dry_run: bool,
    /// Worker threads for tensor kernels (overrides `threads` in the file).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Folder under which `<name>/` receives the outputs.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), prunelab::Error> {
    let experiment = Experiment::load(&cli.experiment)?;
    if let Some(n) = cli.threads.map(|n| n as usize).or(experiment.threads) {
        experiment::set_threads(n);
    }
    let plan = Plan::new(experiment, &cli.results)?;
    println!("{}", plan.describe());
    if cli.dry_run {
        return Ok(());
    }
    let summary = prunelab::run(&plan, &RunOptions { fresh: cli.fresh })?;
    println!(
        "done: {} on {}: test accuracy {:.2}%, test loss {:.4} after {} epochs ({:.0}s); outputs in {}",
        summary.arch,
        summary.dataset,
        100.0 * summary.test_accuracy,
        summary.test_loss,
        summary.epochs,
        summary.seconds,
        summary.out_dir.display()
    );
    Ok(())
}
