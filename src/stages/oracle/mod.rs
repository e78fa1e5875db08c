//! The oracle stage: `oracle-abs` and `oracle-signed` for every channel of every DFC
//! ([`crate::saliency::oracle`]), under `results/<name>/oracle/`.
//!
//! The oracle is the study's long stage (one suffix run per tile of channels per batch), so
//! each DFC's result is written as soon as it is done (`dfcs/<index>.json`, with the digest of
//! what it was made from): an interrupted oracle resumes at the first DFC without one. The
//! whole result is `oracle.json` (typed, read back by [`read_oracle`]) and a long table
//! `oracle.csv` / `oracle.parquet` (`dfc, coupled, channel, oracle_abs, oracle_signed`).

use std::io::IsTerminal;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

mod shards;

use super::partial;
use super::record::Stage;
use super::skeleton::StageRun;
use super::Plan;
use crate::config::OracleConfig;
use crate::data::Dataset;
use crate::graph::{couplings, layer_costs, Coupling, Graph, Params};
use crate::saliency::{clean_losses, oracle, suffix_start, OracleImages, OracleOptions};
use crate::util::fingerprint::Fingerprint;
use crate::Error;
pub use shards::ShardOutcome;
use shards::{assemble_pieces, piece_path, read_piece, shard_pieces, Piece};

/// The version of `oracle.json` and the per-DFC files.
const SCHEMA: u32 = 1;

/// One DFC's oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DfcOracle {
    pub dfc: String,
    pub coupled: bool,
    /// Per channel: mean loss with the channel removed − mean loss of the network as is.
    pub signed: Vec<f64>,
}

/// `oracle.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleResult {
    pub schema: u32,
    pub images: usize,
    /// Mean cross-entropy of the network as is on those images.
    pub clean_loss: f64,
    pub dfcs: Vec<DfcOracle>,
}

impl OracleResult {
    /// `oracle-abs`, per DFC.
    pub fn abs(&self) -> Vec<Vec<f64>> {
        self.dfcs
            .iter()
            .map(|d| d.signed.iter().map(|v| v.abs()).collect())
            .collect()
    }

    /// `oracle-signed`, per DFC.
    pub fn signed(&self) -> Vec<Vec<f64>> {
        self.dfcs.iter().map(|d| d.signed.clone()).collect()
    }
}

/// A DFC's file: its result and the digest of what it was made from.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    result: DfcOracle,
    /// The first channel of a shard's piece (0 for a whole DFC).
    #[serde(default, skip_serializing_if = "is_zero")]
    from: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What the stage did.
#[derive(Debug, Clone, Serialize)]
pub struct OracleOutcome {
    pub cached: bool,
    /// DFCs taken from an interrupted run.
    pub resumed_dfcs: usize,
    pub dfcs: usize,
    pub channels: usize,
    pub images: usize,
    pub seconds: f64,
}

impl std::fmt::Display for OracleOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oracle: {} channels of {} DFCs on {} images",
            self.channels, self.dfcs, self.images
        )?;
        if self.cached {
            write!(f, " (finished earlier from these settings)")
        } else {
            if self.resumed_dfcs > 0 {
                write!(
                    f,
                    ", {} DFCs kept from an interrupted run",
                    self.resumed_dfcs
                )?;
            }
            write!(f, " in {:.1} s", self.seconds)
        }
    }
}

fn partial_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("dfcs").join(format!("{index:04}.json"))
}

/// Reads a finished oracle.
pub fn read_oracle(dir: &Path) -> Result<OracleResult, Error> {
    let path = dir.join("oracle.json");
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Io {
        path,
        source: std::io::Error::other(e.to_string()),
    })
}

/// The oracle stage: the oracle of every DFC of `graph`, reusing the DFCs an interrupted run
/// finished (`oracle/dfcs/`, each with the digest of what it was made from).
pub struct OracleStage<'a> {
    pub plan: &'a Plan,
    pub config: &'a OracleConfig,
    pub graph: &'a Graph,
    pub params: &'a Params,
    pub data: &'a Dataset,
    pub made_from: &'a Fingerprint,
}

impl StageRun for OracleStage<'_> {
    type Output = (OracleResult, OracleOutcome);
    const STAGE: Stage = Stage::Oracle;

    fn read_back(&self, dir: &Path) -> Result<Self::Output, Error> {
        let result = read_oracle(dir)?;
        let channels = couplings(self.graph)?.iter().map(|c| c.channels).sum();
        let outcome = OracleOutcome {
            cached: true,
            resumed_dfcs: 0,
            dfcs: result.dfcs.len(),
            channels,
            images: result.images,
            seconds: 0.0,
        };
        Ok((result, outcome))
    }

    fn run(&self, dir: &Path) -> Result<Self::Output, Error> {
        oracle_run(self, dir)
    }
}

/// What every part of the oracle reads: the DFCs, the images, the clean losses.
struct Inputs {
    found: Vec<Coupling>,
    batches: Vec<crate::data::Batch>,
    clean: Vec<f64>,
    images: usize,
    made_from: String,
    /// Per DFC, the MACs of one channel's run over one image: a channel's cost.
    channel_macs: Vec<u64>,
}

impl OracleStage<'_> {
    fn inputs(&self) -> Result<Inputs, Error> {
        let found = couplings(self.graph)?;
        let batches = self.data.image_set(
            self.config.image_request(),
            self.config.batch,
            &self.plan.experiment.data.normalizer(),
            &self.params.device(),
        )?;
        let clean = clean_losses(self.graph, self.params, &batches).map_err(saliency)?;
        let images = batches.iter().map(|b| b.labels.dims()[0]).sum::<usize>();
        // A DFC's runs cost its suffix's share of the network.
        let costs = layer_costs(self.graph)?;
        let channel_macs = found
            .iter()
            .map(|dfc| {
                costs[suffix_start(dfc)..]
                    .iter()
                    .map(|c| c.macs)
                    .sum::<u64>()
                    .max(1)
            })
            .collect();
        Ok(Inputs {
            found,
            batches,
            clean,
            images,
            made_from: self.made_from.digest(),
            channel_macs,
        })
    }

    /// The signed oracle of `channels` of DFC `index`.
    fn compute(
        &self,
        inputs: &Inputs,
        index: usize,
        channels: Range<usize>,
        progress: &Progress,
    ) -> Result<Vec<f64>, Error> {
        let options = OracleOptions {
            from_cut: true,
            tile: self.config.tile,
        };
        let macs = inputs.channel_macs[index];
        oracle(
            self.graph,
            self.params,
            &inputs.found[index],
            channels,
            OracleImages {
                batches: &inputs.batches,
                clean: &inputs.clean,
            },
            options,
            &mut |work| progress.advance(macs * work as u64),
        )
        .map_err(saliency)
    }

    /// Shard `shard` of `[oracle] shards`: its pieces of DFCs, each written to
    /// `dfcs/<index>-<from>-<to>.json` with the digest of what it was made from (pieces already
    /// there, or whose whole DFC is, are kept). The stage, run whole, assembles them.
    pub fn run_shard(&self, dir: &Path, shard: usize) -> Result<ShardOutcome, Error> {
        let started = Instant::now();
        let inputs = self.inputs()?;
        let pieces = shard_pieces(&inputs, self.config.shards, shard);
        let cost =
            |p: &Piece| inputs.channel_macs[p.dfc] * (p.channels.len() * inputs.images) as u64;
        let progress = Progress::new("piece", pieces.len(), pieces.iter().map(cost).sum());
        let mut kept = 0;
        for (n, piece) in pieces.iter().enumerate() {
            let dfc = &inputs.found[piece.dfc];
            let done = read_partial(
                &partial_path(dir, piece.dfc),
                &inputs.made_from,
                dfc,
                self.graph,
            )
            .is_some()
                || read_piece(dir, piece, &inputs.made_from, dfc, self.graph).is_some();
            if done {
                progress.skip(cost(piece));
                kept += 1;
                continue;
            }
            let began = Instant::now();
            let signed = self.compute(&inputs, piece.dfc, piece.channels.clone(), &progress)?;
            let result = DfcOracle {
                dfc: dfc.name(self.graph).to_string(),
                coupled: dfc.is_coupled(),
                signed,
            };
            let part = Partial {
                result: result.clone(),
                from: piece.channels.start,
            };
            partial::write(&piece_path(dir, piece), SCHEMA, &inputs.made_from, &part)?;
            progress.finished(n, &result, began.elapsed().as_secs_f64());
            crate::util::safe_point::safe_point("oracle-piece", n);
        }
        Ok(ShardOutcome {
            shard,
            shards: self.config.shards,
            pieces: pieces.len(),
            kept,
            channels: pieces.iter().map(|p| p.channels.len()).sum(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn saliency(e: crate::saliency::SaliencyError) -> Error {
    Error::Saliency(format!("oracle: {e}"))
}

fn oracle_run(stage: &OracleStage, dir: &Path) -> Result<(OracleResult, OracleOutcome), Error> {
    let started = Instant::now();
    let inputs = stage.inputs()?;
    let Inputs {
        found,
        images,
        made_from,
        channel_macs,
        ..
    } = &inputs;
    let (graph, images) = (stage.graph, *images);
    let channels = found.iter().map(|c| c.channels).sum();
    let cost = |i: usize| channel_macs[i] * (found[i].channels * images) as u64;
    let progress = Progress::new("DFC", found.len(), (0..found.len()).map(cost).sum());
    let mut dfcs = Vec::with_capacity(found.len());
    let mut resumed_dfcs = 0;
    for (index, dfc) in found.iter().enumerate() {
        let path = partial_path(dir, index);
        let kept = read_partial(&path, made_from, dfc, graph).or_else(|| {
            // The shards' pieces, when they cover the DFC: kept whole from now on.
            let whole = assemble_pieces(dir, index, made_from, dfc, graph)?;
            let kept = Partial {
                result: whole.clone(),
                from: 0,
            };
            partial::write(&path, SCHEMA, made_from, &kept).ok()?;
            Some(whole)
        });
        if let Some(kept) = kept {
            progress.skip(cost(index));
            resumed_dfcs += 1;
            dfcs.push(kept);
            continue;
        }
        let began = Instant::now();
        let signed = stage.compute(&inputs, index, 0..dfc.channels, &progress)?;
        let result = DfcOracle {
            dfc: dfc.name(graph).to_string(),
            coupled: dfc.is_coupled(),
            signed,
        };
        let kept = Partial {
            result: result.clone(),
            from: 0,
        };
        partial::write(&path, SCHEMA, made_from, &kept)?;
        progress.finished(index, &result, began.elapsed().as_secs_f64());
        crate::util::safe_point::safe_point("oracle-dfc", index);
        dfcs.push(result);
    }
    drop(progress);
    let result = OracleResult {
        schema: SCHEMA,
        images,
        clean_loss: inputs.clean.iter().sum::<f64>() / images as f64,
        dfcs,
    };
    crate::util::atomic_file::write_json(&dir.join("oracle.json"), &result)?;
    write_table(&result, dir)?;
    let outcome = OracleOutcome {
        cached: false,
        resumed_dfcs,
        dfcs: result.dfcs.len(),
        channels,
        images,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((result, outcome))
}

/// A DFC's file from an interrupted run, if it was made from the same inputs.
fn read_partial(path: &Path, made_from: &str, dfc: &Coupling, graph: &Graph) -> Option<DfcOracle> {
    let partial: Partial = partial::read(path, SCHEMA, made_from)?;
    (partial.from == 0
        && partial.result.dfc == dfc.name(graph)
        && partial.result.signed.len() == dfc.channels)
        .then_some(partial.result)
}

fn write_table(result: &OracleResult, dir: &Path) -> Result<(), Error> {
    let rows = result
        .dfcs
        .iter()
        .flat_map(|d| d.signed.iter().enumerate().map(move |(j, &v)| (d, j, v)));
    let (mut dfc, mut coupled, mut channel, mut abs, mut signed) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (d, j, v) in rows {
        dfc.push(d.dfc.as_str());
        coupled.push(d.coupled);
        channel.push(j as u32);
        abs.push(v.abs());
        signed.push(v);
    }
    let report = |e: crate::util::tables::FileError| Error::Io {
        path: e.path.clone(),
        source: std::io::Error::other(e.message),
    };
    let mut table = df!(
        "dfc" => dfc,
        "coupled" => coupled,
        "channel" => channel,
        "oracle_abs" => abs,
        "oracle_signed" => signed,
    )
    .map_err(|e| Error::Saliency(e.to_string()))?;
    crate::util::tables::write_csv(&mut table, &dir.join("oracle.csv")).map_err(report)?;
    crate::util::tables::write_parquet(&mut table, &dir.join("oracle.parquet")).map_err(report)
}

/// What the oracle will cost: `--dry-run`'s line.
pub struct OracleEstimate {
    pub images: usize,
    /// Runs of the suffix (each over `tile` copies of a batch), and runs of a prefix.
    pub suffix_runs: usize,
    pub prefix_runs: usize,
    /// The work in full forward passes over one image.
    pub image_passes: f64,
}

/// Counts the oracle's runs and weighs each by the share of the network's MACs it covers.
pub fn estimate(
    graph: &Graph,
    config: &OracleConfig,
    images: usize,
) -> Result<OracleEstimate, Error> {
    let costs = layer_costs(graph)?;
    let total: u64 = costs.iter().map(|c| c.macs).sum::<u64>().max(1);
    let batches = images.div_ceil(config.batch);
    let mut estimate = OracleEstimate {
        images,
        suffix_runs: 0,
        prefix_runs: 0,
        image_passes: images as f64,
    };
    for dfc in couplings(graph)? {
        let cut = suffix_start(&dfc);
        let suffix: u64 = costs[cut..].iter().map(|c| c.macs).sum();
        let share = suffix as f64 / total as f64;
        estimate.suffix_runs += dfc.channels.div_ceil(config.tile) * batches;
        estimate.prefix_runs += batches;
        estimate.image_passes += images as f64 * ((1.0 - share) + share * dfc.channels as f64);
    }
    Ok(estimate)
}

/// A bar on a terminal; a line per DFC (or shard's piece) otherwise. Work is counted in
/// multiply-accumulates, so that the time left weighs each DFC's suffix.
struct Progress {
    bar: Option<ProgressBar>,
    /// What is counted: DFCs, or a shard's pieces.
    unit: &'static str,
    dfcs: usize,
    started: Instant,
    total: u64,
    done: std::cell::Cell<u64>,
    /// Work taken from an interrupted run: done, but not in this run's time.
    skipped: std::cell::Cell<u64>,
}

impl Progress {
    fn new(unit: &'static str, dfcs: usize, total: u64) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("oracle [{bar:30}] {percent}% {msg} ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            unit,
            dfcs,
            started: Instant::now(),
            total,
            done: std::cell::Cell::new(0),
            skipped: std::cell::Cell::new(0),
        }
    }

    fn advance(&self, work: u64) {
        self.done.set(self.done.get() + work);
        if let Some(bar) = &self.bar {
            bar.inc(work);
        }
    }

    fn skip(&self, work: u64) {
        self.skipped.set(self.skipped.get() + work);
        self.advance(work);
        if let Some(bar) = &self.bar {
            bar.reset_eta();
        }
    }

    fn finished(&self, index: usize, result: &DfcOracle, seconds: f64) {
        let line = format!(
            "oracle: {} {}/{} {} ({} channels) in {:.1} s",
            self.unit,
            index + 1,
            self.dfcs,
            result.dfc,
            result.signed.len(),
            seconds
        );
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => {
                let computed = (self.done.get() - self.skipped.get()).max(1) as f64;
                let left = (self.total - self.done.get()) as f64;
                let eta = self.started.elapsed().as_secs_f64() * left / computed;
                eprintln!("{line}; about {eta:.0} s left");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
