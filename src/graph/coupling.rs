//! Data Flow Couplings (DFCs), found from the graph alone.
//!
//! Every activation has a *channel space*: the set of tensors whose channel j is one logical
//! channel. A channel-mixing node (convolution with `groups = 1`, linear) starts a new space for
//! its output; a channel-wise node (BatchNorm, ReLU, pooling, flatten of a 1×1 map, depthwise
//! convolution) passes its input's space on; an add joins the spaces of all its inputs (union-
//! find). Each space fed by mixing nodes is one DFC (A, B, T): its producers A (the mixing nodes
//! that write it), its consumers B (the mixing nodes that read it) and the channel-wise members
//! T in between, whose per-channel parameters are sliced with it. A DFC with |A| > 1 or |B| > 1
//! is *coupled*. The network's input channels and its final outputs are not prunable, so spaces
//! holding the input or the output are not DFCs. No layer name is ever read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ir::{ActShape, Graph, Op};
use super::GraphError;

/// What a node does to channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelRole {
    /// Mixes all input channels into every output channel (conv with groups = 1, linear).
    Mixing,
    /// Output channel j depends on input channel j only (and sums them, for an add).
    ChannelWise,
    /// The network input: its channels are fixed by the data.
    Input,
}

/// One Data Flow Coupling. Node indices refer to the graph it was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coupling {
    /// Mixing nodes whose output channels are this DFC's channels.
    pub producers: Vec<usize>,
    /// Mixing nodes whose input channels are this DFC's channels.
    pub consumers: Vec<usize>,
    /// Channel-wise nodes on the way (BN, ReLU, add, pooling, depthwise conv), in graph order.
    pub members: Vec<usize>,
    /// Number of channels.
    pub channels: usize,
}

impl Coupling {
    /// More than one producer or consumer: the channels meet at a residual add (or fan out).
    pub fn is_coupled(&self) -> bool {
        self.producers.len() > 1 || self.consumers.len() > 1
    }

    /// Exactly one producer and one consumer: what pruning with coupled channels off may touch.
    pub fn is_single_pair(&self) -> bool {
        self.producers.len() == 1 && self.consumers.len() == 1
    }
}

/// The role of `op`; an op whose channel behaviour is not known is an error, never guessed.
pub fn channel_role(op: &Op, input: Option<ActShape>) -> Result<ChannelRole, String> {
    Ok(match *op {
        Op::Input { .. } => ChannelRole::Input,
        // Depthwise: output channel j filters input channel j only. The op records it, so a
        // depthwise conv pruned to one channel stays channel-wise and an ordinary 1-in/1-out
        // conv stays mixing. (A fused ReLU, in the inference form, changes no role.)
        Op::Conv2d {
            depthwise: true, ..
        } => ChannelRole::ChannelWise,
        Op::Conv2d { groups: 1, .. } | Op::Linear { .. } => ChannelRole::Mixing,
        Op::Conv2d { groups, .. } => {
            return Err(format!(
                "grouped convolution (groups = {groups}) is not supported by coupling analysis"
            ))
        }
        Op::BatchNorm { .. }
        | Op::Relu
        | Op::Add
        | Op::MaxPool { .. }
        | Op::AvgPool { .. }
        | Op::GlobalAvgPool => ChannelRole::ChannelWise,
        Op::Flatten => match input {
            Some(ActShape::Map {
                height: 1,
                width: 1,
                ..
            }) => ChannelRole::ChannelWise,
            _ => {
                return Err("flatten of a map larger than 1×1 mixes channels with positions".into())
            }
        },
    })
}

/// Every DFC of `graph`, ordered by their first producer.
pub fn couplings(graph: &Graph) -> Result<Vec<Coupling>, GraphError> {
    let shapes = graph.shapes()?;
    let n = graph.nodes.len();
    let mut roles = Vec::with_capacity(n);
    for node in &graph.nodes {
        let input = node.inputs.first().map(|&j| shapes[j]);
        let role = channel_role(&node.op, input).map_err(|why| {
            GraphError::Invalid(format!("node {} ({}): {why}", node.name, node.op.kind()))
        })?;
        roles.push(role);
    }

    // space[i]: the channel space of node i's output, as a union-find over node indices.
    let mut parent: Vec<usize> = (0..n).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        if roles[i] == ChannelRole::ChannelWise {
            for &j in &node.inputs {
                union(&mut parent, i, j);
            }
        }
    }
    let space: Vec<usize> = (0..n).map(|i| find(&mut parent, i)).collect();

    let output = graph.output();
    let mut by_space: BTreeMap<usize, Coupling> = BTreeMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        match roles[i] {
            ChannelRole::Mixing => {
                space_of(&mut by_space, space[i], &shapes).producers.push(i);
                let read = space[node.inputs[0]];
                space_of(&mut by_space, read, &shapes).consumers.push(i);
            }
            ChannelRole::ChannelWise => space_of(&mut by_space, space[i], &shapes).members.push(i),
            ChannelRole::Input => {}
        }
    }
    // The input's channels are fixed by the data, the output's by the task.
    let fixed = [space[0], space[output]];
    let mut found: Vec<Coupling> = by_space
        .into_iter()
        .filter(|(s, c)| !fixed.contains(s) && !c.producers.is_empty())
        .map(|(_, c)| c)
        .collect();
    found.sort_by_key(|c| c.producers[0]);
    Ok(found)
}

fn space_of<'a>(
    by_space: &'a mut BTreeMap<usize, Coupling>,
    space: usize,
    shapes: &[ActShape],
) -> &'a mut Coupling {
    by_space.entry(space).or_insert_with(|| Coupling {
        producers: Vec::new(),
        consumers: Vec::new(),
        members: Vec::new(),
        channels: shapes[space].channels(),
    })
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Joins two spaces; the root is the earliest node, so a space is named by where it starts.
fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
    parent[high] = low;
}
