//! Appending nodes with the channel counts filled in from the running shapes.

use super::ir::{ActShape, Graph, Node, Op};
use super::GraphError;

/// BN defaults of PyTorch.
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

/// Builds a [`Graph`] front to back. Each method returns the new node's index.
pub struct GraphBuilder {
    graph: Graph,
    shapes: Vec<ActShape>,
}

impl GraphBuilder {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        let mut builder = Self {
            graph: Graph::default(),
            shapes: Vec::new(),
        };
        builder
            .push(
                "input",
                Op::Input {
                    channels,
                    height,
                    width,
                },
                vec![],
            )
            .expect("an input node is always valid");
        builder
    }

    pub fn input(&self) -> usize {
        0
    }

    pub fn channels(&self, node: usize) -> usize {
        self.shapes[node].channels()
    }

    /// Square convolution without bias (a BN follows it in every ResNet here).
    pub fn conv(
        &mut self,
        name: &str,
        x: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<usize, GraphError> {
        self.conv2d(name, x, out, kernel, stride, padding, false, false)
    }

    /// Square convolution with bias (PyTorch's default, kept by kuangliu's VGG).
    pub fn conv_with_bias(
        &mut self,
        name: &str,
        x: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<usize, GraphError> {
        self.conv2d(name, x, out, kernel, stride, padding, false, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv2d(
        &mut self,
        name: &str,
        x: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        depthwise: bool,
        bias: bool,
    ) -> Result<usize, GraphError> {
        let in_channels = self.channels(x);
        let op = Op::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups: if depthwise { in_channels } else { 1 },
            depthwise,
            bias,
            relu: false,
        };
        self.push(name, op, vec![x])
    }

    /// Depthwise square convolution without bias: one filter per channel (`groups` = channels).
    pub fn depthwise_conv(
        &mut self,
        name: &str,
        x: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<usize, GraphError> {
        let channels = self.channels(x);
        self.conv2d(name, x, channels, kernel, stride, padding, true, false)
    }

    pub fn batch_norm(&mut self, name: &str, x: usize) -> Result<usize, GraphError> {
        let op = Op::BatchNorm {
            channels: self.channels(x),
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
        };
        self.push(name, op, vec![x])
    }

    pub fn relu(&mut self, name: &str, x: usize) -> Result<usize, GraphError> {
        self.push(name, Op::Relu, vec![x])
    }

    pub fn add(&mut self, name: &str, a: usize, b: usize) -> Result<usize, GraphError> {
        self.push(name, Op::Add, vec![a, b])
    }

    pub fn max_pool(
        &mut self,
        name: &str,
        x: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<usize, GraphError> {
        self.push(name, Op::MaxPool { kernel, stride }, vec![x])
    }

    pub fn global_avg_pool(&mut self, name: &str, x: usize) -> Result<usize, GraphError> {
        self.push(name, Op::GlobalAvgPool, vec![x])
    }

    pub fn flatten(&mut self, name: &str, x: usize) -> Result<usize, GraphError> {
        self.push(name, Op::Flatten, vec![x])
    }

    pub fn linear(
        &mut self,
        name: &str,
        x: usize,
        out_features: usize,
    ) -> Result<usize, GraphError> {
        let op = Op::Linear {
            in_features: self.channels(x),
            out_features,
            bias: true,
        };
        self.push(name, op, vec![x])
    }

    /// Appends any op; its shape is checked at once so a bad model fails where it is built.
    pub fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>) -> Result<usize, GraphError> {
        self.graph.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
        });
        let index = self.graph.nodes.len() - 1;
        match self.graph.node_shape(index, &self.shapes) {
            Ok(shape) => {
                self.shapes.push(shape);
                Ok(index)
            }
            Err(e) => {
                self.graph.nodes.pop();
                Err(e)
            }
        }
    }

    pub fn finish(self) -> Graph {
        self.graph
    }
}
