//! The pipeline: the only place that knows the order of the stages.
//!
//! The stages run in this order: `model` (train, resume or load the network) → `scores` (every
//! configured saliency criterion) → `oracle` → `correlation` (the two with `[oracle]`) →
//! `prune` (with `[prune]`) → `budgets` (with both). Each writes under
//! `results/<name>/<stage>/` and records what it was made from and what it wrote
//! ([`crate::stages::record`]); a rerun skips the stages whose record matches and whose outputs
//! are intact.
//!
//! [`Plan::new`] resolves a validated [`crate::Experiment`] without touching any file;
//! [`prepare`] then checks every input the run will read (the device, the weights file, the
//! data, an existing checkpoint and whether it was made from these settings) and where every
//! stage stands, without writing anything, which is all `--dry-run` does; [`run`] takes the run
//! folder's lock and runs the stages that are not finished.

#![forbid(unsafe_code)]

mod cost;
mod describe;
mod summary;

use candle_core::Device;

pub use cost::{OracleCost, PruneCost};
pub use summary::Summary;

use crate::data::{expected_image_count, Dataset, PendingDownload};
use crate::saliency;
use crate::stages::budgets::BudgetsStage;
use crate::stages::correlation::CorrelationStage;
use crate::stages::model::{model_stage, Start};
use crate::stages::model_source::{check_is_file, initial_params};
use crate::stages::oracle::OracleStage;
use crate::stages::prune::PruneStage;
use crate::stages::record::{self, Stage, Status};
use crate::stages::scores::ScoresStage;
use crate::stages::{device, reuse_or_run, Context, Fingerprints, Plan};
use crate::train::checkpoint_path;
use crate::util::fingerprint::Fingerprint;
use crate::util::run_lock::RunLock;
use crate::Error;

/// Run-time choices that are not part of the experiment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ignore (and overwrite) an existing checkpoint.
    pub fresh: bool,
    /// `--threads`: overrides the file's thread counts.
    pub threads: Option<usize>,
    /// `--dry-run`: read what is there, fetch nothing (a missing CIFAR folder is not downloaded).
    pub dry_run: bool,
}

/// The data the run reads, or, on a dry run whose CIFAR folder does not exist yet, the
/// download the run will make before anything else.
pub enum Inputs {
    Read(Dataset),
    Download {
        download: PendingDownload,
        /// The run folder holds earlier work, which the run reuses where it was made from the
        /// same settings and data: known only once the data is there.
        earlier_work: bool,
    },
}

/// Everything a run reads, checked: what [`prepare`] returns and `--dry-run` describes.
pub struct Prepared {
    pub device: Device,
    pub inputs: Inputs,
    /// What every stage is made from (without the data's digest before its download).
    pub made_from: Fingerprints,
    pub start: Start,
    /// Where each stage stands. The model's is what decided `start`; a stage absent from
    /// the experiment has none.
    pub model: Status,
    /// A training epoch's time here (unless no epoch is left to train).
    pub epoch_seconds: Option<f64>,
    pub scores: Status,
    /// With what the oracle would cost (unless it finished earlier).
    pub oracle: Option<(Status, Option<OracleCost>)>,
    pub correlation: Option<Status>,
    /// With what its steps cost (unless it finished earlier).
    pub prune: Option<(Status, Option<PruneCost>)>,
    pub budgets: Option<Status>,
    /// Threads that time latency ([`crate::Experiment::latency_threads`]).
    pub latency_threads: usize,
}

/// Checks everything the run will read, writing nothing but a dataset it downloads (never on a
/// dry run, which describes the download instead): the run folder's lock, the device, the
/// weights file, an existing checkpoint (which must have been made from the same settings,
/// unless `fresh`) and the data.
pub fn prepare(plan: &Plan, options: &RunOptions) -> Result<Prepared, Error> {
    let e = &plan.experiment;
    let run_dir = &plan.out_dir;
    RunLock::check_free(run_dir)?;
    let device = device(e.device)?;
    if let Some(path) = &e.model.weights {
        check_is_file(path, "model.weights")?;
    }
    let checkpoint = checkpoint_path(&Stage::Model.dir(run_dir));
    // Runs from before stage folders kept their checkpoint in the run folder itself: starting
    // over beside it would silently drop the epochs it holds.
    let unmoved = checkpoint_path(run_dir);
    if unmoved.exists() && !checkpoint.exists() && !options.fresh {
        return Err(Error::Resume(format!(
            "{} is where earlier versions kept the checkpoint; move it to {} to resume, or run with --fresh to start over",
            unmoved.display(),
            checkpoint.display()
        )));
    }
    let inputs = match e.data.pending_download().filter(|_| options.dry_run) {
        Some(download) => Inputs::Download {
            download,
            earlier_work: std::fs::read_dir(run_dir).is_ok_and(|mut entries| {
                entries.any(|f| f.is_ok_and(|f| f.file_name() != ".lock"))
            }),
        },
        None if options.dry_run => Inputs::Read(e.data.read(e.synthetic(), e.seed)?),
        None => Inputs::Read(e.data.load(e.synthetic(), e.seed)?),
    };
    let data = match &inputs {
        Inputs::Read(data) => Some(data),
        Inputs::Download { .. } => None,
    };
    let image_count = |request| match data {
        Some(data) => data.image_count(request),
        None => expected_image_count(&plan.dataset, request),
    };
    if saliency::needs_of(&e.saliency.criteria).activations {
        image_count(e.saliency.image_request())?;
    }
    let made_from = Fingerprints::of(e, data)?;
    // Before the download nothing can have been made from the data: every stage will run.
    let status = |stage, fingerprint: &Fingerprint| match data {
        Some(_) => record::status(run_dir, stage, fingerprint),
        None => Status::Missing,
    };
    let model = status(Stage::Model, &made_from.model);
    let start = match data {
        Some(_) => {
            crate::stages::model::start(plan, &made_from.model, &model, &device, options.fresh)?
        }
        None => Start::Fresh {
            params: initial_params(plan, &device)?,
            overwrites: false,
        },
    };
    let epoch_seconds = match start.epochs_left(e.train.epochs) {
        0 => None,
        _ => Some(cost::epoch_seconds(plan, &device)?),
    };
    let oracle = match (&e.oracle, &made_from.oracle) {
        (Some(config), Some(fingerprint)) => {
            let images = image_count(config.image_request())?;
            let status = status(Stage::Oracle, fingerprint);
            let cost = unless_done(&status, || cost::oracle_cost(plan, config, images, &device))?;
            Some((status, cost))
        }
        _ => None,
    };
    let prune = match (&e.prune, &made_from.prune) {
        (Some(config), Some(fingerprint)) => {
            let status = status(Stage::Prune, fingerprint);
            let cost = unless_done(&status, || cost::prune_cost(plan, config, &device))?;
            Some((status, cost))
        }
        _ => None,
    };
    Ok(Prepared {
        scores: status(Stage::Scores, &made_from.scores),
        correlation: made_from
            .correlation
            .as_ref()
            .map(|f| status(Stage::Correlation, f)),
        budgets: made_from
            .budgets
            .as_ref()
            .map(|f| status(Stage::Budgets, f)),
        latency_threads: e.latency_threads(options.threads),
        device,
        inputs,
        made_from,
        start,
        model,
        epoch_seconds,
        oracle,
        prune,
    })
}

/// `measure()`, unless the stage finished earlier and will not run (nor its cost be shown).
fn unless_done<T>(
    status: &Status,
    measure: impl FnOnce() -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match status {
        Status::Done(_) => Ok(None),
        _ => measure().map(Some),
    }
}

/// The model and scores stages alone (a grid's first phase, before the oracle's shards).
pub fn run_models(plan: &Plan, prepared: Prepared) -> Result<Summary, Error> {
    run_through(plan, prepared, Stage::Scores)
}

/// Shard `shard` of the oracle (`[oracle] shards`), on the model the run trained already,
/// beside the other shards of the same run folder (a shared lock).
pub fn run_oracle_shard(
    plan: &Plan,
    prepared: Prepared,
    shard: usize,
) -> Result<crate::stages::oracle::ShardOutcome, Error> {
    let _lock = RunLock::acquire_shared(&plan.out_dir)?;
    let e = &plan.experiment;
    let (Some(config), Some(made_from)) = (&e.oracle, &prepared.made_from.oracle) else {
        return Err(Error::Input(
            "--phase parts: the experiment has no [oracle]".into(),
        ));
    };
    if shard >= config.shards {
        return Err(Error::Input(format!(
            "oracle shard {shard}: [oracle] shards = {}",
            config.shards
        )));
    }
    let Start::Finished = prepared.start else {
        return Err(Error::Untrained(format!(
            "{}: the oracle's shards need the trained model; run the models phase first (--phase models)",
            plan.out_dir.display()
        )));
    };
    let Inputs::Read(data) = &prepared.inputs else {
        unreachable!("only a dry run prepares a run before its download")
    };
    let params = saved_model(plan, &prepared.device)?;
    let stage = OracleStage {
        plan,
        config,
        graph: &plan.graph,
        params: &params,
        data,
        made_from,
    };
    let dir = Stage::Oracle.dir(&plan.out_dir);
    std::fs::create_dir_all(dir.join("dfcs")).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    stage.run_shard(&dir, shard)
}

/// Variant `variant` of the prune stage (`[prune] variant_tasks`), on the model and scores the
/// run made already, beside the run's other parts (a shared lock): what it did.
pub fn run_prune_variant(plan: &Plan, prepared: Prepared, variant: usize) -> Result<String, Error> {
    let _lock = RunLock::acquire_shared(&plan.out_dir)?;
    let Some(config) = &plan.experiment.prune else {
        return Err(Error::Input(
            "--phase parts: the experiment has no [prune]".into(),
        ));
    };
    let (Start::Finished, Status::Done(_)) = (&prepared.start, &prepared.scores) else {
        return Err(Error::Untrained(format!(
            "{}: a prune variant needs the trained model and its scores; run the models phase first (--phase models)",
            plan.out_dir.display()
        )));
    };
    let Inputs::Read(data) = &prepared.inputs else {
        unreachable!("only a dry run prepares a run before its download")
    };
    let params = saved_model(plan, &prepared.device)?;
    let context = Context {
        plan,
        data,
        device: &prepared.device,
        made_from: &prepared.made_from,
        latency_threads: prepared.latency_threads,
    };
    let stage = PruneStage {
        context: &context,
        config,
        params: &params,
    };
    let dir = Stage::Prune.dir(&plan.out_dir);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    stage.run_variant_task(&dir, variant)
}

/// The run's trained network, as the model stage saved it.
fn saved_model(plan: &Plan, device: &candle_core::Device) -> Result<crate::graph::Params, Error> {
    let (graph, params) = crate::graph::load_model(
        &crate::stages::model_source::model_stem(&plan.out_dir),
        device,
    )?;
    if graph != plan.graph {
        return Err(Error::Stale(format!(
            "{}: the saved model's architecture differs from the experiment's",
            plan.out_dir.display()
        )));
    }
    Ok(params)
}

/// Runs the plan end to end: the stages that are not finished.
pub fn run(plan: &Plan, prepared: Prepared) -> Result<Summary, Error> {
    run_through(plan, prepared, Stage::Budgets)
}

/// Runs the stages that are not finished, up to `last`.
fn run_through(plan: &Plan, prepared: Prepared, last: Stage) -> Result<Summary, Error> {
    let started = std::time::Instant::now();
    let run_dir = &plan.out_dir;
    let _lock = RunLock::acquire(run_dir)?;
    let Prepared {
        device,
        inputs,
        made_from,
        start,
        latency_threads,
        ..
    } = prepared;
    let Inputs::Read(data) = inputs else {
        unreachable!("only a dry run prepares a run before its download")
    };
    let context = Context {
        plan,
        data: &data,
        device: &device,
        made_from: &made_from,
        latency_threads,
    };
    let (params, model) = model_stage(&context, start)?;
    let graph = &plan.graph;
    let scores = ScoresStage {
        plan,
        graph,
        params: &params,
        data: Some(&data),
    };
    let scores = reuse_or_run(&scores, run_dir, &made_from.scores)?;
    let e = &plan.experiment;
    if last == Stage::Scores {
        return Ok(Summary {
            model,
            scores,
            oracle: None,
            correlation: None,
            prune: None,
            out_dir: run_dir.clone(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let (oracle, correlation) = match (&e.oracle, e.correlation()) {
        (Some(config), Some(c)) => {
            let oracle_made_from = made_from.oracle.as_ref().expect("[oracle] is set");
            let stage = OracleStage {
                plan,
                config,
                graph,
                params: &params,
                data: &data,
                made_from: oracle_made_from,
            };
            let (result, outcome) = reuse_or_run(&stage, run_dir, oracle_made_from)?;
            let stage = CorrelationStage {
                plan,
                config: &c,
                graph,
                params: &params,
                oracle: &result,
            };
            let correlation_made_from = made_from.correlation.as_ref().expect("[oracle] is set");
            let compared = reuse_or_run(&stage, run_dir, correlation_made_from)?;
            (Some(outcome), Some(compared))
        }
        _ => (None, None),
    };
    let prune = match (&e.prune, &made_from.prune) {
        (Some(config), Some(prune_made_from)) => {
            let stage = PruneStage {
                context: &context,
                config,
                params: &params,
            };
            Some(reuse_or_run(&stage, run_dir, prune_made_from)?)
        }
        _ => None,
    };
    if let Some(budgets_made_from) = &made_from.budgets {
        reuse_or_run(&BudgetsStage { run_dir }, run_dir, budgets_made_from)?;
    }
    Ok(Summary {
        model,
        scores,
        oracle,
        correlation,
        prune,
        out_dir: run_dir.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
