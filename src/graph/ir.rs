//! The network as data: a topologically ordered list of nodes.
//!
//! Node `i` may only read nodes `< i`; the last node is the output. Parameters are not stored
//! here but in [`crate::graph::Params`], under `<node name>.<suffix>` (PyTorch names:
//! `layer3.4.conv2.weight`, `bn1.running_var`).

use serde::{Deserialize, Serialize};

use super::GraphError;

/// One operation. Shapes are PyTorch's: activations `[N, C, H, W]`, conv weights
/// `[out, in/groups, k, k]`, linear weights `[out, in]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// The network input, `[N, channels, height, width]`.
    Input {
        channels: usize,
        height: usize,
        width: usize,
    },
    /// Square-kernel convolution, dilation 1.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        /// One filter per channel (`groups = in = out`), recorded when the layer is built: a
        /// depthwise conv pruned to one channel stays channel-wise, while an ordinary conv with
        /// one input and one output channel stays channel-mixing.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        depthwise: bool,
        bias: bool,
        /// ReLU applied to the output inside the convolution. Only the inference form made by
        /// [`crate::graph::fuse_for_inference`] sets it (it needs `bias`); such a node has no
        /// gradient.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relu: bool,
    },
    /// Per-channel batch normalisation with PyTorch semantics (`momentum` weighs the new batch).
    BatchNorm {
        channels: usize,
        eps: f64,
        momentum: f64,
    },
    Relu,
    /// Element-wise sum of two or more inputs of one shape (a residual join).
    Add,
    /// Square max pooling without padding.
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    /// Square average pooling without padding.
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    /// Mean over the spatial positions: `[N, C, H, W]` → `[N, C, 1, 1]`.
    GlobalAvgPool,
    /// `[N, C, H, W]` → `[N, C·H·W]`.
    Flatten,
    /// `y = x Wᵀ + b`.
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
}

/// The shape of one example's activation (the batch dimension left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActShape {
    Map {
        channels: usize,
        height: usize,
        width: usize,
    },
    Vector(usize),
}

impl ActShape {
    /// The dimensions: `[C, H, W]` or `[n]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            ActShape::Map {
                channels,
                height,
                width,
            } => vec![channels, height, width],
            ActShape::Vector(n) => vec![n],
        }
    }

    pub fn channels(&self) -> usize {
        match *self {
            ActShape::Map { channels, .. } => channels,
            ActShape::Vector(n) => n,
        }
    }
}

/// Whether a parameter is learnt by the optimizer or only tracked (BN running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    Trainable,
    Buffer,
}

/// How a fresh parameter is filled (PyTorch's defaults for these models).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Kaiming normal, fan-out mode, ReLU gain: N(0, 2 / (out·k·k)).
    KaimingNormalFanOut,
    /// U(−1/√fan_in, 1/√fan_in), PyTorch's default for `nn.Linear`.
    UniformFanIn(usize),
    Constant(f32),
}

/// One named parameter a node needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    pub role: ParamRole,
    pub init: Init,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

impl Op {
    /// The parameters this op reads, in PyTorch's order.
    pub fn params(&self) -> Vec<ParamSpec> {
        use {Init::*, ParamRole::*};
        let spec = |suffix, shape, role, init| ParamSpec {
            suffix,
            shape,
            role,
            init,
        };
        match *self {
            Op::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                bias,
                ..
            } => {
                let mut p = vec![spec(
                    "weight",
                    vec![out_channels, in_channels / groups, kernel, kernel],
                    Trainable,
                    KaimingNormalFanOut,
                )];
                if bias {
                    p.push(spec("bias", vec![out_channels], Trainable, Constant(0.0)));
                }
                p
            }
            Op::BatchNorm { channels, .. } => vec![
                spec("weight", vec![channels], Trainable, Constant(1.0)),
                spec("bias", vec![channels], Trainable, Constant(0.0)),
                spec("running_mean", vec![channels], Buffer, Constant(0.0)),
                spec("running_var", vec![channels], Buffer, Constant(1.0)),
            ],
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut p = vec![spec(
                    "weight",
                    vec![out_features, in_features],
                    Trainable,
                    UniformFanIn(in_features),
                )];
                if bias {
                    p.push(spec(
                        "bias",
                        vec![out_features],
                        Trainable,
                        UniformFanIn(in_features),
                    ));
                }
                p
            }
            _ => Vec::new(),
        }
    }

    /// Short lowercase name for messages and tables.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Add => "add",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
        }
    }
}

impl Graph {
    pub fn output(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The input node's shape.
    pub fn input_shape(&self) -> Result<ActShape, GraphError> {
        match self.nodes.first().map(|n| &n.op) {
            Some(&Op::Input {
                channels,
                height,
                width,
            }) => Ok(ActShape::Map {
                channels,
                height,
                width,
            }),
            _ => Err(GraphError::Invalid(
                "the first node must be the input".into(),
            )),
        }
    }

    /// Total number of trainable parameters (what PyTorch's `parameters()` counts).
    pub fn parameter_count(&self) -> usize {
        self.nodes
            .iter()
            .flat_map(|n| n.op.params())
            .filter(|p| p.role == ParamRole::Trainable)
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    /// For each node, how many times later nodes read it.
    pub fn reader_counts(&self) -> Vec<usize> {
        let mut readers = vec![0usize; self.nodes.len()];
        self.nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .for_each(|&i| readers[i] += 1);
        readers
    }

    /// For each node, the index of the last node that reads it (itself if none does).
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for &input in &node.inputs {
                last[input] = i;
            }
        }
        last
    }

    /// The nodes before `cut` whose values a run of the nodes from `cut` on needs: those read at
    /// or after it (in a ResNet, the block input *and* the residual stream), and the output once
    /// `cut` is past it. Empty at 0, where a run starts from the input.
    pub fn live_at(&self, cut: usize) -> Vec<usize> {
        let last_uses = self.last_uses();
        let output = self.output();
        (0..cut.min(self.nodes.len()))
            .filter(|&j| last_uses[j] >= cut || j == output)
            .collect()
    }

    /// Checks the structure and infers every node's activation shape.
    pub fn shapes(&self) -> Result<Vec<ActShape>, GraphError> {
        if self.nodes.is_empty() {
            return Err(GraphError::Invalid("the graph has no nodes".into()));
        }
        let mut shapes: Vec<ActShape> = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let shape = self.node_shape(i, &shapes)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Checks node `i` and infers its shape, given the shapes of the nodes before it.
    pub fn node_shape(&self, i: usize, earlier: &[ActShape]) -> Result<ActShape, GraphError> {
        let node = &self.nodes[i];
        let bad = |why: String| {
            GraphError::Invalid(format!("node {} ({}): {why}", node.name, node.op.kind()))
        };
        if let Some(&input) = node.inputs.iter().find(|&&j| j >= i) {
            return Err(bad(format!(
                "reads node {input}, which does not come before it"
            )));
        }
        let arity = match node.op {
            Op::Input { .. } => 0,
            Op::Add => node.inputs.len().max(2),
            _ => 1,
        };
        if node.inputs.len() != arity {
            return Err(bad(format!(
                "expects {arity} input(s), has {}",
                node.inputs.len()
            )));
        }
        let input = node.inputs.first().map(|&j| earlier[j]);
        infer(&node.op, input, node.inputs.iter().map(|&j| earlier[j])).map_err(bad)
    }
}

fn infer(
    op: &Op,
    input: Option<ActShape>,
    mut all_inputs: impl Iterator<Item = ActShape>,
) -> Result<ActShape, String> {
    let map = || match input {
        Some(ActShape::Map {
            channels,
            height,
            width,
        }) => Ok((channels, height, width)),
        _ => Err("needs a [C, H, W] input".to_string()),
    };
    let pooled = |size: usize, kernel: usize, stride: usize, padding: usize| {
        let padded = size + 2 * padding;
        if kernel == 0 || stride == 0 || padded < kernel {
            Err(format!(
                "a {kernel}×{kernel} window with stride {stride} does not fit a {size}-pixel side"
            ))
        } else {
            Ok((padded - kernel) / stride + 1)
        }
    };
    Ok(match *op {
        Op::Input {
            channels,
            height,
            width,
        } => ActShape::Map {
            channels,
            height,
            width,
        },
        Op::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            depthwise,
            bias,
            relu,
        } => {
            if relu && !bias {
                return Err("a fused ReLU needs a bias".into());
            }
            if depthwise && !(groups == in_channels && groups == out_channels) {
                return Err(format!(
                    "a depthwise conv needs groups = in = out channels (got {groups}, {in_channels}, {out_channels})"
                ));
            }
            let (c, h, w) = map()?;
            if c != in_channels {
                return Err(format!("expects {in_channels} input channels, gets {c}"));
            }
            if groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                return Err(format!(
                    "groups = {groups} must divide {in_channels} and {out_channels}"
                ));
            }
            ActShape::Map {
                channels: out_channels,
                height: pooled(h, kernel, stride, padding)?,
                width: pooled(w, kernel, stride, padding)?,
            }
        }
        Op::BatchNorm { channels, .. } => {
            let (c, ..) = map()?;
            if c != channels {
                return Err(format!("has {channels} channels, gets {c}"));
            }
            input.expect("checked by map()")
        }
        Op::Relu => input.ok_or("needs an input")?,
        Op::Add => {
            let first = all_inputs.next().ok_or("needs inputs")?;
            if let Some(other) = all_inputs.find(|s| *s != first) {
                return Err(format!("adds shapes {first:?} and {other:?}"));
            }
            first
        }
        Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
            let (c, h, w) = map()?;
            ActShape::Map {
                channels: c,
                height: pooled(h, kernel, stride, 0)?,
                width: pooled(w, kernel, stride, 0)?,
            }
        }
        Op::GlobalAvgPool => {
            let (c, ..) = map()?;
            ActShape::Map {
                channels: c,
                height: 1,
                width: 1,
            }
        }
        Op::Flatten => {
            let (c, h, w) = map()?;
            ActShape::Vector(c * h * w)
        }
        Op::Linear {
            in_features,
            out_features,
            ..
        } => {
            let n = match input {
                Some(ActShape::Vector(n)) => n,
                _ => return Err("needs a flat input (add a flatten node)".into()),
            };
            if n != in_features {
                return Err(format!("expects {in_features} features, gets {n}"));
            }
            ActShape::Vector(out_features)
        }
    })
}
