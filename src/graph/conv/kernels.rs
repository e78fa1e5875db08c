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

mod blocks;
mod columns;
mod geometry;
mod weight_grad;

use blocks::{blocking, for_each_block, for_each_image, Scratch};
pub(super) use columns::transpose;
use columns::{col2im, gather_columns, group_rows};
pub use geometry::Geometry;
pub use weight_grad::weight_grad;

use super::super::output::{as_uninit, filled_by, zeroed};
use super::epilogue::Epilogue;
use super::matmul::{matmul, Dims, View};
use super::narrow::{self, Product};
use super::reads::{Reads, Tap};

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
    // Output channels (per group) that fill the kernel's tiles well: our kernel without
    // packing. Chosen from the shape alone, so that results do not depend on the thread count.
    let narrow = fills_narrow_tiles(og) && repays_packing(g) && narrow::available();
    let packed: Vec<narrow::Packed> = (0..g.groups)
        .filter(|_| narrow)
        .map(|group| narrow::pack_weights(&w[group * g.weight_group_len()..], og, kk))
        .collect();
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

/// Whether `channels` outputs fill [`narrow`]'s tiles well enough: 9–16, or a multiple of 16
/// (whole AVX-512 tiles; AVX2's tiles of 6 and 4 cover them exactly).
fn fills_narrow_tiles(channels: usize) -> bool {
    let tile = narrow::CHANNELS;
    (tile / 2 + 1..=tile).contains(&channels) || channels.is_multiple_of(tile)
}

/// Whether the kernel's repacking of the weights, on one thread at every call, is small
/// against the multiply: each weight is used on at least 256 output positions of the batch.
/// (One image of ResNet-50 at 4×4 would spend most of its time packing 2048 × 4608 weights.)
fn repays_packing(g: &Geometry) -> bool {
    g.batch * g.positions() >= 256
}

/// `dx = ∂L/∂x (+ plus)` from `dout = ∂L/∂out`, `[N, C, H, W]`; `plus`, a gradient that
/// reached `x` by another path, laid out as `dx`, is added while `dx` is in cache.
pub fn input_grad(g: &Geometry, dout: &[f32], w: &[f32], plus: Option<&[f32]>) -> Vec<f32> {
    // SAFETY: `input_grad_into` writes every value: the kernel stores every row and column
    // of each group's product, and the other path zeroes each block before it adds into it.
    unsafe {
        filled_by(g.batch * g.image_len(), |dx| {
            input_grad_into(g, dout, w, plus, dx)
        })
    }
}

/// [`input_grad`] into `dx`, uninitialised.
fn input_grad_into(
    g: &Geometry,
    dout: &[f32],
    w: &[f32],
    plus: Option<&[f32]>,
    dx: &mut [MaybeUninit<f32>],
) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    if g.reads_phases()
        && fills_narrow_tiles(g.in_per_group())
        && repays_packing(g)
        && narrow::available()
    {
        return if g.stride == 1 {
            input_grad_as_convolution(g, dout, w, plus, dx)
        } else {
            input_grad_by_phases(g, dout, w, plus, dx)
        };
    }
    let blocks @ (_, inner) = blocking(g);
    // The column gradient's rows (kk) fill our kernel's tiles: it computes them from
    // Wᵀ in place, row-major, as the forward pass computes its output from W.
    let narrow = fills_narrow_tiles(kk) && repays_packing(g) && narrow::available();
    let packed: Vec<narrow::Packed> = (0..g.groups)
        .filter(|_| narrow)
        .map(|group| {
            let mut w_t = vec![0.0f32; g.weight_group_len()];
            transpose(&w[group * g.weight_group_len()..], og, kk, &mut w_t);
            narrow::pack_weights(&w_t, kk, og)
        })
        .collect();
    for_each_block(
        g,
        blocks,
        (dout, g.out_image_len()),
        (dx, g.image_len()),
        |first, douts, dxs, scratch| {
            let b = douts.len() / g.out_image_len();
            let width = b * positions;
            let Scratch {
                cols,
                product,
                transposed,
            } = scratch;
            // col2im adds into the block: it starts from zero.
            let dxs = zeroed(dxs);
            for group in 0..g.groups {
                let grad = group_rows(g, douts, group, b, product);
                // The column gradient [kk × width]: straight into the input gradient for one
                // image of a 1×1 convolution, into `cols` for col2im otherwise.
                let in_place = b == 1 && g.is_pointwise();
                let dst = if in_place {
                    &mut dxs[group * kk * positions..][..kk * positions]
                } else {
                    &mut cols[..kk * width]
                };
                if narrow {
                    let product = Product {
                        packed: &packed[group],
                        data: grad.data,
                        plane_stride: grad.row_stride,
                        reads: &Reads::columns(width),
                        epilogue: Epilogue::default(),
                    };
                    // SAFETY: the kernel writes initialised values only.
                    narrow::forward(&product, unsafe { as_uninit(dst) }, width, inner);
                } else {
                    // gemm runs this product (long rows of kk, a short inner dimension of O/g)
                    // several times faster into position-major columns than into kk-major
                    // ones, so it lands transposed and is turned around in cache.
                    let weights_t = View {
                        data: &w[group * g.weight_group_len()..],
                        row_stride: 1,
                        col_stride: kk,
                    };
                    let dims = Dims {
                        m: kk,
                        n: width,
                        k: og,
                    };
                    transposed.resize(kk * width, 0.0);
                    matmul(dims, transposed, false, weights_t, grad, inner);
                    transpose(transposed, width, kk, dst);
                }
                if in_place {
                    continue;
                }
                for (i, dx_image) in dxs.chunks_mut(g.image_len()).enumerate() {
                    if g.is_pointwise() {
                        for r in 0..kk {
                            dx_image[(group * kk + r) * positions..][..positions]
                                .copy_from_slice(&cols[r * width + i * positions..][..positions]);
                        }
                    } else {
                        col2im(g, &cols[i * positions..], group, dx_image, width);
                    }
                }
            }
            if let Some(plus) = plus {
                let plus = &plus[first * g.image_len()..][..dxs.len()];
                dxs.iter_mut().zip(plus).for_each(|(d, p)| *d += p);
            }
        },
    );
}

/// The input gradient of a convolution that keeps the size, as a convolution of the output
/// gradient with the weights transposed and their taps reversed, `dx[c][p] = Σ_o Σ_t
/// w[o][c][T−1−t] · dout[o][p + shift_t]`, which reads the same offsets as the forward pass:
/// our kernel reads `dout` where it lies (or spread as the forward pass reads `x`) and writes
/// `dx` in place, with no column gradient and no col2im.
fn input_grad_as_convolution(
    g: &Geometry,
    dout: &[f32],
    w: &[f32],
    plus: Option<&[f32]>,
    dx: &mut [MaybeUninit<f32>],
) {
    let (og, cg) = (g.out_per_group(), g.in_per_group());
    let plane_len = g.height * g.width;
    let reversed: Vec<usize> = (0..g.kernel * g.kernel).rev().collect();
    let packed: Vec<narrow::Packed> = w
        .chunks(g.weight_group_len())
        .map(|w| weights_to_inputs(g, w, &reversed))
        .collect();
    // Reversed taps read the mirrored offsets, which are the same set: padding (k−1)/2.
    let reads = g.image_reads();
    let plane_stride = narrow::plane_stride(plane_len);
    for_each_image(
        g,
        (dout, g.out_image_len()),
        (dx, g.image_len()),
        |n, grad, dx_image, threads| {
            let grad = narrow::spread(grad, plane_len, plane_stride);
            for (group, packed) in packed.iter().enumerate() {
                let plus = Epilogue {
                    residual: plus,
                    ..Epilogue::default()
                };
                let at = n * g.image_len() + group * cg * plane_len;
                let product = Product {
                    packed,
                    data: &grad[group * og * plane_stride..],
                    plane_stride,
                    reads: &reads,
                    epilogue: plus.part(group * cg..(group + 1) * cg, at),
                };
                let rows = &mut dx_image[group * cg * plane_len..];
                narrow::forward(&product, rows, plane_len, threads);
            }
        },
    );
}

/// The input gradient of a strided convolution that reads phases
/// ([`Geometry::reads_phases`]): phase `(py, px)` of `dx` is a convolution of `dout` with the
/// taps that reach it ([`Geometry::phase_taps`]; 1, 2, 2 and 4 of a 3×3 kernel at stride 2),
/// which our kernel computes into a phase-split copy of `dx`, merged into place with `plus`:
/// no column gradient and no col2im.
fn input_grad_by_phases(
    g: &Geometry,
    dout: &[f32],
    w: &[f32],
    plus: Option<&[f32]>,
    dx: &mut [MaybeUninit<f32>],
) {
    let (og, cg, phases) = (g.out_per_group(), g.in_per_group(), g.stride * g.stride);
    let positions = g.positions();
    let plane_stride = narrow::plane_stride(positions);
    // Each phase's reads of `dout` and weights per group; none where no tap reaches it (a 1×1
    // kernel reaches one phase).
    let products: Vec<Option<(Reads, Vec<narrow::Packed>)>> = (0..phases)
        .map(|phase| {
            let taps = g.phase_taps((phase / g.stride, phase % g.stride));
            if taps.is_empty() {
                return None;
            }
            let kernel_positions: Vec<usize> = taps
                .iter()
                .map(|&((ky, kx), _)| ky * g.kernel + kx)
                .collect();
            let shifts: Vec<Tap> = taps.into_iter().map(|(_, tap)| tap).collect();
            let reads = Reads::shifted(g.out_height(), g.out_width(), &shifts, positions);
            let packed = w
                .chunks(g.weight_group_len())
                .map(|w| weights_to_inputs(g, w, &kernel_positions))
                .collect();
            Some((reads, packed))
        })
        .collect();
    for_each_image(
        g,
        (dout, g.out_image_len()),
        (dx, g.image_len()),
        |n, grad, dx_image, threads| {
            let grad = narrow::spread(grad, positions, plane_stride);
            let fill = |split: &mut [MaybeUninit<f32>]| {
                for (phase, product) in products.iter().enumerate() {
                    let Some((reads, packed)) = product else {
                        let planes = split.chunks_mut(positions).skip(phase);
                        planes.step_by(phases).for_each(|plane| {
                            zeroed(plane);
                        });
                        continue;
                    };
                    for (group, packed) in packed.iter().enumerate() {
                        let product = Product {
                            packed,
                            data: &grad[group * og * plane_stride..],
                            plane_stride,
                            reads,
                            epilogue: Epilogue::default(),
                        };
                        let rows = &mut split[(group * cg * phases + phase) * positions..];
                        narrow::forward(&product, rows, phases * positions, threads);
                    }
                }
            };
            // SAFETY: `fill` writes every phase of every channel: the kernel stores every row
            // and column of its product, and the phases no tap reaches are zeroed.
            let split = unsafe { filled_by(g.image_len(), fill) };
            let plus = plus.map(|p| &p[n * g.image_len()..][..g.image_len()]);
            g.merge_phases(&split, plus, dx_image);
        },
    );
}

/// One group's weights `[O/g × C/g × k·k]` as the input gradient's multiply reads them,
/// `[C/g × (O/g)·T]`, packed: row `c`, column `o·T + i` is `w[o][c][kernel_positions[i]]`.
fn weights_to_inputs(g: &Geometry, w: &[f32], kernel_positions: &[usize]) -> narrow::Packed {
    let (og, cg, kk) = (g.out_per_group(), g.in_per_group(), g.kernel * g.kernel);
    let taps = kernel_positions.len();
    let mut transposed = vec![0.0f32; cg * og * taps];
    for (o, c) in (0..og).flat_map(|o| (0..cg).map(move |c| (o, c))) {
        for (i, &at) in kernel_positions.iter().enumerate() {
            transposed[(c * og + o) * taps + i] = w[(o * cg + c) * kk + at];
        }
    }
    narrow::pack_weights(&transposed, cg, og * taps)
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
