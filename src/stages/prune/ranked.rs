//! What the schedules that rank channels once share (the sweep and the one-shot): the
//! removals of the scores stage's ranking, step by step from the original network,
//! checkpointed after every step (`<variant>/points.json`); then the reported points tested,
//! timed and exported.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use super::{export, Bench};
use crate::config::PruneConfig;
use crate::graph::prune;
use crate::prune::{
    reported_steps, run_steps, Headline, Point, PruneLog, Remover, StopRule, Variant, SCHEMA,
};
use crate::saliency::read_scores;
use crate::stages::partial;
use crate::stages::record::Stage;
use crate::Error;

/// A variant's points so far.
#[derive(Serialize, Deserialize)]
struct Partial {
    points: Vec<Point>,
}

/// Which of a ranked variant's points a schedule reports: the headline points and the one
/// network it chooses, from every step's point.
pub(super) type Report = fn(&PruneConfig, &[Point]) -> (Vec<Headline>, Option<usize>);

/// A schedule that ranks channels once, by the scores stage, and reports the points its
/// [`Report`] picks.
pub(super) struct Ranked(pub Report);

impl Schedule for Ranked {
    fn run_variant(
        &self,
        bench: &Bench,
        eligible: &[bool],
        variant: &mut Variant,
        dir: &Path,
    ) -> Result<(), Error> {
        let remover = ranking(bench, variant, eligible)?;
        run_ranked(bench, remover, variant, dir, self.0)
    }
}

/// The removal order of `variant`'s criterion over the `eligible` DFCs, from the scores stage.
fn ranking(bench: &Bench, variant: &Variant, eligible: &[bool]) -> Result<Remover, Error> {
    let scores_dir = Stage::Scores.dir(&bench.plan.out_dir);
    let scores = read_scores(&scores_dir, variant.criterion)
        .map_err(|err| Error::Saliency(err.to_string()))?;
    Ok(Remover::new(
        &scores,
        eligible,
        bench.config.chunk,
        bench.config.round_to,
    ))
}

/// Steps one variant (resuming its checkpoint), then tests, times and exports the points
/// `report` picks, filling in `variant`.
fn run_ranked(
    bench: &Bench,
    mut remover: Remover,
    variant: &mut Variant,
    dir: &Path,
    report: Report,
) -> Result<(), Error> {
    let (plan, config) = (bench.plan, bench.config);
    let (made_from, model_digest) = (bench.made_from.as_str(), bench.model_digest.as_str());
    let label = Variant::label(variant.criterion, variant.coupled);
    let eligible_channels = variant.eligible_channels;
    let variant_dir = dir.join(&label);
    let partial_path = variant_dir.join("points.json");
    let mut points = read_partial(&partial_path, made_from).unwrap_or_default();
    if points.is_empty() {
        points.push(bench.measure(&remover, 0, true)?);
    }
    let resumed = points.len() - 1;
    let rule = StopRule::of(config, plan.dataset.classes);
    let progress = StepProgress::new(&label, eligible_channels, resumed);
    let checkpoint = |points: &[Point]| -> Result<(), Error> {
        progress.step(points);
        write_partial(&partial_path, made_from, points)?;
        crate::util::safe_point::safe_point("prune-step", points.len() - 1);
        Ok(())
    };
    let stop = run_steps(
        &mut remover,
        &mut points,
        rule,
        eligible_channels,
        |r, chunk, validate| bench.measure(r, chunk, validate),
        checkpoint,
        |step| {
            Error::Stale(format!(
                "{}: step {step} does not follow from the scores; delete the file to start the variant over",
                partial_path.display()
            ))
        },
    )?;
    let (headline, chosen) = report(config, &points);
    let last = points.last().map_or(0, |p| p.step);
    for step in reported_steps(&headline, chosen, last, config.report_every) {
        let index = points
            .iter()
            .position(|p| p.step == step)
            .expect("reported steps are steps taken");
        if points[index].test.is_some() && points[index].model.is_some() {
            continue;
        }
        let at = remover.at_step(step);
        let channel_plan = at.plan();
        let (graph, params) = prune(bench.graph, bench.params, &channel_plan)?;
        let mut point = points[index].clone();
        if point.validation.is_none() {
            point.validation = Some(bench.score(&graph, &params, &bench.validation)?);
        }
        point.test = Some(bench.score(&graph, &params, bench.test)?);
        if step > 0 {
            point.latency = bench.speedup(&graph, &params)?;
        }
        let relative = format!("models/step_{step:04}");
        let log = PruneLog::new(
            &plan.experiment.model.label(),
            model_digest,
            vec![channel_plan],
        );
        export(
            &variant_dir.join(&relative),
            (&graph, &params),
            plan.experiment.model.onnx_batchnorm,
            &log,
            &point,
            bench.batch,
        )?;
        point.model = Some(relative);
        points[index] = point;
        write_partial(&partial_path, made_from, &points)?;
        crate::util::safe_point::safe_point("prune-report", step);
    }
    variant.stop = stop;
    variant.points = points;
    variant.headline = headline;
    variant.chosen = chosen;
    Ok(())
}

fn read_partial(path: &Path, made_from: &str) -> Option<Vec<Point>> {
    let partial: Partial = partial::read(path, SCHEMA, made_from)?;
    (!partial.points.is_empty()).then_some(partial.points)
}

fn write_partial(path: &Path, made_from: &str, points: &[Point]) -> Result<(), Error> {
    let points = Partial {
        points: points.to_vec(),
    };
    Ok(partial::write(path, SCHEMA, made_from, &points)?)
}

/// A line per step on standard error: where the variant is and how fast it goes.
struct StepProgress {
    label: String,
    eligible: usize,
    started: Instant,
    resumed: usize,
}

impl StepProgress {
    fn new(label: &str, eligible: usize, resumed: usize) -> Self {
        if resumed > 0 {
            eprintln!("prune {label}: resuming after step {resumed}");
        }
        Self {
            label: label.to_string(),
            eligible,
            started: Instant::now(),
            resumed,
        }
    }

    fn step(&self, points: &[Point]) {
        let (first, last) = (&points[0], &points[points.len() - 1]);
        let removed = first.channels - last.channels;
        let accuracy = match (first.validation, last.validation) {
            (Some(base), Some(now)) => format!(
                ", validation {:.2}% ({:+.2})",
                100.0 * now.accuracy,
                100.0 * (now.accuracy - base.accuracy)
            ),
            _ => String::new(),
        };
        let done = (last.step - self.resumed).max(1) as f64;
        eprintln!(
            "prune {}: step {} removed {} channels ({:.1}% of {} eligible), MACs {:.1}%{accuracy}; {:.1} s per step",
            self.label,
            last.step,
            removed,
            100.0 * removed as f64 / self.eligible.max(1) as f64,
            self.eligible,
            100.0 * last.macs as f64 / first.macs as f64,
            self.started.elapsed().as_secs_f64() / done
        );
    }
}
