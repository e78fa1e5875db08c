//! The coupling view: where a DFC's channels live.
//!
//! Channel j of a DFC sits at one axis of several tensors — the producers' output rows, the
//! consumers' input columns, the per-channel vectors of its BatchNorms, the filters of its
//! depthwise convolutions — and in the outputs of several nodes. Surgery, masking, every
//! saliency criterion and the oracle read these typed slices; this is the one place that turns
//! a slice into a parameter name.

use candle_core::Tensor;
use serde::Serialize;

use super::coupling::Coupling;
use super::ir::{ActShape, Graph, Op};
use super::params::Params;
use super::GraphError;

/// What a tensor slice is to its DFC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceRole {
    /// A producer's output channel: a conv filter `weight[j]` (`[in, k, k]`), a linear row, or
    /// the producer's `bias[j]`.
    ProducerRow,
    /// A consumer's input channel: `weight[:, j]`.
    ConsumerColumn,
    /// A channel-wise member's per-channel value: a BatchNorm's weight, bias and statistics.
    MemberVector,
    /// A depthwise convolution's filter `weight[j]` (`[1, k, k]`) or its `bias[j]`.
    DepthwiseFilter,
}

/// One tensor that holds a DFC's channels along `axis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChannelSlice {
    pub node: usize,
    /// The parameter of the node: `weight`, `bias`, `running_mean` or `running_var`.
    pub param: &'static str,
    pub axis: usize,
    pub role: SliceRole,
}

impl ChannelSlice {
    /// The parameter's full name (`layer1.0.bn1.running_var`).
    pub fn tensor_name(&self, graph: &Graph) -> String {
        format!("{}.{}", graph.nodes[self.node].name, self.param)
    }

    /// The tensor this slice is a slice of.
    pub fn tensor<'p>(&self, graph: &Graph, params: &'p Params) -> Result<&'p Tensor, GraphError> {
        params.get(&self.tensor_name(graph))
    }
}

impl Coupling {
    /// The DFC's name: its first producer's node name.
    pub fn name<'g>(&self, graph: &'g Graph) -> &'g str {
        &graph.nodes[self.producers[0]].name
    }

    /// Every tensor slice that carries this DFC's channels.
    pub fn slices(&self, graph: &Graph) -> Vec<ChannelSlice> {
        let mut slices = Vec::new();
        let mut add = |node: usize, params: &[&'static str], axis: usize, role: SliceRole| {
            for spec in graph.nodes[node].op.params() {
                if let Some(&param) = params.iter().find(|&&p| p == spec.suffix) {
                    slices.push(ChannelSlice {
                        node,
                        param,
                        axis,
                        role,
                    });
                }
            }
        };
        for &p in &self.producers {
            add(p, &["weight", "bias"], 0, SliceRole::ProducerRow);
        }
        for &c in &self.consumers {
            add(c, &["weight"], 1, SliceRole::ConsumerColumn);
        }
        for &m in &self.members {
            let role = match graph.nodes[m].op {
                Op::Conv2d { .. } => SliceRole::DepthwiseFilter,
                _ => SliceRole::MemberVector,
            };
            add(
                m,
                &["weight", "bias", "running_mean", "running_var"],
                0,
                role,
            );
        }
        slices
    }

    /// The nodes whose outputs carry this DFC's channels (producers and channel-wise members),
    /// in graph order: where its activations are observed and its channels masked.
    pub fn carriers(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self
            .producers
            .iter()
            .chain(&self.members)
            .copied()
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// The BatchNorm that reads `producer`'s output directly (DFPC's D_a), if any.
    pub fn batch_norm_after(&self, graph: &Graph, producer: usize) -> Option<usize> {
        self.members.iter().copied().find(|&m| {
            matches!(graph.nodes[m].op, Op::BatchNorm { .. }) && graph.nodes[m].inputs == [producer]
        })
    }

    /// The BatchNorms among the members, in graph order.
    pub fn batch_norms<'a>(&'a self, graph: &'a Graph) -> impl Iterator<Item = usize> + 'a {
        self.members
            .iter()
            .copied()
            .filter(|&m| matches!(graph.nodes[m].op, Op::BatchNorm { .. }))
    }

    /// The activation a consumer reads: the node feeding it.
    pub fn consumer_input(&self, graph: &Graph, consumer: usize) -> usize {
        graph.nodes[consumer].inputs[0]
    }
}

/// The spatial size `(height, width)` of an activation; `(1, 1)` for a vector.
pub fn spatial(shape: ActShape) -> (usize, usize) {
    match shape {
        ActShape::Map { height, width, .. } => (height, width),
        ActShape::Vector(_) => (1, 1),
    }
}

/// The DFC named `name` (its first producer), with the known names in the error.
pub fn find_coupling<'c>(
    graph: &Graph,
    found: &'c [Coupling],
    name: &str,
) -> Result<&'c Coupling, GraphError> {
    found.iter().find(|c| c.name(graph) == name).ok_or_else(|| {
        let known: Vec<&str> = found.iter().map(|c| c.name(graph)).collect();
        GraphError::Invalid(format!(
            "no DFC has {name:?} as its first producer (DFCs are named by their first producer: {})",
            known.join(", ")
        ))
    })
}
