//! `prunelab <experiment.toml> [key=value]...`: one experiment (the plan printed, then every
//! stage that is not finished, and the summary), or a grid of them given to an executor; with
//! `--index`, one task of the grid, in this process.

use crate::cli::{Executor, Phase, RunArgs};
use crate::grid::{local, slurm, Grid, Part, Task};
use crate::kernels::with_conv_backend;
use crate::pipeline::{prepare, run, run_models, run_oracle_shard, run_prune_variant, RunOptions};
use crate::stages::Plan;
use crate::util::threads::{on_worker, set_threads};
use crate::Error;

pub fn command(args: &RunArgs) -> Result<(), Error> {
    let (path, overrides) = super::experiment_and_overrides(&args.experiments)?;
    let grid = Grid::load(path, &overrides, &args.results)?;
    if let Some(index) = args.index {
        let task = grid.task(args.phase, index)?;
        return run_task(args, &grid, task, true);
    }
    match args.executor {
        Executor::Slurm => slurm::submit(&grid, args),
        Executor::Local if !grid.is_grid && args.jobs.is_none() => {
            let whole = Task {
                run: 0,
                phase: Phase::Whole,
                part: None,
            };
            run_task(args, &grid, whole, false)
        }
        Executor::Local => local::run(&grid, args),
    }
}

/// Runs `task` of `grid` here; a task of an executor (`as_task`) stops at a safe point on
/// SIGUSR1 or SIGTERM, requeueing itself under SLURM.
fn run_task(args: &RunArgs, grid: &Grid, task: Task, as_task: bool) -> Result<(), Error> {
    let point = &grid.runs[task.run];
    let experiment = point.experiment.clone();
    if let Some(n) = experiment.kernel_threads(args.threads) {
        set_threads(n);
    }
    if as_task && !args.dry_run {
        let requeues = experiment.slurm.clone().unwrap_or_default().requeues;
        crate::util::safe_point::stop_on_signals(requeues).map_err(|source| Error::Io {
            path: "signal handlers".into(),
            source,
        })?;
    }
    let conv = args.conv.into();
    let plan = Plan::in_folder(experiment, &point.dir)?;
    let options = RunOptions {
        fresh: args.fresh,
        threads: args.threads,
        dry_run: args.dry_run,
    };
    if as_task {
        println!("task: {}", grid.describe(task));
    }
    // The cost estimates time the convolution the run will use.
    let prepared = with_conv_backend(conv, || prepare(&plan, &options))?;
    if task.phase == Phase::Whole || args.dry_run {
        println!("{}", plan.describe(&prepared));
    }
    if args.dry_run {
        return Ok(());
    }
    point.write_settings()?;
    let done = on_worker(|| {
        with_conv_backend(conv, || match (task.phase, task.part) {
            (Phase::Models, _) => run_models(&plan, prepared).map(|summary| summary.to_string()),
            (_, Some(Part::Shard(s))) => {
                run_oracle_shard(&plan, prepared, s).map(|outcome| outcome.to_string())
            }
            (_, Some(Part::Variant(v))) => run_prune_variant(&plan, prepared, v),
            _ => run(&plan, prepared).map(|summary| summary.to_string()),
        })
    })?;
    println!("{done}");
    Ok(())
}
