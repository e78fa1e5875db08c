//! The data pass: one run of the network over the scoring images that records everything the
//! data-driven criteria read, so that all of them together cost one pass.
//!
//! A DFC's channels are observed where its consumers read them (its *observation nodes*):
//! after the ReLU in a ResNet block, at the linear bottleneck's output in MobileNetV2, at the
//! flattened features before a classifier. Zeroing a channel at all its observation nodes is
//! what removing it does. At each observation node the pass keeps per-channel sums over
//! examples and positions (for `act-mean`, `act-std`, `apoz`) and per-class moments of each
//! example's spatial mean (for `tvs`). With gradients, each observation node is multiplied by
//! a gate of ones ([`Gates`]); per example, the sum over a DFC's observation nodes of the gate
//! gradients, Σ_nodes Σ_hw a·∂ℓ_n/∂a, is the first-order change of the example's loss when the
//! channel is removed (`taylor`, `obd`). BatchNorm uses its running statistics throughout.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Tensor};

use super::SaliencyError;
use crate::data::Batch;
use crate::exec::{run, BatchNormStats, Gates, Live, Mode, Tap};
use crate::graph::{Coupling, Graph, GraphError, Params};

/// The distinct nodes `dfc`'s consumers read, in graph order.
pub fn observation_nodes(graph: &Graph, dfc: &Coupling) -> Vec<usize> {
    let nodes: BTreeSet<usize> = dfc
        .consumers
        .iter()
        .map(|&c| dfc.consumer_input(graph, c))
        .collect();
    nodes.into_iter().collect()
}

/// Per-channel sums at one observation node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// Values seen per channel: examples × spatial positions.
    pub values: f64,
    pub sum: Vec<f64>,
    pub sum_of_squares: Vec<f64>,
    /// Values ≤ 0 (those a ReLU zeroes, or has zeroed).
    pub non_positive: Vec<f64>,
    /// Per class: the examples seen, and per channel the sum of each example's spatial mean
    /// and of its square.
    pub class_examples: Vec<f64>,
    pub class_sum: Vec<Vec<f64>>,
    pub class_sum_of_squares: Vec<Vec<f64>>,
}

/// Per-example first-order loss changes of a DFC's channels, accumulated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateStats {
    pub examples: f64,
    /// Σ_n |g_nj|, with g_nj = Σ over observation nodes of Σ_hw a·∂ℓ_n/∂a.
    pub abs_sum: Vec<f64>,
    /// Σ_n g_nj².
    pub square_sum: Vec<f64>,
}

/// What one data pass recorded.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub images: usize,
    pub nodes: BTreeMap<usize, NodeStats>,
    /// One per DFC (in the order given to [`observe`]); empty without gradients.
    pub gates: Vec<GateStats>,
}

/// Runs `graph` over `batches` once, recording the statistics of every DFC's observation
/// nodes, and with `gradients` the gate gradients of the per-example cross-entropy.
pub fn observe(
    graph: &Graph,
    params: &Params,
    dfcs: &[Coupling],
    classes: usize,
    gradients: bool,
    batches: impl IntoIterator<Item = Result<Batch, SaliencyError>>,
) -> Result<Observations, SaliencyError> {
    let observed: Vec<Vec<usize>> = dfcs.iter().map(|d| observation_nodes(graph, d)).collect();
    let all: BTreeSet<usize> = observed.iter().flatten().copied().collect();
    let mut out = Observations {
        gates: if gradients {
            dfcs.iter().map(|_| GateStats::default()).collect()
        } else {
            Vec::new()
        },
        ..Observations::default()
    };
    let mode = Mode {
        batch_norm: BatchNormStats::Running,
        track_params: false,
    };
    for batch in batches {
        let batch = batch?;
        let labels: Vec<u32> = batch.labels.to_vec1()?;
        let mut tap = Recorder {
            nodes: &all,
            stats: &mut out.nodes,
            labels: &labels,
            classes,
            gates: gradients.then(|| Gates::new(all.iter().copied())),
        };
        let done = run(
            graph,
            params,
            Live::input(batch.images),
            0..graph.nodes.len(),
            mode,
            &mut tap,
        )?;
        out.images += labels.len();
        let Some(gates) = tap.gates else { continue };
        let logits = done.live.into_output(graph)?;
        // The sum of per-example losses: each example's gate gradient is ∂ℓ_n/∂gate_n.
        let loss = (candle_nn::loss::cross_entropy(&logits, &batch.labels)? * labels.len() as f64)?;
        let grads = gates.gradients(&loss.backward()?)?;
        for (nodes, acc) in observed.iter().zip(&mut out.gates) {
            let mut total: Option<Tensor> = None;
            for node in nodes {
                let g = grads[node].to_dtype(DType::F64)?;
                total = Some(match total {
                    Some(t) => (t + g)?,
                    None => g,
                });
            }
            let Some(total) = total else { continue };
            let abs: Vec<f64> = total.abs()?.sum(0)?.to_vec1()?;
            let square: Vec<f64> = total.sqr()?.sum(0)?.to_vec1()?;
            add_into(&mut acc.abs_sum, &abs);
            add_into(&mut acc.square_sum, &square);
            acc.examples += labels.len() as f64;
        }
    }
    Ok(out)
}

fn add_into(acc: &mut Vec<f64>, values: &[f64]) {
    if acc.is_empty() {
        acc.resize(values.len(), 0.0);
    }
    acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
}

/// The tap of the data pass: records observation nodes, then gates them.
struct Recorder<'a> {
    nodes: &'a BTreeSet<usize>,
    stats: &'a mut BTreeMap<usize, NodeStats>,
    labels: &'a [u32],
    classes: usize,
    gates: Option<Gates>,
}

impl Tap for Recorder<'_> {
    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        if !self.nodes.contains(&node) {
            return Ok(value);
        }
        record(
            self.stats.entry(node).or_default(),
            &value.detach(),
            self.labels,
            self.classes,
        )?;
        match &mut self.gates {
            Some(gates) => gates.after(node, value),
            None => Ok(value),
        }
    }
}

/// Adds one batch's activation (`[N, C, H, W]` or `[N, C]`) to `stats`.
fn record(
    stats: &mut NodeStats,
    value: &Tensor,
    labels: &[u32],
    classes: usize,
) -> Result<(), GraphError> {
    let (n, c) = (value.dim(0)?, value.dim(1)?);
    let x = value.to_dtype(DType::F64)?.reshape((n, c, ()))?;
    let positions = x.dim(2)?;
    let means: Vec<Vec<f64>> = x.mean(2)?.to_vec2()?;
    if stats.sum.is_empty() {
        *stats = NodeStats {
            sum: vec![0.0; c],
            sum_of_squares: vec![0.0; c],
            non_positive: vec![0.0; c],
            class_examples: vec![0.0; classes],
            class_sum: vec![vec![0.0; c]; classes],
            class_sum_of_squares: vec![vec![0.0; c]; classes],
            ..NodeStats::default()
        };
    }
    stats.values += (n * positions) as f64;
    add_into(
        &mut stats.sum_of_squares,
        &x.sqr()?.sum(2)?.sum(0)?.to_vec1::<f64>()?,
    );
    let non_positive = x.le(0.0)?.to_dtype(DType::F64)?.sum(2)?.sum(0)?;
    add_into(&mut stats.non_positive, &non_positive.to_vec1::<f64>()?);
    for (example, &label) in means.iter().zip(labels) {
        let class = label as usize;
        stats.class_examples[class] += 1.0;
        for (j, &m) in example.iter().enumerate() {
            stats.sum[j] += m * positions as f64;
            stats.class_sum[class][j] += m;
            stats.class_sum_of_squares[class][j] += m * m;
        }
    }
    Ok(())
}
