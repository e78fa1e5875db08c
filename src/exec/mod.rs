//! The executor: one loop over a range of nodes, with a tap that sees (and may replace) every
//! node's output.
//!
//! Training, evaluation, per-node timing, channel masks, activation capture and gradient gates
//! are all this loop with a different [`Tap`]. A range may start anywhere: [`Graph::live_at`]
//! says which values must be given to start at a cut, so the oracle runs a network's prefix
//! once and its suffix many times.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use candle_core::Tensor;

mod backward;
mod compute;
mod fusion;
mod taps;

pub use backward::{forward_for_backward, Gradients, Tape};
use compute::compute;
use fusion::{fusion_at, Fusion};
pub use taps::{ChannelMask, Gates};

use crate::graph::{BatchStats, Params};
use crate::graph::{Graph, GraphError, Op};

/// Which statistics BatchNorm normalises with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchNormStats {
    /// The batch's own (training); each BatchNorm reports them in [`Run::batch_stats`].
    Batch,
    /// The running statistics (evaluation, scoring).
    Running,
}

/// How a range is run: the two halves are independent (scoring with gradients wants running
/// statistics; second-order criteria want tracked parameters with running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub batch_norm: BatchNormStats,
    /// Parameters stay attached to autograd; otherwise they enter the graph detached, and no
    /// gradient is computed for them.
    pub track_params: bool,
}

impl Mode {
    pub const TRAIN: Mode = Mode {
        batch_norm: BatchNormStats::Batch,
        track_params: true,
    };
    pub const EVAL: Mode = Mode {
        batch_norm: BatchNormStats::Running,
        track_params: false,
    };
}

/// Sees every node's output as the loop produces it, and returns what the rest of the graph
/// sees: the value unchanged (timing, capture), zeroed in some channels (masks) or multiplied
/// by a gate variable (gradients with respect to activations).
pub trait Tap {
    /// Whether the tap needs node `node`'s own output. Where it does not, the executor may run
    /// the node inside the one after it (a training BatchNorm inside its ReLU, or inside its
    /// residual add and ReLU), and the tap sees only the last node's output.
    fn sees(&self, _node: usize) -> bool {
        true
    }
    /// Called before node `node` runs.
    fn before(&mut self, _node: usize) {}
    /// Called with node `node`'s output.
    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError>;
}

/// The tap that changes nothing.
pub struct NoTap;

impl Tap for NoTap {
    fn sees(&self, _node: usize) -> bool {
        false
    }

    fn after(&mut self, _node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        Ok(value)
    }
}

/// The values live at a cut of the graph, by node index.
#[derive(Debug, Clone, Default)]
pub struct Live(pub BTreeMap<usize, Tensor>);

impl Live {
    /// What a run from node 0 starts from: the network input `[N, C, H, W]`.
    pub fn input(x: Tensor) -> Self {
        Self([(0, x)].into())
    }

    /// The output node's value, once a run has reached the end of the graph.
    pub fn into_output(mut self, graph: &Graph) -> Result<Tensor, GraphError> {
        self.0
            .remove(&graph.output())
            .ok_or_else(|| GraphError::Invalid("the run did not reach the output node".into()))
    }
}

/// What [`run`] returns.
pub struct Run {
    /// The values live after the range ([`Graph::live_at`] of its end).
    pub live: Live,
    /// One entry per BatchNorm run with batch statistics.
    pub batch_stats: Vec<BatchStats>,
}

/// What a whole forward pass returns.
pub struct Forward {
    /// The output node's value, e.g. logits `[N, classes]`.
    pub output: Tensor,
    /// One entry per BatchNorm run with batch statistics; empty in evaluation mode.
    pub batch_stats: Vec<BatchStats>,
}

/// Runs `graph` on `x` (`[N, C, H, W]`). Intermediate values are dropped after their last use.
pub fn forward(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
    mode: Mode,
) -> Result<Forward, GraphError> {
    let done = run(
        graph,
        params,
        Live::input(x.clone()),
        0..graph.nodes.len(),
        mode,
        &mut NoTap,
    )?;
    Ok(Forward {
        output: done.live.into_output(graph)?,
        batch_stats: done.batch_stats,
    })
}

/// An evaluation-mode forward pass that also reports each node's wall time (index = node
/// index). The device is synchronised after every node, so on a GPU each time is the node's
/// own; on the CPU every op already finishes before the next starts.
pub fn forward_timed(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
) -> Result<(Tensor, Vec<Duration>), GraphError> {
    let mut timer = Timer {
        times: vec![Duration::ZERO; graph.nodes.len()],
        started: Instant::now(),
    };
    let range = 0..graph.nodes.len();
    let done = run(
        graph,
        params,
        Live::input(x.clone()),
        range,
        Mode::EVAL,
        &mut timer,
    )?;
    Ok((done.live.into_output(graph)?, timer.times))
}

struct Timer {
    times: Vec<Duration>,
    started: Instant,
}

impl Tap for Timer {
    fn before(&mut self, _node: usize) {
        self.started = Instant::now();
    }

    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        value.device().synchronize()?;
        self.times[node] = self.started.elapsed();
        Ok(value)
    }
}

/// Runs the nodes in `range`, starting from `live` (the values [`Graph::live_at`] names for
/// `range.start`; [`Live::input`] for a range starting at 0), and returns the values live after
/// it. Every node's output passes through `tap`.
pub fn run(
    graph: &Graph,
    params: &Params,
    live: Live,
    range: Range<usize>,
    mode: Mode,
    tap: &mut dyn Tap,
) -> Result<Run, GraphError> {
    run_recording(graph, params, live, range, mode, tap, None)
}

/// [`run`], which also records in `tape` (where given) what each node's backward pass needs.
fn run_recording(
    graph: &Graph,
    params: &Params,
    live: Live,
    range: Range<usize>,
    mode: Mode,
    tap: &mut dyn Tap,
    mut tape: Option<&mut Tape>,
) -> Result<Run, GraphError> {
    if range.start > range.end || range.end > graph.nodes.len() {
        return Err(GraphError::Invalid(format!(
            "cannot run nodes {range:?} of a graph of {} nodes",
            graph.nodes.len()
        )));
    }
    let last_uses = graph.last_uses();
    let readers = graph.reader_counts();
    let output = graph.output();
    let mut values: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
    for (i, value) in live.0 {
        if i < values.len() {
            values[i] = Some(value);
        }
    }
    let mut batch_stats = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let node = &graph.nodes[i];
        tap.before(i);
        let fusion =
            fusion_at(graph, i, range.end, (&last_uses, &readers), tap, mode).filter(|fusion| {
                // A fused convolution has no gradient: only where none flows through it.
                let tracked = |j: &usize| values[*j].as_ref().is_some_and(Tensor::track_op);
                !matches!(node.op, Op::Conv2d { .. })
                    || !node.inputs.iter().chain(&fusion.residual()).any(tracked)
            });
        let last = i + fusion.map_or(0, Fusion::nodes);
        let value = if let Op::Input { .. } = node.op {
            values[i].take().ok_or_else(|| {
                GraphError::Invalid(format!("the input node {} was given no value", node.name))
            })?
        } else {
            let inputs: Vec<&Tensor> = node
                .inputs
                .iter()
                .chain(&fusion.and_then(Fusion::residual))
                .map(|&j| {
                    values[j].as_ref().ok_or_else(|| {
                        GraphError::Invalid(format!(
                            "node {} reads node {}, which is not live here (start the range with Graph::live_at)",
                            node.name, graph.nodes[j].name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            let seen = batch_stats.len();
            let value = compute(graph, params, i, &inputs, mode, fusion, &mut batch_stats)
                .map_err(|e| named(graph, i, e))?;
            if let Some(tape) = tape.as_deref_mut() {
                tape.record(i, fusion, &inputs, &value, batch_stats.get(seen));
            }
            value
        };
        let value = tap.after(last, value).map_err(|e| named(graph, last, e))?;
        values[last] = Some(value);
        for n in i..=last {
            for &j in &graph.nodes[n].inputs {
                if last_uses[j] == n && j != output {
                    values[j] = None;
                }
            }
        }
        i = last + 1;
    }
    let after: BTreeMap<usize, Tensor> = graph
        .live_at(range.end)
        .into_iter()
        .filter_map(|j| values[j].take().map(|v| (j, v)))
        .collect();
    Ok(Run {
        live: Live(after),
        batch_stats,
    })
}

/// Prefixes an error with the node it happened at.
fn named(graph: &Graph, i: usize, error: GraphError) -> GraphError {
    let node = &graph.nodes[i];
    match error {
        GraphError::Invalid(why) if why.starts_with("node ") => GraphError::Invalid(why),
        other => GraphError::Invalid(format!("node {} ({}): {other}", node.name, node.op.kind())),
    }
}

#[cfg(test)]
mod tests;
