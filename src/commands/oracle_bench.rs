//! `prunelab oracle-bench`: the oracle's suffix runs timed against a full forward pass per
//! channel, DFC by DFC, on the experiment's trained model.

use crate::bench::{compare_oracles, OracleComparison};
use crate::cli::ExperimentArgs;
use crate::stages::model_source::{model_of, ModelSource};
use crate::stages::Plan;
use crate::util::threads::on_worker;
use crate::Error;

pub fn command(args: &ExperimentArgs, dfcs: Option<usize>) -> Result<(), Error> {
    let plan = Plan::new(super::load(&args.experiment, args.threads)?, &args.results)?;
    let comparison = on_worker(|| bench_oracle(&plan, dfcs))?;
    println!("{}", oracle_comparison(&comparison));
    Ok(())
}

/// `prunelab oracle-bench`: both oracles on the experiment's trained model and `[oracle]`
/// images (default settings when the section is absent), on its first `limit` DFCs.
fn bench_oracle(plan: &Plan, limit: Option<usize>) -> Result<OracleComparison, Error> {
    let e = &plan.experiment;
    let device = crate::stages::device(e.device)?;
    let (graph, params, source) = model_of(plan, &device)?;
    if let ModelSource::Initialisation(_) = source {
        return Err(Error::Untrained(format!(
            "{}: no trained model to time the oracle on; run the experiment first, or set model.weights",
            e.name()
        )));
    }
    let config = e
        .oracle
        .unwrap_or_else(|| toml::from_str("").expect("[oracle] has defaults"));
    let data = e.data.load(e.synthetic(), e.seed)?;
    let batches = data.image_set(
        config.image_request(),
        config.batch,
        &e.data.normalizer(),
        &device,
    )?;
    compare_oracles(&graph, &params, &batches, config.tile, limit)
        .map_err(|err| Error::Saliency(format!("oracle: {err}")))
}

/// The two oracles' times per DFC, their ratio and their largest difference.
fn oracle_comparison(c: &crate::bench::OracleComparison) -> String {
    let mut out = format!(
        "oracle on {} images: suffix runs with tiles of {} channels against a full forward pass per channel\n{:<28} {:>8} {:>10} {:>10} {:>8} {:>12}",
        c.images, c.tile, "DFC", "channels", "fast s", "naive s", "speedup", "largest |Δ|"
    );
    for r in &c.dfcs {
        out.push_str(&format!(
            "\n{:<28} {:>8} {:>10.3} {:>10.3} {:>7.2}× {:>12.2e}",
            r.dfc,
            r.channels,
            r.fast_seconds,
            r.naive_seconds,
            r.naive_seconds / r.fast_seconds,
            r.largest_difference
        ));
    }
    out.push_str(&format!(
        "\n{:<28} {:>8} {:>10.3} {:>10.3} {:>7.2}×",
        "all",
        c.dfcs.iter().map(|r| r.channels).sum::<usize>(),
        c.fast_seconds,
        c.naive_seconds,
        c.naive_seconds / c.fast_seconds
    ));
    out
}
