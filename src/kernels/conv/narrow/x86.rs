//! The AVX-512 and AVX2 kernels of the narrow product: one compiled function per tile width.

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
unsafe fn avx512_tile<const TILE: usize>(p: &Product, b: &Block<'_, Zmm>, channels: Range<usize>) {
    tile::<Zmm, TILE>(p, b, channels)
}

#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn avx2_tile<const TILE: usize>(p: &Product, b: &Block<'_, Ymm2>, channels: Range<usize>) {
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
