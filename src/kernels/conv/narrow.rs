//! The forward multiply of convolutions, on any count of output channels (per group), in
//! AVX-512 or AVX2 and without packing of the columns; the input gradient's multiply (Wᵀ times
//! the output gradient) runs here too, its rows taking the channels' place.
//!
//! gemm packs the column matrix before multiplying, and with 16 output channels each packed
//! value is used only 16 times: the packing costs about as much as the arithmetic, and those
//! multiplies ran at 70–80 GFLOP/s on one Zen 5 core, against ~200 for 32 or more channels.
//! Here a tile of 16 output positions × 16 channels lives in 16 AVX-512 registers (× 6 or 4
//! channels in 12 or 8 AVX2 registers, [`simd`]); each step of the inner
//! dimension loads 16 positions of one row of the column matrix, where im2col left them, and
//! adds them, times each channel's weight (broadcast from memory), into the accumulators. The
//! output is written row-major, in place, with the bias and the ReLU applied in registers.
//! Channels past the last whole tile get a tile of their own width (pruning leaves every
//! width): before, such layers went through im2col and gemm, and a 22-channel layer of a
//! pruned ResNet-20 ran slower than the 32-channel one it came from.
//!
//! The rows need not be a column matrix: a convolution that keeps the image's size reads each
//! kernel position's row straight from the image, shifted, under a mask of the positions whose
//! input lies inside it ([`Reads`]). That is im2col without its buffer, and 10–20% faster
//! here (it reads far less memory). Planes a multiple of 1 KiB long (32×32, 16×16) are first
//! copied a cache line further apart ([`plane_stride`]): read where they lay, the input
//! gradient of ResNet-20's 16-channel layers ran 30–35% slower, their forward pass 15–25%.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::epilogue::Epilogue;
use super::reads::Reads;
use super::shared::Shared;
use super::simd::{self, lanes, Vectors};

/// Channels of a tile in AVX-512: one register of f32 per output channel. The other kernels
/// use it as their own unit of 16 lanes.
pub(super) const CHANNELS: usize = 16;

/// Whether [`forward`] can run here: AVX-512F, or AVX2 with FMA, on this CPU.
pub(super) fn available() -> bool {
    simd::detected().is_some()
}

/// How far apart [`forward`] best reads planes of `plane_len` values: a tile reads the same
/// positions of every plane, and planes a multiple of 1 KiB apart put those rows in a few of
/// the 64 sets of the L1 cache, where each evicts the others before the next block of columns
/// reads them again. An odd number of cache lines apart, they spread over all the sets.
pub(super) fn plane_stride(plane_len: usize) -> usize {
    if plane_len.is_multiple_of(256) {
        plane_len + 16
    } else {
        plane_len
    }
}

/// `planes` (each `plane_len` long) `stride` apart: where they lie if they are, else a copy
/// with the gaps zero.
pub(super) fn spread(planes: &[f32], plane_len: usize, stride: usize) -> Cow<'_, [f32]> {
    if stride == plane_len {
        return Cow::Borrowed(planes);
    }
    let mut spread = Vec::with_capacity(planes.len() / plane_len * stride);
    spread_into(planes, plane_len, stride, &mut spread);
    Cow::Owned(spread)
}

/// `planes` (each `plane_len` long) copied `stride` apart into `spread`, the gaps zero.
pub(super) fn spread_into(planes: &[f32], plane_len: usize, stride: usize, spread: &mut Vec<f32>) {
    spread.clear();
    for plane in planes.chunks(plane_len) {
        spread.extend_from_slice(plane);
        spread.resize(spread.len() + stride - plane.len(), 0.0);
    }
}

/// Weights `[channels × k]` as the kernel reads them for one instruction set: tiles of the
/// channels it keeps in registers at once ([`Vectors::tiles`]), each `[k × tile width]`. A
/// tile is as wide as the channels it covers: the remainder of a width that is no multiple of
/// the full tile's gets a kernel of its own width, no accumulator computed for nothing.
pub(super) struct Packed {
    weights: Vec<f32>,
    tiles: Vec<Range<usize>>,
    vectors: Vectors,
    channels: usize,
    k: usize,
}

/// The weights `[channels × k]` (row-major) packed for this CPU's instruction set.
pub(super) fn pack_weights(w: &[f32], channels: usize, k: usize) -> Packed {
    let vectors = simd::detected().expect("the convolution kernel needs AVX-512F or AVX2 with FMA");
    Packed::new(vectors, w, channels, k)
}

impl Packed {
    pub(super) fn new(vectors: Vectors, w: &[f32], channels: usize, k: usize) -> Packed {
        assert!(w.len() >= channels * k);
        let tiles = vectors.tiles(channels);
        // Each tile starts at `start · k`; the loop writes in order and reads a tile's rows
        // side by side.
        let mut weights = Vec::with_capacity(channels * k);
        for tile in &tiles {
            for step in 0..k {
                weights.extend(tile.clone().map(|o| w[o * k + step]));
            }
        }
        Packed {
            weights,
            tiles,
            vectors,
            channels,
            k,
        }
    }
}

/// One output row block: `out[o·out_stride + p] = Σ_s w[s][o]·row_s[p]`, then the epilogue
/// (its residual laid out as `out`), for the packed channels `o` and positions
/// `p < reads.width`, where `row_s` is the column matrix's row `s` as [`Reads`] describes it.
pub(super) struct Product<'a> {
    pub packed: &'a Packed,
    /// The planes the rows are read from, `plane_stride` apart.
    pub data: &'a [f32],
    pub plane_stride: usize,
    pub reads: &'a Reads,
    pub epilogue: Epilogue<'a>,
}

/// Computes `product` into `out` (rows `out_stride` apart), its tiles of 16 columns spread
/// over `threads` threads: each output value is computed the same way whatever the split,
/// and whatever the instruction set. Every value of the product's rows and columns is
/// written (and none is read), so `out` may be uninitialised there. Panics if a slice is too
/// short.
pub(super) fn forward(
    product: &Product,
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    threads: usize,
) {
    let p = product;
    let (width, channels, k) = (p.reads.width, p.packed.channels, p.packed.k);
    if width == 0 || channels == 0 {
        return;
    }
    let taps = p.reads.shifts.len();
    assert!(
        k.is_multiple_of(taps),
        "{k} rows are not whole planes of {taps} taps"
    );
    assert!(p.reads.masks.len() == width.div_ceil(16) * taps);
    let e = &p.epilogue;
    assert!(e.bias.is_none_or(|b| b.len() >= channels));
    assert!(e
        .residual
        .is_none_or(|r| (channels - 1) * out_stride + width <= r.len()));
    assert!(k == 0 || (k / taps - 1) * p.plane_stride + p.reads.extent <= p.data.len());
    assert!((channels - 1) * out_stride + width <= out.len());
    let vectors = p.packed.vectors;
    assert!(vectors.present(), "{vectors:?} is missing on this CPU");
    let out = Shared(out.as_mut_ptr().cast::<f32>());
    let task = |(columns, tiles): (Range<usize>, Range<usize>)| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the instruction set is present (asserted); `Reads` only unmasks lanes that
        // stay within `extent` of their plane's start, and the assertions above keep every
        // plane and every store inside `data` and `out`; the tasks write disjoint parts of
        // `out` (columns × channels), which is borrowed mutably for the whole call.
        unsafe {
            x86::forward(p, (out.get(), out_stride), columns, tiles)
        }
    };
    // Waking another thread costs a few µs: a product that one thread computes in about as
    // long (a small layer at batch 1) stays on this one.
    let threads = match width * channels * k < PARALLEL_MACS {
        true => 1,
        false => threads.max(1),
    };
    let tasks = tasks(width, p.packed.tiles.len(), threads);
    if let [one] = &tasks[..] {
        task(one.clone());
    } else {
        tasks.into_par_iter().for_each(task);
    }
}

/// Multiply-adds below which a product runs on one thread (about 5 µs of one core's work).
const PARALLEL_MACS: usize = 1 << 18;

/// The tasks of a product `width` columns wide over `tiles` tiles of channels on `threads`
/// threads: blocks of 16 columns, as many to a task as give each thread one; where there are
/// few blocks (small maps at batch 1), a block to a task and the tiles split too, into about
/// four tasks a thread, so that no thread waits. Each task is `(columns, tiles)`.
fn tasks(width: usize, tiles: usize, threads: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let blocks = width.div_ceil(16);
    let (blocks_per_task, tiles_per_task) = if threads == 1 || blocks >= 4 * threads {
        (blocks.div_ceil(threads), tiles)
    } else {
        (1, tiles.div_ceil((4 * threads).div_ceil(blocks)))
    };
    let columns = (0..width).step_by(blocks_per_task * 16);
    columns
        .flat_map(|start| {
            let columns = start..(start + blocks_per_task * 16).min(width);
            (0..tiles)
                .step_by(tiles_per_task)
                .map(move |t| (columns.clone(), t..(t + tiles_per_task).min(tiles)))
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;
