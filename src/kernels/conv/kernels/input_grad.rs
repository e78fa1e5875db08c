//! The input gradient: col2im after a multiply by the weights transposed, or, with our kernel,
//! a convolution of the output gradient, whole (stride 1) or phase by phase (strided).

use std::mem::MaybeUninit;

use super::blocks::{blocking, for_each_block, for_each_image, Scratch};
use super::columns::{col2im, group_rows, transpose};
use super::{repays_packing, Geometry};
use crate::kernels::conv::epilogue::Epilogue;
use crate::kernels::conv::matmul::{matmul, Dims, View};
use crate::kernels::conv::narrow::{self, Product};
use crate::kernels::conv::reads::{Reads, Tap};
use crate::kernels::output::{as_uninit, filled_by, zeroed};

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
    if g.reads_phases() && repays_packing(g) && narrow::available() {
        return if g.stride == 1 {
            input_grad_as_convolution(g, dout, w, plus, dx)
        } else {
            input_grad_by_phases(g, dout, w, plus, dx)
        };
    }
    let blocks @ (_, inner) = blocking(g);
    // The column gradient's rows (kk) fill our kernel's tiles: it computes them from
    // Wᵀ in place, row-major, as the forward pass computes its output from W.
    let narrow = repays_packing(g) && narrow::available();
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
    let packed = weights_to_inputs(g, w, &reversed);
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
            Some((reads, weights_to_inputs(g, w, &kernel_positions)))
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

/// Each group's weights `[O/g × C/g × k·k]` as the input gradient's multiply reads them,
/// `[C/g × (O/g)·T]`, packed: row `c`, column `o·T + i` is `w[o][c][kernel_positions[i]]`.
fn weights_to_inputs(g: &Geometry, w: &[f32], kernel_positions: &[usize]) -> Vec<narrow::Packed> {
    let (og, cg, kk) = (g.out_per_group(), g.in_per_group(), g.kernel * g.kernel);
    let taps = kernel_positions.len();
    let pack = |w: &[f32]| {
        let mut transposed = vec![0.0f32; cg * og * taps];
        for (o, c) in (0..og).flat_map(|o| (0..cg).map(move |c| (o, c))) {
            for (i, &at) in kernel_positions.iter().enumerate() {
                transposed[(c * og + o) * taps + i] = w[(o * cg + c) * kk + at];
            }
        }
        narrow::pack_weights(&transposed, cg, og * taps)
    };
    w.chunks(g.weight_group_len()).map(pack).collect()
}
