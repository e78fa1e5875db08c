//! The plan as `--dry-run` (and every run) prints it: the experiment, the inputs as
//! [`super::prepare`] found them, and each stage with whether it is finished, what changed and
//! what it will cost.

use std::fmt::Write as _;

use super::{Inputs, OracleCost, Prepared, PruneCost};
use crate::config::{number, OracleConfig, PruneConfig, Target};
use crate::saliency::{self, Needs};
use crate::stages::model::Start;
use crate::stages::record::Status;
use crate::stages::Plan;

impl Plan {
    /// A human-readable account of the plan, with the inputs as [`super::prepare`] found them.
    pub fn describe(&self, prepared: &Prepared) -> String {
        let e = &self.experiment;
        let t = &e.train;
        let d = &self.dataset;
        let mut s = String::new();
        let _ = writeln!(s, "experiment  {}", e.name());
        let _ = writeln!(
            s,
            "model       {} ({} parameters)",
            e.model.label(),
            self.graph.parameter_count()
        );
        if let Some(w) = &e.model.weights {
            let _ = writeln!(s, "weights     {}", w.display());
        }
        let source = match e.data.dataset {
            crate::config::DatasetKind::Synthetic => "generated".to_string(),
            _ => e.data.resolved_dir().display().to_string(),
        };
        let (train, validation, test) = match &prepared.inputs {
            Inputs::Read(data) => (data.train.len(), data.validation.len(), data.test.len()),
            Inputs::Download { .. } => (d.train, d.validation, d.test),
        };
        let _ = writeln!(
            s,
            "dataset     {} from {source}: {train} train / {validation} validation / {test} test images, {}×{}×{}, {} classes",
            e.data.dataset.label(),
            d.channels,
            d.size,
            d.size,
            d.classes
        );
        let _ = writeln!(
            s,
            "training    {} epochs × {} batches of {}; SGD lr {} momentum {}{} weight decay {}; {:?} schedule{}",
            t.epochs,
            train.div_ceil(t.batch_size),
            t.batch_size,
            number(t.lr),
            number(t.momentum),
            if t.nesterov { " (Nesterov)" } else { "" },
            number(t.weight_decay),
            t.schedule,
            if t.warmup_epochs > 0 { format!(" after {} warm-up epochs", t.warmup_epochs) } else { String::new() }
        );
        let _ = writeln!(
            s,
            "augment     crop padding {}, flip {}; normalisation {}",
            e.data.crop_padding, e.data.flip, e.data.normalization
        );
        if let Inputs::Download { download, .. } = &prepared.inputs {
            let _ = writeln!(s, "download    {download}");
        }
        let _ = writeln!(
            s,
            "device      {:?}, {} threads; the times below were measured here, on blank images",
            e.device,
            candle_core::utils::get_num_threads()
        );
        if let Inputs::Download {
            earlier_work: true, ..
        } = &prepared.inputs
        {
            let _ = writeln!(
                s,
                "note        {} holds earlier work: once the data is downloaded, the run reuses what was made from these settings and that data, and the stages below that it reuses are skipped",
                self.out_dir.display()
            );
        }
        let mut model = match &prepared.start {
            Start::Finished => "finished earlier from these settings and data: skipped".to_string(),
            Start::Resume(c) => format!(
                "resumes from its checkpoint after epoch {} ({} epochs left)",
                c.epoch,
                prepared.start.epochs_left(t.epochs)
            ),
            Start::Fresh {
                overwrites: true, ..
            } => format!(
                "trains {} epochs from the start (--fresh: its checkpoint will be overwritten)",
                t.epochs
            ),
            Start::Fresh { .. } => format!("trains {} epochs from the start", t.epochs),
        };
        if let Some(epoch) = prepared.epoch_seconds {
            let left = prepared.start.epochs_left(t.epochs);
            let _ = write!(
                model,
                ", about {} per epoch, {} in all",
                duration(epoch),
                duration(epoch * left as f64)
            );
        }
        if let Status::Damaged(why) = &prepared.model {
            model = format!("reruns ({why}): {model}");
        }
        let names: Vec<&str> = e.saliency.criteria.iter().map(|c| c.as_str()).collect();
        let cost = if e
            .saliency
            .criteria
            .iter()
            .all(|&c| saliency::criterion(c).needs() == Needs::default())
        {
            "data-free: seconds"
        } else {
            "reads training images"
        };
        let scores = match &prepared.scores {
            Status::Missing => format!(
                "{} criteria ({}, {} reduction), {cost}",
                names.len(),
                names.join(", "),
                e.saliency.reduction.as_str()
            ),
            status => stage_line(status, format!("{} criteria, {cost}", names.len())),
        };
        let _ = writeln!(s, "stage model  {model}");
        let _ = writeln!(s, "stage scores {scores}");
        if let (Some(o), Some((status, cost))) = (&e.oracle, &prepared.oracle) {
            let what = cost
                .as_ref()
                .map_or_else(String::new, |c| oracle_line(o, c));
            let _ = writeln!(s, "stage oracle {}", stage_line(status, what));
        }
        if let (Some(c), Some(status)) = (e.correlation(), &prepared.correlation) {
            let what = format!(
                "{} criteria against oracle-abs, {} bootstrap resamples, random under {} seeds",
                e.saliency.criteria.len(),
                c.bootstrap,
                c.null_seeds
            );
            let _ = writeln!(s, "stage correlation {}", stage_line(status, what));
        }
        if let (Some(p), Some((status, cost))) = (&e.prune, &prepared.prune) {
            let what = cost.as_ref().map_or_else(String::new, |c| prune_line(p, c));
            let _ = writeln!(s, "stage prune  {}", stage_line(status, what));
        }
        if let Some(status) = &prepared.budgets {
            let what = "accuracy at equal budgets beside each criterion's ρ".to_string();
            let _ = writeln!(s, "stage budgets {}", stage_line(status, what));
        }
        let _ = write!(s, "outputs     {}", self.out_dir.display());
        s
    }
}

/// What the oracle stage does and about how long it takes.
fn oracle_line(o: &OracleConfig, cost: &OracleCost) -> String {
    format!(
        "{} images ({} split, seed {}), tiles of {} channels: {} suffix runs and {} prefix runs, the work of {:.0} one-image forward passes, about {}",
        cost.estimate.images,
        o.images.split.label(),
        o.images.seed,
        o.tile,
        cost.estimate.suffix_runs,
        cost.estimate.prefix_runs,
        cost.estimate.image_passes,
        duration(cost.seconds)
    )
}

/// What the prune stage does and about how long its steps take.
fn prune_line(p: &PruneConfig, cost: &PruneCost) -> String {
    let variants = p.criteria.len() * p.coupled.len();
    let names: Vec<&str> = p.criteria.iter().map(|c| c.as_str()).collect();
    let coupled: Vec<&str> = p
        .coupled
        .iter()
        .map(|&c| if c { "on" } else { "off" })
        .collect();
    // Steps of a chunk c remove the fraction 1 - (1 - c)^k in k steps.
    let steps_to = |fraction: f64| (1.0 - fraction).ln() / (1.0 - p.chunk).ln();
    let (goal, steps) = match p.target() {
        Some(Target::Channels(f)) if p.schedule.fine_tunes() => (
            format!("{:.0}% of the eligible channels", 100.0 * f),
            steps_to(f).ceil(),
        ),
        _ => ("half the channels".to_string(), steps_to(0.5).ceil()),
    };
    let mut step = format!(
        "a validation pass of about {}",
        duration(cost.validation_pass)
    );
    let mut per_step = cost.validation_pass;
    let mut after = "plus testing and timing its reported points".to_string();
    if let Some(epoch) = cost.fine_tune_epoch {
        let f = p.fine_tuning();
        per_step += f.step_lrs.len() as f64 * (epoch + cost.validation_pass);
        let _ = write!(
            step,
            " and {} fine-tuning epochs of about {} each",
            f.step_lrs.len(),
            duration(epoch)
        );
        after = format!(
            "then a final fine-tune of {} epochs, about {}, and testing and timing",
            f.final_epochs,
            duration(f.final_epochs as f64 * (epoch + cost.validation_pass))
        );
    }
    format!(
        "{:?} schedule with {} (coupled {}): {variants} variants in steps of {}% of the channels left{}, each step {step}; a variant that removes {goal} takes {steps:.0} steps, about {} ({} for the {variants}), {after}",
        p.schedule,
        names.join(", "),
        coupled.join(" and "),
        100.0 * p.chunk,
        match p.round_to {
            1 => String::new(),
            n => format!(" (every width kept a multiple of {n})"),
        },
        duration(steps * per_step),
        duration(variants as f64 * steps * per_step)
    )
}

/// `seconds` in the unit a reader plans with: seconds, minutes, hours or days.
fn duration(seconds: f64) -> String {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 86_400.0;
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 2.0 * MINUTE {
        format!("{seconds:.0} s")
    } else if seconds < 2.0 * HOUR {
        format!("{:.0} min", seconds / MINUTE)
    } else if seconds < 2.0 * DAY {
        format!("{:.1} h", seconds / HOUR)
    } else {
        format!("{:.1} days", seconds / DAY)
    }
}

/// A stage's line in the plan: skipped, rerun (naming what changed) or run as `what` says.
fn stage_line(status: &Status, what: String) -> String {
    match status {
        Status::Done(_) => "finished earlier from these settings: skipped".to_string(),
        Status::Changed(keys) => format!("reruns ({} changed): {what}", shown(keys).join("; ")),
        Status::Damaged(why) => format!("reruns ({why}): {what}"),
        Status::Missing => what,
    }
}

/// Changed keys as a reader wants them: a digest says nothing, its change is the model's or
/// the data's.
fn shown(keys: &[String]) -> Vec<&str> {
    keys.iter()
        .map(|k| {
            if k.starts_with("model: ") {
                "the model"
            } else if k.starts_with("data.contents: ") {
                "the data"
            } else if k.starts_with("scores: ") {
                "the scores"
            } else if k.starts_with("oracle: ") {
                "the oracle"
            } else if k.starts_with("prune: ") {
                "the pruning"
            } else if k.starts_with("correlation: ") {
                "the correlation study"
            } else {
                k
            }
        })
        .collect()
}
