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
//! A 1×1, stride-1, unpadded convolution needs no im2col: `cols` is the input itself.

use gemm::Parallelism;
use rayon::prelude::*;

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
    fn valid_columns(&self, kx: usize) -> (usize, usize) {
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
}

/// A read-only matrix view: element (i, j) is `data[i·rows + j·cols]` (strides in elements).
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

/// `dst[m × n] (row-major, contiguous) = (accumulate ? dst : 0) + a[m × k] · b[k × n]`.
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: View,
    b: View,
    threads: usize,
) {
    let last =
        |v: &View, rows: usize, cols: usize| (rows - 1) * v.row_stride + (cols - 1) * v.col_stride;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(dst.len() >= m * n && last(&a, m, k) < a.data.len() && last(&b, k, n) < b.data.len());
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the assertion above keeps every index gemm touches inside the three slices, and
    // `dst` is borrowed mutably, so it does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Fills `cols` (`[(C/g)·k·k, Ho·Wo]`) with group `group` of one image.
fn im2col(g: &Geometry, image: &[f32], group: usize, cols: &mut [f32]) {
    let (k, s, p) = (g.kernel, g.stride, g.padding as isize);
    let (h, w, ho, wo) = (g.height as isize, g.width, g.out_height(), g.out_width());
    let first_channel = group * g.in_per_group();
    for c in 0..g.in_per_group() {
        let plane = &image[(first_channel + c) * g.height * w..][..g.height * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * ho * wo..][..ho * wo];
                let (lo, hi) = g.valid_columns(kx);
                if s == 1 && wo == w && ho == g.height {
                    let shift = (ky as isize - p) * w as isize + kx as isize - p;
                    shifted_copy(plane, row, shift, wo, lo, hi);
                    continue;
                }
                for oy in 0..ho {
                    let iy = (oy * s + ky) as isize - p;
                    let out = &mut row[oy * wo..][..wo];
                    if iy < 0 || iy >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..][..w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if s == 1 && lo < hi {
                        let start = lo + kx - g.padding;
                        out[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                    } else {
                        for (o, ox) in out[lo..hi].iter_mut().zip(lo..hi) {
                            *o = src[ox * s + kx - g.padding];
                        }
                    }
                }
            }
        }
    }
}

/// im2col row of a stride-1 convolution whose output has the input's size: output position
/// `i` reads input position `i + shift`, so the row is one contiguous copy; what falls outside
/// the plane, and the columns outside `lo..hi` that wrapped into a neighbouring row, are zero.
fn shifted_copy(plane: &[f32], row: &mut [f32], shift: isize, width: usize, lo: usize, hi: usize) {
    let n = row.len() as isize;
    let start = (-shift).clamp(0, n) as usize;
    let end = (plane.len() as isize - shift).clamp(start as isize, n) as usize;
    row[..start].fill(0.0);
    row[end..].fill(0.0);
    if start < end {
        let from = (start as isize + shift) as usize;
        row[start..end].copy_from_slice(&plane[from..from + end - start]);
    }
    if lo > 0 || hi < width {
        for line in row.chunks_mut(width) {
            line[..lo].fill(0.0);
            line[hi..].fill(0.0);
        }
    }
}

/// Adds `cols` (`[(C/g)·k·k, Ho·Wo]`) back into group `group` of one image's gradient.
fn col2im(g: &Geometry, cols: &[f32], group: usize, image: &mut [f32]) {
    let (k, s, p) = (g.kernel, g.stride, g.padding as isize);
    let (h, w, ho, wo) = (g.height as isize, g.width, g.out_height(), g.out_width());
    let first_channel = group * g.in_per_group();
    for c in 0..g.in_per_group() {
        let plane = &mut image[(first_channel + c) * g.height * w..][..g.height * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[((c * k + ky) * k + kx) * ho * wo..][..ho * wo];
                let (lo, hi) = g.valid_columns(kx);
                for oy in 0..ho {
                    let iy = (oy * s + ky) as isize - p;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..][..w];
                    let src = &row[oy * wo..][..wo];
                    if s == 1 && lo < hi {
                        // Contiguous on both sides: a slice add the compiler vectorises.
                        let start = lo + kx - g.padding;
                        let dst = &mut dst[start..start + hi - lo];
                        dst.iter_mut().zip(&src[lo..hi]).for_each(|(d, v)| *d += v);
                    } else {
                        for ox in lo..hi {
                            dst[ox * s + kx - g.padding] += src[ox];
                        }
                    }
                }
            }
        }
    }
}

/// Worker threads: rayon's pool size.
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Splits work over images when there are enough of them; otherwise inside each multiply.
fn gemm_threads(g: &Geometry) -> usize {
    if g.batch >= threads() {
        1
    } else {
        threads()
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
    let inner = gemm_threads(g);
    let per_image = |(image, out_image): (&[f32], &mut [f32]), cols: &mut Vec<f32>| {
        for group in 0..g.groups {
            let weights = View {
                data: &w[group * g.weight_group_len()..],
                row_stride: kk,
                col_stride: 1,
            };
            let cols_view = if g.is_pointwise() {
                View {
                    data: &image[group * kk * positions..],
                    row_stride: positions,
                    col_stride: 1,
                }
            } else {
                im2col(g, image, group, cols);
                View {
                    data: cols,
                    row_stride: positions,
                    col_stride: 1,
                }
            };
            let dst = &mut out_image[group * og * positions..][..og * positions];
            if let Some(e) = epilogue {
                let bias = &e.bias[group * og..][..og];
                dst.chunks_mut(positions)
                    .zip(bias)
                    .for_each(|(row, b)| row.fill(*b));
            }
            matmul(
                og,
                positions,
                kk,
                dst,
                epilogue.is_some(),
                weights,
                cols_view,
                inner,
            );
            if epilogue.is_some_and(|e| e.relu) {
                dst.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    };
    let scratch = || vec![0.0f32; if g.is_pointwise() { 0 } else { kk * positions }];
    if inner == 1 {
        let pairs = x
            .par_chunks(g.image_len())
            .zip(out.par_chunks_mut(g.out_image_len()));
        pairs.for_each_init(scratch, |cols, pair| per_image(pair, cols));
    } else {
        let mut cols = scratch();
        let pairs = x
            .chunks(g.image_len())
            .zip(out.chunks_mut(g.out_image_len()));
        pairs.for_each(|pair| per_image(pair, &mut cols));
    }
}

/// `dx = ∂L/∂x` from `dout = ∂L/∂out`; `dx` is `[N, C, H, W]`, overwritten.
pub fn input_grad(g: &Geometry, dout: &[f32], w: &[f32], dx: &mut [f32]) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    let inner = gemm_threads(g);
    let per_image = |(dout_image, dx_image): (&[f32], &mut [f32]), dcols: &mut Vec<f32>| {
        dx_image.fill(0.0);
        for group in 0..g.groups {
            // Wᵀ: element (i, j) = W[j][i].
            let weights_t = View {
                data: &w[group * g.weight_group_len()..],
                row_stride: 1,
                col_stride: kk,
            };
            let grad = View {
                data: &dout_image[group * og * positions..],
                row_stride: positions,
                col_stride: 1,
            };
            if g.is_pointwise() {
                let dst = &mut dx_image[group * kk * positions..][..kk * positions];
                matmul(kk, positions, og, dst, false, weights_t, grad, inner);
            } else {
                matmul(kk, positions, og, dcols, false, weights_t, grad, inner);
                col2im(g, dcols, group, dx_image);
            }
        }
    };
    let scratch = || vec![0.0f32; if g.is_pointwise() { 0 } else { kk * positions }];
    if inner == 1 {
        let pairs = dout
            .par_chunks(g.out_image_len())
            .zip(dx.par_chunks_mut(g.image_len()));
        pairs.for_each_init(scratch, |dcols, pair| per_image(pair, dcols));
    } else {
        let mut dcols = scratch();
        let pairs = dout
            .chunks(g.out_image_len())
            .zip(dx.chunks_mut(g.image_len()));
        pairs.for_each(|pair| per_image(pair, &mut dcols));
    }
}

/// `dw = ∂L/∂w` summed over the batch; `dw` is `[O, C/g, k, k]`, overwritten.
///
/// The batch is cut into one fixed run of images per thread and the partial sums are added in
/// order, so the result does not depend on scheduling: training stays bit-reproducible.
pub fn weight_grad(g: &Geometry, x: &[f32], dout: &[f32], dw: &mut [f32]) {
    let (kk, positions, og) = (g.col_rows(), g.positions(), g.out_per_group());
    let chunk = g.batch.div_ceil(threads()).max(1);
    let inner = if g.batch.div_ceil(chunk) > 1 {
        1
    } else {
        threads()
    };
    let partial = |first: usize| -> Vec<f32> {
        let mut sum = vec![0.0f32; dw.len()];
        let mut cols = vec![0.0f32; if g.is_pointwise() { 0 } else { kk * positions }];
        for n in first..(first + chunk).min(g.batch) {
            let image = &x[n * g.image_len()..][..g.image_len()];
            let dout_image = &dout[n * g.out_image_len()..][..g.out_image_len()];
            for group in 0..g.groups {
                let cols_t = if g.is_pointwise() {
                    View {
                        data: &image[group * kk * positions..],
                        row_stride: 1,
                        col_stride: positions,
                    }
                } else {
                    im2col(g, image, group, &mut cols);
                    View {
                        data: &cols,
                        row_stride: 1,
                        col_stride: positions,
                    }
                };
                let grad = View {
                    data: &dout_image[group * og * positions..],
                    row_stride: positions,
                    col_stride: 1,
                };
                let dst = &mut sum[group * g.weight_group_len()..][..g.weight_group_len()];
                matmul(og, kk, positions, dst, true, grad, cols_t, inner);
            }
        }
        sum
    };
    let partials: Vec<Vec<f32>> = (0..g.batch)
        .step_by(chunk)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(partial)
        .collect();
    dw.fill(0.0);
    for p in &partials {
        dw.iter_mut().zip(p).for_each(|(d, v)| *d += v);
    }
}
