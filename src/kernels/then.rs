//! What an op may run on its output before storing it (a training BatchNorm, an inference
//! convolution): a ReLU, or a residual add and a ReLU. The values in between are then never
//! stored.

use candle_core::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub enum Then<'a> {
    Nothing,
    /// `max(y, 0)`.
    Relu,
    /// `max(y + residual, 0)`.
    AddRelu(&'a Tensor),
}

impl Then<'_> {
    /// Applies it to `y` with candle's ops: for devices and dtypes without a fused kernel.
    pub fn apply(self, y: Tensor) -> Result<Tensor> {
        match self {
            Then::Nothing => Ok(y),
            Then::Relu => y.relu(),
            Then::AddRelu(residual) => (y + residual)?.relu(),
        }
    }
}
