//! What a forward convolution applies to its output values while they are still in registers
//! or cache: a per-channel bias, a residual (laid out as the output) and a ReLU, in that order.

use std::ops::Range;

#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// Added after the bias, element by element, laid out as the output.
    pub residual: Option<&'a [f32]>,
    /// `max(·, 0)` last.
    pub relu: bool,
}

impl<'a> Epilogue<'a> {
    /// The part for output channels `channels`, whose output starts `offset` values into the
    /// whole output.
    pub(super) fn part(&self, channels: Range<usize>, offset: usize) -> Epilogue<'a> {
        Epilogue {
            bias: self.bias.map(|b| &b[channels]),
            residual: self.residual.map(|r| &r[offset..]),
            relu: self.relu,
        }
    }

    /// Applies the residual and the ReLU to values that already hold the bias, laid out as
    /// the output from `out`'s start.
    pub(super) fn finish(&self, out: &mut [f32]) {
        if let Some(residual) = self.residual {
            out.iter_mut().zip(residual).for_each(|(v, r)| *v += r);
        }
        if self.relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}
