//! Taps for the executor: channel masks and gradient gates. (Any closure
//! `FnMut(node, value) -> Result<Tensor>` is a tap too: capture, running sums.)

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::Tap;
use crate::graph::{Coupling, GraphError};

impl<F: FnMut(usize, Tensor) -> Result<Tensor, GraphError>> Tap for F {
    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        self(node, value)
    }
}

/// Multiplies the outputs of every node that carries a DFC by a keep-mask of its channels, so
/// that a masked channel reaches no consumer: in evaluation mode the network computes exactly
/// what the network with those channels removed computes.
#[derive(Debug, Clone, Default)]
pub struct ChannelMask {
    masks: BTreeMap<usize, Tensor>,
}

impl ChannelMask {
    /// Masks `coupling`'s channels with `keep`: `[C]` (the same for every example) or `[N, C]`
    /// (one mask per example), 1 to keep a channel and 0 to zero it.
    pub fn add(&mut self, coupling: &Coupling, keep: &Tensor) -> Result<(), GraphError> {
        let c = *keep.dims().last().unwrap_or(&0);
        if keep.rank() > 2 || keep.rank() == 0 || c != coupling.channels {
            return Err(GraphError::Invalid(format!(
                "a channel mask must be [C] or [N, C] with C = {} (got {:?})",
                coupling.channels,
                keep.dims()
            )));
        }
        let keep = if keep.rank() == 1 {
            keep.unsqueeze(0)?
        } else {
            keep.clone()
        };
        for node in coupling.carriers() {
            self.masks.insert(node, keep.clone());
        }
        Ok(())
    }
}

impl Tap for ChannelMask {
    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        let Some(mask) = self.masks.get(&node) else {
            return Ok(value);
        };
        let (n, c) = mask.dims2()?;
        let mut shape = vec![n, c];
        shape.resize(value.rank(), 1);
        let mask = mask.to_dtype(value.dtype())?.reshape(shape)?;
        Ok(value.broadcast_mul(&mask)?)
    }
}

/// Multiplies the outputs of chosen nodes by leaf variables of ones, `[N, C, 1, 1]` (or `[N, C]`
/// for vectors), created on the first pass. After `backward`, a gate's gradient is
/// Σ_positions activation · ∂L/∂activation for each example and channel: Molchanov's Taylor
/// quantity, which candle could not give otherwise (it keeps gradients of variables only).
#[derive(Debug, Default)]
pub struct Gates {
    nodes: Vec<usize>,
    gates: BTreeMap<usize, Var>,
}

impl Gates {
    pub fn new(nodes: impl IntoIterator<Item = usize>) -> Self {
        Self {
            nodes: nodes.into_iter().collect(),
            gates: BTreeMap::new(),
        }
    }

    /// Each gated node's gate gradient (`[N, C]`), from the store `backward` returned.
    pub fn gradients(&self, grads: &GradStore) -> Result<BTreeMap<usize, Tensor>, GraphError> {
        let mut out = BTreeMap::new();
        for (&node, gate) in &self.gates {
            let (n, c) = (gate.dim(0)?, gate.dim(1)?);
            let grad = match grads.get(gate.as_tensor()) {
                Some(g) => g.reshape((n, c))?,
                // The loss does not depend on this node.
                None => Tensor::zeros((n, c), gate.dtype(), gate.device())?,
            };
            out.insert(node, grad);
        }
        Ok(out)
    }
}

impl Tap for Gates {
    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        if !self.nodes.contains(&node) {
            return Ok(value);
        }
        let mut shape = value.dims()[..2].to_vec();
        shape.resize(value.rank(), 1);
        let gate = Var::ones(shape, value.dtype(), value.device())?;
        let gated = value.broadcast_mul(gate.as_tensor())?;
        self.gates.insert(node, gate);
        Ok(gated)
    }
}
