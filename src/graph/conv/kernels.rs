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
//! With AVX-512 most of this is skipped. A convolution that keeps the size reads the image in
//! place ([`narrow`] with [`Reads::same_size`]): no im2col in the forward pass; its input
//! gradient is the convolution of `dout` with the weights transposed and their taps reversed:
//! no column gradient, no col2im. The weight gradient of every convolution is a sum of outer
//! products over channel-last copies of `x` and `dout` ([`outer`]): no im2col either.

use std::ops::Range;

use rayon::prelude::*;

mod columns;

pub(super) use columns::transpose;
use columns::{col2im, gather_columns, gather_rows};

use super::matmul::{matmul, Dims, View};
use super::narrow::{self, Product, Reads};
use super::outer::{self, ChannelLast};

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl Geometry {
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }
    fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Rows of one group's column matrix: (C/groups)·k·k.
    fn col_rows(&self) -> usize {
        self.in_per_group() * self.kernel * self.kernel
    }
    fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }
    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }
    fn out_image_len(&self) -> usize {
        self.out_channels * self.positions()
    }
    fn weight_group_len(&self) -> usize {
        self.out_per_group() * self.col_rows()
    }
    /// The output columns `lo..hi` whose input column `ox·stride + kx − padding` lies inside
    /// the image, for kernel column `kx`.
    pub(super) fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let (s, p, wo) = (self.stride, self.padding as isize, self.out_width());
        let lo = ((p - kx as isize).max(0) as usize).div_ceil(s).min(wo);
        let hi = (((self.width as isize + p - kx as isize - 1).max(-1) + 1) as usize)
            .div_ceil(s)
            .min(wo)
            .max(lo);
        (lo, hi)
    }
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
    /// Stride 1 and an output of the input's size (a k×k kernel padded by (k−1)/2): output
    /// position `p` reads input positions `p + shift`, one shift per kernel position.
    fn keeps_size(&self) -> bool {
        self.stride == 1 && self.out_height() == self.height && self.out_width() == self.width
    }
    /// The kernel's offsets into one image's planes, for [`narrow`] (implicit im2col).
    fn image_reads(&self) -> Reads {
        Reads::same_size(self.height, self.width, self.kernel, self.padding)
    }
}

/// Worker threads: rayon's pool size.
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Columns a multiply should have at least. A multiply per image would be tiny on small maps
/// (64 columns for an 8×8 map), so the images of a block share one multiply, their columns
/// side by side, and the products are scattered back. 256 measured best on ResNet-20 (2 cores):
/// larger blocks overflow L2 with the column matrix.
const TARGET_COLUMNS: usize = 256;

/// Images per multiply, and threads inside each multiply (when blocks are fewer than threads).
fn blocking(g: &Geometry) -> (usize, usize) {
    let images = TARGET_COLUMNS
        .div_ceil(g.positions())
        .clamp(1, g.batch.max(1));
    let inner = if g.batch.div_ceil(images) >= threads() {
        1
    } else {
        threads()
    };
    (images, inner)
}

/// Per-task buffers: the block's column matrix and a product (or gathered gradient) matrix.
struct Scratch {
    cols: Vec<f32>,
    product: Vec<f32>,
    /// A product as the multiply writes it, column-major, before it is turned around (sized
    /// on first use).
    transposed: Vec<f32>,
}

impl Scratch {
    fn new(g: &Geometry, images: usize) -> Self {
        let width = images * g.positions();
        let direct = images == 1 && g.is_pointwise();
        Scratch {
            cols: vec![0.0; if direct { 0 } else { g.col_rows() * width }],
            product: vec![
                0.0;
                if images == 1 {
                    0
                } else {
                    g.out_per_group() * width
                }
            ],
            transposed: Vec::new(),
        }
    }
}

/// Runs `f(inputs, outputs, scratch)` over blocks of `images` images, in parallel when `inner`
/// is 1 (each block on one thread), in order otherwise (threads inside each multiply).
fn for_each_block(
    g: &Geometry,
    (images, inner): (usize, usize),
    (inputs, input_len): (&[f32], usize),
    (outputs, output_len): (&mut [f32], usize),
    f: impl Fn(&[f32], &mut [f32], &mut Scratch) + Sync,
) {
    let scratch = || Scratch::new(g, images);
    let pairs = inputs
        .par_chunks(images * input_len)
        .zip(outputs.par_chunks_mut(images * output_len));
    if inner == 1 {
        pairs.for_each_init(scratch, |s, (i, o)| f(i, o, s));
    } else {
        let mut s = scratch();
        let pairs = inputs
            .chunks(images * input_len)
            .zip(outputs.chunks_mut(images * output_len));
        pairs.for_each(|(i, o)| f(i, o, &mut s));
    }
}

/// Runs `f(input, output, threads)` on every image: in parallel over the images when there are
/// enough of them, with the threads inside `f` otherwise.
fn for_each_image(
    g: &Geometry,
    (inputs, input_len): (&[f32], usize),
    (outputs, output_len): (&mut [f32], usize),
    f: impl Fn(&[f32], &mut [f32], usize) + Sync,
) {
    let pairs = inputs.chunks(input_len).zip(outputs.chunks_mut(output_len));
    if g.batch >= threads() {
        let pairs = inputs
            .par_chunks(input_len)
            .zip(outputs.par_chunks_mut(output_len));
        pairs.for_each(|(i, o)| f(i, o, 1));
    } else {
        pairs.for_each(|(i, o)| f(i, o, threads()));
    }
}

/// What is applied to the output while it is still in cache: a per-channel bias (the output
/// rows start as the bias and the product is added) and an optional ReLU.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub relu: bool,
}

/// `out = conv(x, w)` (then the epilogue, if any); `out` is `[N, O, Ho, Wo]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], epilogue: Option<Epilogue>, out: &mut [f32]) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    let blocks @ (_, inner) = blocking(g);
    // Output channels (per group) that fill its tiles of 16 well: the AVX-512 kernel without
    // packing. Chosen from the shape alone, so that results do not depend on the thread count.
    let narrow = fills_narrow_tiles(og) && repays_packing(g) && narrow::available();
    let packed: Vec<Vec<f32>> = (0..g.groups)
        .filter(|_| narrow)
        .map(|group| narrow::pack_weights(&w[group * g.weight_group_len()..], og, kk))
        .collect();
    if narrow && g.keeps_size() {
        // The kernel reads the image at the kernel's offsets: no column matrix.
        let (reads, plane_len) = (g.image_reads(), g.height * g.width);
        let per_group = g.in_per_group() * plane_len;
        for_each_image(
            g,
            (x, g.image_len()),
            (out, g.out_image_len()),
            |image, out_image, threads| {
                for (group, packed) in packed.iter().enumerate() {
                    let product = Product {
                        packed,
                        channels: og,
                        data: &image[group * per_group..],
                        plane_stride: plane_len,
                        reads: &reads,
                        bias: epilogue.map(|e| &e.bias[group * og..][..og]),
                        relu: epilogue.is_some_and(|e| e.relu),
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
        |xs, outs, scratch| {
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
                if narrow {
                    let reads = Reads::columns(positions);
                    let images = outs.chunks_mut(g.out_image_len());
                    for (i, image) in images.enumerate() {
                        let product = Product {
                            packed: &packed[group],
                            channels: og,
                            data: &columns.data[i * positions..],
                            plane_stride: columns.row_stride,
                            reads: &reads,
                            bias: epilogue.map(|e| &e.bias[group * og..][..og]),
                            relu: epilogue.is_some_and(|e| e.relu),
                        };
                        let plane = &mut image[group * og * positions..];
                        narrow::forward(&product, plane, positions, inner);
                    }
                    continue;
                }
                // The product lands position-major (which gemm computes faster, as for the
                // input gradient), the epilogue runs on it there, and each image's part is
                // transposed into place.
                transposed.resize(og * width, 0.0);
                let dst = &mut transposed[..og * width];
                if let Some(e) = epilogue {
                    let bias = &e.bias[group * og..][..og];
                    dst.chunks_mut(og).for_each(|row| row.copy_from_slice(bias));
                }
                let dims = Dims {
                    m: og,
                    n: width,
                    k: kk,
                };
                matmul(dims, dst, epilogue.is_some(), weights, columns, inner);
                if epilogue.is_some_and(|e| e.relu) {
                    dst.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                let images = outs.chunks_mut(g.out_image_len());
                for (image, block) in images.zip(dst.chunks(og * positions)) {
                    let plane = &mut image[group * og * positions..][..og * positions];
                    transpose(block, positions, og, plane);
                }
            }
        },
    );
}

/// Whether `channels` outputs fill [`narrow`]'s tiles well enough: 9–16 of one tile, or whole
/// tiles.
fn fills_narrow_tiles(channels: usize) -> bool {
    let tile = narrow::CHANNELS;
    (tile / 2 + 1..=tile).contains(&channels) || channels % tile == 0
}

/// Whether the kernel's repacking of the weights, on one thread at every call, is small
/// against the multiply: each weight is used on at least 256 output positions of the batch.
/// (One image of ResNet-50 at 4×4 would spend most of its time packing 2048 × 4608 weights.)
fn repays_packing(g: &Geometry) -> bool {
    g.batch * g.positions() >= 256
}

/// `dx = ∂L/∂x` from `dout = ∂L/∂out`; `dx` is `[N, C, H, W]`, overwritten.
pub fn input_grad(g: &Geometry, dout: &[f32], w: &[f32], dx: &mut [f32]) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    if g.keeps_size()
        && fills_narrow_tiles(g.in_per_group())
        && repays_packing(g)
        && narrow::available()
    {
        return input_grad_as_convolution(g, dout, w, dx);
    }
    let blocks @ (_, inner) = blocking(g);
    // The column gradient's rows (kk) fill the AVX-512 kernel's tiles: it computes them from
    // Wᵀ in place, row-major, as the forward pass computes its output from W.
    let narrow = fills_narrow_tiles(kk) && repays_packing(g) && narrow::available();
    let packed: Vec<Vec<f32>> = (0..g.groups)
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
        |douts, dxs, scratch| {
            let b = douts.len() / g.out_image_len();
            let width = b * positions;
            let Scratch {
                cols,
                product,
                transposed,
            } = scratch;
            dxs.fill(0.0);
            for group in 0..g.groups {
                let grad = if b == 1 {
                    View {
                        data: &douts[group * og * positions..],
                        row_stride: positions,
                        col_stride: 1,
                    }
                } else {
                    gather_rows(g, douts, group, b, product);
                    View {
                        data: product,
                        row_stride: width,
                        col_stride: 1,
                    }
                };
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
                        channels: kk,
                        data: grad.data,
                        plane_stride: grad.row_stride,
                        reads: &Reads::columns(width),
                        bias: None,
                        relu: false,
                    };
                    narrow::forward(&product, dst, width, inner);
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
        },
    );
}

/// The input gradient of a convolution that keeps the size, as a convolution of the output
/// gradient with the weights transposed and their taps reversed, `dx[c][p] = Σ_o Σ_t
/// w[o][c][T−1−t] · dout[o][p + shift_t]`, which reads the same offsets as the forward pass:
/// the AVX-512 kernel reads `dout` where it lies and writes `dx` in place, with no column
/// gradient and no col2im.
fn input_grad_as_convolution(g: &Geometry, dout: &[f32], w: &[f32], dx: &mut [f32]) {
    let (og, cg, taps) = (g.out_per_group(), g.in_per_group(), g.kernel * g.kernel);
    let plane_len = g.height * g.width;
    let packed: Vec<Vec<f32>> = w
        .chunks(g.weight_group_len())
        .map(|w| {
            let mut reversed = vec![0.0f32; w.len()];
            for (o, c, t) in
                (0..og).flat_map(|o| (0..cg).flat_map(move |c| (0..taps).map(move |t| (o, c, t))))
            {
                reversed[(c * og + o) * taps + t] = w[(o * cg + c) * taps + taps - 1 - t];
            }
            narrow::pack_weights(&reversed, cg, og * taps)
        })
        .collect();
    // Reversed taps read the mirrored offsets, which are the same set: padding (k−1)/2.
    let reads = g.image_reads();
    for_each_image(
        g,
        (dout, g.out_image_len()),
        (dx, g.image_len()),
        |grad, dx_image, threads| {
            for (group, packed) in packed.iter().enumerate() {
                let product = Product {
                    packed,
                    channels: cg,
                    data: &grad[group * og * plane_len..],
                    plane_stride: plane_len,
                    reads: &reads,
                    bias: None,
                    relu: false,
                };
                let rows = &mut dx_image[group * cg * plane_len..];
                narrow::forward(&product, rows, plane_len, threads);
            }
        },
    );
}

/// Runs of images whose weight-gradient partial sums are added in order (see [`weight_grad`]).
const WEIGHT_GRAD_PARTS: usize = 4;

/// `dw = ∂L/∂w` summed over the batch; `dw` is `[O, C/g, k, k]`, overwritten.
///
/// The batch is cut into at most [`WEIGHT_GRAD_PARTS`] fixed runs of images, whatever the
/// thread count, and their partial sums are added in order: the result depends neither on
/// scheduling nor on the number of threads, so a run resumed with other `--threads` stays
/// bit-identical. (Threads beyond the runs work inside each run, on disjoint parts of its sum.)
/// With AVX-512, the sums are outer products read in place ([`outer`]); otherwise they are
/// multiplies of the column matrix.
pub fn weight_grad(g: &Geometry, x: &[f32], dout: &[f32], dw: &mut [f32]) {
    let chunk = g.batch.div_ceil(WEIGHT_GRAD_PARTS).max(1);
    let inner = (threads() / g.batch.div_ceil(chunk)).max(1);
    let sum_over = |part: fn(&Geometry, &[f32], &[f32], Range<usize>, usize) -> Vec<f32>| {
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
    let mut block = ChannelLast::new();
    let (per_block, _) = blocking(g);
    for start in images.clone().step_by(per_block) {
        let b = per_block.min(images.end - start);
        let xs = &x[start * g.image_len()..][..b * g.image_len()];
        let douts = &dout[start * g.out_image_len()..][..b * g.out_image_len()];
        block.fill(g, xs, douts, b);
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
            let grad = if b == 1 {
                View {
                    data: &douts[group * og * positions..],
                    row_stride: positions,
                    col_stride: 1,
                }
            } else {
                gather_rows(g, douts, group, b, &mut product);
                View {
                    data: &product,
                    row_stride: width,
                    col_stride: 1,
                }
            };
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
