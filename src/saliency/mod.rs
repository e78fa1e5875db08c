//! Saliency criteria: one score per channel of every DFC.
//!
//! A criterion scores one *member* of a DFC — a producer, a BatchNorm, a producer→consumer
//! pair, or the whole group — and the framework walks the members and combines their scores
//! with the configured [`Reduction`] (DFPC sums). One file per criterion, all behind
//! [`Criterion`].

#![forbid(unsafe_code)]

mod activation;
mod bn_scale;
mod dfpc;
mod norm;
mod obd;
mod observe;
mod oracle;
mod random;
pub(crate) mod registry;
mod store;
mod taylor;
mod tvs;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{CriterionName, Reduction};
use crate::graph::{couplings, ActShape, Coupling, Graph, GraphError, Op, Params};

pub use dfpc::PairOrder;
pub use observe::{observation_nodes, observe, GateStats, NodeStats, Observations};
pub use oracle::{clean_losses, example_losses, oracle, suffix_start, OracleImages, OracleOptions};
pub use store::{read_scores, write_scores, StoreError};
pub use tvs::hellinger_squared;

#[derive(Debug, thiserror::Error)]
pub enum SaliencyError {
    #[error("{criterion}: DFC {dfc}: {why}")]
    Unsupported {
        criterion: &'static str,
        dfc: String,
        why: String,
    },
    #[error("{criterion} reads images, but none were given")]
    NoData { criterion: &'static str },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What a criterion reads besides the weights. The data-free criteria need nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// Activations on training images.
    pub activations: bool,
    /// Gradients of the loss with respect to activations (gates) or parameters.
    pub gradients: bool,
    /// Class labels of the images.
    pub labels: bool,
}

/// Which members of a DFC a criterion scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Each producer.
    Producers,
    /// Each BatchNorm among the channel-wise members.
    BatchNorms,
    /// Each producer→consumer pair whose consumer is downstream of the producer, in `order`.
    Pairs(PairOrder),
    /// Each node where the DFC's consumers read its channels ([`observation_nodes`]).
    Observations,
    /// The DFC as one.
    Whole,
}

/// One scored member of a DFC (node indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Producer(usize),
    BatchNorm(usize),
    Pair { producer: usize, consumer: usize },
    Observed(usize),
    Whole,
}

/// What criteria read.
pub struct Inputs<'a> {
    pub graph: &'a Graph,
    pub params: &'a Params,
    /// Every node's activation shape.
    pub shapes: &'a [ActShape],
    /// Seed of the random criterion.
    pub seed: u64,
    /// What the data pass recorded, for the data-driven criteria.
    pub observations: Option<&'a Observations>,
}

pub trait Criterion: Sync {
    fn name(&self) -> &'static str;
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn unit(&self) -> Unit;
    /// One score per channel of `dfc` (the `index`-th DFC) for one of its members.
    fn score(
        &self,
        inputs: &Inputs,
        index: usize,
        dfc: &Coupling,
        member: Member,
    ) -> Result<Vec<f64>, SaliencyError>;
}

/// Declares [`criterion`] from the criteria's table.
macro_rules! criterion_values {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal => $make:expr,)*) => {
        /// The criterion a config names.
        pub fn criterion(name: CriterionName) -> Box<dyn Criterion> {
            match name {
                $(CriterionName::$variant => Box::new($make),)*
            }
        }
    };
}

registry::criteria!(criterion_values);

/// What the criteria named read, together: the data pass serves them all.
pub fn needs_of(names: &[CriterionName]) -> Needs {
    names.iter().fold(Needs::default(), |all, &c| {
        let n = criterion(c).needs();
        Needs {
            activations: all.activations || n.activations,
            gradients: all.gradients || n.gradients,
            labels: all.labels || n.labels,
        }
    })
}

/// One criterion's scores for every DFC of a graph, in the order of [`couplings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionScores {
    pub criterion: CriterionName,
    pub reduction: Reduction,
    pub dfcs: Vec<DfcScores>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DfcScores {
    /// The DFC's name: its first producer.
    pub dfc: String,
    pub coupled: bool,
    /// One score per channel.
    pub scores: Vec<f64>,
}

/// Scores every channel of `graph` with `name`, reducing coupled members with `reduction`.
/// Returns the scores and the time taken.
pub fn score(
    inputs: &Inputs,
    name: CriterionName,
    reduction: Reduction,
) -> Result<(CriterionScores, Duration), SaliencyError> {
    let started = Instant::now();
    let criterion = criterion(name);
    let found = couplings(inputs.graph)?;
    let mut dfcs = Vec::with_capacity(found.len());
    for (index, dfc) in found.iter().enumerate() {
        let members = members(inputs.graph, dfc, criterion.unit());
        if members.is_empty() {
            return Err(SaliencyError::Unsupported {
                criterion: criterion.name(),
                dfc: dfc.name(inputs.graph).to_string(),
                why: format!(
                    "it has no member this criterion scores ({:?})",
                    criterion.unit()
                ),
            });
        }
        let per_member: Vec<Vec<f64>> = {
            use rayon::prelude::*;
            members
                .par_iter()
                .map(|&m| criterion.score(inputs, index, dfc, m))
                .collect::<Result<_, _>>()?
        };
        dfcs.push(DfcScores {
            dfc: dfc.name(inputs.graph).to_string(),
            coupled: dfc.is_coupled(),
            scores: reduce(&per_member, reduction, dfc.channels),
        });
    }
    let scores = CriterionScores {
        criterion: name,
        reduction,
        dfcs,
    };
    Ok((scores, started.elapsed()))
}

/// The members of `dfc` that a criterion with this unit scores, in graph order.
fn members(graph: &Graph, dfc: &Coupling, unit: Unit) -> Vec<Member> {
    match unit {
        Unit::Producers => dfc.producers.iter().map(|&p| Member::Producer(p)).collect(),
        Unit::BatchNorms => dfc.batch_norms(graph).map(Member::BatchNorm).collect(),
        Unit::Whole => vec![Member::Whole],
        Unit::Observations => observation_nodes(graph, dfc)
            .into_iter()
            .map(Member::Observed)
            .collect(),
        Unit::Pairs(order) => {
            let mut pairs = Vec::new();
            for &producer in &dfc.producers {
                for &consumer in &dfc.consumers {
                    if order.downstream(graph, producer, consumer) {
                        pairs.push(Member::Pair { producer, consumer });
                    }
                }
            }
            pairs
        }
    }
}

/// Combines the members' scores channel by channel.
fn reduce(per_member: &[Vec<f64>], reduction: Reduction, channels: usize) -> Vec<f64> {
    (0..channels)
        .map(|j| {
            let values = per_member.iter().map(|s| s[j]);
            match reduction {
                Reduction::Sum => values.sum(),
                Reduction::Mean => values.sum::<f64>() / per_member.len() as f64,
                Reduction::Max => values.fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect()
}

/// A tensor as f64 values.
fn values(t: &candle_core::Tensor) -> Result<Vec<f64>, SaliencyError> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1()?)
}

/// A parameter of a node as f64 values.
fn param(
    inputs: &Inputs,
    dfc: &Coupling,
    node: usize,
    name: &str,
) -> Result<Vec<f64>, SaliencyError> {
    let slice = dfc
        .slices(inputs.graph)
        .into_iter()
        .find(|s| s.node == node && s.param == name)
        .ok_or_else(|| {
            GraphError::Invalid(format!(
                "node {} has no {name} slice in DFC {}",
                inputs.graph.nodes[node].name,
                dfc.name(inputs.graph)
            ))
        })?;
    values(slice.tensor(inputs.graph, inputs.params)?)
}

/// A BatchNorm's per-channel scale in evaluation mode, |γ| / √(running_var + ε).
fn batch_norm_scale(inputs: &Inputs, dfc: &Coupling, bn: usize) -> Result<Vec<f64>, SaliencyError> {
    let Op::BatchNorm { eps, .. } = inputs.graph.nodes[bn].op else {
        unreachable!("batch_norm_scale is given BatchNorm nodes");
    };
    let gamma = param(inputs, dfc, bn, "weight")?;
    let var = param(inputs, dfc, bn, "running_var")?;
    Ok(gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g.abs() / (v + eps).sqrt())
        .collect())
}

/// The data pass's statistics at the observation node `member`.
fn observed_node<'a>(
    criterion: &'static str,
    inputs: &Inputs<'a>,
    dfc: &Coupling,
    member: Member,
) -> Result<&'a NodeStats, SaliencyError> {
    let observations = inputs
        .observations
        .ok_or(SaliencyError::NoData { criterion })?;
    let Member::Observed(node) = member else {
        unreachable!("{criterion} scores observation nodes");
    };
    observations
        .nodes
        .get(&node)
        .ok_or_else(|| SaliencyError::Unsupported {
            criterion,
            dfc: dfc.name(inputs.graph).to_string(),
            why: format!(
                "the data pass did not observe node {}",
                inputs.graph.nodes[node].name
            ),
        })
}

/// The data pass's gate gradients of the `index`-th DFC.
fn gate_stats<'a>(
    criterion: &'static str,
    inputs: &Inputs<'a>,
    index: usize,
) -> Result<&'a GateStats, SaliencyError> {
    inputs
        .observations
        .and_then(|o| o.gates.get(index))
        .filter(|g| g.examples > 0.0)
        .ok_or(SaliencyError::NoData { criterion })
}
