//! Moving values between images and column matrices: im2col and its inverse, the gathers that
//! put the images of a block side by side, and the transpose that turns a product around.

use rayon::prelude::*;

use super::Geometry;

/// Fills the `(C/g)·k·k` rows of `Ho·Wo` values that start every `row_stride` in `cols` with
/// group `group` of one image; with `parallel`, input channels are spread over the threads
/// (each channel's k·k rows are one contiguous run of `cols`).
fn im2col(
    g: &Geometry,
    image: &[f32],
    group: usize,
    cols: &mut [f32],
    row_stride: usize,
    parallel: bool,
) {
    let plane_len = g.height * g.width;
    let planes = image[group * g.in_per_group() * plane_len..].chunks(plane_len);
    let channel_rows = g.kernel * g.kernel * row_stride;
    let work = cols
        .chunks_mut(channel_rows)
        .zip(planes)
        .take(g.in_per_group());
    if parallel {
        work.par_bridge()
            .for_each(|(rows, plane)| im2col_channel(g, plane, rows, row_stride));
    } else {
        work.for_each(|(rows, plane)| im2col_channel(g, plane, rows, row_stride));
    }
}

/// The k·k rows of one input channel.
fn im2col_channel(g: &Geometry, plane: &[f32], rows: &mut [f32], row_stride: usize) {
    let (k, s, p) = (g.kernel, g.stride, g.padding as isize);
    let (h, w, ho, wo) = (g.height as isize, g.width, g.out_height(), g.out_width());
    for ky in 0..k {
        for kx in 0..k {
            let row = &mut rows[(ky * k + kx) * row_stride..][..ho * wo];
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

/// Adds the `(C/g)·k·k` rows of `Ho·Wo` values that start every `row_stride` in `cols` back
/// into group `group` of one image's gradient.
pub(super) fn col2im(
    g: &Geometry,
    cols: &[f32],
    group: usize,
    image: &mut [f32],
    row_stride: usize,
) {
    let (k, s, p) = (g.kernel, g.stride, g.padding as isize);
    let (h, w, ho, wo) = (g.height as isize, g.width, g.out_height(), g.out_width());
    let first_channel = group * g.in_per_group();
    for c in 0..g.in_per_group() {
        let plane = &mut image[(first_channel + c) * g.height * w..][..g.height * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[((c * k + ky) * k + kx) * row_stride..][..ho * wo];
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

/// `dst[c·rows + r] = src[r·cols + c]`: the transpose of a row-major `rows × cols` matrix, in
/// square tiles that stay in L1.
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 16;
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let column = &mut dst[c * rows + r0..c * rows + r1];
                for (d, r) in column.iter_mut().zip(r0..r1) {
                    *d = src[r * cols + c];
                }
            }
        }
    }
}

/// The column matrix of group `group` for the `b` images in `images`: image i fills columns
/// `i·P .. (i+1)·P` of rows `width = b·P` long.
/// With `parallel`, each image's im2col is spread over the threads (used when the threads are
/// not busy with blocks of their own).
pub(super) fn gather_columns(
    g: &Geometry,
    images: &[f32],
    group: usize,
    b: usize,
    cols: &mut [f32],
    parallel: bool,
) {
    let (kk, positions) = (g.col_rows(), g.positions());
    let width = b * positions;
    for (i, image) in images.chunks(g.image_len()).take(b).enumerate() {
        if g.is_pointwise() {
            for r in 0..kk {
                cols[r * width + i * positions..][..positions]
                    .copy_from_slice(&image[(group * kk + r) * positions..][..positions]);
            }
        } else {
            im2col(g, image, group, &mut cols[i * positions..], width, parallel);
        }
    }
}

/// Rows of group `group` of `b` output-shaped images (`[O, P]` each) side by side: `[O/g, b·P]`.
pub(super) fn gather_rows(g: &Geometry, outputs: &[f32], group: usize, b: usize, rows: &mut [f32]) {
    let (og, positions) = (g.out_per_group(), g.positions());
    let width = b * positions;
    for (i, image) in outputs.chunks(g.out_image_len()).take(b).enumerate() {
        for o in 0..og {
            rows[o * width + i * positions..][..positions]
                .copy_from_slice(&image[(group * og + o) * positions..][..positions]);
        }
    }
}
