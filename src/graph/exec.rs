//! The executor: one loop over a range of nodes, with a tap that sees (and may replace) every
//! node's output.
//!
//! Training, evaluation, per-node timing, channel masks, activation capture and gradient gates
//! are all this loop with a different [`Tap`]. A range may start anywhere: [`Graph::live_at`]
//! says which values must be given to start at a cut, so the oracle runs a network's prefix
//! once and its suffix many times.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use candle_core::{Tensor, D};

mod fusion;

use fusion::{fusion_at, Fusion};

use super::batch_norm::batch_norm_train;
use super::ir::{Graph, Op};
use super::params::{BatchStats, Params};
use super::then::Then;
use super::GraphError;

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
            compute(graph, params, i, &inputs, mode, fusion, &mut batch_stats)
                .map_err(|e| named(graph, i, e))?
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

/// One node's output from its inputs.
fn compute(
    graph: &Graph,
    params: &Params,
    i: usize,
    inputs: &[&Tensor],
    mode: Mode,
    fusion: Option<Fusion>,
    batch_stats: &mut Vec<BatchStats>,
) -> Result<Tensor, GraphError> {
    let node = &graph.nodes[i];
    let param = |suffix: &str| -> Result<Tensor, GraphError> {
        let t = params.get(&format!("{}.{suffix}", node.name))?;
        Ok(if mode.track_params {
            t.clone()
        } else {
            t.detach()
        })
    };
    let x = inputs[0];
    Ok(match node.op {
        Op::Input { .. } => unreachable!("the loop takes the input from the live values"),
        Op::Conv2d {
            stride,
            padding,
            groups,
            bias,
            relu,
            ..
        } => {
            let w = param("weight")?;
            let then = match (fusion, relu) {
                (Some(Fusion::AddRelu { .. }), _) => Then::AddRelu(inputs[1]),
                (Some(Fusion::Relu), _) | (None, true) => Then::Relu,
                (None, false) => Then::Nothing,
            };
            // Where no gradient flows through it, the bias (and what follows) runs inside.
            let inside = relu || fusion.is_some() || (bias && !mode.track_params && !x.track_op());
            match (bias, inside) {
                (true, true) => {
                    let b = param("bias")?;
                    super::conv2d_bias_then(x, &w, &b, stride, padding, groups, then)?
                }
                (false, true) => {
                    return Err(GraphError::Invalid("a fused ReLU needs a bias".into()))
                }
                (true, false) => {
                    let y = super::conv2d(x, &w, stride, padding, groups)?;
                    super::add_channel_bias(&y, &param("bias")?)?
                }
                (false, false) => super::conv2d(x, &w, stride, padding, groups)?,
            }
        }
        Op::BatchNorm { eps, momentum, .. } => {
            let (gamma, beta) = (param("weight")?, param("bias")?);
            match mode.batch_norm {
                BatchNormStats::Batch => {
                    let then = match fusion {
                        None => Then::Nothing,
                        Some(Fusion::Relu) => Then::Relu,
                        Some(Fusion::AddRelu { .. }) => Then::AddRelu(inputs[1]),
                    };
                    let (y, stats) = batch_norm_train(x, &gamma, &beta, eps, then)?;
                    batch_stats.push(BatchStats::from_channel_stats(
                        node.name.clone(),
                        momentum,
                        stats,
                        x.device(),
                    )?);
                    y
                }
                BatchNormStats::Running => batch_norm_eval(
                    x,
                    &gamma,
                    &beta,
                    &param("running_mean")?,
                    &param("running_var")?,
                    eps,
                )?,
            }
        }
        Op::Relu => super::relu(x)?,
        Op::Add => {
            let mut sum = x.clone();
            for other in &inputs[1..] {
                sum = (sum + *other)?;
            }
            sum
        }
        Op::MaxPool { kernel, stride } => x.max_pool2d_with_stride(kernel, stride)?,
        Op::AvgPool { kernel, stride } => x.avg_pool2d_with_stride(kernel, stride)?,
        Op::GlobalAvgPool => x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?,
        Op::Flatten => x.flatten_from(1)?,
        Op::Linear { bias, .. } => {
            let y = x.matmul(&param("weight")?.t()?)?;
            if bias {
                y.broadcast_add(&param("bias")?)?
            } else {
                y
            }
        }
    })
}

/// Evaluation-mode BN as one per-channel affine map.
fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Result<Tensor, GraphError> {
    let scale = gamma.div(&(var + eps)?.sqrt()?)?;
    let shift = (beta - mean.mul(&scale)?)?;
    let c = scale.dim(0)?;
    Ok(x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
        .broadcast_add(&shift.reshape((1, c, 1, 1))?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn resnet8() -> (Graph, Params, Tensor) {
        let graph = crate::models::build("resnet8", 3, 16, 10).unwrap();
        let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
        (graph, params, x)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn a_timed_forward_pass_computes_the_same_output_and_times_every_node() {
        let (graph, params, x) = resnet8();
        let plain = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
        let (timed, times) = forward_timed(&graph, &params, &x).unwrap();
        assert_eq!(max_diff(&plain, &timed), 0.0);
        assert_eq!(times.len(), graph.nodes.len());
        let conv = graph
            .nodes
            .iter()
            .position(|n| n.name == "layer1.0.conv1")
            .unwrap();
        assert!(times[conv] > Duration::ZERO);
    }

    #[test]
    fn a_range_missing_a_live_value_names_the_node_that_reads_it() {
        let (graph, params, x) = resnet8();
        let err = run(
            &graph,
            &params,
            Live::input(x),
            3..6,
            Mode::EVAL,
            &mut NoTap,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("which is not live here"), "{err}");
        assert!(err.contains(&graph.nodes[3].name), "{err}");
    }

    #[test]
    fn tracking_parameters_is_independent_of_the_batch_norm_statistics() {
        let (graph, params, x) = resnet8();
        let mode = Mode {
            batch_norm: BatchNormStats::Running,
            track_params: true,
        };
        let tracked = forward(&graph, &params, &x, mode).unwrap();
        assert!(tracked.batch_stats.is_empty());
        let eval = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
        assert_eq!(max_diff(&tracked.output, &eval), 0.0);
        let grads = tracked.output.sum_all().unwrap().backward().unwrap();
        let w = &params.trainable["linear.weight"];
        assert!(grads.get(w.as_tensor()).is_some());
        let untracked = eval.sum_all().unwrap();
        assert!(untracked.backward().unwrap().get(w.as_tensor()).is_none());
    }

    /// Counts the outputs it is shown; `watch` says whether it needs every node's own.
    struct Counter {
        watch: bool,
        shown: Vec<usize>,
    }

    impl Tap for Counter {
        fn sees(&self, _node: usize) -> bool {
            self.watch
        }

        fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
            self.shown.push(node);
            Ok(value)
        }
    }

    #[test]
    fn batch_norm_run_inside_its_relu_and_residual_add_computes_the_same_values_and_gradients() {
        let (graph, params, x) = resnet8();
        let train = |watch: bool| {
            let mut tap = Counter {
                watch,
                shown: Vec::new(),
            };
            let range = 0..graph.nodes.len();
            let done = run(
                &graph,
                &params,
                Live::input(x.clone()),
                range,
                Mode::TRAIN,
                &mut tap,
            );
            let done = done.unwrap();
            let output = done.live.into_output(&graph).unwrap();
            let grads = output.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let grads: Vec<Vec<f32>> = (params.trainable.values())
                .map(|v| {
                    grads
                        .get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect();
            let means: Vec<Tensor> = done.batch_stats.iter().map(|s| s.mean.clone()).collect();
            (output, grads, means, tap.shown)
        };
        let (fused, fused_grads, fused_means, shown) = train(false);
        let (plain, plain_grads, plain_means, all) = train(true);
        assert_eq!(all.len(), graph.nodes.len());
        // resnet8: the BNs followed by a ReLU run inside it; the last BN of the identity block
        // and the shortcut BNs of the two projection blocks run inside the add and its ReLU.
        // Only the projection blocks' second BNs, which their shortcut's nodes follow, remain.
        let kinds = |nodes: &[usize], kind: &str| {
            nodes
                .iter()
                .filter(|&&i| graph.nodes[i].op.kind() == kind)
                .count()
        };
        assert_eq!(kinds(&shown, "batch_norm"), 2);
        assert_eq!(kinds(&shown, "add"), 0);
        assert_eq!(kinds(&shown, "relu"), kinds(&all, "relu"));
        assert_eq!(max_diff(&fused, &plain), 0.0);
        assert_eq!(fused_grads, plain_grads);
        for (a, b) in fused_means.iter().zip(&plain_means) {
            assert_eq!(max_diff(a, b), 0.0);
        }
    }

    /// The output of a whole evaluation pass, and the nodes whose outputs a [`Counter`] was
    /// shown.
    fn evaluate_counting(
        graph: &Graph,
        params: &Params,
        x: &Tensor,
        watch: bool,
    ) -> (Tensor, Vec<usize>) {
        let mut tap = Counter {
            watch,
            shown: Vec::new(),
        };
        let live = Live::input(x.clone());
        let done = run(
            graph,
            params,
            live,
            0..graph.nodes.len(),
            Mode::EVAL,
            &mut tap,
        );
        (done.unwrap().live.into_output(graph).unwrap(), tap.shown)
    }

    #[test]
    fn an_inference_convolution_runs_its_residual_add_and_relu_inside() {
        let (graph, params, x) = resnet8();
        let (graph, params) = crate::graph::fuse_for_inference(&graph, &params).unwrap();
        let eval = |x: &Tensor, watch: bool| evaluate_counting(&graph, &params, x, watch);
        let adds = |shown: &[usize]| {
            (shown.iter())
                .filter(|&&i| matches!(graph.nodes[i].op, Op::Add))
                .count()
        };
        let (fused, shown) = eval(&x, false);
        let (plain, all) = eval(&x, true);
        assert_eq!(adds(&all), 3);
        assert_eq!(
            adds(&shown),
            0,
            "every add follows the convolution it reads last"
        );
        assert_eq!(max_diff(&fused, &plain), 0.0);
    }

    #[test]
    fn a_convolution_that_a_gradient_flows_through_keeps_its_add_outside() {
        let mut builder = crate::graph::GraphBuilder::new(4, 6, 6);
        let a = builder.conv_with_bias("a", 0, 4, 3, 1, 1).unwrap();
        let b = builder.conv_with_bias("b", a, 4, 3, 1, 1).unwrap();
        let sum = builder.add("add", b, a).unwrap();
        builder.relu("relu", sum).unwrap();
        let graph = builder.finish();
        let params = Params::init(&graph, 0, &candle_core::Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 6), &candle_core::Device::Cpu).unwrap();
        let eval = |x: &Tensor, watch: bool| evaluate_counting(&graph, &params, x, watch);
        let (fused, shown) = eval(&x, false);
        assert!(!shown.contains(&sum));
        let (plain, _) = eval(&x, true);
        assert_eq!(max_diff(&fused, &plain), 0.0);
        let input = candle_core::Var::from_tensor(&x).unwrap();
        let (output, shown) = eval(input.as_tensor(), false);
        assert!(shown.contains(&sum));
        assert_eq!(max_diff(&output, &plain), 0.0);
        let grads = output.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(input.as_tensor()).is_some());
    }
}
