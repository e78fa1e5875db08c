//! Where the AVX-512 kernel ([`super::narrow`]) reads the rows of its column matrix: a
//! column matrix itself, or an image at a convolution's offsets under masks (implicit im2col).

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

    /// One `height × width` image's planes read at the offsets of a stride-1, `kernel × kernel`
    /// convolution padded by `padding` on every side, whose output has the image's size:
    /// output position `(y, x)` reads `(y + ky − padding, x + kx − padding)`.
    pub(super) fn same_size(height: usize, width: usize, kernel: usize, padding: usize) -> Reads {
        let positions = height * width;
        let taps = kernel * kernel;
        let mut masks = vec![0u16; positions.div_ceil(16) * taps];
        for position in 0..positions {
            let (y, x) = ((position / width) as isize, (position % width) as isize);
            for (t, mask) in masks[position / 16 * taps..][..taps].iter_mut().enumerate() {
                let dy = (t / kernel) as isize - padding as isize;
                let dx = (t % kernel) as isize - padding as isize;
                let inside = (0..height as isize).contains(&(y + dy))
                    && (0..width as isize).contains(&(x + dx));
                *mask |= u16::from(inside) << (position % 16);
            }
        }
        let shifts = (0..taps)
            .map(|t| {
                let dy = (t / kernel) as isize - padding as isize;
                let dx = (t % kernel) as isize - padding as isize;
                dy * width as isize + dx
            })
            .collect();
        Reads {
            shifts,
            masks,
            width: positions,
            extent: positions,
        }
    }
}

/// The mask of the first `n` of 16 lanes.
pub(super) fn lanes(n: usize) -> u16 {
    if n >= 16 {
        !0
    } else {
        (1u16 << n) - 1
    }
}
