//! `prunelab latency`: the experiment's network timed against a pruned copy of itself in one
//! process, with the `[latency]` protocol, and a per-layer breakdown that tells apart the layers
//! whose input or output channels are coupled.
//!
//! The network is the experiment's model ([`crate::stages::model_source::model_of`]): the trained
//! `results/<name>/model` when a run has written one, else `model.weights`, else the seeded
//! initialisation (timing does not depend on the values).
//! Both sides run their fused inference form. The speedup reported is the ratio of measured
//! median latencies; the MAC ratio is reported beside it, never instead of it.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::cli::LatencyArgs;
use crate::eval::{measure_speedup, node_times, BatchLatency, Model, Protocol, Timing};
use crate::graph::{
    couplings, fuse_for_inference, layer_costs, prune, save_model, ChannelPlan, Graph, Params,
};
use crate::stages::device;
use crate::stages::model_source::model_of;
use crate::stages::Plan;
use crate::util::run_lock::RunLock;
use crate::util::tables::{write_csv, FileError};
use crate::Error;

/// What the unpruned network is compared with.
#[derive(Debug, Clone)]
pub enum Pruning {
    /// Remove this fraction of the channels of every DFC, chosen at random from `seed`.
    Random { fraction: f64, seed: u64 },
    /// A [`ChannelPlan`] JSON file.
    Plan(PathBuf),
}

/// Size of one side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSize {
    pub model: &'static str,
    pub parameters: usize,
    pub macs: u64,
    pub prunable_channels: usize,
}

/// One node's median time in the per-layer breakdown (fused graph: a conv includes its folded
/// BN and ReLU).
#[derive(Debug, Clone, Serialize)]
pub struct LayerTime {
    pub model: &'static str,
    pub batch: usize,
    pub node: String,
    pub kind: &'static str,
    pub macs: u64,
    /// The node reads or writes channels of a coupled DFC.
    pub coupled: bool,
    pub median_ms: f64,
}

/// The share of the per-layer time spent in nodes with coupled input or output channels.
#[derive(Debug, Clone, Serialize)]
pub struct CoupledShare {
    pub model: &'static str,
    pub batch: usize,
    pub coupled_ms: f64,
    pub total_ms: f64,
    pub share: f64,
    /// The same over convolutions and linear layers only.
    pub conv_linear_coupled_ms: f64,
    pub conv_linear_total_ms: f64,
}

/// Everything `latency` measured (also written as `latency.json`).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub name: String,
    pub arch: String,
    pub weights: String,
    pub device: String,
    pub threads: usize,
    pub warmup: usize,
    pub repeats: usize,
    pub pruning: Option<String>,
    pub sizes: Vec<ModelSize>,
    /// Pruned MACs / unpruned MACs.
    pub mac_ratio: Option<f64>,
    pub batches: Vec<BatchLatency>,
    pub shares: Vec<CoupledShare>,
    pub layers: Vec<LayerTime>,
    pub out_dir: PathBuf,
}

/// Measures and writes `latency.json` and `latency_layers.csv` under `results/<name>/` (and,
/// with pruning, the plan and the pruned model).
pub fn latency(
    plan: &Plan,
    pruning: Option<&Pruning>,
    threads: usize,
) -> Result<LatencyReport, Error> {
    let e = &plan.experiment;
    let device = device(e.device)?;
    let (graph, params, source) = model_of(plan, &device)?;
    let weights = source.to_string();

    let mut sides: Vec<(&'static str, Graph, Params)> = vec![("unpruned", graph, params)];
    let mut pruned = None;
    let description = match pruning {
        None => None,
        Some(choice) => {
            let (channel_plan, what) = match choice {
                Pruning::Random { fraction, seed } => (
                    ChannelPlan::random(&sides[0].1, *fraction, *seed)?,
                    format!(
                        "{:.0}% of every DFC's channels removed at random (seed {seed})",
                        100.0 * fraction
                    ),
                ),
                Pruning::Plan(path) => {
                    let unreadable =
                        |why: String| Error::Input(format!("--plan {}: {why}", path.display()));
                    if path.is_dir() {
                        return Err(unreadable(
                            "is a folder; expected a channel plan (a JSON file, as `prunelab latency --prune-random` writes pruning_plan.json)".into(),
                        ));
                    }
                    let text = std::fs::read(path).map_err(|err| unreadable(err.to_string()))?;
                    let p = ChannelPlan::from_json(&text).map_err(unreadable)?;
                    (p, format!("plan {}", path.display()))
                }
            };
            let (g, p) =
                prune(&sides[0].1, &sides[0].2, &channel_plan).map_err(|err| match choice {
                    // A plan that does not fit the network is the user's input to fix.
                    Pruning::Plan(path) => {
                        Error::Input(format!("--plan {}: {err}", path.display()))
                    }
                    Pruning::Random { .. } => err.into(),
                })?;
            let command: Vec<String> = std::env::args().collect();
            let channel_plan = ChannelPlan {
                produced_by: Some(format!(
                    "prunelab {}: {}",
                    env!("CARGO_PKG_VERSION"),
                    command.join(" ")
                )),
                ..channel_plan
            };
            pruned = Some((g, p, channel_plan));
            Some(what)
        }
    };
    // Everything the user gave is checked; only now is the run folder written.
    let _lock = RunLock::acquire(&plan.out_dir)?;
    if let Some((g, p, channel_plan)) = pruned {
        let plan_path = plan.out_dir.join("pruning_plan.json");
        crate::util::atomic_file::write_json(&plan_path, &channel_plan)?;
        save_model(&g, &p, &plan.out_dir.join("pruned_model"), HashMap::new())?;
        sides.push(("pruned", g, p));
    }

    let mut sizes = Vec::new();
    let mut fused = Vec::new();
    for (label, graph, params) in &sides {
        sizes.push(ModelSize {
            model: label,
            parameters: graph.parameter_count(),
            macs: crate::graph::macs(graph)?,
            prunable_channels: couplings(graph)?.iter().map(|c| c.channels).sum(),
        });
        fused.push(fuse_for_inference(graph, params)?);
    }
    let mac_ratio = (sizes.len() == 2).then(|| sizes[1].macs as f64 / sizes[0].macs as f64);

    let protocol = Protocol {
        warmup: e.latency.warmup,
        repeats: e.latency.repeats,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|err| Error::Device(format!("cannot start {threads} threads: {err}")))?;
    let models: Vec<Model> = fused
        .iter()
        .map(|(graph, params)| Model { graph, params })
        .collect();
    let batches = measure_speedup(
        &models[0],
        models.get(1),
        &e.latency.batch_sizes,
        protocol,
        &pool,
        &device,
    )?;
    let mut layers = Vec::new();
    let mut shares = Vec::new();
    for &batch in &e.latency.batch_sizes {
        for (model, (label, ..)) in models.iter().zip(&sides) {
            let times = pool.install(|| node_times(model, batch, protocol, &device))?;
            let rows = breakdown(model.graph, label, batch, &times)?;
            shares.push(coupled_share(label, batch, &rows));
            layers.extend(rows);
        }
    }

    let report = LatencyReport {
        name: e.name().to_string(),
        arch: e.model.label(),
        weights,
        device: format!("{device:?}").to_lowercase(),
        threads,
        warmup: protocol.warmup,
        repeats: protocol.repeats,
        pruning: description,
        sizes,
        mac_ratio,
        batches,
        shares,
        layers,
        out_dir: plan.out_dir.clone(),
    };
    let json_path = plan.out_dir.join("latency.json");
    crate::util::atomic_file::write_json(&json_path, &report)?;
    write_layer_times(&report.layers, &plan.out_dir.join("latency_layers.csv"))?;
    Ok(report)
}

/// Per-node rows of one model at one batch size.
fn breakdown(
    graph: &Graph,
    model: &'static str,
    batch: usize,
    times: &[Timing],
) -> Result<Vec<LayerTime>, Error> {
    let coupled: BTreeSet<usize> = couplings(graph)?
        .iter()
        .filter(|c| c.is_coupled())
        .flat_map(|c| c.producers.iter().chain(&c.consumers).chain(&c.members))
        .copied()
        .collect();
    Ok(layer_costs(graph)?
        .into_iter()
        .zip(times)
        .enumerate()
        .map(|(i, (cost, t))| LayerTime {
            model,
            batch,
            node: cost.name,
            kind: cost.kind,
            macs: cost.macs,
            coupled: coupled.contains(&i),
            median_ms: t.median_ms,
        })
        .collect())
}

fn coupled_share(model: &'static str, batch: usize, rows: &[LayerTime]) -> CoupledShare {
    let sum = |keep: &dyn Fn(&LayerTime) -> bool| -> f64 {
        rows.iter().filter(|r| keep(r)).map(|r| r.median_ms).sum()
    };
    let conv_linear = |r: &LayerTime| r.kind == "conv2d" || r.kind == "linear";
    let coupled_ms = sum(&|r| r.coupled);
    let total_ms = sum(&|_| true);
    CoupledShare {
        model,
        batch,
        coupled_ms,
        total_ms,
        share: coupled_ms / total_ms,
        conv_linear_coupled_ms: sum(&|r| r.coupled && conv_linear(r)),
        conv_linear_total_ms: sum(&conv_linear),
    }
}

pub fn command(args: &LatencyArgs) -> Result<(), Error> {
    let run = &args.run;
    let experiment = super::one_experiment(&run.experiment)?;
    let threads = experiment.latency_threads(run.threads);
    let pruning = match (args.prune_random, &args.plan) {
        (Some(fraction), _) => Some(Pruning::Random {
            fraction,
            seed: args.seed,
        }),
        (None, Some(path)) => Some(Pruning::Plan(path.clone())),
        (None, None) => None,
    };
    let plan = Plan::new(experiment, &run.results)?;
    let report = latency(&plan, pruning.as_ref(), threads)?;
    println!("{}", latency_report(&report));
    Ok(())
}

/// The latency comparison, the coupled-layer shares and the slowest nodes.
fn latency_report(r: &LatencyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}), weights from {}; {} with {} threads; {} warm-up + {} timed passes per model, interleaved",
        r.name, r.arch, r.weights, r.device, r.threads, r.warmup, r.repeats
    );
    if let Some(p) = &r.pruning {
        let _ = writeln!(s, "pruned: {p}");
    }
    let _ = writeln!(
        s,
        "\n| model | parameters | MACs | prunable channels |\n|---|---|---|---|"
    );
    for m in &r.sizes {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} M | {} |",
            m.model,
            m.parameters,
            m.macs as f64 / 1e6,
            m.prunable_channels
        );
    }
    let timing = |t: &Timing| format!("{:.2} [{:.2}, {:.2}]", t.median_ms, t.p25_ms, t.p75_ms);
    let _ = writeln!(
        s,
        "\n| batch | unpruned ms, median [quartiles] | pruned ms | speedup (latency ratio) |\n|---|---|---|---|"
    );
    for b in &r.batches {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            b.batch,
            timing(&b.unpruned),
            b.pruned.as_ref().map_or("".into(), timing),
            b.speedup.map_or("".into(), |x| format!("{x:.3}×"))
        );
    }
    if let Some(ratio) = r.mac_ratio {
        let _ = writeln!(s, "\nMAC ratio, pruned / unpruned: {ratio:.3}");
    }
    let _ = writeln!(
        s,
        "\nPer-layer breakdown: time in nodes whose input or output channels are coupled\n\
         | model | batch | coupled ms / all ms | share | convs + linear: coupled share |\n|---|---|---|---|---|"
    );
    for c in &r.shares {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} / {:.2} | {:.1}% | {:.1}% |",
            c.model,
            c.batch,
            c.coupled_ms,
            c.total_ms,
            100.0 * c.share,
            100.0 * c.conv_linear_coupled_ms / c.conv_linear_total_ms
        );
    }
    let _ = write!(
        s,
        "\nwritten to {}: latency.json, latency_layers.csv (every node's median time)",
        r.out_dir.display()
    );
    s
}

/// Writes the per-layer latency breakdown to `path`, one row per (model, batch, node).
fn write_layer_times(rows: &[LayerTime], path: &Path) -> Result<(), FileError> {
    let mut table = df!(
        "model" => rows.iter().map(|r| r.model).collect::<Vec<_>>(),
        "batch" => rows.iter().map(|r| r.batch as u32).collect::<Vec<_>>(),
        "node" => rows.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
        "kind" => rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        "macs" => rows.iter().map(|r| r.macs).collect::<Vec<_>>(),
        "coupled" => rows.iter().map(|r| r.coupled).collect::<Vec<_>>(),
        "median_ms" => rows.iter().map(|r| r.median_ms).collect::<Vec<_>>(),
    )
    .map_err(|e| FileError::new(path, e))?;
    write_csv(&mut table, path)
}
