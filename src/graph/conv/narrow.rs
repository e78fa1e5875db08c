//! The forward multiply of convolutions whose output channels (per group) fill tiles of 16,
//! in AVX-512 and without packing; the input gradient's multiply (Wᵀ times the output
//! gradient) runs here too, its rows taking the channels' place.
//!
//! gemm packs the column matrix before multiplying, and with 16 output channels each packed
//! value is used only 16 times: the packing costs about as much as the arithmetic, and those
//! multiplies ran at 70–80 GFLOP/s on one core, against ~200 for 32 or more channels. Here a
//! tile of 16 output positions × 16 channels lives in 16 registers; each step of the inner
//! dimension loads 16 positions of one row of the column matrix, where im2col left them, and
//! adds them, times each channel's weight (broadcast from memory), into the accumulators. The
//! output is written row-major, in place, with the bias and the ReLU applied in registers.

use rayon::prelude::*;

/// Channels of a tile: one AVX-512 register of f32 per output channel.
pub(super) const CHANNELS: usize = 16;

/// Whether [`forward`] can run here: AVX-512F on this CPU.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The weights `[channels × k]` (row-major) as tiles of 16 channels, each `[k × 16]`; the
/// last tile's channels past `channels` are zero.
pub(super) fn pack_weights(w: &[f32], channels: usize, k: usize) -> Vec<f32> {
    assert!(w.len() >= channels * k);
    let mut packed = vec![0.0f32; channels.div_ceil(CHANNELS) * k * CHANNELS];
    for (o, row) in w.chunks(k.max(1)).take(channels).enumerate() {
        let tile = &mut packed[o / CHANNELS * k * CHANNELS..];
        for (step, &v) in row.iter().enumerate() {
            tile[step * CHANNELS + o % CHANNELS] = v;
        }
    }
    packed
}

/// One output row block: `out[o·out_stride + p] = relu?(bias[o] + Σ_s w[s][o]·cols[s·cols_stride
/// + p])` for channels `o < channels` and positions `p < width`.
pub(super) struct Product<'a> {
    /// [`pack_weights`]' layout: tiles of `k × 16`.
    pub packed: &'a [f32],
    pub channels: usize,
    pub cols: &'a [f32],
    pub cols_stride: usize,
    pub width: usize,
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

/// Computes `product` into `out` (rows `out_stride` apart), its tiles of 16 columns spread
/// over `threads` threads: each output value is computed the same way whatever the split.
/// Panics if AVX-512F is missing (check [`available`]) or a slice is too short.
pub(super) fn forward(product: &Product, out: &mut [f32], out_stride: usize, threads: usize) {
    let p = product;
    if p.width == 0 || p.channels == 0 {
        return;
    }
    let k = p.packed.len() / CHANNELS / p.channels.div_ceil(CHANNELS);
    assert!(p.packed.len() == p.channels.div_ceil(CHANNELS) * k * CHANNELS);
    assert!(p.bias.is_none_or(|b| b.len() >= p.channels));
    assert!(k == 0 || (k - 1) * p.cols_stride + p.width <= p.cols.len());
    assert!((p.channels - 1) * out_stride + p.width <= out.len());
    assert!(available(), "the AVX-512 convolution kernel needs AVX-512F");
    let per_task = p.width.div_ceil(16).div_ceil(threads.max(1)) * 16;
    let out = Shared(out.as_mut_ptr());
    let columns = |start: usize| {
        let end = (start + per_task).min(p.width);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (asserted); the assertions above keep every load and
        // store inside `cols` and `out`, and the tasks write disjoint columns of `out`, which
        // is borrowed mutably for the whole call.
        unsafe {
            x86::forward(p, k, (out.get(), out_stride), start..end)
        }
    };
    if per_task >= p.width {
        columns(0);
    } else {
        (0..p.width)
            .into_par_iter()
            .step_by(per_task)
            .for_each(columns);
    }
}

/// The output's pointer, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: the tasks sharing it write disjoint elements (see `forward`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// A method, so that closures capture the whole wrapper rather than the raw pointer.
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use std::ops::Range;

    use super::{Product, CHANNELS};

    /// Columns `columns` of the product, into `out` (rows `out_stride` apart).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(
        p: &Product,
        k: usize,
        (out, out_stride): (*mut f32, usize),
        columns: Range<usize>,
    ) {
        for start in columns.clone().step_by(16) {
            let lanes = (columns.end - start).min(16);
            let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
            let cols = p.cols.as_ptr().wrapping_add(start);
            // Every tile of channels reads the same 16 columns, while they are in L1.
            for first in (0..p.channels).step_by(CHANNELS) {
                let channels = (p.channels - first).min(CHANNELS);
                let mut acc = [_mm512_setzero_ps(); CHANNELS];
                if let Some(bias) = p.bias {
                    for (a, &b) in acc.iter_mut().zip(&bias[first..first + channels]) {
                        *a = _mm512_set1_ps(b);
                    }
                }
                let packed = p.packed.as_ptr().add(first * k);
                for step in 0..k {
                    let x = _mm512_maskz_loadu_ps(mask, cols.add(step * p.cols_stride));
                    let w = packed.add(step * CHANNELS);
                    for (o, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(x, _mm512_set1_ps(*w.add(o)), *a);
                    }
                }
                let out = out.add(first * out_stride + start);
                for (o, a) in acc.iter().enumerate().take(channels) {
                    let v = if p.relu {
                        _mm512_max_ps(*a, _mm512_setzero_ps())
                    } else {
                        *a
                    };
                    _mm512_mask_storeu_ps(out.add(o * out_stride), mask, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn tiles_equal_a_float64_product_at_every_width_and_channel_count() {
        if !available() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (channels, k, width) in [
            (16, 144, 1024),
            (16, 9, 17),
            (5, 27, 33),
            (1, 1, 1),
            (16, 0, 8),
        ] {
            let w: Vec<f32> = (0..channels * k)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let cols_stride = width + 3;
            let cols: Vec<f32> = (0..k * cols_stride)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let bias: Vec<f32> = (0..channels).map(|_| rng.random_range(-1.0..1.0)).collect();
            let packed = pack_weights(&w, channels, k);
            for (with_bias, relu) in [(false, false), (true, true)] {
                let product = Product {
                    packed: &packed,
                    channels,
                    cols: &cols,
                    cols_stride,
                    width,
                    bias: with_bias.then_some(&bias[..]),
                    relu,
                };
                let out_stride = width + 1;
                let mut out = vec![f32::NAN; channels * out_stride];
                forward(&product, &mut out, out_stride, 1);
                let mut split = vec![f32::NAN; channels * out_stride];
                forward(&product, &mut split, out_stride, 3);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&split), "the split changed a value");
                for o in 0..channels {
                    for p in 0..width {
                        let sum: f64 = (0..k)
                            .map(|s| w[o * k + s] as f64 * cols[s * cols_stride + p] as f64)
                            .sum::<f64>()
                            + if with_bias { bias[o] as f64 } else { 0.0 };
                        let want = if relu { sum.max(0.0) } else { sum };
                        let got = out[o * out_stride + p] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                            "{channels}×{k}×{width} ({o}, {p}): {got} vs {want}"
                        );
                    }
                    // Nothing past the row's width is written.
                    assert!(out[o * out_stride + width].is_nan());
                }
            }
        }
    }
}
