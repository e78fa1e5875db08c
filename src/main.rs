//! `prunelab <experiment.toml>`, `prunelab inspect`, `prunelab scores`, `prunelab latency`,
//! `prunelab bench`, `prunelab oracle-bench`, `prunelab eval` and `prunelab report`: parse the command line, call the library, print, map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use prunelab::config::{CriterionName, MAX_THREADS};
use prunelab::eval::{bench_model, BenchBudget};
use prunelab::graph::{set_conv_backend, ConvBackend};
use prunelab::latency::Pruning;
use prunelab::report::console;
use prunelab::{experiment, Experiment, Plan, RunOptions};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h; the crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Every op allocates its output afresh, and large activations freed at the end of a pass are
/// needed again at the start of the next one. Returning them to the OS in between costs page
/// faults on every pass (measured: ResNet-50 training 9.1–9.6 → 11.4–13.7 images/s, inference at
/// batch 64 ≈ 10% faster, minor page faults 70k → 1k per run), for a few percent of peak memory.
fn keep_freed_memory() {
    // SAFETY: sets one integer option of the allocator, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

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
    /// Check the experiment and every input it names (device, data, weights, checkpoint) and
    /// print the plan; write nothing, train nothing.
    #[arg(long)]
    dry_run: bool,
    /// Worker threads for tensor kernels (overrides `threads` in the file).
    #[arg(long, value_parser = threads)]
    threads: Option<usize>,
    /// Folder under which `<name>/` receives the outputs.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Convolution implementation (candle's is the slow reference, for checking numerics).
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    conv: Conv,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a pruned model's folder (as the prune stage exports it) on the experiment's
    /// test set, and compare with the accuracy recorded beside it.
    Eval {
        /// The folder: model.json, model.safetensors and, from the prune stage, point.json.
        model: PathBuf,
        /// The experiment whose data to evaluate on.
        experiment: PathBuf,
        /// Worker threads (overrides `threads` in the file).
        #[arg(long, value_parser = threads)]
        threads: Option<usize>,
    },
    /// Write every table and figure again from stored results, running nothing: each source is
    /// a run folder (results/<name>) or a folder this command wrote.
    Report {
        /// Folders of stored results.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Where `<source name>/` is written.
        #[arg(long)]
        out: PathBuf,
        /// A line to start every Markdown and LaTeX table with (what produced it).
        #[arg(long)]
        stamp: Option<String>,
    },
    /// Print the network's couplings (DFCs), parameters and MACs; write them as JSON. Reads no data.
    Inspect {
        experiment: PathBuf,
        /// Folder under which `<name>/inspect.json` is written.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Score every channel of the experiment's trained model with the `[saliency]` criteria
    /// (the pipeline's scores stage alone); write them under `<name>/scores/`. Reads data only
    /// for the data-driven criteria.
    Scores {
        experiment: PathBuf,
        /// Folder under which `<name>/` holds the trained model and receives the scores.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Worker threads (overrides `threads` in the file).
        #[arg(long, value_parser = threads)]
        threads: Option<usize>,
    },
    /// Time the network's inference against a pruned copy, interleaved, with the `[latency]`
    /// settings; break the time down per layer. Reads no data.
    Latency(LatencyArgs),
    /// Measure training and inference images/s and peak memory on random inputs.
    Bench(BenchArgs),
    /// Time the oracle (suffix runs, tiles of channels) against a full forward pass per
    /// channel, DFC by DFC, on the experiment's trained model and `[oracle]` images; report
    /// how far they differ.
    OracleBench {
        experiment: PathBuf,
        /// Folder under which `<name>/` holds the trained model.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Worker threads (overrides `threads` in the file).
        #[arg(long, value_parser = threads)]
        threads: Option<usize>,
        /// Only the first N DFCs.
        #[arg(long)]
        dfcs: Option<usize>,
    },
}

#[derive(Args)]
struct LatencyArgs {
    experiment: PathBuf,
    /// Compare with a copy that has this fraction of every DFC's channels removed at random.
    #[arg(long, conflicts_with = "plan", value_parser = fraction)]
    prune_random: Option<f64>,
    /// Seed of the random channel choice.
    #[arg(long, default_value_t = 0, requires = "prune_random")]
    seed: u64,
    /// Compare with the network pruned by this channel plan (JSON: {"remove": {"<first producer of a DFC>": [channels]}}).
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Worker threads (overrides `[latency] threads` and `threads` in the file).
    #[arg(long, value_parser = threads)]
    threads: Option<usize>,
    /// Folder under which `<name>/` receives the outputs.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

fn threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a thread count in 1..={MAX_THREADS}"
        )),
    }
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a fraction in [0, 1)")),
    }
}

#[derive(Args)]
struct BenchArgs {
    /// Architectures to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet20,resnet56,resnet50",
        value_parser = clap::builder::PossibleValuesParser::new(prunelab::models::ARCHITECTURES)
    )]
    models: Vec<String>,
    /// Training and large-batch inference batch size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    batch: u64,
    /// Side of the square RGB inputs.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    size: u64,
    /// Convolution implementation.
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    conv: Conv,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = threads)]
    threads: Option<usize>,
    /// Least time spent on each measurement, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    seconds: f64,
    /// Untimed runs before each measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=1000))]
    warmup: u64,
    /// Least number of timed runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    min_runs: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of training and inference, time these saliency criteria (comma-separated) on
    /// each model's seeded initialisation, `--min-runs` times; naming `dfpc` and
    /// `dfpc-name-order` also compares their rankings.
    #[arg(long, value_delimiter = ',', value_parser = criterion)]
    criteria: Vec<CriterionName>,
}

/// A data-free criterion: the benchmark scores initialisations, without images.
fn criterion(text: &str) -> Result<CriterionName, String> {
    let data_free = |c: &CriterionName| !prunelab::saliency::needs_of(&[*c]).activations;
    let known: Vec<&str> = CriterionName::ALL
        .iter()
        .filter(|c| data_free(c))
        .map(|c| c.as_str())
        .collect();
    match CriterionName::ALL.into_iter().find(|c| c.as_str() == text) {
        Some(c) if data_free(&c) => Ok(c),
        Some(_) => Err(format!(
            "{text} reads images; the benchmark times the data-free criteria ({}); `prunelab scores` runs the others",
            known.join(", ")
        )),
        None => Err(format!(
            "unknown criterion {text:?} (data-free: {})",
            known.join(", ")
        )),
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds in [0, 3600]")),
    }
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
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect {
            experiment,
            results,
        }) => inspect(&experiment, &results),
        Some(Command::Scores {
            experiment,
            results,
            threads,
        }) => scores(&experiment, &results, threads),
        Some(Command::Latency(args)) => latency(args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::OracleBench {
            experiment,
            results,
            threads,
            dfcs,
        }) => oracle_bench(&experiment, &results, threads, dfcs),
        Some(Command::Eval {
            model,
            experiment,
            threads,
        }) => eval(&model, &experiment, threads),
        Some(Command::Report {
            sources,
            out,
            stamp,
        }) => report(&sources, &out, stamp.as_deref()),
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
    if let Some(n) = args.threads.or(experiment.threads) {
        experiment::set_threads(n);
    }
    set_conv_backend(args.conv.into());
    let plan = Plan::new(experiment, &args.results)?;
    let prepared = prunelab::prepare(
        &plan,
        &RunOptions {
            fresh: args.fresh,
            threads: args.threads,
        },
    )?;
    println!("{}", plan.describe(&prepared));
    if !args.dry_run {
        println!("{}", prunelab::run(&plan, prepared)?);
    }
    Ok(())
}

fn eval(
    model: &std::path::Path,
    experiment: &std::path::Path,
    threads: Option<usize>,
) -> Result<(), prunelab::Error> {
    let e = Experiment::load(experiment)?;
    if let Some(n) = threads.or(e.threads) {
        experiment::set_threads(n);
    }
    let result = prunelab::exported::evaluate_exported(model, &e)?;
    println!("{result}");
    if result.reproduces() {
        Ok(())
    } else {
        Err(prunelab::Error::Differs(
            "the accuracy differs from the one recorded when the model was exported".into(),
        ))
    }
}

fn report(
    sources: &[PathBuf],
    out: &std::path::Path,
    stamp: Option<&str>,
) -> Result<(), prunelab::Error> {
    for r in prunelab::report::regenerate(sources, out, stamp)? {
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

fn inspect(experiment: &std::path::Path, results: &std::path::Path) -> Result<(), prunelab::Error> {
    let plan = Plan::new(Experiment::load(experiment)?, results)?;
    println!(
        "{}",
        console::coupling_table(&prunelab::inspect::inspect(&plan)?)
    );
    Ok(())
}

/// The experiment's plan, with its thread count set.
fn plan_of(
    experiment: &std::path::Path,
    results: &std::path::Path,
    threads: Option<usize>,
) -> Result<Plan, prunelab::Error> {
    let e = Experiment::load(experiment)?;
    if let Some(n) = threads.or(e.threads) {
        experiment::set_threads(n);
    }
    Plan::new(e, results)
}

fn scores(
    experiment: &std::path::Path,
    results: &std::path::Path,
    threads: Option<usize>,
) -> Result<(), prunelab::Error> {
    let plan = plan_of(experiment, results, threads)?;
    println!("{}", prunelab::scoring::scores(&plan)?);
    Ok(())
}

fn oracle_bench(
    experiment: &std::path::Path,
    results: &std::path::Path,
    threads: Option<usize>,
    dfcs: Option<usize>,
) -> Result<(), prunelab::Error> {
    let plan = plan_of(experiment, results, threads)?;
    let comparison = prunelab::oracle_stage::bench_oracle(&plan, dfcs)?;
    println!("{}", console::oracle_comparison(&comparison));
    Ok(())
}

fn latency(args: LatencyArgs) -> Result<(), prunelab::Error> {
    let e = Experiment::load(&args.experiment)?;
    let threads = args
        .threads
        .or(e.latency.threads)
        .or(e.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pruning = match (args.prune_random, args.plan) {
        (Some(fraction), _) => Some(Pruning::Random {
            fraction,
            seed: args.seed,
        }),
        (None, Some(path)) => Some(Pruning::Plan(path)),
        (None, None) => None,
    };
    let plan = Plan::new(e, &args.results)?;
    let report = prunelab::latency::latency(&plan, pruning.as_ref(), threads)?;
    println!("{}", console::latency_report(&report));
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), prunelab::Error> {
    // Everything is checked before the first measurement.
    if let Some(parent) = args.json.as_deref().and_then(std::path::Path::parent) {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(prunelab::Error::Input(format!(
                "--json: the folder {} does not exist",
                parent.display()
            )));
        }
    }
    let (batch, size) = (args.batch as usize, args.size as usize);
    for model in &args.models {
        prunelab::models::build(model, 3, size, 10)
            .map_err(|e| prunelab::Error::Input(format!("--size {size}: {model}: {e}")))?;
    }
    if let Some(n) = args.threads {
        experiment::set_threads(n);
    }
    set_conv_backend(args.conv.into());
    if !args.criteria.is_empty() {
        return bench_criteria(&args, size);
    }
    let budget = BenchBudget {
        warmup: args.warmup as usize,
        min_runs: args.min_runs as usize,
        min_time: Duration::from_secs_f64(args.seconds),
        ..BenchBudget::default()
    };
    println!("{}", console::bench_header(batch));
    let mut rows = Vec::new();
    for model in &args.models {
        let row = bench_model(model, size, batch, budget)?;
        println!("{}", console::bench_line(&row));
        rows.push(row);
    }
    write_json(args.json.as_deref(), &rows)
}

fn bench_criteria(args: &BenchArgs, size: usize) -> Result<(), prunelab::Error> {
    let mut rows = Vec::new();
    for model in &args.models {
        let (timings, agreement) =
            prunelab::eval::bench_criteria(model, size, 10, &args.criteria, args.min_runs as usize)
                .map_err(|e| prunelab::Error::Saliency(e.to_string()))?;
        println!(
            "{}",
            console::criteria_timings(&timings, agreement.as_ref())
        );
        rows.push(serde_json::json!({ "timings": timings, "dfpc_orders": agreement }));
    }
    write_json(args.json.as_deref(), &rows)
}

fn write_json(
    path: Option<&std::path::Path>,
    rows: &impl serde::Serialize,
) -> Result<(), prunelab::Error> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(rows).expect("rows serialise");
        std::fs::write(path, text).map_err(|source| prunelab::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}
