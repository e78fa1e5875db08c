//! `prunelab <experiment.toml>` and `prunelab bench`: parse the command line, call the library,
//! report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use prunelab::eval::{bench_model, BenchBudget, BenchRow};
use prunelab::graph::{set_conv_backend, ConvBackend};
use prunelab::{experiment, Experiment, Plan, RunOptions};

/// Train, evaluate and (later) prune the network an experiment file describes.
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
}

#[derive(Subcommand)]
enum Command {
    /// Measure training and inference images/s and peak memory on random inputs.
    Bench {
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Conv {
    Ours,
    Candle,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Bench {
            models,
            batch,
            size,
            conv,
            threads,
            seconds,
            warmup,
            min_runs,
            json,
        }) => {
            let budget = BenchBudget {
                warmup,
                min_runs: min_runs as usize,
                min_time: Duration::from_secs_f64(seconds),
                ..BenchBudget::default()
            };
            bench(&models, batch, size, conv, threads, budget, json)
        }
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
    let plan = Plan::new(experiment, &args.results)?;
    println!("{}", plan.describe());
    if args.dry_run {
        return Ok(());
    }
    let summary = prunelab::run(&plan, &RunOptions { fresh: args.fresh })?;
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

fn bench(
    models: &[String],
    batch: usize,
    size: usize,
    conv: Conv,
    threads: Option<u64>,
    budget: BenchBudget,
    json: Option<PathBuf>,
) -> Result<(), prunelab::Error> {
    if let Some(n) = threads {
        experiment::set_threads(n as usize);
    }
    set_conv_backend(match conv {
        Conv::Ours => ConvBackend::Fast,
        Conv::Candle => ConvBackend::Candle,
    });
    println!("| model | conv | threads | train img/s (batch {batch}) | infer img/s batch 1 | infer img/s batch {batch} | GFLOP/s train / infer | peak RSS MiB | RSS growth over training MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<BenchRow> = Vec::new();
    for model in models {
        let r = bench_model(model, size, batch, budget)?;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} / {:.0} | {:.0} | {:+.1} |",
            r.model,
            r.conv,
            r.threads,
            r.train_images_per_second,
            r.infer_batch1_images_per_second,
            r.infer_batch_images_per_second,
            r.train_gflops,
            r.infer_gflops,
            r.peak_rss_mib,
            r.train_rss_growth_mib
        );
        rows.push(r);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialise");
        std::fs::write(&path, text).map_err(|source| prunelab::Error::Io { path, source })?;
    }
    Ok(())
}
