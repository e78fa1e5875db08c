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
//!
//! The rows need not be a column matrix: a convolution that keeps the image's size reads each
//! kernel position's row straight from the image, shifted, under a mask of the positions whose
//! input lies inside it ([`Reads`]). That is im2col without its buffer, and 10–20% faster
//! here (it reads far less memory).

use rayon::prelude::*;

use super::epilogue::Epilogue;
use super::reads::{lanes, Reads};
use super::shared::Shared;

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

/// One output row block: `out[o·out_stride + p] = Σ_s w[s][o]·row_s[p]`, then the epilogue
/// (its residual laid out as `out`), for channels `o < channels` and positions
/// `p < reads.width`, where `row_s` is the column matrix's row `s` as [`Reads`] describes it.
pub(super) struct Product<'a> {
    /// [`pack_weights`]' layout: tiles of `k × 16`.
    pub packed: &'a [f32],
    pub channels: usize,
    /// The planes the rows are read from, `plane_stride` apart.
    pub data: &'a [f32],
    pub plane_stride: usize,
    pub reads: &'a Reads,
    pub epilogue: Epilogue<'a>,
}

/// Computes `product` into `out` (rows `out_stride` apart), its tiles of 16 columns spread
/// over `threads` threads: each output value is computed the same way whatever the split.
/// Panics if AVX-512F is missing (check [`available`]) or a slice is too short.
pub(super) fn forward(product: &Product, out: &mut [f32], out_stride: usize, threads: usize) {
    let p = product;
    let width = p.reads.width;
    if width == 0 || p.channels == 0 {
        return;
    }
    let k = p.packed.len() / CHANNELS / p.channels.div_ceil(CHANNELS);
    let taps = p.reads.shifts.len();
    assert!(p.packed.len() == p.channels.div_ceil(CHANNELS) * k * CHANNELS);
    assert!(
        k.is_multiple_of(taps),
        "{k} rows are not whole planes of {taps} taps"
    );
    assert!(p.reads.masks.len() == width.div_ceil(16) * taps);
    let e = &p.epilogue;
    assert!(e.bias.is_none_or(|b| b.len() >= p.channels));
    assert!(e
        .residual
        .is_none_or(|r| (p.channels - 1) * out_stride + width <= r.len()));
    assert!(k == 0 || (k / taps - 1) * p.plane_stride + p.reads.extent <= p.data.len());
    assert!((p.channels - 1) * out_stride + width <= out.len());
    assert!(available(), "the AVX-512 convolution kernel needs AVX-512F");
    let per_task = width.div_ceil(16).div_ceil(threads.max(1)) * 16;
    let out = Shared(out.as_mut_ptr());
    let columns = |start: usize| {
        let end = (start + per_task).min(width);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (asserted); `Reads` only unmasks lanes that stay within
        // `extent` of their plane's start, and the assertions above keep every plane and every
        // store inside `data` and `out`; the tasks write disjoint columns of `out`, which is
        // borrowed mutably for the whole call.
        unsafe {
            x86::forward(p, k, (out.get(), out_stride), start..end)
        }
    };
    if per_task >= width {
        columns(0);
    } else {
        (0..width)
            .into_par_iter()
            .step_by(per_task)
            .for_each(columns);
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
        out: (*mut f32, usize),
        columns: Range<usize>,
    ) {
        // One loop per compiled function: with two loops over the accumulators in one
        // function, or a nested loop over a run-time count of taps, LLVM kept them in memory
        // (2.5× slower).
        if p.reads.shifts.len() == 1 {
            tiles::<true>(p, k, out, columns)
        } else {
            tiles::<false>(p, k, out, columns)
        }
    }

    /// `acc[o] += x · w[o]` for the 16 channels.
    #[inline(always)]
    unsafe fn add_outer(acc: &mut [__m512; CHANNELS], x: __m512, w: *const f32) {
        for (o, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(x, _mm512_set1_ps(*w.add(o)), *a);
        }
    }

    /// [`forward`] for rows read at one tap (a column matrix, rows a stride apart) or at
    /// several (an image, through a table of offsets).
    #[target_feature(enable = "avx512f")]
    unsafe fn tiles<const ONE_TAP: bool>(
        p: &Product,
        k: usize,
        (out, out_stride): (*mut f32, usize),
        columns: Range<usize>,
    ) {
        let taps = p.reads.shifts.len();
        // Row s of the column matrix: plane s / taps at shift s % taps.
        let offsets: Vec<isize> = (0..k)
            .filter(|_| !ONE_TAP)
            .map(|s| (s / taps * p.plane_stride) as isize + p.reads.shifts[s % taps])
            .collect();
        for start in columns.clone().step_by(16) {
            let store: __mmask16 = super::lanes(columns.end - start);
            let masks = &p.reads.masks[start / 16 * taps..][..taps];
            let data = p.data.as_ptr().wrapping_add(start);
            // Every tile of channels reads the same 16 columns, while they are in L1.
            for first in (0..p.channels).step_by(CHANNELS) {
                let channels = (p.channels - first).min(CHANNELS);
                let mut acc = [_mm512_setzero_ps(); CHANNELS];
                if let Some(bias) = p.epilogue.bias {
                    for (a, &b) in acc.iter_mut().zip(&bias[first..first + channels]) {
                        *a = _mm512_set1_ps(b);
                    }
                }
                let packed = p.packed.as_ptr().add(first * k);
                // Masked-off lanes are not read (nor can they fault).
                if ONE_TAP {
                    for step in 0..k {
                        let row = data.wrapping_add(step * p.plane_stride);
                        let x = _mm512_maskz_loadu_ps(masks[0], row);
                        add_outer(&mut acc, x, packed.add(step * CHANNELS));
                    }
                } else {
                    let mut tap = 0;
                    for (step, &offset) in offsets.iter().enumerate() {
                        let x = _mm512_maskz_loadu_ps(masks[tap], data.wrapping_offset(offset));
                        tap = if tap + 1 == taps { 0 } else { tap + 1 };
                        add_outer(&mut acc, x, packed.add(step * CHANNELS));
                    }
                }
                let at = first * out_stride + start;
                let residual = p.epilogue.residual.map(|r| r.as_ptr().add(at));
                let out = out.add(at);
                for (o, a) in acc.iter().enumerate().take(channels) {
                    let mut v = *a;
                    if let Some(residual) = residual {
                        let r = _mm512_maskz_loadu_ps(store, residual.add(o * out_stride));
                        v = _mm512_add_ps(v, r);
                    }
                    if p.epilogue.relu {
                        v = _mm512_max_ps(v, _mm512_setzero_ps());
                    }
                    _mm512_mask_storeu_ps(out.add(o * out_stride), store, v);
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
            let out_stride = width + 1;
            let residual: Vec<f32> = (0..channels * out_stride)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let packed = pack_weights(&w, channels, k);
            for (with_bias, with_residual, relu) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                let product = Product {
                    packed: &packed,
                    channels,
                    data: &cols,
                    plane_stride: cols_stride,
                    reads: &Reads::columns(width),
                    epilogue: Epilogue {
                        bias: with_bias.then_some(&bias[..]),
                        residual: with_residual.then_some(&residual[..]),
                        relu,
                    },
                };
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
                            + if with_bias { bias[o] as f64 } else { 0.0 }
                            + if with_residual {
                                residual[o * out_stride + p] as f64
                            } else {
                                0.0
                            };
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

    /// Reading an image's phases at a convolution's offsets equals a float64 convolution:
    /// every tap at every border, for several kernels, strides and sizes; the planes are
    /// separated by NaN, so a read outside its plane would show.
    #[test]
    fn phase_reads_equal_a_float64_convolution() {
        if !available() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Output height and width; the input is `stride` times larger.
        for (planes, channels, height, width, kernel, stride, padding) in [
            (3, 16, 8, 8, 3, 1, 1),
            (2, 5, 5, 7, 3, 1, 1),
            (16, 32, 32, 32, 3, 1, 1),
            (1, 16, 1, 1, 3, 1, 1),
            (4, 16, 6, 3, 5, 1, 2),
            (8, 16, 4, 5, 1, 1, 0),
            (3, 16, 8, 8, 3, 2, 1),
            (2, 5, 3, 7, 1, 2, 0),
            (4, 16, 5, 4, 5, 2, 2),
            (2, 16, 4, 3, 3, 3, 1),
        ] {
            let (positions, taps, phases) = (height * width, kernel * kernel, stride * stride);
            let (in_height, in_width) = (stride * height, stride * width);
            let image: Vec<f32> = (0..planes * phases * positions)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let pixel =
                |c: usize, iy: usize, ix: usize| image[(c * in_height + iy) * in_width + ix];
            let plane_stride = phases * positions + 7;
            let mut data = vec![f32::NAN; 11 + planes * plane_stride];
            for (c, py, px, y, x) in (0..planes).flat_map(|c| {
                (0..stride).flat_map(move |py| {
                    (0..stride).flat_map(move |px| {
                        (0..height).flat_map(move |y| (0..width).map(move |x| (c, py, px, y, x)))
                    })
                })
            }) {
                let at = c * plane_stride + (py * stride + px) * positions + y * width + x;
                data[11 + at] = pixel(c, stride * y + py, stride * x + px);
            }
            let k = planes * taps;
            let w: Vec<f32> = (0..channels * k)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let packed = pack_weights(&w, channels, k);
            let reads = Reads::phases(height, width, kernel, padding, stride);
            let product = Product {
                packed: &packed,
                channels,
                data: &data[11..],
                plane_stride,
                reads: &reads,
                epilogue: Epilogue::default(),
            };
            let mut out = vec![f32::NAN; channels * positions];
            forward(&product, &mut out, positions, 2);
            for (o, p) in (0..channels).flat_map(|o| (0..positions).map(move |p| (o, p))) {
                let (y, x) = (p / width, p % width);
                let mut want = 0.0f64;
                for (c, t) in (0..planes).flat_map(|c| (0..taps).map(move |t| (c, t))) {
                    let iy = (stride * y + t / kernel) as isize - padding as isize;
                    let ix = (stride * x + t % kernel) as isize - padding as isize;
                    if (0..in_height as isize).contains(&iy) && (0..in_width as isize).contains(&ix)
                    {
                        let v = pixel(c, iy as usize, ix as usize);
                        want += w[o * k + c * taps + t] as f64 * v as f64;
                    }
                }
                let got = out[o * positions + p] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                    "{planes}×{height}×{width}, {kernel}×{kernel} stride {stride} ({o}, {p}): \
                     {got} vs {want}"
                );
            }
        }
    }

    /// Times the kernel on ResNet-20's shapes (one thread): the forward pass and the input
    /// gradient from a column matrix, and convolutions that read the image in place (planes of
    /// `side × side`, 3×3 taps):
    /// `cargo test --release --lib narrow_shapes -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark"]
    fn narrow_shapes() {
        use std::time::Instant;
        if !available() {
            return;
        }
        println!("| product | reads | channels × width × k | GFLOP/s |");
        println!("|---|---|---|---|");
        for (what, channels, width, k, side) in [
            ("forward", 16, 1024, 144, None),
            ("forward", 32, 256, 288, None),
            ("forward", 64, 256, 576, None),
            ("input gradient", 144, 1024, 16, None),
            ("input gradient", 288, 256, 32, None),
            ("input gradient", 576, 256, 64, None),
            ("either", 16, 1024, 144, Some(32)),
            ("either", 32, 256, 288, Some(16)),
            ("either", 64, 64, 576, Some(8)),
        ] {
            let packed = pack_weights(&vec![0.5f32; channels * k], channels, k);
            let (reads, plane_stride) = match side {
                Some(side) => (Reads::phases(side, side, 3, 1, 1), side * side),
                None => (Reads::columns(width), width),
            };
            let planes = vec![0.25f32; k / reads.shifts.len() * plane_stride];
            let mut out = vec![0.0f32; channels * width];
            let product = Product {
                packed: &packed,
                channels,
                data: &planes,
                plane_stride,
                reads: &reads,
                epilogue: Epilogue::default(),
            };
            let flops = 2.0 * (channels * width * k) as f64;
            let reps = (2e9 / flops) as usize + 1;
            let mut best = f64::MAX;
            for _ in 0..5 {
                let started = Instant::now();
                for _ in 0..reps {
                    forward(&product, &mut out, width, 1);
                }
                best = best.min(started.elapsed().as_secs_f64() / reps as f64);
            }
            let reads = if side.is_some() { "image" } else { "columns" };
            println!(
                "| {what} | {reads} | {channels} × {width} × {k} | {:.0} |",
                flops / best / 1e9
            );
        }
    }
}
