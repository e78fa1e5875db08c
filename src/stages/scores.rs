//! The scores stage: every configured criterion scores every channel of the experiment's
//! model; the scores go to `results/<name>/scores/` (see [`crate::saliency::write_scores`]).

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::record::Stage;
use super::skeleton::StageRun;
use super::Plan;
use crate::config::CriterionName;
use crate::data::Dataset;
use crate::graph::{couplings, Graph, Params};
use crate::saliency::{
    self, observe, read_scores, write_scores, CriterionScores, Inputs, Observations,
};
use crate::Error;

/// One criterion's scores in a line.
#[derive(Debug, Clone, Serialize)]
pub struct CriterionSummary {
    pub criterion: CriterionName,
    pub dfcs: usize,
    pub channels: usize,
    /// Scoring time; `None` when read back from an earlier run.
    pub seconds: Option<f64>,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// What the stage did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScoresOutcome {
    /// Read back from a finished stage instead of computed.
    pub cached: bool,
    pub criteria: Vec<CriterionSummary>,
    /// The data pass of the data-driven criteria: images read and wall time.
    pub data_pass: Option<DataPass>,
}

/// The one pass over the scoring images that serves every data-driven criterion.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DataPass {
    pub images: usize,
    pub gradients: bool,
    pub seconds: f64,
}

impl fmt::Display for ScoresOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cached {
            " (finished earlier from these settings)"
        } else {
            ""
        };
        write!(f, "scores{state}:")?;
        if let Some(p) = &self.data_pass {
            write!(
                f,
                "\n  one pass over {} images{} for the data-driven criteria: {:.2} s",
                p.images,
                if p.gradients { " with gradients" } else { "" },
                p.seconds
            )?;
        }
        for c in &self.criteria {
            let time = c.seconds.map_or(String::new(), |s| format!(" in {s:.3} s"));
            write!(
                f,
                "\n  {:<16} {} channels of {} DFCs{time}; min {:.4e}, median {:.4e}, max {:.4e}",
                c.criterion.as_str(),
                c.channels,
                c.dfcs,
                c.min,
                c.median,
                c.max
            )?;
        }
        Ok(())
    }
}

impl CriterionSummary {
    fn of(scores: &CriterionScores, seconds: Option<f64>) -> Self {
        let mut all: Vec<f64> = scores.dfcs.iter().flat_map(|d| d.scores.clone()).collect();
        all.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let last = all.len().saturating_sub(1);
            all.get((last as f64 * q).round() as usize).copied()
        };
        Self {
            criterion: scores.criterion,
            dfcs: scores.dfcs.len(),
            channels: all.len(),
            seconds,
            min: at(0.0).unwrap_or(f64::NAN),
            median: at(0.5).unwrap_or(f64::NAN),
            max: at(1.0).unwrap_or(f64::NAN),
        }
    }
}

/// The scores stage: every configured criterion scores `graph`; a finished stage's scores are
/// read back.
pub struct ScoresStage<'a> {
    pub plan: &'a Plan,
    pub graph: &'a Graph,
    pub params: &'a Params,
    /// The images of the data-driven criteria (`None`: data-free criteria only).
    pub data: Option<&'a Dataset>,
}

impl StageRun for ScoresStage<'_> {
    type Output = ScoresOutcome;
    const STAGE: Stage = Stage::Scores;

    fn read_back(&self, dir: &Path) -> Result<ScoresOutcome, Error> {
        let criteria = self
            .plan
            .experiment
            .saliency
            .criteria
            .iter()
            .map(|&c| read_scores(dir, c).map(|s| CriterionSummary::of(&s, None)))
            .collect::<Result<_, _>>()
            .map_err(|err| Error::Saliency(err.to_string()))?;
        Ok(ScoresOutcome {
            cached: true,
            criteria,
            data_pass: None,
        })
    }

    fn run(&self, dir: &Path) -> Result<ScoresOutcome, Error> {
        let (plan, graph, params) = (self.plan, self.graph, self.params);
        let e = &plan.experiment;
        let shapes = graph.shapes()?;
        let needs = saliency::needs_of(&e.saliency.criteria);
        let (observations, data_pass) = match self.data {
            Some(data) if needs.activations => {
                let (o, pass) = data_pass(plan, graph, params, data, needs.gradients)?;
                (Some(o), Some(pass))
            }
            _ => (None, None),
        };
        let inputs = Inputs {
            graph,
            params,
            shapes: &shapes,
            seed: e.seed,
            observations: observations.as_ref(),
        };
        let mut all = Vec::new();
        let mut criteria = Vec::new();
        for &name in &e.saliency.criteria {
            let (scores, took) = saliency::score(&inputs, name, e.saliency.reduction)
                .map_err(|err| Error::Saliency(err.to_string()))?;
            criteria.push(CriterionSummary::of(&scores, Some(took.as_secs_f64())));
            all.push(scores);
        }
        write_scores(dir, &all).map_err(|err| Error::Saliency(err.to_string()))?;
        crate::util::safe_point::safe_point("after-scores", 0);
        Ok(ScoresOutcome {
            cached: false,
            criteria,
            data_pass,
        })
    }
}

/// The data pass over `[saliency.images]`.
fn data_pass(
    plan: &Plan,
    graph: &Graph,
    params: &Params,
    data: &Dataset,
    gradients: bool,
) -> Result<(Observations, DataPass), Error> {
    let e = &plan.experiment;
    let device = params.device();
    let batches = data.image_set(
        e.saliency.image_request(),
        e.saliency.batch,
        &e.data.normalizer(),
        &device,
    )?;
    let started = std::time::Instant::now();
    let dfcs = couplings(graph)?;
    let observations = observe(
        graph,
        params,
        &dfcs,
        plan.dataset.classes,
        gradients,
        batches.into_iter().map(Ok),
    )
    .map_err(|err| Error::Saliency(err.to_string()))?;
    let pass = DataPass {
        images: observations.images,
        gradients,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((observations, pass))
}
