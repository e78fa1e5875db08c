//! Helpers and ops over the channels of contiguous f32 `[N, C, H, W]` tensors on the CPU.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::output::written;
use super::wide::with_avx2;

/// The contiguous f32 data of a custom op's argument.
pub(super) fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("expected a contiguous tensor"),
    }
}

/// `[N, C, H, W]` as (N, C, H·W).
pub(super) fn dims(layout: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    Ok((n, c, h * w))
}

/// For every channel, `f(channel, start)` over the channel's N runs of H·W values (each
/// starting at `start`), summed in f64 in a fixed order: deterministic whatever the threads.
///
/// The runs are visited image by image, each task reading one image's contiguous C·H·W values
/// (a channel's runs lie C·H·W apart, and the hardware prefetchers stop at page boundaries);
/// the per-image results are then added channel by channel in image order.
pub(super) fn per_channel_sums<const K: usize>(
    (n, c, hw): (usize, usize, usize),
    f: impl Fn(usize, usize) -> [f64; K] + Sync,
) -> Vec<[f64; K]> {
    let mut per_image = vec![[0.0f64; K]; n * c];
    per_image
        .par_chunks_mut(c.max(1))
        .enumerate()
        .for_each(|(image, sums)| {
            for (ch, s) in sums.iter_mut().enumerate() {
                *s = f(ch, (image * c + ch) * hw);
            }
        });
    (0..c)
        .map(|ch| {
            let mut total = [0.0f64; K];
            for part in per_image[ch..].iter().step_by(c) {
                total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
            }
            total
        })
        .collect()
}

/// Running sums [`lane_sum_pairs`] keeps: enough independent adds to fill the vector units.
const LANES: usize = 8;

/// Σ f(a[i], b[i]) in f64 over [`LANES`] interleaved running sums, added together in a fixed
/// order at the end: deterministic like one running sum, but the adds vectorise.
#[inline(always)]
pub(super) fn lane_sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    assert_eq!(a.len(), b.len());
    with_avx2(
        #[inline(always)]
        || {
            let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let tail: f64 = (a_lanes.remainder().iter().zip(b_lanes.remainder()))
                .map(|(&x, &y)| f(x, y))
                .sum();
            let mut lanes = [0.0f64; LANES];
            for (x, y) in a_lanes.zip(b_lanes) {
                for l in 0..LANES {
                    lanes[l] += f(x[l], y[l]);
                }
            }
            lanes.iter().sum::<f64>() + tail
        },
    )
}

/// Σ f(a[i]) as [`lane_sum_pairs`] adds it.
#[inline(always)]
pub(super) fn lane_sum(a: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    lane_sum_pairs(a, a, |x, _| f(x))
}

/// `x + b` with `b` (`[C]`) added to every position of channel c; differentiable in both.
pub fn add_channel_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() != 4 {
        return x.broadcast_add(&b.reshape((1, (), 1, 1))?);
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, ChannelBias)
}

struct ChannelBias;

impl CustomOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "prunelab-channel-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (contiguous(xs, xl)?, contiguous(bs, bl)?);
        let (_, c, hw) = dims(xl)?;
        let mut y = x.to_vec();
        y.par_chunks_mut(c * hw).for_each(|image| {
            for (plane, bias) in image.chunks_mut(hw).zip(b) {
                plane.iter_mut().for_each(|v| *v += bias);
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let db = channel_sum(&dy)?;
        Ok((Some(dy), Some(db)))
    }
}

/// `[N, C, H, W] → [C]`: the sum over everything but the channel (a bias's gradient).
pub(crate) fn channel_sum(dy: &Tensor) -> Result<Tensor> {
    if !dy.device().is_cpu() || dy.dtype() != DType::F32 {
        return dy.sum((0, 2, 3));
    }
    dy.contiguous()?.apply_op1_no_bwd(&ChannelSum)
}

/// `[N, C, H, W] → [C]`: the sum over everything but the channel.
struct ChannelSum;

impl candle_core::CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "prunelab-channel-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let shape @ (_, c, hw) = dims(layout)?;
        let sums = per_channel_sums(shape, |_, at| [lane_sum(&x[at..at + hw], f64::from)]);
        Ok((
            CpuStorage::F32(sums.iter().map(|s| s[0] as f32).collect()),
            Shape::from(c),
        ))
    }
}

/// Values per parallel task in the elementwise ops.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)` with a one-pass gradient `dy · [y > 0]` (candle's takes four passes).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

struct Relu;

impl candle_core::CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "prunelab-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        // SAFETY: each chunk of `y` is zipped with the chunk of `x` of the same length.
        let y = unsafe {
            written(x.len(), CHUNK, |i, o| {
                let x = &x[i * CHUNK..][..o.len()];
                with_avx2(
                    #[inline(always)]
                    || {
                        o.iter_mut().zip(x).for_each(|(o, &v)| {
                            o.write(v.max(0.0));
                        })
                    },
                )
            })
        };
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_grad(dy, y)?))
    }
}

/// `dy · [y > 0]`: the gradient through a ReLU whose output is `y`.
pub(crate) fn relu_grad(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    dy.contiguous()?.apply_op2_no_bwd(y, &ReluGrad)
}

/// `(dy, y) → dy · [y > 0]`.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "prunelab-relu-grad"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dy, y) = (contiguous(ds, dl)?, contiguous(ys, yl)?);
        if dy.len() != y.len() {
            candle_core::bail!("relu-grad: {} values against {}", dy.len(), y.len());
        }
        // SAFETY: each chunk of `dx` is zipped with the chunks of `dy` and `y` of its length.
        let dx = unsafe {
            written(dy.len(), CHUNK, |i, o| {
                let (d, y) = (&dy[i * CHUNK..][..o.len()], &y[i * CHUNK..][..o.len()]);
                with_avx2(
                    #[inline(always)]
                    || {
                        o.iter_mut().zip(d.iter().zip(y)).for_each(|(o, (&d, &y))| {
                            o.write(if y > 0.0 { d } else { 0.0 });
                        })
                    },
                )
            })
        };
        Ok((CpuStorage::F32(dx), dl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_sums_add_the_images_in_order_whatever_the_threads() {
        // Arbitrary values, so that a different order of adding would show in the bits.
        let (n, c, hw) = (5, 3, 7);
        let x: Vec<f32> = (0..n * c * hw)
            .map(|i| ((i * 7919) % 1013) as f32 * 1.3e-3 - 0.6)
            .collect();
        let f = |_: usize, at: usize| [lane_sum(&x[at..at + hw], |v| (v as f64).powi(3)), 1.0];
        let mut expected = vec![[0.0f64; 2]; c];
        for (ch, total) in expected.iter_mut().enumerate() {
            for image in 0..n {
                let part = f(ch, (image * c + ch) * hw);
                total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
            }
        }
        let bits = |sums: &[[f64; 2]]| {
            sums.iter()
                .flatten()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sums = pool.install(|| per_channel_sums((n, c, hw), f));
            assert_eq!(bits(&sums), bits(&expected), "{threads} threads");
        }
    }

    #[test]
    fn lane_sums_equal_one_running_sum_at_every_length() {
        // Values whose products are exact in f64: every order of adding gives the same sum.
        for len in [0, 1, 7, 8, 9, 63, 1000] {
            let a: Vec<f32> = (0..len).map(|i| (i % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.5).collect();
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert_eq!(lane_sum_pairs(&a, &b, |x, y| x as f64 * y as f64), exact);
            assert_eq!(
                lane_sum(&a, f64::from),
                a.iter().map(|&x| x as f64).sum::<f64>()
            );
        }
        // Arbitrary values: within f64 rounding of one running sum.
        let a: Vec<f32> = (0..4099)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 + 0.1)
            .collect();
        let running: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
        let lanes = lane_sum(&a, |x| (x as f64).powi(2));
        assert!(
            (lanes - running).abs() <= 1e-12 * running,
            "{lanes} vs {running}"
        );
    }
}
