//! Which nodes after a training BatchNorm, or after a convolution with a bias run without
//! gradients (inference), run inside it (its ReLU, or its residual add and ReLU), so that the
//! values in between are never stored.

use super::{BatchNormStats, Mode, Tap};
use crate::graph::{Graph, Op};

/// Nodes after a training BatchNorm or an inference convolution that run inside it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fusion {
    /// The ReLU right after it.
    Relu,
    /// The residual add right after it (whose other operand is node `residual`, already
    /// computed) and the ReLU after that.
    AddRelu { residual: usize },
}

impl Fusion {
    pub(super) fn nodes(self) -> usize {
        match self {
            Fusion::Relu => 1,
            Fusion::AddRelu { .. } => 2,
        }
    }

    pub(super) fn residual(self) -> Option<usize> {
        match self {
            Fusion::Relu => None,
            Fusion::AddRelu { residual } => Some(residual),
        }
    }
}

/// What may run inside node `i`: only if it is a BatchNorm run with batch statistics, or a
/// convolution with a bias and no ReLU run with detached parameters (the caller checks that its
/// inputs need no gradient either), the nodes folded in follow it within the range and are
/// each read only by the next, and the tap needs none of the values in between.
pub(super) fn fusion_at(
    graph: &Graph,
    i: usize,
    end: usize,
    (last_uses, readers): (&[usize], &[usize]),
    tap: &dyn Tap,
    mode: Mode,
) -> Option<Fusion> {
    let output = graph.output();
    let read_only_by_next = |j: usize| {
        j + 1 < end && j != output && last_uses[j] == j + 1 && !tap.sees(j) && readers[j] == 1
    };
    let relu_of = |j: usize| matches!(graph.nodes[j + 1].op, Op::Relu);
    let hosts = match graph.nodes[i].op {
        Op::BatchNorm { .. } => mode.batch_norm == BatchNormStats::Batch,
        Op::Conv2d {
            bias: true,
            relu: false,
            ..
        } => !mode.track_params,
        _ => false,
    };
    if !hosts || !read_only_by_next(i) {
        return None;
    }
    if relu_of(i) {
        return Some(Fusion::Relu);
    }
    let add = &graph.nodes[i + 1];
    if !matches!(add.op, Op::Add) || add.inputs.len() != 2 || !read_only_by_next(i + 1) {
        return None;
    }
    let residual = add.inputs.iter().copied().find(|&j| j != i)?;
    (residual < i && relu_of(i + 1)).then_some(Fusion::AddRelu { residual })
}
