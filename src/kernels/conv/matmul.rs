//! The matrix multiplies of the convolution kernels: the gemm crate's blocking and packing,
//! with its AVX-512 or its AVX2 microkernels chosen per multiply.
//!
//! The product is always written column-major (its transpose, row-major): gemm computes the
//! convolutions' products that way up to several times faster than row-major, most of all the
//! input gradient's, whose inner dimension is short (7 against 106 GFLOP/s for 144 × 1024 × 16
//! on one core), so the kernels turn the results around themselves.
//!
//! `gemm::gemm` picks one instruction set per process. Which one wins depends on the shape:
//! on a Zen 5 core (two 512-bit FMA pipes) AVX-512 ran the convolutions' multiplies with at
//! least 32 rows and columns 1.3–2.3× faster than AVX2, but not those with 16 output channels,
//! whose 6-wide AVX-512 tiles leave a third of the last tile empty (0.86–1.0×). So the choice
//! is made here, per call, from the shape.

use gemm::Parallelism;

/// A read-only matrix view: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View<'_> {
    fn last_index(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// The microkernels a multiply runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Avx512,
    Avx2,
    /// Whatever `gemm::gemm` chooses (machines without FMA, other architectures).
    Default,
}

/// The instruction set for an m × n product on this machine. gemm's AVX-512 kernel computes
/// 64 × 6 tiles of the product: it pays once both sides are at least 32 long.
pub(super) fn isa_for(m: usize, n: usize) -> Isa {
    let (avx512, avx2) = available();
    if avx512 && m.min(n) >= 32 {
        Isa::Avx512
    } else if avx2 {
        Isa::Avx2
    } else {
        Isa::Default
    }
}

/// (AVX-512F, AVX2 with FMA) on this CPU.
fn available() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        (
            std::arch::is_x86_feature_detected!("avx512f"),
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}

/// The sizes of a product: `m × k` times `k × n`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// `dst = (accumulate ? dst : 0) + a · b`, column-major (element (i, j) at `j·m + i`), on
/// `threads` threads, with the microkernels [`isa_for`] chooses.
pub(super) fn matmul(
    dims: Dims,
    dst: &mut [f32],
    accumulate: bool,
    a: View,
    b: View,
    threads: usize,
) {
    let isa = isa_for(dims.m, dims.n);
    matmul_with(isa, dims, dst, accumulate, a, b, threads)
}

/// [`matmul`] with the instruction set given (it must be available on this CPU).
pub(super) fn matmul_with(
    isa: Isa,
    Dims { m, n, k }: Dims,
    dst: &mut [f32],
    accumulate: bool,
    a: View,
    b: View,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        dst.len() >= m * n
            && a.last_index(m, k) < a.data.len()
            && b.last_index(k, n) < b.data.len()
    );
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let call = Call {
        sizes: (m, n, k),
        dst: (dst.as_mut_ptr(), m as isize, 1),
        read_dst: accumulate,
        lhs: (
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
        ),
        rhs: (
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
        ),
        parallelism,
    };
    // SAFETY: the assertion above keeps every index gemm touches inside the three slices,
    // `dst` is borrowed mutably, so it does not alias `a` or `b`, and the caller chose an
    // instruction set this CPU has.
    unsafe { gemm_for_isa(isa)(&call) }
}

/// One call of gemm: (m, n, k), then (pointer, column stride, row stride) of the destination
/// and the two operands, in elements.
struct Call {
    sizes: (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    read_dst: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    parallelism: Parallelism,
}

type GemmFn = unsafe fn(&Call);

/// The entry into gemm that runs `isa`'s microkernels.
fn gemm_for_isa(isa: Isa) -> GemmFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2,
        _ => default_gemm,
    }
}

/// `gemm::gemm`, with the instruction set it picks for the process.
unsafe fn default_gemm(c: &Call) {
    let ((m, n, k), (dst, dst_cs, dst_rs)) = (c.sizes, c.dst);
    let ((lhs, lhs_cs, lhs_rs), (rhs, rhs_cs, rhs_rs)) = (c.lhs, c.rhs);
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        c.read_dst,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        1.0,
        1.0,
        false,
        false,
        false,
        c.parallelism,
    )
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use gemm_common::gemm::gemm_basic_generic;
    use gemm_common::simd::{MixedSimd, V3, V4};

    use super::Call;

    /// gemm's own `gemm_basic` for one instruction set: `$simd` with the microkernels of
    /// `$kernels`, `$lanes` floats to a vector.
    macro_rules! gemm_for {
        ($name:ident, $simd:ty, $kernels:path, $lanes:expr) => {
            #[inline(never)]
            pub(super) unsafe fn $name(c: &Call) {
                use $kernels::*;
                let simd = <$simd as MixedSimd<f32, f32, f32, f32>>::try_new()
                    .expect("the instruction set was checked before the call");
                let ((m, n, k), (dst, dst_cs, dst_rs)) = (c.sizes, c.dst);
                let ((lhs, lhs_cs, lhs_rs), (rhs, rhs_cs, rhs_rs)) = (c.lhs, c.rhs);
                gemm_basic_generic::<_, f32, $lanes, { MR_DIV_N * $lanes }, NR, MR_DIV_N, H_M, H_N>(
                    simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    c.read_dst,
                    lhs,
                    lhs_cs,
                    lhs_rs,
                    rhs,
                    rhs_cs,
                    rhs_rs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &UKR,
                    &H_UKR,
                    false,
                    c.parallelism,
                )
            }
        };
    }

    gemm_for!(avx512, V4, gemm_f32::microkernel::avx512f::f32, 16);
    gemm_for!(avx2, V3, gemm_f32::microkernel::fma::f32, 8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn isas() -> Vec<Isa> {
        let (avx512, avx2) = available();
        let mut all = vec![Isa::Default];
        all.extend(avx2.then_some(Isa::Avx2));
        all.extend(avx512.then_some(Isa::Avx512));
        all
    }

    #[test]
    fn every_instruction_set_matches_a_float64_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (m, n, k) in [
            (1, 1, 1),
            (16, 144, 300),
            (70, 33, 16),
            (144, 256, 16),
            (5, 97, 64),
        ] {
            // a is read transposed (column-major), b row-major.
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let start: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let a_view = View {
                data: &a,
                row_stride: 1,
                col_stride: m,
            };
            let b_view = View {
                data: &b,
                row_stride: n,
                col_stride: 1,
            };
            for isa in isas() {
                for (accumulate, threads) in [(false, 1), (true, 2)] {
                    let mut dst = start.clone();
                    let dims = Dims { m, n, k };
                    matmul_with(isa, dims, &mut dst, accumulate, a_view, b_view, threads);
                    for i in 0..m {
                        for j in 0..n {
                            let at = j * m + i;
                            let base = if accumulate { start[at] as f64 } else { 0.0 };
                            let want = base
                                + (0..k)
                                    .map(|l| a[l * m + i] as f64 * b[l * n + j] as f64)
                                    .sum::<f64>();
                            let got = dst[at] as f64;
                            let tolerance = 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt();
                            assert!(
                                (got - want).abs() <= tolerance,
                                "{isa:?} {m}×{n}×{k} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_choice_follows_the_shape() {
        let (avx512, avx2) = available();
        let narrow = isa_for(16, 1024);
        let wide = isa_for(64, 256);
        if avx2 {
            assert_eq!(narrow, Isa::Avx2);
        }
        if avx512 {
            assert_eq!(wide, Isa::Avx512);
        }
    }

    /// Not a test: the measurements behind [`isa_for`] and the column-major products, on this
    /// machine. `cargo test --release --lib gemm_shapes -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn gemm_shapes() {
        use std::time::Instant;
        let (avx512, avx2) = available();
        if !avx2 {
            return;
        }
        // ResNet-20's multiplies (per block of images) for 16, 32 and 64 channels: the
        // forward pass (O × positions × 9C), the input gradient (9C × positions × O) and the
        // weight gradient (O × 9C × positions, the columns read transposed).
        let shapes = [
            ("forward", 16, 1024, 144, false),
            ("forward", 32, 256, 288, false),
            ("forward", 64, 256, 576, false),
            ("input gradient", 144, 1024, 16, false),
            ("input gradient", 288, 256, 32, false),
            ("input gradient", 576, 256, 64, false),
            ("weight gradient", 16, 144, 1024, true),
            ("weight gradient", 32, 288, 256, true),
            ("weight gradient", 64, 576, 256, true),
        ];
        println!("| product | m × n × k | layout | AVX2 GFLOP/s | AVX-512 GFLOP/s |");
        println!("|---|---|---|---|---|");
        for (what, m, n, k, b_transposed) in shapes {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let a_view = View {
                data: &a,
                row_stride: k,
                col_stride: 1,
            };
            let b_view = if b_transposed {
                View {
                    data: &b,
                    row_stride: 1,
                    col_stride: k,
                }
            } else {
                View {
                    data: &b,
                    row_stride: n,
                    col_stride: 1,
                }
            };
            for (layout, column_major) in [("row-major", false), ("column-major", true)] {
                let mut dst = vec![0.0f32; m * n];
                let flops = 2.0 * (m * n * k) as f64;
                let mut rates = Vec::new();
                for isa in [Isa::Avx2, Isa::Avx512] {
                    if isa == Isa::Avx512 && !avx512 {
                        rates.push(f64::NAN);
                        continue;
                    }
                    // gemm itself, with the destination's strides of either layout.
                    let (dst_cs, dst_rs) = if column_major { (m, 1) } else { (1, n) };
                    let run = |dst: &mut [f32]| {
                        let call = Call {
                            sizes: (m, n, k),
                            dst: (dst.as_mut_ptr(), dst_cs as isize, dst_rs as isize),
                            read_dst: false,
                            lhs: (
                                a.as_ptr(),
                                a_view.col_stride as isize,
                                a_view.row_stride as isize,
                            ),
                            rhs: (
                                b.as_ptr(),
                                b_view.col_stride as isize,
                                b_view.row_stride as isize,
                            ),
                            parallelism: Parallelism::None,
                        };
                        // SAFETY: the views and `dst` cover m × k, k × n and m × n.
                        unsafe { gemm_for_isa(isa)(&call) }
                    };
                    let reps = (2e9 / flops) as usize + 1;
                    let mut best = f64::MAX;
                    for _ in 0..5 {
                        run(&mut dst);
                        let started = Instant::now();
                        for _ in 0..reps {
                            run(&mut dst);
                        }
                        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
                    }
                    rates.push(flops / best / 1e9);
                }
                println!(
                    "| {what} | {m} × {n} × {k} | {layout} | {:.0} | {:.0} |",
                    rates[0], rates[1]
                );
            }
        }
    }
}
