//! The one training loop every model uses.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;

use super::progress::Progress;
use super::step::train_step;
use super::{Checkpoint, EpochMetrics, Schedule, Sgd, SgdConfig, TrainError};
use crate::config::TrainConfig;
use crate::data::{epoch_rng, shuffled, Augment, Batcher, Dataset, Normalizer};
use crate::eval::evaluate;
use crate::graph::{non_finite, Graph, Params};
use crate::util::fingerprint::Fingerprint;

/// Everything the loop reads but does not change.
pub struct Trainer<'a> {
    pub graph: &'a Graph,
    pub data: &'a Dataset,
    /// What `data.test` is called in the log: `"test"`, or `"validation"` where held-out
    /// training images stand in for it.
    pub evaluated_on: &'static str,
    pub normalizer: &'a Normalizer,
    pub augment: Augment,
    pub device: &'a Device,
    pub config: &'a TrainConfig,
    pub seed: u64,
    /// Written atomically after every epoch.
    pub checkpoint: PathBuf,
    /// Recorded in the checkpoint: what the run is made from.
    pub settings: &'a Fingerprint,
}

/// Where training stands: after `history.len()` epochs with these momentum buffers.
pub struct TrainState {
    pub history: Vec<EpochMetrics>,
    pub sgd: Sgd,
}

impl TrainState {
    pub fn fresh(config: &TrainConfig) -> Self {
        Self {
            history: Vec::new(),
            sgd: Sgd::new(SgdConfig::of(config)),
        }
    }

    pub fn resumed(config: &TrainConfig, checkpoint: Checkpoint) -> Self {
        Self {
            history: checkpoint.history,
            sgd: Sgd::with_state(SgdConfig::of(config), checkpoint.momentum),
        }
    }
}

type AfterEpoch<'f> =
    dyn FnMut(&[EpochMetrics]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'f;

impl Trainer<'_> {
    /// Trains until `config.epochs` epochs are done. After each epoch: evaluate on the test split,
    /// write the checkpoint, then call `after_epoch` with the whole history.
    pub fn run(
        &self,
        params: &mut Params,
        mut state: TrainState,
        after_epoch: &mut AfterEpoch<'_>,
    ) -> Result<Vec<EpochMetrics>, TrainError> {
        let schedule = Schedule::new(self.config);
        let mut progress = Progress::new(self.config.epochs, self.evaluated_on);
        for epoch in state.history.len()..self.config.epochs {
            let lr = schedule.lr(epoch);
            let metrics = self.epoch(epoch, lr, params, &mut state.sgd, &mut progress)?;
            // Nothing non-finite reaches a checkpoint: the last one written stays the last good one.
            if !(metrics.test_loss.is_finite() && metrics.train_loss.is_finite()) {
                let what = format!(
                    "the {} loss became {}",
                    self.evaluated_on, metrics.test_loss
                );
                return Err(self.diverged(epoch, what, lr));
            }
            let tensors = params.tensors();
            let broken: Vec<String> = non_finite(&tensors)?
                .into_iter()
                .chain(
                    non_finite(state.sgd.state())?
                        .into_iter()
                        .map(|n| format!("momentum of {n}")),
                )
                .collect();
            if !broken.is_empty() {
                let what = format!("{} became NaN or infinite", list(&broken));
                return Err(self.diverged(epoch, what, lr));
            }
            progress.finish_epoch(&metrics);
            state.history.push(metrics);
            let checkpoint = Checkpoint {
                epoch: epoch + 1,
                seed: self.seed,
                graph: self.graph.clone(),
                tensors,
                momentum: state.sgd.state().clone(),
                history: state.history.clone(),
                settings: self.settings.clone(),
            };
            checkpoint.save(&self.checkpoint)?;
            crate::util::safe_point::safe_point("after-checkpoint", epoch + 1);
            after_epoch(&state.history).map_err(|source| TrainError::AfterEpoch {
                epoch: epoch + 1,
                source,
            })?;
        }
        Ok(state.history)
    }

    fn epoch(
        &self,
        epoch: usize,
        lr: f64,
        params: &mut Params,
        sgd: &mut Sgd,
        progress: &mut Progress,
    ) -> Result<EpochMetrics, TrainError> {
        let train = &self.data.train;
        let batcher = Batcher {
            split: train,
            normalizer: self.normalizer,
            device: self.device,
        };
        let mut rng = epoch_rng(self.seed, epoch);
        let order = shuffled(train.len(), &mut rng);
        let batch_size = self.config.batch_size;
        progress.start_epoch(epoch, train.len().div_ceil(batch_size));
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (step, chunk) in order.chunks(batch_size).enumerate() {
            let batch = batcher.batch(chunk, Some((self.augment, &mut rng)))?;
            let outcome = train_step(self.graph, params, sgd, &batch, lr)?;
            if !outcome.loss.is_finite() {
                let what = format!(
                    "the training loss became {} at step {}",
                    outcome.loss,
                    step + 1
                );
                return Err(self.diverged(epoch, what, lr));
            }
            loss_sum += outcome.loss as f64 * chunk.len() as f64;
            correct += outcome.correct;
            seen += chunk.len();
            let rate = seen as f64 / started.elapsed().as_secs_f64();
            progress.step(
                step,
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                lr,
                rate,
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        let test = evaluate(
            self.graph,
            params,
            &self.data.test,
            self.normalizer,
            batch_size,
            self.device,
        )?;
        Ok(EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            seconds,
            images_per_second: seen as f64 / seconds,
        })
    }

    fn diverged(&self, epoch: usize, what: String, lr: f64) -> TrainError {
        let next = if epoch > 0 {
            format!(
                "The last good checkpoint (after epoch {epoch}) is kept at {}, but resuming it with these settings would diverge again, and it cannot be resumed with others: run again with --fresh.",
                self.checkpoint.display()
            )
        } else {
            "No epoch had completed, so no checkpoint was written: run again with the new settings."
                .to_string()
        };
        TrainError::Diverged {
            epoch: epoch + 1,
            what,
            lr: crate::config::number(lr),
            next,
        }
    }
}

/// The first few names, then how many more.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}
