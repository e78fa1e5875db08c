//! The prune stage: every `[prune]` criterion with coupled channels on and off, stepped by the
//! schedule on the validation images, then the reported points (headline points, every k-th
//! step, a one-shot choice) tested on the whole test set, timed against the unpruned network
//! and exported.
//!
//! Each variant checkpoints its points after every step (`prune/<variant>/points.json`, with
//! the digest of what it was made from), so a killed run resumes at the step it reached.
//! The stage writes `prune/results.json` (read back by `prunelab report`) with its tables and
//! figures ([`crate::report::write_prune`]); each reported point's model is under
//! `prune/<variant>/models/step_NNNN/` (`model.json`, `model.safetensors`, `prune_log.json`,
//! `point.json`), loadable without the experiment.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::record::Stage;
use super::skeleton::{Context, StageRun};
use super::Plan;
use crate::config::{OnnxBatchNorm, PruneConfig};
use crate::data::{Normalizer, Split};
use crate::eval::{evaluate, measure_speedup, BatchLatency, Model, Protocol};
use crate::graph::{couplings, fuse_for_inference, macs, prune, save_model, Graph, Params};
use crate::prune::{eligible, Point, PruneLog, PruneResults, Remover, Score, Variant, SCHEMA};
use crate::Error;

mod iterative;
mod one_shot;
mod ranked;
mod schedule;
mod sweep;

use schedule::{schedule, Schedule};

/// What the stage did, for the summary line.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    pub results: PruneResults,
    pub cached: bool,
    pub seconds: f64,
}

impl std::fmt::Display for PruneOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.results;
        write!(
            f,
            "prune: {} variants, {:?} schedule{}",
            r.variants.len(),
            r.schedule,
            if self.cached {
                " (finished earlier)".to_string()
            } else {
                format!(" in {:.0} s", self.seconds)
            }
        )?;
        write!(f, "\n{}", crate::report::headline_markdown(r))
    }
}

/// Everything a variant's steps read.
struct Bench<'a> {
    plan: &'a Plan,
    config: &'a PruneConfig,
    /// The digest of what the stage is made from (each variant's checkpoint records it).
    made_from: String,
    /// The digest of the unpruned model (each prune log records it).
    model_digest: String,
    graph: &'a Graph,
    params: &'a Params,
    unpruned: (Graph, Params),
    validation: Split,
    test: &'a Split,
    normalizer: Normalizer,
    batch: usize,
    device: Device,
    pool: rayon::ThreadPool,
    protocol: Protocol,
    batch_sizes: Vec<usize>,
}

impl Bench<'_> {
    fn score(&self, graph: &Graph, params: &Params, split: &Split) -> Result<Score, Error> {
        let e = evaluate(
            graph,
            params,
            split,
            &self.normalizer,
            self.batch,
            &self.device,
        )?;
        Ok(e.into())
    }

    /// `graph` timed against the unpruned network, both in their fused inference form.
    fn speedup(&self, graph: &Graph, params: &Params) -> Result<Vec<BatchLatency>, Error> {
        let (g, p) = fuse_for_inference(graph, params)?;
        let (ug, up) = &self.unpruned;
        Ok(measure_speedup(
            &Model {
                graph: ug,
                params: up,
            },
            Some(&Model {
                graph: &g,
                params: &p,
            }),
            &self.batch_sizes,
            self.protocol,
            &self.pool,
            &self.device,
        )?)
    }

    /// The network after `remover`'s steps.
    fn measure(&self, remover: &Remover, chunk: usize, validate: bool) -> Result<Point, Error> {
        let (graph, params) = prune(self.graph, self.params, &remover.plan())?;
        let validation = match validate {
            true => Some(self.score(&graph, &params, &self.validation)?),
            false => None,
        };
        Ok(Point {
            step: remover.steps(),
            chunk,
            channels: remover.left().iter().sum(),
            parameters: graph.parameter_count(),
            macs: macs(&graph)?,
            validation,
            test: None,
            latency: Vec::new(),
            model: None,
        })
    }
}

/// The prune stage: every variant run (or resumed) and measured.
pub struct PruneStage<'a> {
    pub context: &'a Context<'a>,
    pub config: &'a PruneConfig,
    /// The trained network's parameters.
    pub params: &'a Params,
}

impl StageRun for PruneStage<'_> {
    type Output = PruneOutcome;
    const STAGE: Stage = Stage::Prune;

    fn read_back(&self, dir: &Path) -> Result<PruneOutcome, Error> {
        Ok(PruneOutcome {
            results: crate::report::read_prune(dir)?,
            cached: true,
            seconds: 0.0,
        })
    }

    fn run(&self, dir: &Path) -> Result<PruneOutcome, Error> {
        prune_variants(self, dir)
    }
}

impl PruneStage<'_> {
    /// What every variant is measured with: the unpruned network, its evaluation images, the
    /// latency protocol.
    fn bench(&self) -> Result<Bench<'_>, Error> {
        let (plan, data, threads) = (
            self.context.plan,
            self.context.data,
            self.context.latency_threads,
        );
        let made_from = self
            .context
            .made_from
            .prune
            .as_ref()
            .expect("a prune stage runs with [prune]");
        let config = self.config;
        let e = &plan.experiment;
        let validation = match config.eval_images {
            Some(n) => data.validation.draw(
                n,
                config.eval_seed,
                "prune.eval_images",
                "the validation split",
            )?,
            None => data.validation.clone(),
        };
        Ok(Bench {
            plan,
            config,
            made_from: made_from.digest(),
            model_digest: self.context.made_from.model.digest(),
            graph: &plan.graph,
            params: self.params,
            unpruned: fuse_for_inference(&plan.graph, self.params)?,
            validation,
            test: &data.test,
            normalizer: e.data.normalizer(),
            batch: config.batch,
            device: self.params.device(),
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|err| Error::Device(format!("cannot start {threads} threads: {err}")))?,
            protocol: Protocol {
                warmup: e.latency.warmup,
                repeats: e.latency.repeats,
            },
            batch_sizes: e.latency.batch_sizes.clone(),
        })
    }

    /// Variant `index` of [`PruneConfig::variants`] run (or resumed) into `dir` and measured.
    fn variant(
        &self,
        bench: &Bench,
        schedule: &dyn Schedule,
        index: usize,
        dir: &Path,
    ) -> Result<Variant, Error> {
        let (criterion, coupled) = self.config.variants()[index];
        let found = couplings(bench.graph)?;
        let eligible = eligible(&found, coupled);
        let eligible_channels = found
            .iter()
            .zip(&eligible)
            .filter(|(_, &e)| e)
            .map(|(c, _)| c.channels)
            .sum();
        let mut variant = Variant {
            criterion,
            coupled,
            eligible_channels,
            stop: crate::prune::Stop::Exhausted,
            points: Vec::new(),
            headline: Vec::new(),
            chosen: None,
            fine_tuned: None,
        };
        schedule.run_variant(bench, &eligible, &mut variant, dir)?;
        Ok(variant)
    }

    /// One variant alone, as a task of a grid (`[prune] variant_tasks`): its steps and reported
    /// points are kept in its folder, and the stage, run whole, resumes them. What it did.
    pub fn run_variant_task(&self, dir: &Path, index: usize) -> Result<String, Error> {
        let started = Instant::now();
        let bench = self.bench()?;
        let schedule = schedule(self.config.schedule, &bench, self.context.data)?;
        let variant = self.variant(&bench, schedule.as_ref(), index, dir)?;
        Ok(format!(
            "prune variant {} (coupled {}): {} points in {:.1} s",
            variant.criterion.as_str(),
            if variant.coupled { "on" } else { "off" },
            variant.points.len(),
            started.elapsed().as_secs_f64()
        ))
    }
}

fn prune_variants(stage: &PruneStage, dir: &Path) -> Result<PruneOutcome, Error> {
    let started = Instant::now();
    let bench = stage.bench()?;
    let schedule = schedule(stage.config.schedule, &bench, stage.context.data)?;
    let variants = (0..stage.config.variants().len())
        .map(|index| stage.variant(&bench, schedule.as_ref(), index, dir))
        .collect::<Result<Vec<_>, _>>()?;
    let (plan, data, config) = (stage.context.plan, stage.context.data, stage.config);
    let e = &plan.experiment;
    let results = PruneResults {
        schema: SCHEMA,
        name: e.name().to_string(),
        arch: e.model.label(),
        dataset: e.data.dataset.label().to_string(),
        schedule: config.schedule,
        chunk: config.chunk,
        round_to: config.round_to,
        validation_images: bench.validation.len(),
        test_images: data.test.len(),
        batch: config.batch,
        device: format!("{:?}", bench.device).to_lowercase(),
        threads: stage.context.latency_threads,
        variants,
    };
    crate::report::write_prune(&results, dir)?;
    Ok(PruneOutcome {
        results,
        cached: false,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What `point.json` beside an exported model records: the point, and the batch it was
/// evaluated in (`prunelab eval` evaluates the same way).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedPoint {
    pub point: Point,
    pub batch: usize,
}

/// Writes a pruned model's folder: `model.json` + `model.safetensors`, `model.onnx`, its
/// prune log and its point.
fn export(
    dir: &Path,
    (graph, params): (&Graph, &Params),
    batchnorm: OnnxBatchNorm,
    log: &PruneLog,
    point: &Point,
    batch: usize,
) -> Result<(), Error> {
    save_model(graph, params, &dir.join("model"), Default::default())?;
    crate::onnx::save(&dir.join("model.onnx"), graph, params, batchnorm)?;
    crate::util::atomic_file::write_json(&dir.join("prune_log.json"), log)?;
    let exported = ExportedPoint {
        point: point.clone(),
        batch,
    };
    Ok(crate::util::atomic_file::write_json(
        &dir.join("point.json"),
        &exported,
    )?)
}
