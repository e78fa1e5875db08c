//! The weight gradient: fixed runs of images, each summed by [`outer`] (AVX-512 or AVX2) or by
//! multiplies of the column matrix, then added in order.

use std::ops::Range;

use rayon::prelude::*;

use super::blocks::{blocking, threads, Scratch};
use super::columns::{gather_columns, group_rows, transpose};
use super::Geometry;
use crate::kernels::conv::matmul::{matmul, Dims, View};
use crate::kernels::conv::narrow;
use crate::kernels::conv::outer::{self, ChannelLast};

/// The weight gradient of one run of images, `(g, x, dout, images, threads)`, in some layout.
type Part = fn(&Geometry, &[f32], &[f32], Range<usize>, usize) -> Vec<f32>;

/// Runs of images whose weight-gradient partial sums are added in order (see [`weight_grad`]).
const WEIGHT_GRAD_PARTS: usize = 4;

/// `dw = ∂L/∂w` summed over the batch; `dw` is `[O, C/g, k, k]`, overwritten.
///
/// The batch is cut into at most [`WEIGHT_GRAD_PARTS`] fixed runs of images, whatever the
/// thread count, and their partial sums are added in order: the result depends neither on
/// scheduling nor on the number of threads, so a run resumed with other `--threads` stays
/// bit-identical. (Threads beyond the runs work inside each run, on disjoint parts of its sum.)
/// With AVX-512 or AVX2, the sums are outer products read in place ([`outer`]); otherwise they are
/// multiplies of the column matrix.
pub fn weight_grad(g: &Geometry, x: &[f32], dout: &[f32], dw: &mut [f32]) {
    let chunk = g.batch.div_ceil(WEIGHT_GRAD_PARTS).max(1);
    let inner = (threads() / g.batch.div_ceil(chunk)).max(1);
    let sum_over = |part: Part| {
        let starts: Vec<usize> = (0..g.batch).step_by(chunk).collect();
        let partials: Vec<Vec<f32>> = starts
            .into_par_iter()
            .map(|first| part(g, x, dout, first..(first + chunk).min(g.batch), inner))
            .collect();
        let mut total = vec![0.0f32; dw.len()];
        for p in &partials {
            total.iter_mut().zip(p).for_each(|(d, v)| *d += v);
        }
        total
    };
    let (kk, og, cg) = (g.col_rows(), g.out_per_group(), g.in_per_group());
    let taps = g.kernel * g.kernel;
    if narrow::available() {
        // [group][t][o][c] → [group·og + o][c][t]
        let total = sum_over(weight_grad_outer);
        for (i, v) in total.into_iter().enumerate() {
            let (c, o, t, group) = (
                i % cg,
                i / cg % og,
                i / cg / og % taps,
                i / (cg * og * taps),
            );
            dw[((group * og + o) * cg + c) * taps + t] = v;
        }
    } else {
        // dW_gᵀ per group → dW_g
        let total = sum_over(weight_grad_columns);
        let group_len = g.weight_group_len();
        for (t, group) in total.chunks(group_len).zip(dw.chunks_mut(group_len)) {
            transpose(t, kk, og, group);
        }
    }
}

/// The weight gradient of `images` as [`outer`]'s sums, `[group][t][o][c]`.
fn weight_grad_outer(
    g: &Geometry,
    x: &[f32],
    dout: &[f32],
    images: Range<usize>,
    threads: usize,
) -> Vec<f32> {
    let mut sums = vec![0.0f32; g.out_channels * g.col_rows()];
    let mut buffer = ChannelLast::new();
    let (per_block, _) = blocking(g);
    for start in images.clone().step_by(per_block) {
        let b = per_block.min(images.end - start);
        let xs = &x[start * g.image_len()..][..b * g.image_len()];
        let douts = &dout[start * g.out_image_len()..][..b * g.out_image_len()];
        let block = buffer.block(g, xs, douts, b);
        outer::accumulate(g, &block, &mut sums, threads);
    }
    sums
}

/// The weight gradient of `images` from their column matrices, `dW_gᵀ` per group.
fn weight_grad_columns(
    g: &Geometry,
    x: &[f32],
    dout: &[f32],
    images: Range<usize>,
    inner: usize,
) -> Vec<f32> {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    let (per_block, _) = blocking(g);
    let mut sum = vec![0.0f32; g.out_channels * kk];
    let Scratch {
        mut cols,
        mut product,
        ..
    } = Scratch::new(g, per_block);
    for start in images.clone().step_by(per_block) {
        let b = per_block.min(images.end - start);
        let width = b * positions;
        let xs = &x[start * g.image_len()..][..b * g.image_len()];
        let douts = &dout[start * g.out_image_len()..][..b * g.out_image_len()];
        for group in 0..g.groups {
            // colsᵀ: element (i, j) = cols[j][i].
            let columns_t = if b == 1 && g.is_pointwise() {
                View {
                    data: &xs[group * kk * positions..],
                    row_stride: 1,
                    col_stride: positions,
                }
            } else {
                gather_columns(g, xs, group, b, &mut cols, inner > 1);
                View {
                    data: &cols,
                    row_stride: 1,
                    col_stride: width,
                }
            };
            let grad = group_rows(g, douts, group, b, &mut product);
            let dst = &mut sum[group * g.weight_group_len()..][..g.weight_group_len()];
            let dims = Dims {
                m: og,
                n: kk,
                k: width,
            };
            // dW_gᵀ ([kk × O/g]): the layout gemm fills fastest, turned around at the end.
            matmul(dims, dst, true, grad, columns_t, inner);
        }
    }
    sum
}
