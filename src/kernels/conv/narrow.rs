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
mod x86 {
    use std::ops::Range;

    use super::super::simd::x86::{Ymm2, Zmm};
    use super::super::simd::Sixteen;
    use super::{lanes, Product, Vectors};

    /// Columns `columns` of the product for the packed tiles `tiles`, into `out` (rows
    /// `out_stride` apart).
    pub(super) unsafe fn forward(
        p: &Product,
        out: (*mut f32, usize),
        columns: Range<usize>,
        tiles: Range<usize>,
    ) {
        // One loop over the accumulators per compiled function: with two in one function, or
        // a nested loop over a run-time count of taps, LLVM kept them in memory (2.5× slower).
        let one_tap = p.reads.shifts.len() == 1;
        match (p.packed.vectors, one_tap) {
            (Vectors::Avx512, true) => avx512::<true>(p, out, columns, tiles),
            (Vectors::Avx512, false) => avx512::<false>(p, out, columns, tiles),
            (Vectors::Avx2, true) => avx2::<true>(p, out, columns, tiles),
            (Vectors::Avx2, false) => avx2::<false>(p, out, columns, tiles),
        }
    }

    /// The kernels of every tile width from 1 to `$v::CHANNELS`, at index width − 1.
    macro_rules! by_width {
        ($kernel:ident, $v:ty; $($width:literal)+) => {
            [$($kernel::<$width> as Tile<$v>),+]
        };
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const ONE_TAP: bool>(
        p: &Product,
        out: (*mut f32, usize),
        columns: Range<usize>,
        tiles: Range<usize>,
    ) {
        let kernels = by_width!(avx512_tile, Zmm; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        const { assert!(Zmm::CHANNELS == 16) };
        blocks::<Zmm, ONE_TAP>(p, out, (columns, tiles), &kernels)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const ONE_TAP: bool>(
        p: &Product,
        out: (*mut f32, usize),
        columns: Range<usize>,
        tiles: Range<usize>,
    ) {
        let kernels = by_width!(avx2_tile, Ymm2; 1 2 3 4 5 6);
        const { assert!(Ymm2::CHANNELS == 6) };
        blocks::<Ymm2, ONE_TAP>(p, out, (columns, tiles), &kernels)
    }

    // A function per tile width, not inlined: each keeps its own accumulators in registers.
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    unsafe fn avx512_tile<const TILE: usize>(
        p: &Product,
        b: &Block<'_, Zmm>,
        channels: Range<usize>,
    ) {
        tile::<Zmm, TILE>(p, b, channels)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    unsafe fn avx2_tile<const TILE: usize>(
        p: &Product,
        b: &Block<'_, Ymm2>,
        channels: Range<usize>,
    ) {
        tile::<Ymm2, TILE>(p, b, channels)
    }

    /// A tile of channels over one block of columns.
    type Tile<V> = unsafe fn(&Product, &Block<'_, V>, Range<usize>);

    /// A block of 16 columns as its tiles read it.
    struct Block<'a, V: Sixteen> {
        /// The block's first row, and how far apart its rows are.
        rows: *const f32,
        row_stride: usize,
        /// Whether the rows are read in place, under `read` (or from the panel, whole).
        in_place: bool,
        read: V::Mask,
        /// Rows read in place at several taps: row `s` at `rows + offsets[s]`, under the mask
        /// of its tap, `masks[s % taps]`.
        taps: Option<(&'a [isize], &'a [V::Mask])>,
        /// The block's first column in the output, and the mask of its columns (`bits`).
        start: usize,
        store: V::Mask,
        bits: u16,
        out: (*mut f32, usize),
    }

    /// The product for the packed tiles `tiles` of channels, each computed by the kernel of
    /// its width (`kernels[width - 1]`), with rows read at one tap (a column matrix, rows a
    /// stride apart) or at several (an image, through a table of offsets).
    #[inline(always)]
    unsafe fn blocks<V: Sixteen, const ONE_TAP: bool>(
        p: &Product,
        out: (*mut f32, usize),
        (columns, tiles): (Range<usize>, Range<usize>),
        kernels: &[Tile<V>],
    ) {
        let k = p.packed.k;
        let taps = p.reads.shifts.len();
        let tiles = &p.packed.tiles[tiles];
        let mut masks = Vec::with_capacity(taps);
        // With more than one tile of channels, the block's rows are copied where every tile
        // reads them in order: read in place, rows a plane apart (often a multiple of 4 KiB)
        // fell into the same few L1 sets and were evicted before the next tile came back.
        // One tile reads them in place, at one tap or at several (each row under its tap's
        // mask): through the panel, 16-channel layers ran 15–20% slower in AVX-512.
        let in_place = ONE_TAP && tiles.len() <= 1;
        let gathered = !ONE_TAP && tiles.len() <= 1;
        // Row s of the column matrix: plane s / taps at shift s % taps.
        let offsets: Vec<isize> = (0..if in_place { 0 } else { k })
            .map(|s| (s / taps * p.plane_stride) as isize + p.reads.shifts[s % taps])
            .collect();
        let mut panel = vec![V::zero(); if gathered { 0 } else { offsets.len() }];
        let panel_rows = panel.as_mut_ptr().cast::<f32>();
        for start in columns.clone().step_by(16) {
            let bits = lanes(columns.end - start);
            masks.clear();
            // A loop, not a closure: a closure is compiled without the target features, and
            // its intrinsics would not be inlined.
            for &m in &p.reads.masks[start / 16 * taps..][..taps] {
                masks.push(V::mask(m));
            }
            let data = p.data.as_ptr().wrapping_add(start);
            // Masked-off lanes are not read (nor can they fault), and are zero in the panel.
            let (rows, row_stride) = if in_place {
                (data.wrapping_offset(p.reads.shifts[0]), p.plane_stride)
            } else if gathered {
                (data, 0)
            } else {
                let mut tap = 0;
                for (step, &offset) in offsets.iter().enumerate() {
                    V::load(masks[tap], data.wrapping_offset(offset))
                        .store_all(panel_rows.add(step * 16));
                    tap = if tap + 1 == taps { 0 } else { tap + 1 };
                }
                (panel_rows.cast_const(), 16)
            };
            let block = Block::<V> {
                rows,
                row_stride,
                in_place,
                read: masks[0],
                taps: gathered.then_some((&offsets[..], &masks[..])),
                start,
                store: V::mask(bits),
                bits,
                out,
            };
            for tile in tiles {
                kernels[tile.len() - 1](p, &block, tile.clone());
            }
        }
    }

    /// One tile: `channels` (as many as `TILE`, or fewer) over one block of columns, then the
    /// epilogue.
    #[inline(always)]
    unsafe fn tile<V: Sixteen, const TILE: usize>(
        p: &Product,
        b: &Block<'_, V>,
        channels: Range<usize>,
    ) {
        let (first, k) = (channels.start, p.packed.k);
        let mut acc = [V::zero(); TILE];
        if let Some(bias) = p.epilogue.bias {
            for (a, &v) in acc.iter_mut().zip(&bias[channels.clone()]) {
                *a = V::splat(v);
            }
        }
        let weights = p.packed.weights.as_ptr().add(first * k);
        let rows = (b.rows, b.row_stride, k);
        acc = if let Some((offsets, masks)) = b.taps {
            add_taps::<V, TILE>(acc, b.rows, offsets, masks, weights)
        } else if b.in_place {
            add_rows::<V, TILE, true>(acc, rows, b.read, weights)
        } else {
            add_rows::<V, TILE, false>(acc, rows, b.read, weights)
        };
        let (out, out_stride) = b.out;
        let at = first * out_stride + b.start;
        let residual = p.epilogue.residual.map(|r| r.as_ptr().add(at));
        let out = out.add(at);
        for (o, a) in acc.iter().enumerate().take(channels.len()) {
            let mut v = *a;
            if let Some(residual) = residual {
                v = v.add(V::load(b.store, residual.add(o * out_stride)));
            }
            if p.epilogue.relu {
                v = v.relu();
            }
            v.store(b.store, b.bits, out.add(o * out_stride));
        }
    }

    /// `acc[o] += Σ_step row_step · w[step][o]` over `k` rows from `at`, `stride` apart, loaded
    /// under `mask` if `MASKED` (in place) or whole (from the panel, where a mask's registers
    /// would only add to the pressure on AVX2's sixteen).
    ///
    /// The accumulators go in and out by value: behind a `&mut`, LLVM kept the sixteen AVX-512
    /// ones in registers but also stored each to the stack after every multiply-add, which
    /// halved the kernel's speed on Zen 4.
    #[inline(always)]
    unsafe fn add_rows<V: Sixteen, const TILE: usize, const MASKED: bool>(
        mut acc: [V; TILE],
        (at, stride, k): (*const f32, usize, usize),
        mask: V::Mask,
        weights: *const f32,
    ) -> [V; TILE] {
        for step in 0..k {
            let row = at.wrapping_add(step * stride);
            let x = if MASKED {
                V::load(mask, row)
            } else {
                V::load_all(row)
            };
            acc = add_outer(acc, x, weights.add(step * TILE));
        }
        acc
    }

    /// `acc[o] += Σ_step row_step · w[step][o]` over the rows at `data + offsets[step]`, each
    /// loaded under its tap's mask, `masks[step % taps]`.
    #[inline(always)]
    unsafe fn add_taps<V: Sixteen, const TILE: usize>(
        mut acc: [V; TILE],
        data: *const f32,
        offsets: &[isize],
        masks: &[V::Mask],
        weights: *const f32,
    ) -> [V; TILE] {
        let mut weights = weights;
        for plane in offsets.chunks_exact(masks.len()) {
            for (&offset, &mask) in plane.iter().zip(masks) {
                let x = V::load(mask, data.wrapping_offset(offset));
                acc = add_outer(acc, x, weights);
                weights = weights.add(TILE);
            }
        }
        acc
    }

    /// `acc[o] += x · w[o]` for the tile's channels.
    #[inline(always)]
    unsafe fn add_outer<V: Sixteen, const TILE: usize>(
        mut acc: [V; TILE],
        x: V,
        w: *const f32,
    ) -> [V; TILE] {
        for (o, a) in acc.iter_mut().enumerate() {
            *a = a.add_product(x, w.add(o));
        }
        acc
    }
}

#[cfg(test)]
mod tests;
