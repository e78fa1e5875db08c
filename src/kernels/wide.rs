//! Plain loops compiled for AVX2 where the CPU has it. The crate is built for baseline x86-64,
//! where the compiler vectorises a loop with SSE2, four floats (two doubles) at a time; the
//! same loop compiled inside an AVX2 function runs eight (four) at a time. The results are the
//! same bits: Rust never fuses a multiply and an add on its own, and vectorising only runs
//! independent elements, or the same interleaved running sums, side by side.

/// Runs `body`, compiled for AVX2 when this CPU has it. Pass an `#[inline(always)]` closure
/// (and call only `#[inline(always)]` functions in it) so that its code is generated inside
/// the AVX2 function rather than called from it.
#[inline(always)]
pub(super) fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        // SAFETY: AVX2 is present (detected above).
        return unsafe { avx2(body) };
    }
    body()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of a loop gives the bits of the baseline one.
    #[test]
    fn gives_the_bits_of_the_plain_loop() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.4)
            .collect();
        let plain = |x: &[f32]| -> (Vec<f32>, f64) {
            let y: Vec<f32> = x.iter().map(|&v| (v * 1.7 - 0.3).max(0.0) / 3.1).collect();
            let mut lanes = [0.0f64; 8];
            for chunk in x.chunks_exact(8) {
                for (l, &v) in lanes.iter_mut().zip(chunk) {
                    *l += (v as f64 - 0.1).powi(2);
                }
            }
            (y, lanes.iter().sum())
        };
        let bits = |(y, s): (Vec<f32>, f64)| {
            let mut b: Vec<u64> = y.iter().map(|v| v.to_bits() as u64).collect();
            b.push(s.to_bits());
            b
        };
        let wide = with_avx2(
            #[inline(always)]
            || plain(&x),
        );
        assert_eq!(bits(wide), bits(plain(&x)));
    }
}
