//! The pipeline: the only place that knows the order of the stages.
//!
//! `Plan::new` resolves a validated [`Experiment`] without touching the dataset (what
//! `--dry-run` shows); [`run`] then loads the data, starts from fresh, pretrained or
//! checkpointed weights, trains, evaluates and writes everything under `results/<name>/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::config::{DeviceChoice, Experiment};
use crate::data::{Augment, DatasetInfo};
use crate::eval::evaluate;
use crate::graph::{load_state_dict, save_model, Graph, Params};
use crate::train::{checkpoint_path, Checkpoint, TrainState, Trainer};
use crate::{report, Error};

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
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub arch: String,
    pub dataset: String,
    pub parameters: usize,
    pub epochs: usize,
    /// The epoch a checkpoint let this run start after (0 when it started fresh).
    pub resumed_after_epoch: usize,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Wall time of this invocation.
    pub seconds: f64,
    pub out_dir: PathBuf,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "done: {} on {}: test accuracy {:.2}%, test loss {:.4} after {} epochs ({:.0}s); outputs in {}",
            self.arch,
            self.dataset,
            100.0 * self.test_accuracy,
            self.test_loss,
            self.epochs,
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

    /// A human-readable account of the plan (`--dry-run`).
    pub fn describe(&self) -> String {
        let e = &self.experiment;
        let t = &e.train;
        let d = &self.dataset;
        let mut s = String::new();
        let _ = writeln!(s, "experiment  {}", e.name());
        let _ = writeln!(
            s,
            "model       {} ({} parameters)",
            e.model.arch,
            self.graph.parameter_count()
        );
        if let Some(w) = &e.model.weights {
            let _ = writeln!(s, "weights     {}", w.display());
        }
        let source = match e.data.dataset {
            crate::config::DatasetKind::Synthetic => "generated".to_string(),
            _ => e.data.resolved_dir().display().to_string(),
        };
        let _ = writeln!(
            s,
            "dataset     {} from {source}: {} train / {} test images, {}×{}×{}, {} classes",
            e.data.dataset.label(),
            d.train,
            d.test,
            d.channels,
            d.size,
            d.size,
            d.classes
        );
        let _ = writeln!(
            s,
            "training    {} epochs × {} batches of {}; SGD lr {} momentum {}{} weight decay {}; {:?} schedule{}",
            t.epochs,
            d.train.div_ceil(t.batch_size),
            t.batch_size,
            t.lr,
            t.momentum,
            if t.nesterov { " (Nesterov)" } else { "" },
            t.weight_decay,
            t.schedule,
            if t.warmup_epochs > 0 { format!(" after {} warm-up epochs", t.warmup_epochs) } else { String::new() }
        );
        let _ = writeln!(
            s,
            "augment     crop padding {}, flip {}; normalisation {:?}",
            e.data.crop_padding, e.data.flip, e.data.normalization
        );
        let _ = writeln!(
            s,
            "device      {:?}, threads {}",
            e.device,
            e.threads.map_or("all".into(), |n| n.to_string())
        );
        let checkpoint = checkpoint_path(&self.out_dir);
        let state = if checkpoint.exists() {
            "resumes from its checkpoint"
        } else {
            "starts fresh"
        };
        let _ = write!(s, "outputs     {} ({state})", self.out_dir.display());
        s
    }
}

/// Makes candle's kernels use `n` threads. Call once, before any tensor work.
pub fn set_threads(n: usize) {
    // candle reads these variables on every parallel kernel; rayon reads them when its global
    // pool is first built.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
}

pub(crate) fn device(choice: DeviceChoice) -> Result<Device, Error> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| {
            Error::Device(format!("device = \"cuda\" is unavailable ({e}); build with `--features cuda` on a machine with an NVIDIA driver, or use device = \"cpu\""))
        }),
    }
}

/// The weights a run starts from: `model.weights` when given, else a seeded initialisation.
pub(crate) fn initial_params(plan: &Plan, device: &Device) -> Result<Params, Error> {
    let e = &plan.experiment;
    match &e.model.weights {
        Some(path) if !path.is_file() => Err(Error::MissingInput(format!(
            "model.weights: {} does not exist (convert a PyTorch checkpoint with scripts/pth_to_safetensors.py)",
            path.display()
        ))),
        Some(path) => Ok(load_state_dict(path, &plan.graph, device)?),
        None => Ok(Params::init(&plan.graph, e.seed, device)?),
    }
}

/// Runs the plan end to end.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<Summary, Error> {
    let started = Instant::now();
    let e = &plan.experiment;
    let device = device(e.device)?;
    let data = e.data.load(e.synthetic(), e.seed)?;
    std::fs::create_dir_all(&plan.out_dir).map_err(|source| Error::Io {
        path: plan.out_dir.clone(),
        source,
    })?;
    let checkpoint = checkpoint_path(&plan.out_dir);

    let (mut params, state) = if checkpoint.exists() && !options.fresh {
        let saved = Checkpoint::load(&checkpoint, &device)?;
        if saved.graph != plan.graph || saved.seed != e.seed {
            return Err(Error::Resume(format!(
                "{} was written by a different model or seed; run with --fresh to start over (it will be overwritten)",
                checkpoint.display()
            )));
        }
        let params = Params::from_tensors(&plan.graph, saved.tensors.clone(), &device)?;
        (params, TrainState::resumed(&e.train, saved))
    } else {
        (initial_params(plan, &device)?, TrainState::fresh(&e.train))
    };
    let resumed_after_epoch = state.history.len();

    let normalizer = e.data.normalizer();
    let trainer = Trainer {
        graph: &plan.graph,
        data: &data,
        normalizer: &normalizer,
        augment: Augment {
            crop_padding: e.data.crop_padding,
            flip: e.data.flip,
        },
        device: &device,
        config: &e.train,
        seed: e.seed,
        checkpoint,
    };
    let title = format!(
        "{}: {} on {}",
        e.name(),
        e.model.arch,
        e.data.dataset.label()
    );
    let out_dir = &plan.out_dir;
    let history = trainer.run(&mut params, state, &mut |history| {
        report::write_train_metrics(history, &out_dir.join("train_metrics.csv"))?;
        report::training_curves(history, &title, &out_dir.join("training_curves"))?;
        Ok(())
    })?;

    let test = match history.last() {
        Some(last) => crate::eval::Evaluation {
            loss: last.test_loss,
            accuracy: last.test_accuracy,
        },
        None => evaluate(
            &plan.graph,
            &params,
            &data.test,
            &normalizer,
            e.train.batch_size,
            &device,
        )?,
    };
    save_model(&plan.graph, &params, &out_dir.join("model"))?;
    let summary = Summary {
        name: e.name().to_string(),
        arch: e.model.arch.clone(),
        dataset: e.data.dataset.label().to_string(),
        parameters: plan.graph.parameter_count(),
        epochs: history.len(),
        resumed_after_epoch,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        seconds: started.elapsed().as_secs_f64(),
        out_dir: out_dir.clone(),
    };
    let json = serde_json::to_vec_pretty(&summary).expect("summaries serialise");
    let path = out_dir.join("summary.json");
    crate::atomic_file::write(&path, &json).map_err(|source| Error::Io { path, source })?;
    Ok(summary)
}
