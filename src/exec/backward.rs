//! The executor's own backward pass, for training.
//!
//! candle's autograd keeps every value of the forward pass until its backward pass ends, and
//! starts each gradient as zeros to add to. Here the forward pass records, node by node, what
//! the node's gradient needs (its inputs, its output, a BatchNorm's statistics), and the
//! backward pass walks that record in reverse: each node's values are dropped as soon as its
//! gradients are out, as in PyTorch, and a gradient that reaches a value twice (a residual
//! branch) is one add. Convolutions, BatchNorms (with the ReLU or residual add run inside
//! them), ReLUs and adds use our kernels' gradients directly; any other node, or one off the
//! CPU, is recomputed from its saved inputs under candle's autograd.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::compute::compute;
use super::fusion::Fusion;
use super::{run_recording, BatchNormStats, Forward, Live, Mode, NoTap};
use crate::graph::GraphError;
use crate::graph::{BatchStats, Params};
use crate::graph::{Graph, Op};
use crate::kernels::batch_norm::{batch_norm_grads, ChannelStats};
use crate::kernels::channelwise::{channel_sum, relu_grad};
use crate::kernels::conv::{conv2d_grads, conv2d_grads_cover};

/// The trainable parameters' gradients, by parameter name.
#[derive(Debug, Default)]
pub struct Gradients(pub BTreeMap<String, Tensor>);

impl Gradients {
    /// The trainable parameters' gradients in a store of candle's autograd.
    pub fn from_autograd(params: &Params, store: &GradStore) -> Self {
        Self(
            (params.trainable.iter())
                .filter_map(|(name, var)| Some((name.clone(), store.get(var.as_tensor())?.clone())))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.get(name)
    }
}

/// What a forward pass recorded for its backward pass, node by node.
#[derive(Default)]
pub struct Tape {
    steps: Vec<Step>,
}

/// One node the forward pass computed, with the nodes it ran inside it.
struct Step {
    node: usize,
    fusion: Option<Fusion>,
    /// Its inputs: the node's own, then a fused add's residual.
    inputs: Vec<Tensor>,
    output: Tensor,
    /// A BatchNorm's batch statistics.
    stats: Option<ChannelStats>,
}

impl Step {
    /// The node whose output this step produced.
    fn last(&self) -> usize {
        self.node + self.fusion.map_or(0, Fusion::nodes)
    }
}

/// A training-mode forward pass (batch statistics) over the whole graph that builds no autograd
/// graph, and records what [`Tape::backward`] needs.
pub fn forward_for_backward(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
) -> Result<(Forward, Tape), GraphError> {
    let mode = Mode {
        batch_norm: BatchNormStats::Batch,
        track_params: false,
    };
    let mut tape = Tape::default();
    let range = 0..graph.nodes.len();
    let live = Live::input(x.detach());
    let done = run_recording(
        graph,
        params,
        live,
        range,
        mode,
        &mut NoTap,
        Some(&mut tape),
    )?;
    let forward = Forward {
        output: done.live.into_output(graph)?,
        batch_stats: done.batch_stats,
    };
    Ok((forward, tape))
}

/// One step's gradients: with respect to its inputs (in [`Step::inputs`]' order; `None`
/// where none is needed) and to its node's parameters, by name.
struct Local {
    inputs: Vec<Option<Tensor>>,
    params: Vec<(String, Tensor)>,
}

impl Tape {
    pub(super) fn record(
        &mut self,
        node: usize,
        fusion: Option<Fusion>,
        inputs: &[&Tensor],
        output: &Tensor,
        stats: Option<&BatchStats>,
    ) {
        self.steps.push(Step {
            node,
            fusion,
            inputs: inputs.iter().map(|&t| t.clone()).collect(),
            output: output.clone(),
            stats: stats.map(|s| s.normalised_with.clone()),
        });
    }

    /// The trainable parameters' gradients, from the gradient of the graph's output. Each step
    /// is dropped, and with it the values only it kept, once its gradients are out.
    pub fn backward(
        self,
        graph: &Graph,
        params: &Params,
        d_output: Tensor,
    ) -> Result<Gradients, GraphError> {
        let mut grads: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
        grads[graph.output()] = Some(d_output);
        let mut out = Gradients::default();
        for step in self.steps.into_iter().rev() {
            let Some(dy) = grads[step.last()].take() else {
                continue;
            };
            let local = match known(graph, params, &step, &dy, &mut grads)? {
                Some(local) => local,
                None => recomputed(graph, params, &step, &dy)?,
            };
            let node = &graph.nodes[step.node];
            let residual = step.fusion.and_then(Fusion::residual);
            for (&j, g) in node.inputs.iter().chain(&residual).zip(local.inputs) {
                if let Some(g) = g.filter(|_| wants_grad(graph, j)) {
                    grads[j] = Some(match grads[j].take() {
                        None => g,
                        Some(sum) => (sum + g)?,
                    });
                }
            }
            out.0.extend(local.params);
        }
        Ok(out)
    }
}

/// Every value but the network's input carries a gradient.
fn wants_grad(graph: &Graph, j: usize) -> bool {
    !matches!(graph.nodes[j].op, Op::Input { .. })
}

/// The gradients of the ops whose backward we have on the CPU; `None` for any other. A
/// convolution adds the gradient that already reached its input (`grads`) to its own.
fn known(
    graph: &Graph,
    params: &Params,
    step: &Step,
    dy: &Tensor,
    grads: &mut [Option<Tensor>],
) -> Result<Option<Local>, GraphError> {
    let node = &graph.nodes[step.node];
    let param = |suffix: &str| params.get(&format!("{}.{suffix}", node.name));
    let named = |suffix: &str, g: Tensor| (format!("{}.{suffix}", node.name), g);
    let on_cpu = dy.device().is_cpu() && dy.dtype() == DType::F32;
    // A fused add's residual receives the gradient behind the ReLU.
    let with_residual = |dx: Option<Tensor>, d_residual: Tensor| match step.fusion {
        Some(Fusion::AddRelu { .. }) => vec![dx, Some(d_residual)],
        _ => vec![dx],
    };
    Ok(Some(match node.op {
        Op::Conv2d {
            stride,
            padding,
            groups,
            bias,
            relu,
            ..
        } if on_cpu && conv2d_grads_cover(&step.inputs[0], param("weight")?) => {
            let dy = match relu || step.fusion.is_some() {
                true => relu_grad(dy, &step.output)?,
                false => dy.clone(),
            };
            let source = node.inputs[0];
            let plus = wants_grad(graph, source).then(|| grads[source].take());
            let (x, w, geometry) = (&step.inputs[0], param("weight")?, (stride, padding, groups));
            let (dx, dw) = conv2d_grads(
                x,
                w,
                &dy,
                geometry,
                (plus.as_ref().map(Option::as_ref), true),
            )?;
            let dw = dw.expect("the weight's gradient was asked for");
            let mut params = vec![named("weight", dw)];
            if bias {
                params.push(named("bias", channel_sum(&dy)?));
            }
            Local {
                inputs: with_residual(dx, dy),
                params,
            }
        }
        Op::BatchNorm { eps, .. } => {
            let Some(stats) = &step.stats else {
                return Ok(None);
            };
            let affine = (param("weight")?, param("bias")?);
            let relu = step.fusion.is_some();
            let x = &step.inputs[0];
            let Some([dx, d_affine, d_residual]) =
                batch_norm_grads(x, affine, stats, eps, relu, &step.output, dy)?
            else {
                return Ok(None);
            };
            Local {
                inputs: with_residual(Some(dx), d_residual),
                params: vec![
                    named("weight", d_affine.get(0)?),
                    named("bias", d_affine.get(1)?),
                ],
            }
        }
        Op::Relu if on_cpu => Local {
            inputs: vec![Some(relu_grad(dy, &step.output)?)],
            params: Vec::new(),
        },
        Op::Add => Local {
            inputs: vec![Some(dy.clone()); node.inputs.len()],
            params: Vec::new(),
        },
        _ => return Ok(None),
    }))
}

/// Any step's gradients, by running it again from its saved inputs under candle's autograd.
fn recomputed(
    graph: &Graph,
    params: &Params,
    step: &Step,
    dy: &Tensor,
) -> Result<Local, GraphError> {
    let vars: Vec<Var> = step
        .inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<Result<_, _>>()?;
    let inputs: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
    let y = compute(
        graph,
        params,
        step.node,
        &inputs,
        Mode::TRAIN,
        step.fusion,
        &mut Vec::new(),
    )?;
    let store = (y * dy)?.sum_all()?.backward()?;
    let prefix = format!("{}.", graph.nodes[step.node].name);
    let own = |name: &String| name.strip_prefix(&prefix).is_some_and(|s| !s.contains('.'));
    Ok(Local {
        inputs: vars.iter().map(|v| store.get(v).cloned()).collect(),
        params: (params.trainable.iter())
            .filter(|(name, _)| own(name))
            .filter_map(|(name, var)| Some((name.clone(), store.get(var)?.clone())))
            .collect(),
    })
}
