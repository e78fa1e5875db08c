//! The correlation stage: every criterion's ranking of the channels against the oracle's
//! (`oracle-abs`), in the layout of Molchanov et al.'s table, under
//! `results/<name>/correlation/` ([`crate::report::write_study`]).
//!
//! It reads the finished scores and oracle stages and runs no network, except to score the
//! `random` criterion under `[correlation] null_seeds` other seeds: the null distribution.

use std::path::Path;

use serde::Serialize;

use super::oracle::OracleResult;
use super::record::Stage;
use super::skeleton::StageRun;
use super::Plan;
use crate::config::{CorrelationConfig, CriterionName, Reduction};
use crate::graph::{Graph, Params};
use crate::report::{read_study, write_study};
use crate::saliency::{read_scores, score, CriterionScores, Inputs};
use crate::stats::{study, CriterionRow, DfcInfo, NullDistribution, Scoring, Study, StudySettings};
use crate::Error;

/// The name of the reference ranking.
pub const REFERENCE: &str = "oracle-abs";

/// What the stage did: the table's rows.
#[derive(Debug, Clone, Serialize)]
pub struct CorrelationOutcome {
    pub cached: bool,
    pub rows: Vec<CriterionRow>,
    pub null: Option<NullDistribution>,
}

impl std::fmt::Display for CorrelationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.cached {
            " (finished earlier from these settings)"
        } else {
            ""
        };
        write!(
            f,
            "Spearman ρ against {REFERENCE}{state}:\n  {:<16} {:>9} {:>10} {:>10} {:>9}",
            "criterion", "per layer", "all layers", "w/ ℓ2", "Kendall τ"
        )?;
        for r in &self.rows {
            write!(
                f,
                "\n  {:<16} {:>9.3} {:>10.3} {:>10.3} {:>9.3}",
                r.criterion,
                r.per_layer.value,
                r.all_layers.value,
                r.all_layers_l2.value,
                r.kendall_all_layers
            )?;
        }
        if let Some(n) = &self.null {
            write!(
                f,
                "\n  random over {} seeds: all layers ρ {:.3} ± {:.3}",
                n.seeds, n.all_layers_mean, n.all_layers_sd
            )?;
        }
        Ok(())
    }
}

/// The correlation stage: every configured criterion's scores (read from the scores stage)
/// compared with the oracle.
pub struct CorrelationStage<'a> {
    pub plan: &'a Plan,
    pub config: &'a CorrelationConfig,
    pub graph: &'a Graph,
    pub params: &'a Params,
    pub oracle: &'a OracleResult,
}

impl StageRun for CorrelationStage<'_> {
    type Output = CorrelationOutcome;
    const STAGE: Stage = Stage::Correlation;

    fn read_back(&self, dir: &Path) -> Result<CorrelationOutcome, Error> {
        let done = read_study(dir).map_err(|err| Error::Saliency(err.to_string()))?;
        Ok(outcome(done, true))
    }

    fn run(&self, dir: &Path) -> Result<CorrelationOutcome, Error> {
        compare(self, dir)
    }
}

fn compare(stage: &CorrelationStage, dir: &Path) -> Result<CorrelationOutcome, Error> {
    let CorrelationStage {
        plan,
        config,
        graph,
        params,
        oracle,
    } = *stage;
    let e = &plan.experiment;
    let failed = |why: String| Error::Saliency(format!("correlation: {why}"));
    let scores_dir = Stage::Scores.dir(&plan.out_dir);
    let criteria: Vec<CriterionScores> = e
        .saliency
        .criteria
        .iter()
        .map(|&c| read_scores(&scores_dir, c).map_err(|err| failed(err.to_string())))
        .collect::<Result<_, _>>()?;
    let names: Vec<&str> = oracle.dfcs.iter().map(|d| d.dfc.as_str()).collect();
    for c in &criteria {
        let theirs: Vec<&str> = c.dfcs.iter().map(|d| d.dfc.as_str()).collect();
        if theirs != names {
            return Err(failed(format!(
                "the {} scores and the oracle name different DFCs",
                c.criterion.as_str()
            )));
        }
    }
    let per_dfc = |s: &CriterionScores| -> Vec<Vec<f64>> {
        s.dfcs.iter().map(|d| d.scores.clone()).collect()
    };
    let values: Vec<Vec<Vec<f64>>> = criteria.iter().map(per_dfc).collect();
    let (abs, signed) = (oracle.abs(), oracle.signed());
    let reference = Scoring {
        name: REFERENCE,
        dfcs: &abs,
    };
    let scorings: Vec<Scoring> = criteria
        .iter()
        .zip(&values)
        .map(|(c, v)| Scoring {
            name: c.criterion.as_str(),
            dfcs: v,
        })
        .collect();
    let extra = [Scoring {
        name: "oracle-signed",
        dfcs: &signed,
    }];
    let infos: Vec<DfcInfo> = oracle
        .dfcs
        .iter()
        .map(|d| DfcInfo {
            name: &d.dfc,
            coupled: d.coupled,
        })
        .collect();
    let null = null_scorings(graph, params, e.seed, config.null_seeds)?;
    let settings = StudySettings {
        bootstrap: config.bootstrap,
        confidence: config.confidence,
        seed: config.seed,
    };
    let done = study(&reference, &scorings, &extra, &infos, &null, &settings).map_err(failed)?;
    let title = format!(
        "{} ({} on {})",
        e.name(),
        e.model.label(),
        e.data.dataset.label()
    );
    write_study(&done, &scorings, &reference, &title, dir)
        .map_err(|err| failed(err.to_string()))?;
    Ok(outcome(done, false))
}

fn outcome(study: Study, cached: bool) -> CorrelationOutcome {
    CorrelationOutcome {
        cached,
        rows: study.rows,
        null: study.null,
    }
}

/// The random criterion under seeds `seed + 1 ..= seed + count` (the run's own `random`
/// scores use `seed`).
fn null_scorings(
    graph: &Graph,
    params: &Params,
    seed: u64,
    count: usize,
) -> Result<Vec<Vec<Vec<f64>>>, Error> {
    let shapes = graph.shapes()?;
    (1..=count as u64)
        .map(|k| {
            let inputs = Inputs {
                graph,
                params,
                shapes: &shapes,
                seed: seed.wrapping_add(k),
                observations: None,
            };
            let (scores, _) = score(&inputs, CriterionName::Random, Reduction::Sum)
                .map_err(|err| Error::Saliency(err.to_string()))?;
            Ok(scores.dfcs.into_iter().map(|d| d.scores).collect())
        })
        .collect()
}
