//! Parameters and multiply-accumulates (MACs) of a graph at its input size.
//!
//! MACs count the multiplications of convolutions (`out·(in/groups)·k²·Ho·Wo`) and linear
//! layers (`in·out`), the convention of the pruning literature (and of thop/ptflops); BN, ReLU,
//! additions and pooling are not counted. Parameters are the trainable ones, as PyTorch's
//! `parameters()` counts them (BN running statistics excluded).

use serde::Serialize;

use super::ir::{ActShape, Graph, Op, ParamRole};
use super::GraphError;

/// The cost of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    pub name: String,
    pub kind: &'static str,
    pub parameters: usize,
    pub macs: u64,
}

/// Every node's cost, in graph order.
pub fn layer_costs(graph: &Graph) -> Result<Vec<LayerCost>, GraphError> {
    let shapes = graph.shapes()?;
    Ok(graph
        .nodes
        .iter()
        .zip(&shapes)
        .map(|(node, shape)| {
            let parameters = node
                .op
                .params()
                .iter()
                .filter(|p| p.role == ParamRole::Trainable)
                .map(|p| p.shape.iter().product::<usize>())
                .sum();
            let macs = match (&node.op, shape) {
                (
                    Op::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        groups,
                        ..
                    },
                    ActShape::Map { height, width, .. },
                ) => {
                    (out_channels * in_channels / groups * kernel * kernel * height * width) as u64
                }
                (
                    Op::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    _,
                ) => (in_features * out_features) as u64,
                _ => 0,
            };
            LayerCost {
                name: node.name.clone(),
                kind: node.op.kind(),
                parameters,
                macs,
            }
        })
        .collect())
}

/// Total MACs of one forward pass of one example.
pub fn macs(graph: &Graph) -> Result<u64, GraphError> {
    Ok(layer_costs(graph)?.iter().map(|c| c.macs).sum())
}
