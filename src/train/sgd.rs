//! Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics (dampening 0):
//!
//! ```text
//! g ← ∇ + weight_decay · p
//! b ← g on the first step, else momentum · b + g
//! g ← g + momentum · b  (Nesterov)   or   g ← b
//! p ← p − lr · g
//! ```

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::graph::Params;

/// The optimizer's settings (learning rate excluded: the schedule gives it per epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    /// Momentum buffers by parameter name. Always detached: an attached buffer would keep every
    /// past step's autograd graph alive.
    momentum: BTreeMap<String, Tensor>,
}

impl Sgd {
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            momentum: BTreeMap::new(),
        }
    }

    /// Resumes from saved momentum buffers.
    pub fn with_state(config: SgdConfig, momentum: BTreeMap<String, Tensor>) -> Self {
        Self { config, momentum }
    }

    pub fn state(&self) -> &BTreeMap<String, Tensor> {
        &self.momentum
    }

    /// Updates every trainable parameter that received a gradient.
    pub fn step(&mut self, params: &Params, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        } = self.config;
        for (name, var) in &params.trainable {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor().detach();
            let mut g = grad.detach();
            if weight_decay != 0.0 {
                g = (g + (&p * weight_decay)?)?;
            }
            if momentum != 0.0 {
                let buffer = match self.momentum.get(name) {
                    None => g.clone(),
                    Some(b) => ((b * momentum)? + &g)?,
                };
                g = if nesterov {
                    (&g + (&buffer * momentum)?)?
                } else {
                    buffer.clone()
                };
                self.momentum.insert(name.clone(), buffer.detach());
            }
            var.set(&(&p - (g * lr)?)?)?;
        }
        Ok(())
    }
}
