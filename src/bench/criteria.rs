//! Timing the data-free criteria on a model's seeded initialisation (their cost does not depend
//! on the weights' values), and how far the public DFPC code's pair order moves its ranking.

use std::time::Duration;

use candle_core::Device;
use serde::Serialize;

use crate::config::{CriterionName, Reduction};
use crate::graph::Params;
use crate::saliency::{score, CriterionScores, Inputs, SaliencyError};
use crate::stats::spearman;

#[derive(Debug, Clone, Serialize)]
pub struct CriterionTiming {
    pub model: String,
    pub criterion: CriterionName,
    pub dfcs: usize,
    pub channels: usize,
    /// Median wall time of one scoring of every channel.
    pub seconds: f64,
    pub runs: usize,
}

/// `dfpc` against `dfpc-name-order` on one model.
#[derive(Debug, Clone, Serialize)]
pub struct OrderAgreement {
    pub model: String,
    /// Spearman's ρ over every channel of the network (the ranking a global sweep prunes by).
    pub spearman_all: f64,
    /// DFCs whose scores differ between the orders, of all DFCs.
    pub dfcs_differing: usize,
    pub dfcs: usize,
    /// The lowest ρ of a single DFC, and that DFC.
    pub spearman_worst_dfc: f64,
    pub worst_dfc: String,
    /// Of the 10% lowest-scored channels by `dfpc`, the fraction also among the lowest 10% by
    /// `dfpc-name-order`: how much of a first pruning step the two orders share.
    pub lowest_tenth_shared: f64,
}

/// Scores `arch` (built for `size`×`size` RGB inputs and `classes` classes, seeded
/// initialisation) `runs` times with each criterion; with both DFPC orders among `criteria`,
/// also their agreement.
pub fn bench_criteria(
    arch: &str,
    size: usize,
    classes: usize,
    criteria: &[CriterionName],
    runs: usize,
) -> Result<(Vec<CriterionTiming>, Option<OrderAgreement>), SaliencyError> {
    let graph = crate::models::build(arch, 3, size, classes)?;
    let params = Params::init(&graph, 0, &Device::Cpu)?;
    let shapes = graph.shapes()?;
    let inputs = Inputs {
        graph: &graph,
        params: &params,
        shapes: &shapes,
        seed: 0,
        observations: None,
    };
    let mut timings = Vec::new();
    let mut kept: Vec<CriterionScores> = Vec::new();
    for &criterion in criteria {
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs.max(1) {
            let (scores, took) = score(&inputs, criterion, Reduction::Sum)?;
            times.push(took);
            last = Some(scores);
        }
        times.sort();
        let scores = last.expect("at least one run");
        timings.push(CriterionTiming {
            model: arch.to_string(),
            criterion,
            dfcs: scores.dfcs.len(),
            channels: scores.dfcs.iter().map(|d| d.scores.len()).sum(),
            seconds: times[times.len() / 2].as_secs_f64(),
            runs: times.len(),
        });
        kept.push(scores);
    }
    let find = |c| kept.iter().find(|s| s.criterion == c);
    let agreement = match (
        find(CriterionName::Dfpc),
        find(CriterionName::DfpcNameOrder),
    ) {
        (Some(graph_order), Some(name_order)) => Some(agreement(arch, graph_order, name_order)),
        _ => None,
    };
    Ok((timings, agreement))
}

fn agreement(arch: &str, a: &CriterionScores, b: &CriterionScores) -> OrderAgreement {
    let all = |s: &CriterionScores| -> Vec<f64> {
        s.dfcs.iter().flat_map(|d| d.scores.clone()).collect()
    };
    let (all_a, all_b) = (all(a), all(b));
    let mut worst = (f64::INFINITY, String::new());
    let mut differing = 0;
    for (da, db) in a.dfcs.iter().zip(&b.dfcs) {
        if da.scores != db.scores {
            differing += 1;
            let rho = spearman(&da.scores, &db.scores);
            if rho < worst.0 {
                worst = (rho, da.dfc.clone());
            }
        }
    }
    if differing == 0 {
        worst = (1.0, String::new());
    }
    let lowest = |v: &[f64]| -> Vec<usize> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        order.truncate(v.len() / 10);
        order.sort_unstable();
        order
    };
    let (low_a, low_b) = (lowest(&all_a), lowest(&all_b));
    let shared = low_a
        .iter()
        .filter(|i| low_b.binary_search(i).is_ok())
        .count();
    OrderAgreement {
        model: arch.to_string(),
        spearman_all: spearman(&all_a, &all_b),
        dfcs_differing: differing,
        dfcs: a.dfcs.len(),
        spearman_worst_dfc: worst.0,
        worst_dfc: worst.1,
        lowest_tenth_shared: shared as f64 / low_a.len().max(1) as f64,
    }
}
