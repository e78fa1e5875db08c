//! The shapes of one convolution, and the sizes and ranges derived from them.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::kernels::conv::reads::{Reads, Tap};

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
    pub(in crate::kernels::conv) fn valid_columns(&self, kx: usize) -> (usize, usize) {
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
    /// The kernel's offsets into one image's phases, for [`narrow`] (implicit im2col).
    pub(super) fn image_reads(&self) -> Arc<Reads> {
        let (height, width) = (self.out_height(), self.out_width());
        Reads::phases(height, width, self.kernel, self.padding, self.stride)
    }
    /// One image `[C, H, W]` as its planes' phases, `[C, stride², Ho, Wo]` (see
    /// [`Self::reads_phases`]), the planes `plane_stride` apart (at least `H·W`; the gaps
    /// zero).
    pub(super) fn split_phases(&self, image: &[f32], plane_stride: usize) -> Vec<f32> {
        let (s, plane, wo) = (self.stride, self.height * self.width, self.out_width());
        let mut phases = vec![0.0f32; image.len() / plane * plane_stride];
        for (channel, split) in image.chunks(plane).zip(phases.chunks_mut(plane_stride)) {
            self.for_each_phase_row(|at, px, phase_at| {
                let row = channel[at + px..][..self.width - px].iter().step_by(s);
                split[phase_at..][..wo]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(v, &x)| *v = x);
            });
        }
        phases
    }

    /// The inverse of [`Self::split_phases`] (planes `H·W` apart), plus `plus` (laid out as
    /// the image) where given, written into every value of `image`.
    pub(super) fn merge_phases(
        &self,
        phases: &[f32],
        plus: Option<&[f32]>,
        image: &mut [MaybeUninit<f32>],
    ) {
        let (s, plane, wo) = (self.stride, self.height * self.width, self.out_width());
        let channels = phases.chunks(plane).zip(image.chunks_mut(plane));
        for (c, (split, channel)) in channels.enumerate() {
            self.for_each_phase_row(|at, px, phase_at| {
                let row = channel[at + px..][..self.width - px].iter_mut().step_by(s);
                let values = row.zip(&split[phase_at..][..wo]);
                match plus {
                    Some(plus) => {
                        let plus = plus[c * plane + at + px..].iter().step_by(s);
                        values.zip(plus).for_each(|((d, &v), &p)| {
                            d.write(v + p);
                        });
                    }
                    None => values.for_each(|(d, &v)| {
                        d.write(v);
                    }),
                }
            });
        }
    }

    /// `f(at, px, phase_at)` for every row of an input plane (from `at`) and column phase
    /// `px`: the row's columns `px, px + s, …` are, from `phase_at`, a row of phase
    /// `(py, px)` of the plane's phases (row `y·s + py` is the phase's row `y`).
    #[inline(always)]
    fn for_each_phase_row(&self, mut f: impl FnMut(usize, usize, usize)) {
        let s = self.stride;
        let (ho, wo) = (self.out_height(), self.out_width());
        for r in 0..self.height {
            let (y, py) = (r / s, r % s);
            for px in 0..s {
                f(r * self.width, px, ((py * s + px) * ho + y) * wo);
            }
        }
    }

    /// The taps that reach phase `(py, px)` of the input from the output (see
    /// [`Self::reads_phases`]): kernel position `(ky, kx)` and the output offset it reads,
    /// input `(y·s + py, x·s + px)` taking output `(y + dy, x + dx)`'s gradient through it.
    pub(super) fn phase_taps(&self, (py, px): (usize, usize)) -> Vec<((usize, usize), Tap)> {
        // Along one axis: forward, output `i` reads input `s·i + k − padding`.
        let along = |phase: usize| -> Vec<(usize, isize)> {
            let s = self.stride as isize;
            (0..self.kernel)
                .filter_map(|k| {
                    let reach = (phase + self.padding) as isize - k as isize;
                    (reach.rem_euclid(s) == 0).then_some((k, reach.div_euclid(s)))
                })
                .collect()
        };
        let columns = along(px);
        along(py)
            .into_iter()
            .flat_map(|(ky, dy)| {
                columns
                    .iter()
                    .map(move |&(kx, dx)| ((ky, kx), Tap { start: 0, dy, dx }))
            })
            .collect()
    }
}
