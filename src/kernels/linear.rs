//! Inference's fully connected layer, `x · Wᵀ + b`, as one dot product per output: on the
//! small classifier heads of the CIFAR networks (64 × 10 for ResNet-20), a general matrix
//! multiply spent 30 µs of a 190 µs forward pass at batch 1 getting ready.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::channelwise::contiguous;
use super::wide::with_avx2;

/// Multiply-adds below which the rows are not spread over threads.
const PARALLEL_MACS: usize = 1 << 18;

/// `x · Wᵀ (+ b)` for `x` `[N, I]` and `W` `[O, I]`, without a gradient: our loop for f32 on
/// the CPU, candle's matmul elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (f32_on_cpu, (n, inputs), (outputs, per_output)) = (
        x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32,
        x.dims2()?,
        w.dims2()?,
    );
    if inputs != per_output {
        candle_core::bail!("linear: weight {:?} for an input {:?}", w.dims(), x.dims());
    }
    if !f32_on_cpu {
        let y = x.matmul(&w.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let bias = match b {
        Some(b) if b.dims() != [outputs] => {
            candle_core::bail!("linear: bias {:?} for {outputs} outputs", b.dims())
        }
        Some(b) => b.to_dtype(DType::F32)?.to_vec1()?,
        None => vec![0.0; outputs],
    };
    let op = Linear {
        rows: n,
        inputs,
        bias,
    };
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &op)
}

struct Linear {
    rows: usize,
    inputs: usize,
    bias: Vec<f32>,
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "prunelab-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (contiguous(xs, xl)?, contiguous(ws, wl)?);
        let (inputs, outputs) = (self.inputs, self.bias.len());
        let mut y = vec![0.0f32; self.rows * outputs];
        let row = |(x, y): (&[f32], &mut [f32])| {
            for ((out, w), b) in y.iter_mut().zip(w.chunks_exact(inputs)).zip(&self.bias) {
                *out = b + with_avx2(
                    #[inline(always)]
                    || dot(x, w),
                );
            }
        };
        let pairs = x
            .chunks_exact(inputs.max(1))
            .zip(y.chunks_mut(outputs.max(1)));
        if self.rows * outputs * inputs < PARALLEL_MACS {
            pairs.for_each(row);
        } else {
            x.par_chunks_exact(inputs.max(1))
                .zip(y.par_chunks_mut(outputs.max(1)))
                .for_each(row);
        }
        Ok((CpuStorage::F32(y), Shape::from((self.rows, outputs))))
    }
}

/// `Σ a_i · b_i` in 16 running sums, added pairwise at the end: the same bits on every
/// instruction set and thread count.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let (a_rest, b_rest) = (a16.remainder(), b16.remainder());
    for (a, b) in a16.zip(b16) {
        for ((l, x), y) in lanes.iter_mut().zip(a).zip(b) {
            *l += x * y;
        }
    }
    for ((l, x), y) in lanes.iter_mut().zip(a_rest).zip(b_rest) {
        *l += x * y;
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Against float64 sums, with and without a bias, on a head of 10 and a wide one, at batch
    /// 1 and 64 (on threads).
    #[test]
    fn equals_float64_sums() {
        let device = Device::Cpu;
        for (rows, inputs, outputs) in [(1, 64, 10), (64, 1280, 10), (3, 7, 5), (64, 512, 100)] {
            let value = |i: usize| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5;
            let x: Vec<f32> = (0..rows * inputs).map(value).collect();
            let w: Vec<f32> = (0..outputs * inputs).map(|i| value(i + 17)).collect();
            let b: Vec<f32> = (0..outputs).map(|i| value(i + 3)).collect();
            let xt = Tensor::from_vec(x.clone(), (rows, inputs), &device).unwrap();
            let wt = Tensor::from_vec(w.clone(), (outputs, inputs), &device).unwrap();
            let bt = Tensor::from_vec(b.clone(), outputs, &device).unwrap();
            for bias in [false, true] {
                let y = linear(&xt, &wt, bias.then_some(&bt)).unwrap();
                assert_eq!(y.dims(), [rows, outputs]);
                let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
                for r in 0..rows {
                    for o in 0..outputs {
                        let want: f64 = (0..inputs)
                            .map(|i| x[r * inputs + i] as f64 * w[o * inputs + i] as f64)
                            .sum::<f64>()
                            + if bias { b[o] as f64 } else { 0.0 };
                        let got = y[r * outputs + o] as f64;
                        assert!(
                            (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                            "{got} vs {want}"
                        );
                    }
                }
            }
        }
        let wrong = Tensor::zeros((10, 63), DType::F32, &device).unwrap();
        let x = Tensor::zeros((1, 64), DType::F32, &device).unwrap();
        assert!(linear(&x, &wrong, None)
            .unwrap_err()
            .to_string()
            .contains("weight"));
    }
}
