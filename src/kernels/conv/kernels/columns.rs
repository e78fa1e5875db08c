//! Moving values between images and column matrices: im2col and its inverse, the gathers that
//! put the images of a block side by side, and the transpose that turns a product around.

use rayon::prelude::*;

use super::Geometry;
use crate::kernels::conv::matmul::View;
use crate::kernels::conv::simd;

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
/// square tiles that stay in L1 (whole tiles of 16 × 16 in AVX-512 or AVX2 registers, where present).
pub(in crate::kernels::conv) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 16;
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    let vectors = simd::detected();
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            #[cfg(target_arch = "x86_64")]
            if let Some(vectors) = vectors.filter(|_| r1 - r0 == TILE && c1 - c0 == TILE) {
                let from = (src.as_ptr().wrapping_add(r0 * cols + c0), cols);
                let to = (dst.as_mut_ptr().wrapping_add(c0 * rows + r0), rows);
                // SAFETY: the instruction set is present; the tile's 16 rows of 16 lie inside
                // `src` (rows r0..r1, columns c0..c1) and its 16 columns inside `dst`.
                unsafe {
                    match vectors {
                        simd::Vectors::Avx512 => x86::transpose_tile(from, to),
                        simd::Vectors::Avx2 => {
                            for (dr, dc) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
                                let from = (from.0.add(dr * cols + dc), cols);
                                let to = (to.0.add(dc * rows + dr), rows);
                                x86::transpose_eight(from, to);
                            }
                        }
                    }
                };
                continue;
            }
            for c in c0..c1 {
                let column = &mut dst[c * rows + r0..c * rows + r1];
                for (d, r) in column.iter_mut().zip(r0..r1) {
                    *d = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Transposes the 16 × 16 tile at `src` (rows `src_stride` apart) into `dst` (rows
    /// `dst_stride` apart): 4×4 blocks inside each 128-bit lane by unpacking pairs of rows,
    /// then the lanes put in place by two rounds of lane shuffles.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_tile(
        (src, src_stride): (*const f32, usize),
        (dst, dst_stride): (*mut f32, usize),
    ) {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_stride)));
        // Pairs of rows interleaved: t[2i] holds elements 4j, 4j+1 of rows 2i, 2i+1 in lane j;
        // t[2i+1] elements 4j+2, 4j+3.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // u[4g + m]: in lane j, element 4j + m of rows 4g .. 4g + 4.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            // Elements 4j, 4j+1 are in t[4g] (rows 4g, 4g+1) and t[4g+2] (rows 4g+2, 4g+3);
            // 4j+2, 4j+3 in t[4g+1] and t[4g+3].
            let lo = _mm512_castps_pd(t[4 * g + m / 2]);
            let hi = _mm512_castps_pd(t[4 * g + 2 + m / 2]);
            _mm512_castpd_ps(if m % 2 == 0 {
                _mm512_unpacklo_pd(lo, hi)
            } else {
                _mm512_unpackhi_pd(lo, hi)
            })
        });
        for m in 0..4 {
            // Lanes (0, 2) and (1, 3) of row groups 0|1 and 2|3, then their halves joined.
            let x = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
            let y = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
            let z = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
            let w = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            _mm512_storeu_ps(dst.add(m * dst_stride), _mm512_shuffle_f32x4::<0x88>(x, z));
            _mm512_storeu_ps(
                dst.add((4 + m) * dst_stride),
                _mm512_shuffle_f32x4::<0x88>(y, w),
            );
            _mm512_storeu_ps(
                dst.add((8 + m) * dst_stride),
                _mm512_shuffle_f32x4::<0xDD>(x, z),
            );
            _mm512_storeu_ps(
                dst.add((12 + m) * dst_stride),
                _mm512_shuffle_f32x4::<0xDD>(y, w),
            );
        }
    }

    /// Transposes the 8 × 8 tile at `src` (rows `src_stride` apart) into `dst` (rows
    /// `dst_stride` apart), in AVX2: pairs of rows interleaved, then pairs of pairs, then the
    /// 128-bit halves put in place.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_eight(
        (src, src_stride): (*const f32, usize),
        (dst, dst_stride): (*mut f32, usize),
    ) {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_stride)));
        // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (low, high pairs of each half).
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // u[4g + m]: in each half, element m (of 4) of rows 4g .. 4g + 4.
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            let (a, b) = (t[4 * g + m / 2], t[4 * g + 2 + m / 2]);
            if m % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        for m in 0..4 {
            _mm256_storeu_ps(
                dst.add(m * dst_stride),
                _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m]),
            );
            _mm256_storeu_ps(
                dst.add((4 + m) * dst_stride),
                _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m]),
            );
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

/// Rows of group `group` of `b` output-shaped images (`[O, P]` each) side by side, as a
/// matrix `[O/g, b·P]`: where they lie for one image, gathered into `rows` for more.
pub(super) fn group_rows<'a>(
    g: &Geometry,
    outputs: &'a [f32],
    group: usize,
    b: usize,
    rows: &'a mut [f32],
) -> View<'a> {
    let (og, positions) = (g.out_per_group(), g.positions());
    if b == 1 {
        return View {
            data: &outputs[group * og * positions..],
            row_stride: positions,
            col_stride: 1,
        };
    }
    let width = b * positions;
    for (i, image) in outputs.chunks(g.out_image_len()).take(b).enumerate() {
        for o in 0..og {
            rows[o * width + i * positions..][..positions]
                .copy_from_slice(&image[(group * og + o) * positions..][..positions]);
        }
    }
    View {
        data: rows,
        row_stride: width,
        col_stride: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_moves_every_element_at_whole_and_partial_tiles() {
        for (rows, cols) in [(16, 16), (32, 48), (17, 33), (5, 16), (64, 1024), (1, 1)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for (r, c) in (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))) {
                assert_eq!(
                    dst[c * rows + r],
                    src[r * cols + c],
                    "{rows}×{cols} ({r}, {c})"
                );
            }
        }
    }
}
