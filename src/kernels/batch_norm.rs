//! Training-mode batch normalisation as fused CPU ops, with PyTorch semantics.
//!
//! Written with candle's generic ops, BN costs a strided reduction per statistic forward and
//! per broadcast backward; here it is two passes forward (statistics, normalise) and two
//! backward (sums, input gradient), using the analytic gradient
//!
//! ```text
//! x̂ = (x − μ)·s,  s = 1/√(σ² + ε),  y = γ·x̂ + β
//! ∂L/∂β = Σ dy,  ∂L/∂γ = Σ dy·x̂,  ∂L/∂x = γ·s·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)
//! ```
//!
//! with sums over the M = N·H·W values of a channel. What follows BN in a ResNet can run in
//! the same pass ([`Then`]): a ReLU, or a residual add and a ReLU. The values in between are then
//! never stored, and autograd keeps one tensor less (two) per fused BN for the backward pass.
//! Sums run in f64 over eight interleaved
//! running sums (so that they vectorise), channel by channel in a fixed order, so results do not
//! depend on thread scheduling.

use std::mem::MaybeUninit;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use super::channelwise::{contiguous, dims, lane_sum, lane_sum_pairs, per_channel_sums, relu_grad};
use super::output::written;
use super::then::Then;
use super::wide::with_avx2;

/// Per-channel batch statistics of `[N, C, H, W]`.
#[derive(Debug, Clone)]
pub struct ChannelStats {
    pub mean: Vec<f32>,
    /// Biased variance (what normalisation uses).
    pub var: Vec<f32>,
    /// Values per channel, N·H·W.
    pub count: usize,
}

/// Normalises `x` with its own batch statistics, then applies `then`; returns the result
/// (differentiable in x, γ, β and the residual) and the statistics. Falls back to candle's
/// generic ops off the CPU or for other dtypes.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    then: Then,
) -> Result<(Tensor, ChannelStats)> {
    let (n, c, h, w) = x.dims4()?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        let (y, stats) = generic(x, gamma, beta, eps)?;
        return Ok((then.apply(y)?, stats));
    }
    let x = x.contiguous()?;
    let sums = x.apply_op1_no_bwd(&StatsOp)?.to_vec2::<f32>()?;
    let stats = ChannelStats {
        mean: sums[0].clone(),
        var: sums[1].clone(),
        count: n * h * w,
    };
    debug_assert_eq!(stats.mean.len(), c);
    // γ and β as one [2, C] operand: a custom op takes at most three.
    let affine = Tensor::stack(&[gamma, beta], 0)?;
    let op = NormalizeOp::new(&stats, eps, !matches!(then, Then::Nothing));
    let y = match then {
        Then::AddRelu(residual) => x.apply_op3(&affine, &residual.contiguous()?, op)?,
        _ => x.apply_op2(&affine, op)?,
    };
    Ok((y, stats))
}

/// The gradients of [`batch_norm_train`] from its output `y`'s gradient `dy`, given what its
/// forward pass saw (`x`, γ, β, the statistics it normalised with, whether a ReLU followed):
/// `[∂L/∂x, ∂L/∂[γ; β] (shape [2, C]), ∂L/∂residual]`. `None` off the CPU or for other dtypes,
/// where the caller differentiates candle's ops instead.
pub(crate) fn batch_norm_grads(
    x: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    stats: &ChannelStats,
    eps: f64,
    relu: bool,
    y: &Tensor,
    dy: &Tensor,
) -> Result<Option<[Tensor; 3]>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let affine = Tensor::stack(&[gamma, beta], 0)?;
    let op = NormalizeOp::new(stats, eps, relu);
    op.backward(&x.contiguous()?, &affine, y, dy).map(Some)
}

/// The same with candle's ops, for devices our kernels do not cover.
fn generic(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, ChannelStats)> {
    let (n, c, h, w) = x.dims4()?;
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    let stats = ChannelStats {
        mean: mean.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
        var: var.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
        count: n * h * w,
    };
    Ok((y, stats))
}

/// `x → [2, C]`: per-channel mean and biased variance (two-pass, so it is exact for large means).
struct StatsOp;

impl CustomOp1 for StatsOp {
    fn name(&self) -> &'static str {
        "prunelab-bn-stats"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let shape @ (n, c, hw) = dims(layout)?;
        let count = (n * hw) as f64;
        let sums = per_channel_sums(shape, |_, at| [lane_sum(&x[at..at + hw], f64::from)]);
        let mean: Vec<f64> = sums.iter().map(|s| s[0] / count).collect();
        let squares = per_channel_sums(shape, |ch, at| {
            [lane_sum(&x[at..at + hw], |v| (v as f64 - mean[ch]).powi(2))]
        });
        let mut out: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        out.extend(squares.iter().map(|s| (s[0] / count) as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// `(x, [γ; β], residual?) → γ·(x − μ)·s + β (+ residual)`, then `max(·, 0)` with `relu`,
/// with fixed μ and s = 1/√(σ² + ε) of this batch.
struct NormalizeOp {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    relu: bool,
}

impl NormalizeOp {
    fn new(stats: &ChannelStats, eps: f64, relu: bool) -> Self {
        let inv_std = (stats.var.iter())
            .map(|v| 1.0 / (*v as f64 + eps).sqrt() as f32)
            .collect();
        Self {
            mean: stats.mean.clone(),
            inv_std,
            relu,
        }
    }

    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (affine, al): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, affine) = (contiguous(xs, xl)?, contiguous(affine, al)?);
        let residual = residual.map(|(rs, rl)| contiguous(rs, rl)).transpose()?;
        let (_, c, hw) = dims(xl)?;
        let (gamma, beta) = affine.split_at(c);
        let image_len = c * hw;
        // SAFETY: `normalize` writes each plane of the image whole.
        let y = unsafe {
            written(x.len(), image_len, |image, yi| {
                let at = image * image_len;
                let (xi, ri) = (
                    &x[at..][..image_len],
                    residual.map(|r| &r[at..][..image_len]),
                );
                with_avx2(
                    #[inline(always)]
                    || {
                        for (ch, yo) in yi.chunks_mut(hw).enumerate() {
                            let scale = gamma[ch] * self.inv_std[ch];
                            let shift = beta[ch] - self.mean[ch] * scale;
                            let plane = ch * hw..(ch + 1) * hw;
                            let normalized = xi[plane.clone()].iter().map(|&v| v * scale + shift);
                            match ri {
                                Some(r) => {
                                    self.write(yo, normalized.zip(&r[plane]).map(|(v, &r)| v + r))
                                }
                                None => self.write(yo, normalized),
                            }
                        }
                    },
                )
            })
        };
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// Writes `values` into `out` (as many as it holds), through the ReLU if one follows.
    #[inline(always)]
    fn write(&self, out: &mut [MaybeUninit<f32>], values: impl Iterator<Item = f32>) {
        for (o, v) in out.iter_mut().zip(values) {
            o.write(if self.relu { v.max(0.0) } else { v });
        }
    }

    /// ∂L/∂x, ∂L/∂[γ; β] and the gradient that reaches the residual (dy through the ReLU).
    fn backward(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Tensor; 3]> {
        let dy = dy.contiguous()?;
        let dy = if self.relu { relu_grad(&dy, y)? } else { dy };
        let op = GradOp {
            mean: self.mean.clone(),
            inv_std: self.inv_std.clone(),
            gamma: affine.get(0)?.to_vec1()?,
        };
        let sums = x.apply_op2_no_bwd(&dy, &GradSumsOp(&op))?;
        let dx = x.apply_op2_no_bwd(
            &dy,
            &GradInputOp {
                op: &op,
                sums: sums.to_vec2()?,
            },
        )?;
        Ok([dx, sums, dy])
    }
}

impl CustomOp2 for NormalizeOp {
    fn name(&self) -> &'static str {
        "prunelab-bn-normalize"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        affine: &CpuStorage,
        al: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (affine, al), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, d_affine, _] = self.backward(x, affine, y, dy)?;
        Ok((Some(dx), Some(d_affine)))
    }
}

impl CustomOp3 for NormalizeOp {
    fn name(&self) -> &'static str {
        "prunelab-bn-normalize-add"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        affine: &CpuStorage,
        al: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (affine, al), Some((rs, rl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        _residual: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, d_affine, d_residual] = self.backward(x, affine, y, dy)?;
        Ok((Some(dx), Some(d_affine), Some(d_residual)))
    }
}

struct GradOp {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
}

/// `(x, dy) → [2, C]`: Σ dy·x̂ (= ∂L/∂γ) and Σ dy (= ∂L/∂β) per channel.
struct GradSumsOp<'a>(&'a GradOp);

impl CustomOp2 for GradSumsOp<'_> {
    fn name(&self) -> &'static str {
        "prunelab-bn-grad-sums"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (contiguous(xs, xl)?, contiguous(ds, dl)?);
        let shape @ (_, c, hw) = dims(xl)?;
        let op = self.0;
        let sums = per_channel_sums(shape, |ch, at| {
            let (mean, s) = (op.mean[ch], op.inv_std[ch]);
            let (xr, dr) = (&x[at..at + hw], &dy[at..at + hw]);
            let sum_dy = lane_sum(dr, f64::from);
            let sum_dy_xhat = lane_sum_pairs(xr, dr, |v, d| (d * (v - mean) * s) as f64);
            [sum_dy_xhat, sum_dy]
        });
        let mut out: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
        out.extend(sums.iter().map(|s| s[1] as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// `(x, dy) → ∂L/∂x`.
struct GradInputOp<'a> {
    op: &'a GradOp,
    /// Σ dy·x̂ and Σ dy per channel.
    sums: Vec<Vec<f32>>,
}

impl CustomOp2 for GradInputOp<'_> {
    fn name(&self) -> &'static str {
        "prunelab-bn-grad-input"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (contiguous(xs, xl)?, contiguous(ds, dl)?);
        let (n, c, hw) = dims(xl)?;
        let m = (n * hw) as f32;
        let op = self.op;
        let image_len = c * hw;
        // SAFETY: each plane of `dx` is zipped with planes of `x` and `dy` of its length.
        let dx = unsafe {
            written(x.len(), image_len, |image, gi| {
                let at = image * image_len;
                let (xi, di) = (&x[at..][..image_len], &dy[at..][..image_len]);
                with_avx2(
                    #[inline(always)]
                    || {
                        for (ch, go) in gi.chunks_mut(hw).enumerate() {
                            let (mean, s) = (op.mean[ch], op.inv_std[ch]);
                            let (mean_dy_xhat, mean_dy) =
                                (self.sums[0][ch] / m, self.sums[1][ch] / m);
                            let k = op.gamma[ch] * s;
                            let plane = ch * hw..(ch + 1) * hw;
                            let (xs, ds) = (&xi[plane.clone()], &di[plane]);
                            for ((g, &v), &dv) in go.iter_mut().zip(xs).zip(ds) {
                                g.write(k * (dv - mean_dy - (v - mean) * s * mean_dy_xhat));
                            }
                        }
                    },
                )
            })
        };
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
