//! `prunelab <experiment.toml>`, `prunelab inspect` and `prunelab bench`: parse the command
//! line, call the library, print, map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use prunelab::eval::{bench_model, BenchBudget};
use prunelab::graph::{set_conv_backend, ConvBackend};
use prunelab::report::console;
use prunelab::{experiment, Experiment, Plan, RunOptions};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train, evaluate and analyse the network an experiment file describes.
#[derive(Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// The experiment file, e.g. experiments/quick.toml.
    #[arg(required = true)]
    experiment: Option<PathBuf>,
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
    /// Convolution implementation (candle's is the slow reference, for checking numerics).
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    conv: Conv,
}

#[derive(Subcommand)]
enum Command {
    /// Print the network's couplings (DFCs), parameters and MACs; write them as JSON. Reads no data.
    Inspect {
        experiment: PathBuf,
        /// Folder under which `<name>/inspect.json` is written.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Measure training and inference images/s and peak memory on random inputs.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Architectures to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet20,resnet56,resnet50"
    )]
    models: Vec<String>,
    /// Training and large-batch inference batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Side of the square RGB inputs.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Convolution implementation.
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    conv: Conv,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Least time spent on each measurement, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Untimed runs before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Least number of timed runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    min_runs: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Conv {
    Ours,
    Candle,
}

impl From<Conv> for ConvBackend {
    fn from(conv: Conv) -> Self {
        match conv {
            Conv::Ours => ConvBackend::Fast,
            Conv::Candle => ConvBackend::Candle,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect {
            experiment,
            results,
        }) => inspect(&experiment, &results),
        Some(Command::Bench(args)) => bench(args),
        None => run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: &RunArgs) -> Result<(), prunelab::Error> {
    let experiment = Experiment::load(args.experiment.as_deref().expect("clap requires it"))?;
    if let Some(n) = args.threads.map(|n| n as usize).or(experiment.threads) {
        experiment::set_threads(n);
    }
    set_conv_backend(args.conv.into());
    let plan = Plan::new(experiment, &args.results)?;
    println!("{}", plan.describe());
    if !args.dry_run {
        println!(
            "{}",
            prunelab::run(&plan, &RunOptions { fresh: args.fresh })?
        );
    }
    Ok(())
}

fn inspect(experiment: &std::path::Path, results: &std::path::Path) -> Result<(), prunelab::Error> {
    let plan = Plan::new(Experiment::load(experiment)?, results)?;
    println!(
        "{}",
        console::coupling_table(&prunelab::inspect::inspect(&plan)?)
    );
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), prunelab::Error> {
    if let Some(n) = args.threads {
        experiment::set_threads(n as usize);
    }
    set_conv_backend(args.conv.into());
    let budget = BenchBudget {
        warmup: args.warmup,
        min_runs: args.min_runs as usize,
        min_time: Duration::from_secs_f64(args.seconds),
        ..BenchBudget::default()
    };
    println!("{}", console::bench_header(args.batch));
    let mut rows = Vec::new();
    for model in &args.models {
        let row = bench_model(model, args.size, args.batch, budget)?;
        println!("{}", console::bench_line(&row));
        rows.push(row);
    }
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialise");
        std::fs::write(&path, text).map_err(|source| prunelab::Error::Io { path, source })?;
    }
    Ok(())
}
