//! The shapes of one convolution, and the sizes and ranges derived from them.

use crate::graph::conv::reads::Reads;

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
    pub(super) fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    pub(super) fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Rows of one group's column matrix: (C/groups)·k·k.
    pub(super) fn col_rows(&self) -> usize {
        self.in_per_group() * self.kernel * self.kernel
    }
    pub(super) fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }
    pub(super) fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }
    pub(super) fn out_image_len(&self) -> usize {
        self.out_channels * self.positions()
    }
    pub(super) fn weight_group_len(&self) -> usize {
        self.out_per_group() * self.col_rows()
    }
    /// The output columns `lo..hi` whose input column `ox·stride + kx − padding` lies inside
    /// the image, for kernel column `kx`.
    pub(in crate::graph::conv) fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let (s, p, wo) = (self.stride, self.padding as isize, self.out_width());
        let lo = ((p - kx as isize).max(0) as usize).div_ceil(s).min(wo);
        let hi = (((self.width as isize + p - kx as isize - 1).max(-1) + 1) as usize)
            .div_ceil(s)
            .min(wo)
            .max(lo);
        (lo, hi)
    }
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
    /// Whether the output's grid is that of the input's `stride × stride` phases (the input's
    /// sides are `stride` times the output's): the kernel then reads the phases in place,
    /// output position `p` reading position `p + shift` of one phase per kernel position
    /// ([`Reads::phases`]). Stride 2 with a 3×3 kernel padded by 1, or a 1×1 unpadded, on an
    /// even input, and every convolution that keeps the size.
    pub(super) fn reads_phases(&self) -> bool {
        let s = self.stride;
        self.out_height() * s == self.height && self.out_width() * s == self.width
    }
    /// Stride 1 and an output of the input's size (a k×k kernel padded by (k−1)/2): the one
    /// phase is the image itself.
    pub(super) fn keeps_size(&self) -> bool {
        self.stride == 1 && self.reads_phases()
    }
    /// The kernel's offsets into one image's phases, for [`narrow`] (implicit im2col).
    pub(super) fn image_reads(&self) -> Reads {
        let (height, width) = (self.out_height(), self.out_width());
        Reads::phases(height, width, self.kernel, self.padding, self.stride)
    }
    /// One image `[C, H, W]` as its planes' phases, `[C, stride², Ho, Wo]` (see
    /// [`Self::reads_phases`]), the planes `plane_stride` apart (at least `H·W`; the gaps
    /// zero).
    pub(super) fn split_phases(&self, image: &[f32], plane_stride: usize) -> Vec<f32> {
        let (s, plane) = (self.stride, self.height * self.width);
        let (ho, wo) = (self.out_height(), self.out_width());
        let mut phases = vec![0.0f32; image.len() / plane * plane_stride];
        for (channel, split) in image.chunks(plane).zip(phases.chunks_mut(plane_stride)) {
            // Row y·s + py of the plane goes, column by column, to row y of phases (py, 0..s).
            for (r, row) in channel.chunks_exact(self.width).enumerate() {
                let (y, py) = (r / s, r % s);
                for (x, pixels) in row.chunks_exact(s).enumerate() {
                    for (px, &v) in pixels.iter().enumerate() {
                        split[((py * s + px) * ho + y) * wo + x] = v;
                    }
                }
            }
        }
        phases
    }
}
