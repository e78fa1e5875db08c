//! What one node computes from its inputs: each op of the IR on candle tensors, with our
//! kernels where they exist, and the nodes the executor runs inside it ([`Fusion`]).

use candle_core::{Tensor, D};

use super::fusion::Fusion;
use super::{BatchNormStats, Mode};
use crate::graph::GraphError;
use crate::graph::{BatchStats, Params};
use crate::graph::{Graph, Op};
use crate::kernels;
use crate::kernels::batch_norm::batch_norm_train;
use crate::kernels::then::Then;

/// One node's output from its inputs.
pub(super) fn compute(
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
                    kernels::conv2d_bias_then(x, &w, &b, stride, padding, groups, then)?
                }
                (false, true) => {
                    return Err(GraphError::Invalid("a fused ReLU needs a bias".into()))
                }
                (true, false) => {
                    let y = kernels::conv2d(x, &w, stride, padding, groups)?;
                    kernels::add_channel_bias(&y, &param("bias")?)?
                }
                (false, false) => kernels::conv2d(x, &w, stride, padding, groups)?,
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
        Op::Relu => kernels::relu(x)?,
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
        // Inference (running statistics, no gradient) runs our loop; training keeps candle's
        // matmul, whose gradients the executor's backward pass matches.
        Op::Linear { bias, .. } if mode == Mode::EVAL && !x.track_op() => {
            let b = if bias { Some(param("bias")?) } else { None };
            kernels::linear(x, &param("weight")?, b.as_ref())?
        }
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
