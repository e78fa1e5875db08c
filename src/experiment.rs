//! The pipeline: the only place that knows the order of the stages.
//!
//! The stages run in this order: `model` (train, resume or load the network) → `scores` (every
//! configured saliency criterion) → `oracle` → `correlation` (the last two with `[oracle]`).
//! Each writes under `results/<name>/<stage>/` and records what it was made from
//! ([`crate::stage`]); a rerun skips the stages whose record matches.
//!
//! `Plan::new` resolves a validated [`Experiment`] without touching any file; [`prepare`] then
//! checks every input the run will read (the device, the weights file, the data, an existing
//! checkpoint and whether it was made from these settings) and which stages are finished,
//! without writing anything, which is all `--dry-run` does; [`run`] takes the run folder's
//! lock and runs the stages that are not.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::config::{DeviceChoice, Experiment, PruneSchedule};
use crate::correlation_stage::{correlation_fingerprint, correlation_stage, CorrelationOutcome};
use crate::data::{Batch, Dataset, DatasetInfo};
use crate::fingerprint::Fingerprint;
use crate::graph::{Graph, Params};
use crate::model_source::{check_is_file, initial_params, model_stem};
use crate::model_stage::ModelRecord;
use crate::oracle_stage::{self, oracle_fingerprint, OracleEstimate, OracleOutcome};
use crate::prune_stage::{prune_fingerprint, prune_stage, PruneOutcome};
use crate::run_lock::RunLock;
use crate::saliency;
use crate::scoring::{self, ScoresOutcome};
use crate::stage::{self, Stage, Status};
use crate::train::{checkpoint_path, train_step, Checkpoint, Sgd, SgdConfig};
use crate::Error;

/// A validated experiment resolved into what will run.
pub struct Plan {
    pub experiment: Experiment,
    pub dataset: DatasetInfo,
    pub graph: Graph,
    pub out_dir: PathBuf,
}

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

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What the model stage recorded (`model/summary.json`).
    pub model: ModelRecord,
    pub scores: ScoresOutcome,
    pub oracle: Option<OracleOutcome>,
    pub correlation: Option<CorrelationOutcome>,
    pub prune: Option<PruneOutcome>,
    /// The run folder.
    pub out_dir: PathBuf,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// Everything a run reads, checked: what [`prepare`] returns and `--dry-run` describes.
pub struct Prepared {
    pub device: Device,
    pub data: Dataset,
    /// The settings and input digests the run is made from.
    pub fingerprint: Fingerprint,
    pub start: Start,
    /// Where the scores stage stands (for a model made from `fingerprint`).
    pub scores: Status,
    /// Where the oracle stage stands, and what it would cost (unless it finished earlier), when
    /// `[oracle]` is present.
    pub oracle: Option<(Status, Option<OracleCost>)>,
    /// Where the correlation stage stands, when `[oracle]` is present.
    pub correlation: Option<Status>,
    /// Where the prune stage stands, and what its steps cost (unless it finished earlier), with
    /// `[prune]`.
    pub prune: Option<(Status, Option<PruneCost>)>,
    /// Threads that time latency (`--threads`, else `[latency] threads`, else `threads`, else
    /// every core).
    pub latency_threads: usize,
}

/// The oracle's work, and its time at the speed measured on this machine.
pub struct OracleCost {
    pub estimate: OracleEstimate,
    pub seconds: f64,
}

/// What one step of the prune stage costs at the speed measured on this machine.
pub struct PruneCost {
    /// A validation pass.
    pub validation_pass: f64,
    /// An iterative schedule's fine-tuning epoch.
    pub fine_tune_epoch: Option<f64>,
}

/// Where training starts.
pub enum Start {
    /// Nowhere: the model stage finished from these very settings and data.
    Finished,
    /// From `model.weights` or the seeded initialisation (`--fresh` also lands here).
    Fresh { params: Params, overwrites: bool },
    /// From the run's checkpoint, made from the same settings.
    Resume(Box<Checkpoint>),
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        writeln!(f, "{}", self.scores)?;
        if let Some(oracle) = &self.oracle {
            writeln!(f, "{oracle}")?;
        }
        if let Some(correlation) = &self.correlation {
            writeln!(f, "{correlation}")?;
        }
        if let Some(prune) = &self.prune {
            writeln!(f, "{prune}")?;
        }
        write!(
            f,
            "done: {} on {}: test accuracy {:.2}%, test loss {:.4} after {} epochs{} ({:.0}s); outputs in {}",
            m.arch,
            m.dataset,
            100.0 * m.test_accuracy,
            m.test_loss,
            m.epochs,
            match (m.cached, m.resumed_after_epoch) {
                (true, _) => " (model stage finished earlier)".to_string(),
                (false, 0) => String::new(),
                (false, k) => format!(" (resumed after epoch {k})"),
            },
            self.seconds,
            self.out_dir.display()
        )
    }
}

impl Plan {
    pub fn new(experiment: Experiment, results_root: &Path) -> Result<Self, Error> {
        let dataset = experiment.data.info(experiment.synthetic());
        let graph = crate::models::build(
            &experiment.model.arch,
            dataset.channels,
            dataset.size,
            dataset.classes,
        )?;
        let out_dir = results_root.join(experiment.name());
        Ok(Self {
            experiment,
            dataset,
            graph,
            out_dir,
        })
    }
}

pub(crate) fn device(choice: DeviceChoice) -> Result<Device, Error> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| {
            Error::Device(format!("device: \"cuda\" is unavailable ({e}); use a machine with an NVIDIA driver, or device = \"cpu\""))
        }),
    }
}

/// Checks everything the run will read, writing nothing but a dataset it downloads (never on a
/// dry run): the device, the data, the weights
/// file, and an existing checkpoint (which must have been made from the same settings, unless
/// `fresh`).
pub fn prepare(plan: &Plan, options: &RunOptions) -> Result<Prepared, Error> {
    let e = &plan.experiment;
    if let Some(file) = plan.out_dir.ancestors().find(|p| p.is_file()) {
        return Err(Error::Input(format!(
            "--results: cannot create the run folder {}: {} is a file",
            plan.out_dir.display(),
            file.display()
        )));
    }
    let device = device(e.device)?;
    let data = if options.dry_run {
        e.data.read(e.synthetic(), e.seed)?
    } else {
        e.data.load(e.synthetic(), e.seed)?
    };
    if saliency::needs_of(&e.saliency.criteria).activations {
        data.image_count(e.saliency.image_request())?;
    }
    if let Some(path) = &e.model.weights {
        check_is_file(path, "model.weights")?;
    }
    let fingerprint = Fingerprint::of_training(e)
        .map_err(|err| Error::Input(format!("model.weights: {err}")))?
        .with_data(&data);
    let checkpoint = checkpoint_path(&Stage::Model.dir(&plan.out_dir));
    // Runs from before stage folders kept their checkpoint in the run folder itself: starting
    // over beside it would silently drop the epochs it holds.
    let unmoved = checkpoint_path(&plan.out_dir);
    if unmoved.exists() && !checkpoint.exists() && !options.fresh {
        return Err(Error::Resume(format!(
            "{} is where earlier versions kept the checkpoint; move it to {} to resume, or run with --fresh to start over",
            unmoved.display(),
            checkpoint.display()
        )));
    }
    let finished = matches!(
        stage::status(&plan.out_dir, Stage::Model, &fingerprint),
        Status::Done(_)
    ) && model_stem(&plan.out_dir)
        .with_extension("safetensors")
        .is_file();
    let start = if finished && !options.fresh {
        Start::Finished
    } else if checkpoint.exists() && !options.fresh {
        Start::Resume(Box::new(resumable(
            plan,
            &checkpoint,
            &fingerprint,
            &device,
        )?))
    } else {
        Start::Fresh {
            params: initial_params(plan, &device)?,
            overwrites: checkpoint.exists(),
        }
    };
    let scores_made_from = scoring::scores_fingerprint(e, &fingerprint.digest(), Some(&data));
    let scores = stage::status(&plan.out_dir, Stage::Scores, &scores_made_from);
    let mut correlation = None;
    let oracle = match &e.oracle {
        Some(config) => {
            let made_from = oracle_fingerprint(config, &fingerprint.digest(), &data);
            let c = e.correlation().unwrap_or_default();
            correlation = Some(stage::status(
                &plan.out_dir,
                Stage::Correlation,
                &correlation_fingerprint(&c, &scores_made_from, &made_from),
            ));
            let images = data.image_count(config.image_request())?;
            let status = stage::status(&plan.out_dir, Stage::Oracle, &made_from);
            let cost = unless_done(&status, || {
                let estimate = oracle_stage::estimate(&plan.graph, config, images)?;
                let rows = config.batch * config.tile;
                let seconds = estimate.image_passes * seconds_per_image(plan, rows, &device)?;
                Ok(OracleCost { estimate, seconds })
            })?;
            Some((status, cost))
        }
        None => None,
    };
    let prune = match &e.prune {
        Some(config) => {
            let made_from = prune_fingerprint(
                plan,
                config,
                &fingerprint.digest(),
                &scores_made_from.digest(),
                &data,
            );
            let status = stage::status(&plan.out_dir, Stage::Prune, &made_from);
            let cost = unless_done(&status, || {
                let images = config
                    .eval_images
                    .unwrap_or(data.validation.len())
                    .min(data.validation.len());
                let validation_pass =
                    images as f64 * seconds_per_image(plan, config.batch, &device)?;
                let fine_tune_epoch = match config.schedule {
                    PruneSchedule::Iterative => {
                        let images = config.fine_tuning().images.unwrap_or(data.train.len());
                        let rows = e.train.batch_size.min(images);
                        Some(images as f64 * seconds_per_training_image(plan, rows, &device)?)
                    }
                    PruneSchedule::Sweep | PruneSchedule::OneShot => None,
                };
                Ok(PruneCost {
                    validation_pass,
                    fine_tune_epoch,
                })
            })?;
            Some((status, cost))
        }
        None => None,
    };
    let latency_threads = options
        .threads
        .or(e.latency.threads)
        .or(e.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(Prepared {
        device,
        data,
        fingerprint,
        start,
        scores,
        oracle,
        correlation,
        prune,
        latency_threads,
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

/// `rows` blank images of the plan's input shape.
fn blank_images(plan: &Plan, rows: usize, device: &Device) -> Result<candle_core::Tensor, Error> {
    let d = &plan.dataset;
    let shape = (rows, d.channels, d.size, d.size);
    Ok(
        candle_core::Tensor::zeros(shape, candle_core::DType::F32, device)
            .map_err(crate::graph::GraphError::from)?,
    )
}

/// The time of one image's forward pass, from one batch of `rows` images through the
/// initialised network.
fn seconds_per_image(plan: &Plan, rows: usize, device: &Device) -> Result<f64, Error> {
    let params = Params::init(&plan.graph, 0, device)?;
    let x = blank_images(plan, rows, device)?;
    let started = Instant::now();
    crate::graph::forward(&plan.graph, &params, &x, crate::graph::Mode::EVAL)?;
    Ok(started.elapsed().as_secs_f64() / rows as f64)
}

/// Seconds per image of a training step (forward, backward, update) on `rows` blank images.
fn seconds_per_training_image(plan: &Plan, rows: usize, device: &Device) -> Result<f64, Error> {
    let mut params = Params::init(&plan.graph, 0, device)?;
    let batch = Batch {
        images: blank_images(plan, rows, device)?,
        labels: candle_core::Tensor::zeros(rows, candle_core::DType::U32, device)
            .map_err(crate::graph::GraphError::from)?,
    };
    let mut sgd = Sgd::new(SgdConfig::of(&plan.experiment.train));
    // The first step also allocates what later steps reuse.
    train_step(&plan.graph, &mut params, &mut sgd, &batch, 0.0)?;
    let started = Instant::now();
    train_step(&plan.graph, &mut params, &mut sgd, &batch, 0.0)?;
    Ok(started.elapsed().as_secs_f64() / rows as f64)
}

/// The run's checkpoint, if it can be resumed with these settings.
fn resumable(
    plan: &Plan,
    path: &Path,
    fingerprint: &Fingerprint,
    device: &Device,
) -> Result<Checkpoint, Error> {
    let fresh = "run with --fresh to start over (the checkpoint will be overwritten)";
    let saved =
        Checkpoint::load(path, device).map_err(|err| Error::Resume(format!("{err}; {fresh}")))?;
    let changed = saved.settings.differences(fingerprint);
    if !changed.is_empty() {
        return Err(Error::Resume(format!(
            "{} was made with other settings than {}:\n  {}\nRestore them to resume, or {fresh}.",
            path.display(),
            plan.experiment.name(),
            changed.join("\n  ")
        )));
    }
    if saved.graph != plan.graph || saved.seed != plan.experiment.seed {
        return Err(Error::Resume(format!(
            "{} was written by a different model or seed; {fresh}",
            path.display()
        )));
    }
    Ok(saved)
}

/// Runs the plan end to end: the stages that are not finished.
pub fn run(plan: &Plan, prepared: Prepared) -> Result<Summary, Error> {
    let started = Instant::now();
    let _lock = RunLock::acquire(&plan.out_dir)?;
    let Prepared {
        device,
        data,
        fingerprint,
        start,
        latency_threads,
        ..
    } = prepared;
    let model_digest = fingerprint.digest();
    let (params, model) =
        crate::model_stage::model_stage(plan, start, &data, &device, &fingerprint)?;
    let scores = scoring::scores_stage(plan, &plan.graph, &params, &model_digest, Some(&data))?;
    let e = &plan.experiment;
    let (oracle, correlation) = match (&e.oracle, e.correlation()) {
        (Some(config), Some(c)) => {
            let (result, outcome) = oracle_stage::oracle_stage(
                plan,
                config,
                &plan.graph,
                &params,
                &model_digest,
                &data,
            )?;
            let made_from = correlation_fingerprint(
                &c,
                &scoring::scores_fingerprint(e, &model_digest, Some(&data)),
                &oracle_fingerprint(config, &model_digest, &data),
            );
            let compared = correlation_stage(plan, &c, &plan.graph, &params, &result, &made_from)?;
            (Some(outcome), Some(compared))
        }
        _ => (None, None),
    };
    let prune = match &e.prune {
        Some(config) => {
            let scores_digest = scoring::scores_fingerprint(e, &model_digest, Some(&data)).digest();
            let made_from = prune_fingerprint(plan, config, &model_digest, &scores_digest, &data);
            Some(prune_stage(
                plan,
                config,
                &params,
                &model_digest,
                &made_from,
                &data,
                latency_threads,
            )?)
        }
        None => None,
    };
    Ok(Summary {
        model,
        scores,
        oracle,
        correlation,
        prune,
        out_dir: plan.out_dir.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
