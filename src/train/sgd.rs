//! Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics (dampening 0):
//!
//! ```text
//! g ← ∇ + weight_decay · p
//! b ← g on the first step, else momentum · b + g
//! g ← g + momentum · b  (Nesterov)   or   g ← b
//! p ← p − lr · g
//! ```

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::exec::Gradients;
use crate::graph::Params;

/// The optimizer's settings (learning rate excluded: the schedule gives it per epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl SgdConfig {
    /// `[train]`'s optimizer settings.
    pub fn of(t: &crate::config::TrainConfig) -> Self {
        Self {
            momentum: t.momentum,
            nesterov: t.nesterov,
            weight_decay: t.weight_decay,
        }
    }
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
    pub fn step(&mut self, params: &Params, grads: &Gradients, lr: f64) -> candle_core::Result<()> {
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        } = self.config;
        for (name, var) in &params.trainable {
            let Some(grad) = grads.get(name) else {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use candle_core::{Device, Tensor, Var};

    use super::*;

    /// Two steps on loss = Σ wᵢxᵢ (so ∇ = x), checked against values worked out by hand with
    /// w₀ = [1, −2, 3], x = [0.5, 1, −1], lr 0.1, momentum 0.9, weight decay 0.1.
    fn two_steps(nesterov: bool) -> (Vec<f32>, Vec<f32>) {
        let w =
            Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap()).unwrap();
        let x = Tensor::new(&[0.5f32, 1.0, -1.0], &Device::Cpu).unwrap();
        let params = Params {
            trainable: BTreeMap::from([("w".to_string(), w.clone())]),
            buffers: BTreeMap::new(),
        };
        let mut sgd = Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov,
            weight_decay: 0.1,
        });
        let mut after = Vec::new();
        for _ in 0..2 {
            let loss = w.as_tensor().mul(&x).unwrap().sum_all().unwrap();
            let grads = Gradients::from_autograd(&params, &loss.backward().unwrap());
            sgd.step(&params, &grads, 0.1).unwrap();
            after.push(w.as_tensor().to_vec1::<f32>().unwrap());
        }
        (after[0].clone(), after[1].clone())
    }

    fn close(got: &[f32], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn heavy_ball_momentum_with_weight_decay() {
        // Step 1: g = x + 0.1·w₀ = [0.6, 0.8, −0.7] = b; w₁ = w₀ − 0.1·g.
        // Step 2: g = x + 0.1·w₁ = [0.594, 0.792, −0.693]; b = 0.9·b + g = [1.134, 1.512, −1.323].
        let (w1, w2) = two_steps(false);
        close(&w1, &[0.94, -2.08, 3.07]);
        close(&w2, &[0.8266, -2.2312, 3.2023]);
    }

    #[test]
    fn nesterov_momentum_with_weight_decay() {
        // Step 1: b = g = [0.6, 0.8, −0.7]; update g + 0.9·b = 1.9·g.
        // Step 2: g = [0.5886, 0.7848, −0.6867]; b = [1.1286, 1.5048, −1.3167];
        //         update g + 0.9·b = [1.60434, 2.13912, −1.87173].
        let (w1, w2) = two_steps(true);
        close(&w1, &[0.886, -2.152, 3.133]);
        close(&w2, &[0.725566, -2.365912, 3.320173]);
    }

    #[test]
    fn momentum_buffers_are_detached() {
        let w = Var::from_tensor(&Tensor::new(&[1.0f32], &Device::Cpu).unwrap()).unwrap();
        let params = Params {
            trainable: BTreeMap::from([("w".to_string(), w.clone())]),
            buffers: BTreeMap::new(),
        };
        let mut sgd = Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        });
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = Gradients::from_autograd(&params, &loss.backward().unwrap());
        sgd.step(&params, &grads, 0.1).unwrap();
        assert!(
            !sgd.state()["w"].track_op(),
            "a buffer attached to autograd keeps every past step alive"
        );
    }
}
