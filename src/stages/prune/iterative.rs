//! The iterative schedule: score the current network with the criterion, remove a chunk of the
//! eligible channels it still has, fine-tune (one epoch per `step_lrs` rate), measure on the
//! validation images, repeat until the stop rule; then a final fine-tune whose best epoch is
//! chosen on the validation images.
//!
//! Each step's plan is in the channel indices of the network it was applied to; the sequence
//! (the prune log) replays from the original model. The state is checkpointed in
//! `<variant>/state/`: after every step the fine-tuned network (`step_NNNN.*`) and
//! `state.json` (points, plans); during the final fine-tune the trainer's checkpoint, with its
//! momentum, after every epoch. A killed schedule resumes from the last of them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use super::{export, Bench};
use crate::config::{CriterionName, PruneConfig, ScheduleKind, TrainConfig};
use crate::data::{Augment, Batch, Dataset};
use crate::graph::{couplings, load_model, macs, prune, save_model, ChannelPlan, Graph, Params};
use crate::prune::{
    eligible, FineTuned, Point, PruneLog, Remover, Score, Stop, StopRule, Variant, SCHEMA,
};
use crate::saliency::{needs_of, observe, score, Inputs};
use crate::stages::partial;
use crate::stages::Plan;
use crate::train::{Checkpoint, TrainState, Trainer};
use crate::Error;

/// Where an interrupted iterative variant stands.
#[derive(Serialize, Deserialize)]
struct State {
    points: Vec<Point>,
    /// One plan per step, each in the indices of the network before it.
    plans: Vec<ChannelPlan>,
}

/// The iterative schedule, with what its variants share: the fine-tuning images (the
/// validation images in the place of the test split: the trainer evaluates on its "test"
/// split after every epoch) and, for a data-driven criterion, `[saliency.images]`.
pub(super) struct Iterative {
    tuning: Dataset,
    images: Vec<Batch>,
}

impl Iterative {
    pub fn new(bench: &Bench, data: &Dataset) -> Result<Self, Error> {
        let (e, config) = (&bench.plan.experiment, bench.config);
        let images = match needs_of(&config.criteria).activations {
            true => data.image_set(
                e.saliency.image_request(),
                e.saliency.batch,
                &bench.normalizer,
                &bench.device,
            )?,
            false => Vec::new(),
        };
        let train = match config.fine_tuning().images {
            Some(n) => {
                data.train
                    .draw(n, e.seed, "prune.fine_tune.images", "the training split")?
            }
            None => data.train.clone(),
        };
        let tuning = Dataset {
            train,
            validation: data.train.empty_like(),
            test: bench.validation.clone(),
        };
        Ok(Self { tuning, images })
    }
}

impl Schedule for Iterative {
    fn run_variant(
        &self,
        bench: &Bench,
        _eligible: &[bool],
        variant: &mut Variant,
        dir: &Path,
    ) -> Result<(), Error> {
        let steps = IterativeVariant {
            plan: bench.plan,
            config: bench.config,
            tuning: &self.tuning,
            images: &self.images,
            made_from: &bench.made_from,
            model_digest: &bench.model_digest,
        };
        let label = Variant::label(variant.criterion, variant.coupled);
        steps.run(bench, variant, &dir.join(label))
    }
}

/// What one iterative variant's steps read besides the bench. Each step scores the current
/// network itself (its eligible DFCs change as it shrinks).
struct IterativeVariant<'a> {
    pub plan: &'a Plan,
    pub config: &'a PruneConfig,
    /// What fine-tuning reads: the training images, and the validation images in the place of
    /// the test split (the trainer evaluates on its "test" split after every epoch).
    pub tuning: &'a Dataset,
    /// `[saliency.images]`, for a data-driven criterion.
    pub images: &'a [Batch],
    pub made_from: &'a str,
    pub model_digest: &'a str,
}

impl IterativeVariant<'_> {
    /// `[train]` with another rate, epochs and schedule.
    fn recipe(&self, lr: f64, epochs: usize, schedule: ScheduleKind) -> TrainConfig {
        TrainConfig {
            lr,
            epochs,
            schedule,
            min_lr: None,
            milestones: (schedule == ScheduleKind::Step).then(|| vec![(epochs / 2).max(1)]),
            gamma: None,
            warmup_epochs: 0,
            ..self.plan.experiment.train.clone()
        }
    }

    /// Trains `params` with `config`, evaluating on the validation images, checkpointing to
    /// `checkpoint` (resumed when it holds this graph). Returns the validation score per epoch.
    #[allow(clippy::too_many_arguments)]
    fn fine_tune(
        &self,
        bench: &Bench,
        graph: &Graph,
        params: &mut Params,
        config: &TrainConfig,
        seed: u64,
        checkpoint: &Path,
        after_epoch: &mut dyn FnMut(&[crate::train::EpochMetrics]) -> Result<(), Error>,
    ) -> Result<Vec<Score>, Error> {
        let e = &self.plan.experiment;
        let state = match Checkpoint::load(checkpoint, &bench.device) {
            Ok(saved) if saved.graph == *graph && saved.seed == seed => {
                *params = Params::from_tensors(graph, saved.tensors.clone(), &bench.device)?;
                TrainState::resumed(config, saved)
            }
            _ => TrainState::fresh(config),
        };
        let settings =
            crate::util::fingerprint::Fingerprint::from_pairs([("made_from", self.made_from)]);
        let trainer = Trainer {
            graph,
            data: self.tuning,
            evaluated_on: "validation",
            normalizer: &bench.normalizer,
            augment: Augment {
                crop_padding: e.data.crop_padding,
                flip: e.data.flip,
            },
            device: &bench.device,
            config,
            seed,
            checkpoint: checkpoint.to_path_buf(),
            settings: &settings,
        };
        let history = trainer.run(params, state, &mut |h| {
            after_epoch(h).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })?;
        Ok(history
            .iter()
            .map(|m| Score {
                accuracy: m.test_accuracy,
                loss: m.test_loss,
            })
            .collect())
    }

    /// The current network's scores under `criterion`, one vector per DFC.
    fn scores(
        &self,
        graph: &Graph,
        params: &Params,
        criterion: CriterionName,
    ) -> Result<crate::saliency::CriterionScores, Error> {
        let needs = needs_of(&[criterion]);
        let found = couplings(graph)?;
        let saliency = |err: crate::saliency::SaliencyError| Error::Saliency(err.to_string());
        let observations = match needs.activations {
            true => Some(
                observe(
                    graph,
                    params,
                    &found,
                    self.plan.dataset.classes,
                    needs.gradients,
                    self.images.iter().cloned().map(Ok),
                )
                .map_err(saliency)?,
            ),
            false => None,
        };
        let shapes = graph.shapes()?;
        let inputs = Inputs {
            graph,
            params,
            shapes: &shapes,
            seed: self.plan.experiment.seed,
            observations: observations.as_ref(),
        };
        let reduction = self.plan.experiment.saliency.reduction;
        Ok(score(&inputs, criterion, reduction).map_err(saliency)?.0)
    }

    /// Runs (or resumes) one variant, filling in `variant`.
    pub fn run(&self, bench: &Bench, variant: &mut Variant, dir: &Path) -> Result<(), Error> {
        let state_dir = dir.join("state");
        let state_path = state_dir.join("state.json");
        let step_stem = |step: usize| state_dir.join(format!("step_{step:04}"));
        let (mut graph, mut params, mut points, mut plans) = match self.resume(&state_path) {
            Some(s) => {
                let (g, p) = load_model(&step_stem(s.points.len() - 1), &bench.device)?;
                eprintln!(
                    "prune {}: resuming after step {}",
                    Variant::label(variant.criterion, variant.coupled),
                    s.points.len() - 1
                );
                (g, p, s.points, s.plans)
            }
            None => {
                let (g, p) = (bench.graph.clone(), bench.params.clone());
                let mut first = measure(bench, &g, &p, 0, 0)?;
                first.test = Some(bench.score(&g, &p, bench.test)?);
                (g, p, vec![first], Vec::new())
            }
        };
        let rule = StopRule::of(self.config, self.plan.dataset.classes);
        let f = self.config.fine_tuning();
        let seed = self.plan.experiment.seed;
        let stop = loop {
            if let Some(stop) = rule.reached(&points, variant.eligible_channels) {
                break stop;
            }
            let scores = self.scores(&graph, &params, variant.criterion)?;
            let eligible = eligible(&couplings(&graph)?, variant.coupled);
            let mut remover =
                Remover::new(&scores, &eligible, self.config.chunk, self.config.round_to);
            let chunk = remover.step();
            if chunk == 0 {
                break Stop::Exhausted;
            }
            let step = points.len();
            let channel_plan = remover.plan();
            (graph, params) = prune(&graph, &params, &channel_plan)?;
            for (i, &lr) in f.step_lrs.iter().enumerate() {
                let config = self.recipe(lr, 1, ScheduleKind::Constant);
                let seed = seed.wrapping_add((step * 1000 + i) as u64);
                let checkpoint = state_dir.join("step.ckpt");
                let _ = std::fs::remove_file(&checkpoint);
                self.fine_tune(
                    bench,
                    &graph,
                    &mut params,
                    &config,
                    seed,
                    &checkpoint,
                    &mut |_| Ok(()),
                )?;
            }
            points.push(measure(bench, &graph, &params, step, chunk)?);
            plans.push(channel_plan);
            save_model(&graph, &params, &step_stem(step), Default::default())?;
            let state = State {
                points: points.clone(),
                plans: plans.clone(),
            };
            partial::write(&state_path, SCHEMA, self.made_from, &state)?;
            crate::util::safe_point::safe_point("prune-step", step);
            eprintln!(
                "prune {}: step {step} removed {chunk} channels, {} left, validation {:.2}%",
                Variant::label(variant.criterion, variant.coupled),
                points[step].channels,
                100.0 * points[step].validation.map_or(f64::NAN, |s| s.accuracy)
            );
        };
        // The network reported: the last step within a drop target, else the last step.
        let chosen = match self.config.target() {
            Some(crate::config::Target::Drop(_)) if stop == Stop::Target => points.len() - 2,
            _ => points.len() - 1,
        };
        let (graph, mut params) = self.network_at(bench, &plans[..chosen], &state_dir)?;
        let log = PruneLog::new(
            &self.plan.experiment.model.label(),
            self.model_digest,
            plans[..chosen].to_vec(),
        );
        let before = self.report(
            bench,
            &graph,
            &params,
            &points[chosen],
            &log,
            dir,
            "models/last_step",
        )?;
        points[chosen] = before;

        // The final fine-tune, best epoch chosen on the validation images.
        let config = self.recipe(f.final_lr, f.final_epochs, f.final_schedule);
        let checkpoint = state_dir.join("final.ckpt");
        let best_path = state_dir.join("best.ckpt");
        let epochs = self.fine_tune(
            bench,
            &graph,
            &mut params,
            &config,
            seed.wrapping_add(999_983),
            &checkpoint,
            &mut |h| {
                // The best epoch so far (the first of equals) is kept beside the checkpoint.
                let (last, before) = h.split_last().expect("an epoch finished");
                let best_before = before
                    .iter()
                    .map(|m| m.test_accuracy)
                    .fold(f64::NEG_INFINITY, f64::max);
                if last.test_accuracy > best_before {
                    crate::util::atomic_file::write_with(&best_path, |temporary| {
                        std::fs::copy(&checkpoint, temporary).map(|_| ())
                    })
                    .map_err(|source| Error::Io {
                        path: best_path.clone(),
                        source,
                    })?;
                }
                Ok(())
            },
        )?;
        let best_epoch = 1 + epochs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i);
        let template = Point {
            chunk: 0,
            ..points[chosen].clone()
        };
        let last = self.report(
            bench,
            &graph,
            &params,
            &template,
            &log,
            dir,
            "models/fine_tuned_last",
        )?;
        let best_params = match Checkpoint::load(&best_path, &bench.device) {
            Ok(saved) if !epochs.is_empty() => {
                Params::from_tensors(&graph, saved.tensors, &bench.device)?
            }
            _ => params.clone(),
        };
        // The same graph as `last`: its latency is `last`'s.
        let best = self.report(
            bench,
            &graph,
            &best_params,
            &last,
            &log,
            dir,
            "models/fine_tuned_best",
        )?;
        variant.fine_tuned = Some(FineTuned {
            epochs,
            best_epoch,
            last,
            best,
        });
        variant.stop = stop;
        variant.points = points;
        variant.chosen = Some(chosen);
        Ok(())
    }

    fn resume(&self, path: &Path) -> Option<State> {
        let s: State = partial::read(path, SCHEMA, self.made_from)?;
        (s.points.len() == s.plans.len() + 1).then_some(s)
    }

    /// The network after the first `plans.len()` steps, as saved after that step.
    fn network_at(
        &self,
        bench: &Bench,
        plans: &[ChannelPlan],
        state_dir: &Path,
    ) -> Result<(Graph, Params), Error> {
        if plans.is_empty() {
            return Ok((bench.graph.clone(), bench.params.clone()));
        }
        Ok(load_model(
            &state_dir.join(format!("step_{:04}", plans.len())),
            &bench.device,
        )?)
    }

    /// Tests, times and exports a network; returns `point` with its test score, latency and
    /// model folder.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        bench: &Bench,
        graph: &Graph,
        params: &Params,
        point: &Point,
        log: &PruneLog,
        dir: &Path,
        relative: &str,
    ) -> Result<Point, Error> {
        let mut point = point.clone();
        point.validation = Some(bench.score(graph, params, &bench.validation)?);
        point.test = Some(bench.score(graph, params, bench.test)?);
        if point.latency.is_empty() {
            point.latency = bench.speedup(graph, params)?;
        }
        let batchnorm = self.plan.experiment.model.onnx_batchnorm;
        export(
            &dir.join(relative),
            (graph, params),
            batchnorm,
            log,
            &point,
            bench.batch,
        )?;
        point.model = Some(relative.to_string());
        Ok(point)
    }
}

/// The current network's sizes and validation score.
fn measure(
    bench: &Bench,
    graph: &Graph,
    params: &Params,
    step: usize,
    chunk: usize,
) -> Result<Point, Error> {
    Ok(Point {
        step,
        chunk,
        channels: couplings(graph)?.iter().map(|c| c.channels).sum(),
        parameters: graph.parameter_count(),
        macs: macs(graph)?,
        validation: Some(bench.score(graph, params, &bench.validation)?),
        test: None,
        latency: Vec::new(),
        model: None,
    })
}
