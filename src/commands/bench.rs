//! `prunelab bench`: training and inference throughput with peak memory on random inputs, or
//! (`--criteria`) the data-free criteria's scoring time.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::bench::{
    bench_criteria, bench_model, BenchBudget, BenchRow, CriterionTiming, OrderAgreement,
};
use crate::cli::BenchArgs;
use crate::kernels::with_conv_backend;
use crate::util::atomic_file;
use crate::util::output_path::check_output_file;
use crate::util::threads::{on_worker, set_threads};
use crate::Error;

pub fn command(args: &BenchArgs) -> Result<(), Error> {
    // Everything is checked before the first measurement.
    if let Some(json) = &args.json {
        check_output_file("--json", json)?;
    }
    let (batch, size) = (args.batch as usize, args.size as usize);
    for model in &args.models {
        crate::models::build(model, 3, size, 10)
            .map_err(|e| Error::Input(format!("--size {size}: {model}: {e}")))?;
    }
    if let Some(n) = args.threads {
        set_threads(n);
    }
    if !args.criteria.is_empty() {
        return criteria(args, size);
    }
    let budget = BenchBudget {
        warmup: args.warmup as usize,
        min_runs: args.min_runs as usize,
        min_time: Duration::from_secs_f64(args.seconds),
        ..BenchBudget::default()
    };
    println!("{}", bench_header(batch));
    let mut rows = Vec::new();
    for model in &args.models {
        let conv = args.conv.into();
        let row =
            on_worker(|| with_conv_backend(conv, || bench_model(model, size, batch, budget)))?;
        println!("{}", bench_line(&row));
        rows.push(row);
    }
    write_json(args.json.as_deref(), &rows)
}

fn criteria(args: &BenchArgs, size: usize) -> Result<(), Error> {
    let mut rows = Vec::new();
    for model in &args.models {
        let (timings, agreement) =
            on_worker(|| bench_criteria(model, size, 10, &args.criteria, args.min_runs as usize))
                .map_err(|e| Error::Saliency(e.to_string()))?;
        println!("{}", criteria_timings(&timings, agreement.as_ref()));
        rows.push(serde_json::json!({ "timings": timings, "dfpc_orders": agreement }));
    }
    write_json(args.json.as_deref(), &rows)
}

/// The rows as JSON, written atomically, when `--json` names a file.
fn write_json(path: Option<&Path>, rows: &impl serde::Serialize) -> Result<(), Error> {
    match path {
        Some(path) => Ok(atomic_file::write_json(path, rows)?),
        None => Ok(()),
    }
}

fn bench_header(batch: usize) -> String {
    format!(
        "| model | conv | threads | train img/s (batch {batch}) | infer img/s batch 1 | infer img/s batch {batch} \
         | GFLOP/s train / infer | peak RSS MiB | RSS growth over training MiB |\n|---|---|---|---|---|---|---|---|---|"
    )
}

fn bench_line(r: &BenchRow) -> String {
    format!(
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
    )
}

/// One model's criterion timings, and the agreement of the two DFPC pair orders.
fn criteria_timings(timings: &[CriterionTiming], agreement: Option<&OrderAgreement>) -> String {
    let mut s = String::from("| model | criterion | DFCs | channels | median seconds | runs |\n|---|---|---|---|---|---|");
    for t in timings {
        let _ = write!(
            s,
            "\n| {} | {} | {} | {} | {:.4} | {} |",
            t.model,
            t.criterion.as_str(),
            t.dfcs,
            t.channels,
            t.seconds,
            t.runs
        );
    }
    if let Some(a) = agreement {
        let _ = write!(
            s,
            "\n\n{}: dfpc vs dfpc-name-order: Spearman ρ {:.6} over all channels; {} of {} DFCs differ, the most in {} (ρ {:.4}); {:.1}% of the lowest-scored tenth shared",
            a.model,
            a.spearman_all,
            a.dfcs_differing,
            a.dfcs,
            if a.worst_dfc.is_empty() { "none" } else { &a.worst_dfc },
            a.spearman_worst_dfc,
            100.0 * a.lowest_tenth_shared
        );
    }
    s
}
