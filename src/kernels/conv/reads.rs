//! Where the kernel of [`super::narrow`] reads the rows of its column matrix: a
//! column matrix itself, or an image at a convolution's offsets under masks (implicit im2col).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::simd::lanes;

/// Where the rows of a product's column matrix are read: row `c·taps + t` is plane `c` of the
/// data read at offset `shifts[t]`, and `masks[tile·taps + t]` says which of a tile's 16
/// positions read a value (the others read zero). A column matrix is one tap per row; an image
/// read at a convolution's offsets (implicit im2col) has a tap per kernel position, its masks
/// zeroing the padding.
pub(super) struct Reads {
    pub(super) shifts: Vec<isize>,
    pub(super) masks: Vec<u16>,
    /// Positions of the product (its width).
    pub(super) width: usize,
    /// How far past its plane's start a read may go: every unmasked lane stays below it.
    pub(super) extent: usize,
}

/// Where one tap reads a plane: at the position `(dy, dx)` away, in the `height × width`
/// grid that begins `start` values past the plane's start (a phase of it, or all of it).
pub(super) struct Tap {
    pub(super) start: usize,
    pub(super) dy: isize,
    pub(super) dx: isize,
}

impl Reads {
    /// The rows of a column matrix, `width` long.
    pub(super) fn columns(width: usize) -> Reads {
        let masks = (0..width.div_ceil(16))
            .map(|tile| lanes(width - tile * 16))
            .collect();
        Reads {
            shifts: vec![0],
            masks,
            width,
            extent: width,
        }
    }

    /// One image's planes, each split into its `stride × stride` phases (phase `(py, px)`
    /// holds rows `py, py + s, …` and columns `px, px + s, …`, `height × width` like the
    /// output, the phases of a plane one after the other), read at the offsets of a
    /// `kernel × kernel` convolution with that stride, padded by `padding` on every side:
    /// output position `(y, x)` reads the input at `(s·y + ky − padding, s·x + kx − padding)`,
    /// which is phase `((ky − padding) mod s, (kx − padding) mod s)` at
    /// `(y + ⌊(ky − padding)/s⌋, x + ⌊(kx − padding)/s⌋)`. With stride 1 the one phase is
    /// the plane itself: a convolution that keeps the size.
    ///
    /// Computed once per shape for the whole process: at batch 1 the masks cost as much as a
    /// small layer's multiply.
    pub(super) fn phases(
        height: usize,
        width: usize,
        kernel: usize,
        padding: usize,
        stride: usize,
    ) -> Arc<Reads> {
        type Shapes = Mutex<HashMap<[usize; 5], Arc<Reads>>>;
        static KNOWN: OnceLock<Shapes> = OnceLock::new();
        let shape = [height, width, kernel, padding, stride];
        let known = KNOWN.get_or_init(Default::default);
        if let Some(reads) = known.lock().expect("no panic holds it").get(&shape) {
            return reads.clone();
        }
        let reads = Arc::new(Reads::phases_of(height, width, kernel, padding, stride));
        let mut known = known.lock().expect("no panic holds it");
        known.entry(shape).or_insert(reads).clone()
    }

    fn phases_of(
        height: usize,
        width: usize,
        kernel: usize,
        padding: usize,
        stride: usize,
    ) -> Reads {
        // Each tap's phase and shift along both axes.
        let split = |k: usize| {
            let offset = k as isize - padding as isize;
            let s = stride as isize;
            (offset.rem_euclid(s) as usize, offset.div_euclid(s))
        };
        let positions = height * width;
        let taps: Vec<Tap> = (0..kernel * kernel)
            .map(|t| {
                let ((py, dy), (px, dx)) = (split(t / kernel), split(t % kernel));
                Tap {
                    start: (py * stride + px) * positions,
                    dy,
                    dx,
                }
            })
            .collect();
        Reads::shifted(height, width, &taps, stride * stride * positions)
    }

    /// Planes of `height × width` positions read at `taps`: output position `(y, x)` reads
    /// tap `t`'s position `(y + dy, x + dx)` when it lies inside `height × width`, counted
    /// from `start` (zero otherwise); no read goes `extent` or further past a plane's start.
    pub(super) fn shifted(height: usize, width: usize, taps: &[Tap], extent: usize) -> Reads {
        let positions = height * width;
        let mut masks = vec![0u16; positions.div_ceil(16) * taps.len()];
        for position in 0..positions {
            let (y, x) = ((position / width) as isize, (position % width) as isize);
            let tile = &mut masks[position / 16 * taps.len()..][..taps.len()];
            for (mask, tap) in tile.iter_mut().zip(taps) {
                let inside = (0..height as isize).contains(&(y + tap.dy))
                    && (0..width as isize).contains(&(x + tap.dx));
                *mask |= u16::from(inside) << (position % 16);
            }
        }
        for tap in taps {
            assert!(tap.start + positions <= extent, "a tap reads past {extent}");
        }
        let shifts = taps
            .iter()
            .map(|t| t.start as isize + t.dy * width as isize + t.dx)
            .collect();
        Reads {
            shifts,
            masks,
            width: positions,
            extent,
        }
    }
}
