//! Running a graph on candle tensors, in training or evaluation mode.

use std::time::{Duration, Instant};

use candle_core::{Tensor, D};

use super::batch_norm::batch_norm_train;
use super::ir::{Graph, Op};
use super::params::{BatchStats, Params};
use super::GraphError;

/// Training mode normalises with batch statistics and reports them; evaluation mode uses the
/// running statistics and builds no autograd graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a forward pass returns.
pub struct Forward {
    /// The output node's value, e.g. logits `[N, classes]`.
    pub output: Tensor,
    /// One entry per BatchNorm in training mode; empty in evaluation mode.
    pub batch_stats: Vec<BatchStats>,
}

/// Runs `graph` on `x` (`[N, C, H, W]`). Intermediate values are dropped after their last use.
pub fn forward(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
    mode: Mode,
) -> Result<Forward, GraphError> {
    execute(graph, params, x, mode, None)
}

/// An evaluation-mode forward pass that also reports each node's wall time (index = node
/// index). The device is synchronised after every node, so on a GPU each time is the node's
/// own; on the CPU every op already finishes before the next starts.
pub fn forward_timed(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
) -> Result<(Tensor, Vec<Duration>), GraphError> {
    let mut times = vec![Duration::ZERO; graph.nodes.len()];
    let mut record = |i: usize, t: Duration| times[i] = t;
    let output = execute(graph, params, x, Mode::Eval, Some(&mut record))?.output;
    Ok((output, times))
}

fn execute(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
    mode: Mode,
    mut on_node: Option<&mut dyn FnMut(usize, Duration)>,
) -> Result<Forward, GraphError> {
    let last_uses = graph.last_uses();
    let output = graph.output();
    let mut values: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
    let mut batch_stats = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let started = Instant::now();
        let input = |k: usize| -> Result<&Tensor, GraphError> {
            values[node.inputs[k]].as_ref().ok_or_else(|| {
                GraphError::Invalid(format!("node {}: input freed too early", node.name))
            })
        };
        let param = |suffix: &str| -> Result<Tensor, GraphError> {
            let t = params.get(&format!("{}.{suffix}", node.name))?;
            Ok(if mode == Mode::Eval {
                t.detach()
            } else {
                t.clone()
            })
        };
        let value = match node.op {
            Op::Input { .. } => x.clone(),
            Op::Conv2d {
                stride,
                padding,
                groups,
                bias: true,
                relu: true,
                ..
            } => super::conv2d_bias_relu(
                input(0)?,
                &param("weight")?,
                &param("bias")?,
                stride,
                padding,
                groups,
                true,
            )?,
            Op::Conv2d {
                bias: false,
                relu: true,
                ..
            } => {
                return Err(GraphError::Invalid(format!(
                    "node {}: a fused ReLU needs a bias",
                    node.name
                )))
            }
            Op::Conv2d {
                stride,
                padding,
                groups,
                bias,
                relu: false,
                ..
            } => {
                let y = super::conv2d(input(0)?, &param("weight")?, stride, padding, groups)?;
                if bias {
                    super::add_channel_bias(&y, &param("bias")?)?
                } else {
                    y
                }
            }
            Op::BatchNorm { eps, momentum, .. } => {
                let (gamma, beta) = (param("weight")?, param("bias")?);
                match mode {
                    Mode::Train => {
                        let (y, stats) = batch_norm_train(input(0)?, &gamma, &beta, eps)?;
                        batch_stats.push(BatchStats::from_channel_stats(
                            node.name.clone(),
                            momentum,
                            stats,
                            x.device(),
                        )?);
                        y
                    }
                    Mode::Eval => batch_norm_eval(
                        input(0)?,
                        &gamma,
                        &beta,
                        &param("running_mean")?,
                        &param("running_var")?,
                        eps,
                    )?,
                }
            }
            Op::Relu => super::relu(input(0)?)?,
            Op::Add => {
                let mut sum = input(0)?.clone();
                for k in 1..node.inputs.len() {
                    sum = (sum + input(k)?)?;
                }
                sum
            }
            Op::MaxPool { kernel, stride } => input(0)?.max_pool2d_with_stride(kernel, stride)?,
            Op::AvgPool { kernel, stride } => input(0)?.avg_pool2d_with_stride(kernel, stride)?,
            Op::GlobalAvgPool => input(0)?.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?,
            Op::Flatten => input(0)?.flatten_from(1)?,
            Op::Linear { bias, .. } => {
                let y = input(0)?.matmul(&param("weight")?.t()?)?;
                if bias {
                    y.broadcast_add(&param("bias")?)?
                } else {
                    y
                }
            }
        };
        if let Some(record) = on_node.as_mut() {
            value.device().synchronize()?;
            record(i, started.elapsed());
        }
        values[i] = Some(value);
        for &j in &node.inputs {
            if last_uses[j] == i && j != output {
                values[j] = None;
            }
        }
    }
    let output = values[output]
        .take()
        .expect("the output node was computed last");
    Ok(Forward {
        output,
        batch_stats,
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

    #[test]
    fn a_timed_forward_pass_computes_the_same_output_and_times_every_node() {
        let graph = crate::models::build("resnet8", 3, 16, 10).unwrap();
        let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
        let plain = forward(&graph, &params, &x, Mode::Eval).unwrap().output;
        let (timed, times) = forward_timed(&graph, &params, &x).unwrap();
        let diff = (plain - timed).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        assert_eq!(times.len(), graph.nodes.len());
        let conv = graph
            .nodes
            .iter()
            .position(|n| n.name == "layer1.0.conv1")
            .unwrap();
        assert!(times[conv] > Duration::ZERO);
    }
}
