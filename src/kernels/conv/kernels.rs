//! CPU convolution kernels in f32: im2col / col2im around matrix multiplies (the `gemm` crate,
//! the same one candle uses), parallel over images.
//!
//! Layouts are PyTorch's, contiguous: input `[N, C, H, W]`, weight `[O, C/groups, k, k]`, output
//! `[N, O, Ho, Wo]`. For one image and one group, with `K = (C/groups)·k·k` and `P = Ho·Wo`:
//!
//! ```text
//! forward        out_g[O/g × P]  = W_g[O/g × K] · cols[K × P]
//! input grad     dcols[K × P]    = W_gᵀ · dout_g[O/g × P],   then col2im (scatter-add) into dx
//! weight grad    dW_g[O/g × K]  += dout_g · colsᵀ            (summed over images)
//! ```
//!
//! A 1×1, stride-1, unpadded convolution needs no im2col: `cols` is the input itself. Every
//! multiply writes its product column-major ([`matmul`] says why), and the kernels transpose
//! it into place.
//!
//! With AVX-512 or AVX2 and FMA ([`simd`](super::simd)) most of this is skipped. A convolution
//! that keeps the size reads the image in place ([`narrow`] with [`Reads::phases`]; planes of
//! 32×32 or 16×16 from a copy a cache line further apart, [`narrow::plane_stride`]), one whose
//! stride divides the input reads the image's phases (a copy of the image's size, split by row
//! and column parity for stride 2): no im2col in the forward pass. The input gradient of the
//! first is the convolution of `dout` with the weights transposed and their taps reversed; that
//! of the second, phase by phase, the convolution of `dout` with the taps that reach each phase
//! of `dx`: no column gradient, no col2im. The weight gradient of every convolution is a sum
//! of outer products over a channel-last copy of `x` and `dout` read in place (or spread as
//! above) ([`outer`]): no im2col either.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::sync::Arc;

mod blocks;
mod columns;
mod geometry;
mod input_grad;
mod weight_grad;

use blocks::{blocking, for_each_block, for_each_image, Scratch};
use columns::gather_columns;
pub(super) use columns::transpose;
pub use geometry::Geometry;
pub use input_grad::input_grad;
pub use weight_grad::weight_grad;

use super::super::output::{filled_by, zeroed};
use super::epilogue::Epilogue;
use super::matmul::{matmul, Dims, View};
use super::narrow::{self, Product};
use super::prepacked;
use super::reads::Reads;

/// `conv(x, w)`, then the epilogue (its residual `[N, O, Ho, Wo]` like the output).
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], epilogue: Epilogue) -> Vec<f32> {
    // SAFETY: `forward_into` writes every value: the kernel stores every row and column of
    // each group's product, and gemm's product is transposed into a zeroed image.
    unsafe {
        filled_by(g.batch * g.out_image_len(), |out| {
            forward_into(g, x, w, epilogue, out)
        })
    }
}

/// [`forward`] into `out`, uninitialised.
fn forward_into(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    epilogue: Epilogue,
    out: &mut [MaybeUninit<f32>],
) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    let blocks @ (_, inner) = blocking(g);
    // Our kernel, where packing its weights is paid back (or was done once for all calls);
    // chosen from the shape and the scope alone, so that results do not depend on the thread
    // count.
    let narrow = narrow::available() && (repays_packing(g) || prepacked::packing_kept());
    let packed = match narrow {
        true => prepacked::packed(w, g.groups, og, kk),
        false => Arc::from([]),
    };
    if narrow && g.reads_phases() {
        // The kernel reads the image (or its phases, a copy of the image's size) at the
        // kernel's offsets: no column matrix.
        let (reads, plane_len) = (g.image_reads(), g.height * g.width);
        let plane_stride = narrow::plane_stride(plane_len);
        let per_group = g.in_per_group() * plane_stride;
        for_each_image(
            g,
            (x, g.image_len()),
            (out, g.out_image_len()),
            |n, image, out_image, threads| {
                let image = if g.stride == 1 {
                    narrow::spread(image, plane_len, plane_stride)
                } else {
                    Cow::Owned(g.split_phases(image, plane_stride))
                };
                for (group, packed) in packed.iter().enumerate() {
                    let at = n * g.out_image_len() + group * og * positions;
                    let product = Product {
                        packed,
                        data: &image[group * per_group..],
                        plane_stride,
                        reads: &reads,
                        epilogue: epilogue.part(group * og..(group + 1) * og, at),
                    };
                    let plane = &mut out_image[group * og * positions..];
                    narrow::forward(&product, plane, positions, threads);
                }
            },
        );
        return;
    }
    for_each_block(
        g,
        blocks,
        (x, g.image_len()),
        (out, g.out_image_len()),
        |first, xs, outs, scratch| {
            let b = xs.len() / g.image_len();
            let width = b * positions;
            let Scratch {
                cols, transposed, ..
            } = scratch;
            for group in 0..g.groups {
                let weights = View {
                    data: &w[group * g.weight_group_len()..],
                    row_stride: kk,
                    col_stride: 1,
                };
                let columns = if b == 1 && g.is_pointwise() {
                    View {
                        data: &xs[group * kk * positions..],
                        row_stride: positions,
                        col_stride: 1,
                    }
                } else {
                    gather_columns(g, xs, group, b, cols, inner > 1);
                    View {
                        data: cols,
                        row_stride: width,
                        col_stride: 1,
                    }
                };
                let channels = group * og..(group + 1) * og;
                let at = |i: usize| (first + i) * g.out_image_len() + group * og * positions;
                if narrow {
                    let reads = Reads::columns(positions);
                    let images = outs.chunks_mut(g.out_image_len());
                    for (i, image) in images.enumerate() {
                        let product = Product {
                            packed: &packed[group],
                            data: &columns.data[i * positions..],
                            plane_stride: columns.row_stride,
                            reads: &reads,
                            epilogue: epilogue.part(channels.clone(), at(i)),
                        };
                        let plane = &mut image[group * og * positions..];
                        narrow::forward(&product, plane, positions, inner);
                    }
                    continue;
                }
                // The product lands position-major (which gemm computes faster, as for the
                // input gradient), starting from the bias, and each image's part is transposed
                // into place, where the rest of the epilogue runs.
                transposed.resize(og * width, 0.0);
                let dst = &mut transposed[..og * width];
                let bias = epilogue.bias.map(|b| &b[channels.clone()]);
                if let Some(bias) = bias {
                    dst.chunks_mut(og).for_each(|row| row.copy_from_slice(bias));
                }
                let dims = Dims {
                    m: og,
                    n: width,
                    k: kk,
                };
                matmul(dims, dst, bias.is_some(), weights, columns, inner);
                let images = outs.chunks_mut(g.out_image_len());
                for (i, (image, block)) in images.zip(dst.chunks(og * positions)).enumerate() {
                    let plane = zeroed(&mut image[group * og * positions..][..og * positions]);
                    transpose(block, positions, og, plane);
                    epilogue.part(channels.clone(), at(i)).finish(plane);
                }
            }
        },
    );
}

/// Whether the kernel's repacking of the weights, on one thread at every call, is small
/// against the multiply: each weight is used on at least 256 output positions of the batch.
/// (One image of ResNet-50 at 4×4 would spend most of its time packing 2048 × 4608 weights.)
fn repays_packing(g: &Geometry) -> bool {
    g.batch * g.positions() >= 256
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three kernels on ResNet-20's 3×3 layers at a training batch (128 images) on all
    /// threads, as a step runs them, in GFLOP/s (best of 7):
    /// `cargo test --release --lib layer_shapes -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark"]
    fn layer_shapes() {
        use std::time::Instant;
        println!("| layer | forward | input gradient | weight gradient |");
        println!("|---|---|---|---|");
        for (in_channels, out_channels, side, stride) in [
            (16, 16, 32, 1),
            (16, 32, 32, 2),
            (32, 32, 16, 1),
            (32, 64, 16, 2),
            (64, 64, 8, 1),
        ] {
            let g = Geometry {
                batch: 128,
                in_channels,
                height: side,
                width: side,
                out_channels,
                kernel: 3,
                stride,
                padding: 1,
                groups: 1,
            };
            let values = |n: usize| -> Vec<f32> { (0..n).map(|i| (i % 7) as f32 * 0.1).collect() };
            let (x, w) = (
                values(g.batch * g.image_len()),
                values(out_channels * g.col_rows()),
            );
            let dout = values(g.batch * g.out_image_len());
            let mut dw = vec![0.0f32; w.len()];
            let flops = 2.0 * (g.batch * g.positions() * out_channels * g.col_rows()) as f64;
            let rate = |run: &mut dyn FnMut()| {
                run();
                let best = (0..7)
                    .map(|_| {
                        let started = Instant::now();
                        run();
                        started.elapsed().as_secs_f64()
                    })
                    .fold(f64::MAX, f64::min);
                flops / best / 1e9
            };
            let rates = [
                rate(&mut || {
                    drop(std::hint::black_box(forward(
                        &g,
                        &x,
                        &w,
                        Epilogue::default(),
                    )))
                }),
                rate(&mut || drop(std::hint::black_box(input_grad(&g, &dout, &w, None)))),
                rate(&mut || weight_grad(&g, &x, &dout, &mut dw)),
            ];
            println!(
                "| {in_channels} → {out_channels}, {side}×{side}, stride {stride} | {:.0} | {:.0} | {:.0} |",
                rates[0], rates[1], rates[2]
            );
        }
    }
}
