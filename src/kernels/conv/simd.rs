//! Sixteen f32 lanes, the unit the convolution kernels ([`super::narrow`], [`super::outer`])
//! compute in: one AVX-512 register, or two AVX2 registers on CPUs without AVX-512 (Zen 3 and
//! older, most Intel client parts).
//!
//! The kernels are written once, generic over [`Sixteen`]; each instruction set compiles them
//! in a function of its own with its target features. Every lane runs the same sequence of
//! fused multiply-adds either way, so both give the same bits.

/// The instruction set the kernels run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::kernels::conv) enum Vectors {
    Avx512,
    /// AVX2 with FMA.
    Avx2,
}

impl Vectors {
    /// Every instruction set, the best first.
    const ALL: [Vectors; 2] = [Vectors::Avx512, Vectors::Avx2];

    /// Whether this CPU has the instruction set.
    pub(super) fn present(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Vectors::Avx512 => has!("avx512f"),
                Vectors::Avx2 => has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Output channels of the full tiles (whose accumulators, 16 lanes each, the kernels keep
    /// in registers at once), and of the smaller ones that cover what full tiles leave
    /// over (as many as a full one, where there are none).
    fn tile_channels(self) -> (usize, usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use x86::{Ymm2, Zmm};
            match self {
                Vectors::Avx512 => (Zmm::CHANNELS, Zmm::SMALL),
                Vectors::Avx2 => (Ymm2::CHANNELS, Ymm2::SMALL),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no instruction set is detected off x86-64")
    }

    /// The channels a kernel computes for a tile of `filled` channels: a full tile's, or a
    /// small one's where it fits.
    pub(super) fn tile_width(self, filled: usize) -> usize {
        let (full, small) = self.tile_channels();
        if filled <= small {
            small
        } else {
            full
        }
    }

    /// The tiles of channels that cover `channels`, in order: tiles of [`Vectors::channels`],
    /// and where that leaves some over, smaller tiles that cover the rest exactly (taking one
    /// full tile's channels too if need be: 16 = 6 + 6 + 4 and 32 = 4·6 + 2·4 in AVX2), so
    /// that no accumulator is computed for nothing. Where no such split exists, the last tile
    /// is partial.
    pub(super) fn tiles(self, channels: usize) -> Vec<std::ops::Range<usize>> {
        let (full, small) = self.tile_channels();
        let rest = channels % full;
        let smalls = if rest.is_multiple_of(small) {
            rest / small
        } else if channels >= full && (rest + full).is_multiple_of(small) {
            (rest + full) / small
        } else {
            0
        };
        let fulls_end = channels - smalls * small;
        let fulls = (0..fulls_end)
            .step_by(full)
            .map(|f| f..(f + full).min(fulls_end));
        let smalls = (fulls_end..channels).step_by(small).map(|f| f..f + small);
        fulls.chain(smalls).collect()
    }
}

/// The best instruction set of this CPU for the kernels, if it has one.
pub(in crate::kernels::conv) fn detected() -> Option<Vectors> {
    Vectors::ALL.into_iter().find(|v| v.present())
}

/// Every instruction set this CPU can run the kernels with, the best first.
#[cfg(test)]
pub(super) fn usable() -> Vec<Vectors> {
    Vectors::ALL.into_iter().filter(|v| v.present()).collect()
}

/// The mask of the first `n` of 16 lanes.
pub(super) fn lanes(n: usize) -> u16 {
    if n >= 16 {
        !0
    } else {
        (1u16 << n) - 1
    }
}

/// Sixteen f32 lanes in registers. The methods are only called from functions compiled with
/// the instruction set's target features (and inlined there).
#[cfg(target_arch = "x86_64")]
pub(super) trait Sixteen: Copy {
    /// Output channels whose accumulators a kernel keeps in registers at once, with room left
    /// for the loads and the broadcast weight.
    const CHANNELS: usize;
    /// Output channels of the smaller tiles that cover a remainder (see [`Vectors::tiles`]).
    const SMALL: usize;
    /// A lane mask, as the loads and stores take it.
    type Mask: Copy;
    unsafe fn mask(bits: u16) -> Self::Mask;
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    /// The lanes under `mask` from `p`, zero elsewhere; masked-off lanes are not read.
    unsafe fn load(mask: Self::Mask, p: *const f32) -> Self;
    /// All sixteen lanes from `p`: where every lane is wanted, a plain load frees the
    /// registers a mask takes.
    unsafe fn load_all(p: *const f32) -> Self;
    /// Writes all sixteen lanes to `p`.
    unsafe fn store_all(self, p: *mut f32);
    /// `self + x · *w`.
    unsafe fn add_product(self, x: Self, w: *const f32) -> Self;
    unsafe fn add(self, other: Self) -> Self;
    unsafe fn relu(self) -> Self;
    /// Writes the lanes under `mask` (`bits` as given to [`Sixteen::mask`]) to `p`.
    unsafe fn store(self, mask: Self::Mask, bits: u16, p: *mut f32);
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::Sixteen;

    /// One AVX-512 register.
    #[derive(Clone, Copy)]
    pub(in crate::kernels::conv) struct Zmm(__m512);

    impl Sixteen for Zmm {
        // 16 accumulators of the 32 registers.
        const CHANNELS: usize = 16;
        // None: ResNets' channel counts are whole tiles of 16.
        const SMALL: usize = 16;
        type Mask = __mmask16;
        #[inline(always)]
        unsafe fn mask(bits: u16) -> __mmask16 {
            bits
        }
        #[inline(always)]
        unsafe fn zero() -> Self {
            Zmm(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Zmm(_mm512_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(mask: __mmask16, p: *const f32) -> Self {
            Zmm(_mm512_maskz_loadu_ps(mask, p))
        }
        #[inline(always)]
        unsafe fn load_all(p: *const f32) -> Self {
            Zmm(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store_all(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add_product(self, x: Self, w: *const f32) -> Self {
            Zmm(_mm512_fmadd_ps(x.0, _mm512_set1_ps(*w), self.0))
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            Zmm(_mm512_add_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn relu(self) -> Self {
            Zmm(_mm512_max_ps(self.0, _mm512_setzero_ps()))
        }
        #[inline(always)]
        unsafe fn store(self, mask: __mmask16, _: u16, p: *mut f32) {
            _mm512_mask_storeu_ps(p, mask, self.0)
        }
    }

    /// Two AVX2 registers: lanes 0–7 and 8–15.
    #[derive(Clone, Copy)]
    pub(in crate::kernels::conv) struct Ymm2(__m256, __m256);

    impl Sixteen for Ymm2 {
        // 12 accumulators of the 16 registers, two for the loads and one for the weight.
        const CHANNELS: usize = 6;
        const SMALL: usize = 4;
        type Mask = (__m256i, __m256i);
        #[inline(always)]
        unsafe fn mask(bits: u16) -> Self::Mask {
            // Lane i of each half is set where bit i of its byte is.
            let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let low = _mm256_and_si256(_mm256_set1_epi32(i32::from(bits & 0xff)), select);
            let high = _mm256_and_si256(_mm256_set1_epi32(i32::from(bits >> 8)), select);
            (
                _mm256_cmpeq_epi32(low, select),
                _mm256_cmpeq_epi32(high, select),
            )
        }
        #[inline(always)]
        unsafe fn zero() -> Self {
            Ymm2(_mm256_setzero_ps(), _mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Ymm2(_mm256_set1_ps(v), _mm256_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(mask: Self::Mask, p: *const f32) -> Self {
            Ymm2(
                _mm256_maskload_ps(p, mask.0),
                _mm256_maskload_ps(p.wrapping_add(8), mask.1),
            )
        }
        #[inline(always)]
        unsafe fn load_all(p: *const f32) -> Self {
            Ymm2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        }
        #[inline(always)]
        unsafe fn store_all(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1);
        }
        #[inline(always)]
        unsafe fn add_product(self, x: Self, w: *const f32) -> Self {
            let w = _mm256_broadcast_ss(&*w);
            Ymm2(
                _mm256_fmadd_ps(x.0, w, self.0),
                _mm256_fmadd_ps(x.1, w, self.1),
            )
        }
        #[inline(always)]
        unsafe fn add(self, other: Self) -> Self {
            Ymm2(
                _mm256_add_ps(self.0, other.0),
                _mm256_add_ps(self.1, other.1),
            )
        }
        #[inline(always)]
        unsafe fn relu(self) -> Self {
            let zero = _mm256_setzero_ps();
            Ymm2(_mm256_max_ps(self.0, zero), _mm256_max_ps(self.1, zero))
        }
        #[inline(always)]
        unsafe fn store(self, mask: Self::Mask, bits: u16, p: *mut f32) {
            // Masked stores are slow on AMD's cores: whole halves are stored plainly.
            let halves = [(self.0, mask.0, bits & 0xff), (self.1, mask.1, bits >> 8)];
            for (i, (v, m, b)) in halves.into_iter().enumerate() {
                let p = p.wrapping_add(8 * i);
                if b == 0xff {
                    _mm256_storeu_ps(p, v);
                } else if b != 0 {
                    _mm256_maskstore_ps(p, m, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Vectors;

    #[test]
    fn tiles_cover_the_channels_in_order_without_spare_accumulators_where_they_can() {
        let widths = |v: Vectors, c: usize| -> Vec<usize> {
            let tiles = v.tiles(c);
            let starts: Vec<usize> = tiles.iter().map(|t| t.start).collect();
            let ends: Vec<usize> = tiles.iter().map(|t| t.end).collect();
            assert_eq!(starts.first().copied().unwrap_or(0), 0);
            assert_eq!(ends.last().copied().unwrap_or(0), c);
            assert_eq!(
                starts[1.min(starts.len())..],
                ends[..ends.len().saturating_sub(1)]
            );
            tiles.iter().map(|t| t.len()).collect()
        };
        let avx2 = Vectors::Avx2;
        assert_eq!(widths(avx2, 16), [6, 6, 4]);
        assert_eq!(widths(avx2, 32), [6, 6, 6, 6, 4, 4]);
        assert_eq!(
            widths(avx2, 64),
            [6; 10].into_iter().chain([4]).collect::<Vec<_>>()
        );
        assert_eq!(widths(avx2, 4), [4]);
        assert_eq!(widths(avx2, 2), [2]);
        assert_eq!(widths(avx2, 9), [6, 3]);
        assert_eq!(widths(avx2, 0), Vec::<usize>::new());
        assert_eq!(widths(Vectors::Avx512, 24), [16, 8]);
        assert_eq!(widths(Vectors::Avx512, 64), [16; 4]);
    }
}
