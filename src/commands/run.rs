//! `prunelab <experiment.toml>`: the plan printed, then (unless `--dry-run`) every stage that is
//! not finished, and the summary.

use crate::cli::RunArgs;
use crate::kernels::with_conv_backend;
use crate::pipeline::{prepare, run, RunOptions};
use crate::stages::Plan;
use crate::util::threads::on_worker;
use crate::Error;

pub fn command(args: &RunArgs) -> Result<(), Error> {
    let [path] = args.experiments.as_slice() else {
        let names: Vec<String> = args
            .experiments
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(Error::Input(format!(
            "give one experiment file (got {}: {}); run prunelab once per experiment",
            names.len(),
            names.join(", ")
        )));
    };
    let experiment = super::load(path, args.threads)?;
    let conv = args.conv.into();
    let plan = Plan::new(experiment, &args.results)?;
    let options = RunOptions {
        fresh: args.fresh,
        threads: args.threads,
        dry_run: args.dry_run,
    };
    // The cost estimates time the convolution the run will use.
    let prepared = with_conv_backend(conv, || prepare(&plan, &options))?;
    println!("{}", plan.describe(&prepared));
    if !args.dry_run {
        let summary = on_worker(|| with_conv_backend(conv, || run(&plan, prepared)))?;
        println!("{summary}");
    }
    Ok(())
}
