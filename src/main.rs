//! `prunelab <experiment.toml>`, `prunelab inspect`, `prunelab scores`, `prunelab latency`,
//! `prunelab bench`, `prunelab oracle-bench`, `prunelab eval` and `prunelab report`: parse the command line, call the library, print, map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use prunelab::eval::{bench_model, BenchBudget};
use prunelab::graph::set_conv_backend;
use prunelab::latency::Pruning;
#[cfg(target_os = "linux")]
use prunelab::recycling::Recycling;
use prunelab::report::console;
use prunelab::threads::{on_worker, set_threads};
use prunelab::{Experiment, Plan, RunOptions};

mod cli;

use cli::{BenchArgs, Cli, Command, LatencyArgs, RunArgs};

// Recycling maps and remaps its blocks with Linux's `mremap`; elsewhere mimalloc has them all.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: Recycling<mimalloc::MiMalloc> = Recycling::new(mimalloc::MiMalloc);
#[cfg(not(target_os = "linux"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h; the crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Every op allocates its output afresh, and large activations freed at the end of a pass are
/// needed again at the start of the next one. Returning them to the OS in between costs page
/// faults on every pass (measured: ResNet-50 training 9.1–9.6 → 11.4–13.7 images/s, inference at
/// batch 64 ≈ 10% faster, minor page faults 70k → 1k per run). So large blocks are recycled
/// within the peak ([`Recycling`]; `PRUNELAB_RECYCLE=0` leaves them to mimalloc), and mimalloc
/// keeps the small ones it frees. `MIMALLOC_PURGE_DELAY`, where set, is mimalloc's own setting
/// and is left to it (0 returns memory at once).
fn keep_freed_memory() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("PRUNELAB_RECYCLE").is_none_or(|v| v != "0") {
        // SAFETY: nothing has allocated a large block yet.
        unsafe { ALLOCATOR.enable() };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option of the allocator, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
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
        set_threads(n);
    }
    set_conv_backend(args.conv.into());
    let plan = Plan::new(experiment, &args.results)?;
    let prepared = prunelab::prepare(
        &plan,
        &RunOptions {
            fresh: args.fresh,
            threads: args.threads,
            dry_run: args.dry_run,
        },
    )?;
    println!("{}", plan.describe(&prepared));
    if !args.dry_run {
        println!("{}", on_worker(|| prunelab::run(&plan, prepared))?);
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
        set_threads(n);
    }
    let result = on_worker(|| prunelab::exported::evaluate_exported(model, &e))?;
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
        set_threads(n);
    }
    Plan::new(e, results)
}

fn scores(
    experiment: &std::path::Path,
    results: &std::path::Path,
    threads: Option<usize>,
) -> Result<(), prunelab::Error> {
    let plan = plan_of(experiment, results, threads)?;
    println!("{}", on_worker(|| prunelab::scoring::scores(&plan))?);
    Ok(())
}

fn oracle_bench(
    experiment: &std::path::Path,
    results: &std::path::Path,
    threads: Option<usize>,
    dfcs: Option<usize>,
) -> Result<(), prunelab::Error> {
    let plan = plan_of(experiment, results, threads)?;
    let comparison = on_worker(|| prunelab::oracle_stage::bench_oracle(&plan, dfcs))?;
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
        set_threads(n);
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
        let row = on_worker(|| bench_model(model, size, batch, budget))?;
        println!("{}", console::bench_line(&row));
        rows.push(row);
    }
    write_json(args.json.as_deref(), &rows)
}

fn bench_criteria(args: &BenchArgs, size: usize) -> Result<(), prunelab::Error> {
    let mut rows = Vec::new();
    for model in &args.models {
        let (timings, agreement) = on_worker(|| {
            prunelab::eval::bench_criteria(model, size, 10, &args.criteria, args.min_runs as usize)
        })
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
