//! The weight gradient in AVX-512 or AVX2, as sums of outer products read in place: no
//! column matrix.
//!
//! For kernel position `t`, `dW[o][c][t] = Σ_p dout[o][p] · x[c][q_t(p)]`, over the output
//! positions `p` whose input position `q_t(p)` lies inside the image. With `x` turned
//! channel-last (`[q][c]`), each position adds an outer product: the 16 channels `c` of one
//! tile are one load, each of 16 output channels `o` (6 or 4 in AVX2) is broadcast from its
//! own row of `dout`, read in place, and a 16 × 16 (16 × 6, 16 × 4) tile of `dW` for one `t`
//! stays in registers across all the positions of a block of images. Each sum runs over the
//! images and positions in order, so the result does not depend on how the tiles are spread
//! over the threads.

use std::ops::Range;

use rayon::prelude::*;

use super::kernels::{transpose, Geometry};
use super::narrow::{self, CHANNELS};
use super::shared::Shared;
use super::simd::{self, lanes, Vectors};

/// Output positions `p .. p + len` of one row, which read the input from `q`, the stride apart.
#[derive(Debug, Clone, Copy)]
struct Run {
    p: usize,
    q: usize,
    len: usize,
}

/// For every kernel position `t = ky·k + kx`, the runs (one per output row) whose inputs lie
/// inside the image.
fn runs(g: &Geometry) -> Vec<Vec<Run>> {
    let (k, s, pad) = (g.kernel, g.stride, g.padding as isize);
    let (ho, wo) = (g.out_height(), g.out_width());
    (0..k * k)
        .map(|t| {
            let (ky, kx) = (t / k, t % k);
            let (lo, hi) = g.valid_columns(kx);
            (0..ho)
                .filter_map(|oy| {
                    let iy = (oy * s + ky) as isize - pad;
                    let inside = (0..g.height as isize).contains(&iy) && lo < hi;
                    inside.then(|| Run {
                        p: oy * wo + lo,
                        q: iy as usize * g.width + lo * s + kx - g.padding,
                        len: hi - lo,
                    })
                })
                .collect()
        })
        .collect()
}

/// A block of images: `x` turned channel-last, `[image][q][C]`, and their `dout`,
/// `[image][O][p]`, its planes `dout_stride` apart ([`narrow::plane_stride`]).
pub(super) struct Block<'a> {
    x: &'a [f32],
    dout: &'a [f32],
    dout_stride: usize,
    images: usize,
}

/// The buffers a block's channel-last `x` and, where its planes are a multiple of 1 KiB long,
/// its spread `dout` are copied into, kept from block to block. A tile broadcasts from 16 rows
/// of `dout` at once (in AVX-512); 4 KiB apart, they all fell in the same L1 sets, 16 rows in
/// 8 ways, and ResNet-20's 16-channel weight gradient ran at half the AVX2 tiles' speed.
pub(super) struct ChannelLast(Vec<f32>, Vec<f32>);

impl ChannelLast {
    pub(super) fn new() -> Self {
        ChannelLast(Vec::new(), Vec::new())
    }

    /// The block of `images` images of `x` (`[N, C, H, W]`) and `dout` (`[N, O, Ho, Wo]`).
    pub(super) fn block<'a>(
        &'a mut self,
        g: &Geometry,
        x: &[f32],
        dout: &'a [f32],
        images: usize,
    ) -> Block<'a> {
        let ChannelLast(channel_last, spread) = self;
        let image_len = g.height * g.width * g.in_channels;
        channel_last.resize(images * image_len, 0.0);
        let x = &x[..images * image_len];
        for (image, last) in x.chunks(image_len).zip(channel_last.chunks_mut(image_len)) {
            transpose(image, g.in_channels, g.height * g.width, last);
        }
        let plane = g.out_height() * g.out_width();
        let dout_stride = narrow::plane_stride(plane);
        let mut dout = &dout[..images * g.out_channels * plane];
        if dout_stride != plane {
            narrow::spread_into(dout, plane, dout_stride, spread);
            dout = spread;
        }
        Block {
            x: channel_last,
            dout,
            dout_stride,
            images,
        }
    }
}

/// Adds the block's weight gradient into `sums`, laid out `[group][t][o][c]` (`o` and `c`
/// within the group), over `threads` threads, with this CPU's best instruction set.
pub(super) fn accumulate(g: &Geometry, block: &Block, sums: &mut [f32], threads: usize) {
    let vectors = simd::detected().expect("the weight gradient kernel needs AVX-512F or AVX2");
    accumulate_with(vectors, g, block, sums, threads)
}

/// [`accumulate`] with the instruction set given.
fn accumulate_with(
    vectors: Vectors,
    g: &Geometry,
    block: &Block,
    sums: &mut [f32],
    threads: usize,
) {
    let (og, cg, taps) = (
        g.out_channels / g.groups,
        g.in_channels / g.groups,
        g.kernel * g.kernel,
    );
    assert!(sums.len() == g.groups * taps * og * cg);
    assert!(vectors.present(), "{vectors:?} is missing on this CPU");
    let runs = runs(g);
    let outs = vectors.tiles(og);
    let tiles: Vec<(usize, usize, Range<usize>, usize)> = (0..g.groups)
        .flat_map(|group| (0..taps).map(move |t| (group, t)))
        .flat_map(|(group, t)| {
            outs.iter().flat_map(move |o| {
                (0..cg)
                    .step_by(CHANNELS)
                    .map(move |c| (group, t, o.clone(), c))
            })
        })
        .collect();
    let sums = Shared(sums.as_mut_ptr());
    let tile = |(group, t, o, c): &(usize, usize, Range<usize>, usize)| {
        let (group, t, c) = (*group, *t, *c);
        let first = ((group * taps + t) * og + o.start) * cg + c;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the instruction set is present (asserted). The tile reads and writes `sums`
        // only at rows `o` (below og) and columns `c..c + 16` (below cg) of its
        // (group, t) block, so tiles touch disjoint elements; `runs` keeps every `p` and `q`
        // inside the image, the channel loads are masked at `cg`, and the broadcasts of a
        // partial tile read its last row again.
        unsafe {
            x86::tile(
                vectors,
                (g, block, &runs[t]),
                (group * og + o.start, o.len()),
                (group * cg + c, (cg - c).min(CHANNELS)),
                (sums.get().add(first), cg),
            )
        }
    };
    if threads > 1 {
        tiles.par_iter().for_each(tile);
    } else {
        tiles.iter().for_each(tile);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::simd::x86::{Ymm2, Zmm};
    use super::super::simd::Sixteen;
    use super::{lanes, Block, Geometry, Run, Vectors};

    /// The operands of a tile: the convolution, its block of images and the runs of one
    /// kernel position.
    type Operands<'a> = (&'a Geometry, &'a Block<'a>, &'a [Run]);

    /// One tile: adds, for `outs` output channels from `o_first` and `chans` input channels
    /// from `c_first`, the sums over the block's images and the runs into `sums` (rows
    /// `row_stride` apart).
    pub(super) unsafe fn tile(
        vectors: Vectors,
        operands: Operands,
        outs: (usize, usize),
        chans: (usize, usize),
        sums: (*mut f32, usize),
    ) {
        let masked = chans.1 < 16;
        match (vectors, vectors.tile_width(outs.1), masked) {
            (Vectors::Avx512, _, true) => avx512::<true>(operands, outs, chans, sums),
            (Vectors::Avx512, _, false) => avx512::<false>(operands, outs, chans, sums),
            (Vectors::Avx2, Ymm2::SMALL, true) => {
                avx2::<{ Ymm2::SMALL }, true>(operands, outs, chans, sums)
            }
            (Vectors::Avx2, Ymm2::SMALL, false) => {
                avx2::<{ Ymm2::SMALL }, false>(operands, outs, chans, sums)
            }
            (Vectors::Avx2, _, true) => {
                avx2::<{ Ymm2::CHANNELS }, true>(operands, outs, chans, sums)
            }
            (Vectors::Avx2, _, false) => {
                avx2::<{ Ymm2::CHANNELS }, false>(operands, outs, chans, sums)
            }
        }
    }

    // One function per tile shape: each keeps its own accumulators in registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const MASKED: bool>(
        operands: Operands,
        outs: (usize, usize),
        chans: (usize, usize),
        sums: (*mut f32, usize),
    ) {
        sum::<Zmm, { Zmm::CHANNELS }, MASKED>(operands, outs, chans, sums)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const TILE: usize, const MASKED: bool>(
        operands: Operands,
        outs: (usize, usize),
        chans: (usize, usize),
        sums: (*mut f32, usize),
    ) {
        sum::<Ymm2, TILE, MASKED>(operands, outs, chans, sums)
    }

    /// [`tile`] for `TILE` output channels at once (`outs` of them kept), with the input
    /// channels loaded under a mask when the tile has fewer than sixteen (`MASKED`). A mask
    /// takes two of AVX2's sixteen registers, and the loop then spills an accumulator.
    #[inline(always)]
    unsafe fn sum<V: Sixteen, const TILE: usize, const MASKED: bool>(
        (g, block, runs): Operands,
        (o_first, outs): (usize, usize),
        (c_first, chans): (usize, usize),
        (sums, row_stride): (*mut f32, usize),
    ) {
        let bits = lanes(chans);
        let mask = V::mask(bits);
        let mut acc = [V::zero(); TILE];
        for (o, a) in acc.iter_mut().enumerate().take(outs) {
            *a = V::load(mask, sums.add(o * row_stride));
        }
        let plane = g.height * g.width;
        let (ins_all, outs_all, stride) = (g.in_channels, g.out_channels, g.stride);
        for image in 0..block.images {
            let x = block.x.as_ptr().add(image * plane * ins_all + c_first);
            // The rows of the tile's output channels; a partial tile reads its last row again.
            let d = block
                .dout
                .as_ptr()
                .add(image * block.dout_stride * outs_all);
            let rows: [*const f32; TILE] =
                std::array::from_fn(|o| d.add((o_first + o.min(outs - 1)) * block.dout_stride));
            for run in runs {
                for j in 0..run.len {
                    let at = x.add((run.q + j * stride) * ins_all);
                    let xs = if MASKED {
                        V::load(mask, at)
                    } else {
                        V::load_all(at)
                    };
                    for (a, row) in acc.iter_mut().zip(rows) {
                        *a = a.add_product(xs, row.add(run.p + j));
                    }
                }
            }
        }
        for (o, a) in acc.iter().enumerate().take(outs) {
            a.store(mask, bits, sums.add(o * row_stride));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Partial tiles of channels on both sides, strides, padding, groups, a 1×1 kernel and
    /// planes of 1 KiB against a float64 sum; and the same bits whether the tiles run on one
    /// thread or three.
    #[test]
    fn sums_equal_float64_and_do_not_depend_on_the_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for (batch, in_channels, height, width, out_channels, kernel, stride, padding, groups) in [
            (3, 18, 7, 6, 20, 3, 2, 1, 1),
            (2, 4, 5, 5, 6, 1, 1, 0, 2),
            (1, 3, 9, 9, 16, 3, 1, 2, 1),
            (2, 32, 4, 4, 48, 3, 1, 1, 2),
            // 16×16 planes: `dout` read from a spread copy.
            (2, 16, 16, 16, 16, 3, 1, 1, 1),
        ] {
            let g = Geometry {
                batch,
                in_channels,
                height,
                width,
                out_channels,
                kernel,
                stride,
                padding,
                groups,
            };
            let (ho, wo) = (g.out_height(), g.out_width());
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
            let x = random(batch * in_channels * height * width);
            let dout = random(batch * out_channels * ho * wo);
            let mut buffer = ChannelLast::new();
            let block = buffer.block(&g, &x, &dout, batch);
            let (og, cg, taps) = (out_channels / groups, in_channels / groups, kernel * kernel);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut one = vec![0.0f32; groups * taps * og * cg];
            accumulate(&g, &block, &mut one, 1);
            // Every instruction set of this CPU on three threads gives the same bits.
            for vectors in simd::usable() {
                let mut three = vec![0.0f32; one.len()];
                accumulate_with(vectors, &g, &block, &mut three, 3);
                assert_eq!(bits(&one), bits(&three), "{vectors:?} on three threads");
            }
            for (i, &got) in one.iter().enumerate() {
                let (c, o, t, group) = (
                    i % cg,
                    i / cg % og,
                    i / cg / og % taps,
                    i / (cg * og * taps),
                );
                let (ky, kx) = (t / kernel, t % kernel);
                let (o, c) = (group * og + o, group * cg + c);
                let mut want = 0.0f64;
                for (n, oy, ox) in (0..batch)
                    .flat_map(|n| (0..ho).flat_map(move |oy| (0..wo).map(move |ox| (n, oy, ox))))
                {
                    let iy = (oy * stride + ky) as isize - padding as isize;
                    let ix = (ox * stride + kx) as isize - padding as isize;
                    if (0..height as isize).contains(&iy) && (0..width as isize).contains(&ix) {
                        let xv =
                            x[((n * in_channels + c) * height + iy as usize) * width + ix as usize];
                        let dv = dout[((n * out_channels + o) * ho + oy) * wo + ox];
                        want += xv as f64 * dv as f64;
                    }
                }
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{g:?}: element {i}: {got} vs {want}"
                );
            }
        }
    }

    /// Times a block's channel-last turn of `x` and its sums on ResNet-20's 3×3 shapes (one
    /// thread): `cargo test --release --lib outer_shapes -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark"]
    fn outer_shapes() {
        use std::time::Instant;
        println!("| channels | side | images | GFLOP/s (with the turn) | GFLOP/s (sums alone) |");
        println!("|---|---|---|---|---|");
        for (channels, side, images) in [(16, 32, 1), (32, 16, 1), (64, 8, 4), (16, 32, 4)] {
            let g = Geometry {
                batch: images,
                in_channels: channels,
                height: side,
                width: side,
                out_channels: channels,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 1,
            };
            let x = vec![0.5f32; images * channels * side * side];
            let (mut buffer, mut kept) = (ChannelLast::new(), ChannelLast::new());
            let ready = kept.block(&g, &x, &x, images);
            let mut sums = vec![0.0f32; 9 * channels * channels];
            let flops = 2.0 * (images * side * side * 9 * channels * channels) as f64;
            let reps = (1e9 / flops) as usize + 1;
            let mut rates = Vec::new();
            for turn in [true, false] {
                let mut best = f64::MAX;
                for _ in 0..5 {
                    let started = Instant::now();
                    for _ in 0..reps {
                        if turn {
                            let block = buffer.block(&g, &x, &x, images);
                            accumulate(&g, &block, &mut sums, 1);
                        } else {
                            accumulate(&g, &ready, &mut sums, 1);
                        }
                    }
                    best = best.min(started.elapsed().as_secs_f64() / reps as f64);
                }
                rates.push(flops / best / 1e9);
            }
            println!(
                "| {channels} | {side} | {images} | {:.0} | {:.0} |",
                rates[0], rates[1]
            );
        }
    }
}
