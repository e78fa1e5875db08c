//! Tests of the tile kernel against float64 sums, and its timing on ResNet-20's shapes.

use super::*;
use crate::kernels::output::as_uninit;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// [`forward`] into initialised values.
fn run(product: &Product, out: &mut [f32], out_stride: usize, threads: usize) {
    // SAFETY: the kernel writes initialised values only.
    forward(product, unsafe { as_uninit(out) }, out_stride, threads);
}

/// Planes whose rows would share L1 sets are spread an odd number of cache lines (16
/// floats) apart, each copied whole, the gaps zero; others are left where they are.
#[test]
fn spread_planes_lie_an_odd_number_of_lines_apart_and_keep_their_values() {
    for (plane_len, stride) in [(1024, 1040), (256, 272), (64, 64), (196, 196), (49, 49)] {
        assert_eq!(plane_stride(plane_len), stride, "{plane_len}");
    }
    let planes: Vec<f32> = (1..=3 * 256).map(|v| v as f32).collect();
    assert!(matches!(spread(&planes, 256, 256), Cow::Borrowed(p) if p == planes));
    let spread = spread(&planes, 256, 272);
    assert_eq!(spread.len(), 3 * 272);
    for (c, plane) in planes.chunks(256).enumerate() {
        assert_eq!(&spread[c * 272..][..256], plane);
        assert!(spread[c * 272 + 256..][..16].iter().all(|&v| v == 0.0));
    }
}

/// Every instruction set of this CPU, each with a float64 sum, and all of them with the
/// same bits.
#[test]
fn tiles_equal_a_float64_product_at_every_width_and_channel_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (channels, k, width) in [
        (16, 144, 1024),
        (32, 18, 40),
        (16, 9, 17),
        (5, 27, 33),
        (1, 1, 1),
        (16, 0, 8),
    ] {
        let w: Vec<f32> = (0..channels * k)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let cols_stride = width + 3;
        let cols: Vec<f32> = (0..k * cols_stride)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let bias: Vec<f32> = (0..channels).map(|_| rng.random_range(-1.0..1.0)).collect();
        let out_stride = width + 1;
        let residual: Vec<f32> = (0..channels * out_stride)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut first_bits: Option<Vec<u32>> = None;
        for (vectors, with_bias, with_residual, relu) in simd::usable().into_iter().flat_map(|v| {
            [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ]
            .map(|(b, r, relu)| (v, b, r, relu))
        }) {
            let packed = Packed::new(vectors, &w, channels, k);
            let product = Product {
                packed: &packed,
                data: &cols,
                plane_stride: cols_stride,
                reads: &Reads::columns(width),
                epilogue: Epilogue {
                    bias: with_bias.then_some(&bias[..]),
                    residual: with_residual.then_some(&residual[..]),
                    relu,
                },
            };
            let mut out = vec![f32::NAN; channels * out_stride];
            run(&product, &mut out, out_stride, 1);
            let mut split = vec![f32::NAN; channels * out_stride];
            run(&product, &mut split, out_stride, 3);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&split), "the split changed a value");
            if (with_bias, with_residual, relu) == (true, true, true) {
                let first = first_bits.get_or_insert_with(|| bits(&out));
                assert_eq!(*first, bits(&out), "{vectors:?} changed a value");
            }
            for o in 0..channels {
                for p in 0..width {
                    let sum: f64 = (0..k)
                        .map(|s| w[o * k + s] as f64 * cols[s * cols_stride + p] as f64)
                        .sum::<f64>()
                        + if with_bias { bias[o] as f64 } else { 0.0 }
                        + if with_residual {
                            residual[o * out_stride + p] as f64
                        } else {
                            0.0
                        };
                    let want = if relu { sum.max(0.0) } else { sum };
                    let got = out[o * out_stride + p] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                        "{vectors:?} {channels}×{k}×{width} ({o}, {p}): {got} vs {want}"
                    );
                }
                // Nothing past the row's width is written.
                assert!(out[o * out_stride + width].is_nan());
            }
        }
    }
}

/// Reading an image's phases at a convolution's offsets equals a float64 convolution:
/// every tap at every border, for several kernels, strides, paddings and sizes; the planes are
/// separated by NaN, so a read outside its plane would show.
#[test]
fn phase_reads_equal_a_float64_convolution() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Output height and width; the input is `stride` times larger.
    for (planes, channels, height, width, kernel, stride, padding) in [
        (3, 16, 8, 8, 3, 1, 1),
        (2, 5, 5, 7, 3, 1, 1),
        (16, 32, 32, 32, 3, 1, 1),
        (1, 16, 1, 1, 3, 1, 1),
        (4, 16, 6, 3, 5, 1, 2),
        (8, 16, 4, 5, 1, 1, 0),
        (3, 16, 8, 8, 3, 2, 1),
        (2, 5, 3, 7, 1, 2, 0),
        (4, 16, 5, 4, 5, 2, 2),
        (2, 16, 4, 3, 3, 3, 1),
        // One tap that reads off the position (one tile of channels reads it in place).
        (3, 4, 5, 6, 1, 1, 1),
        (2, 4, 4, 4, 1, 2, 1),
    ] {
        let (positions, taps, phases) = (height * width, kernel * kernel, stride * stride);
        let (in_height, in_width) = (stride * height, stride * width);
        let image: Vec<f32> = (0..planes * phases * positions)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let pixel = |c: usize, iy: usize, ix: usize| image[(c * in_height + iy) * in_width + ix];
        let plane_stride = phases * positions + 7;
        let mut data = vec![f32::NAN; 11 + planes * plane_stride];
        for (c, py, px, y, x) in (0..planes).flat_map(|c| {
            (0..stride).flat_map(move |py| {
                (0..stride).flat_map(move |px| {
                    (0..height).flat_map(move |y| (0..width).map(move |x| (c, py, px, y, x)))
                })
            })
        }) {
            let at = c * plane_stride + (py * stride + px) * positions + y * width + x;
            data[11 + at] = pixel(c, stride * y + py, stride * x + px);
        }
        let k = planes * taps;
        let w: Vec<f32> = (0..channels * k)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let reads = Reads::phases(height, width, kernel, padding, stride);
        for vectors in simd::usable() {
            let packed = Packed::new(vectors, &w, channels, k);
            let product = Product {
                packed: &packed,
                data: &data[11..],
                plane_stride,
                reads: &reads,
                epilogue: Epilogue::default(),
            };
            let mut out = vec![f32::NAN; channels * positions];
            run(&product, &mut out, positions, 2);
            for (o, p) in (0..channels).flat_map(|o| (0..positions).map(move |p| (o, p))) {
                let (y, x) = (p / width, p % width);
                let mut want = 0.0f64;
                for (c, t) in (0..planes).flat_map(|c| (0..taps).map(move |t| (c, t))) {
                    let iy = (stride * y + t / kernel) as isize - padding as isize;
                    let ix = (stride * x + t % kernel) as isize - padding as isize;
                    if (0..in_height as isize).contains(&iy) && (0..in_width as isize).contains(&ix)
                    {
                        let v = pixel(c, iy as usize, ix as usize);
                        want += w[o * k + c * taps + t] as f64 * v as f64;
                    }
                }
                let got = out[o * positions + p] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                    "{vectors:?} {planes}×{height}×{width}, {kernel}×{kernel} stride {stride} \
                 ({o}, {p}): {got} vs {want}"
                );
            }
        }
    }
}

/// Times the kernel on ResNet-20's shapes (one thread): the forward pass and the input
/// gradient from a column matrix, and convolutions that read the image in place (planes of
/// `side × side`, 3×3 taps):
/// `cargo test --release --lib narrow_shapes -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark"]
fn narrow_shapes() {
    use std::time::Instant;
    if !available() {
        return;
    }
    println!("| product | reads | channels × width × k | GFLOP/s |");
    println!("|---|---|---|---|");
    for (what, channels, width, k, side) in [
        // One tile of channels (in AVX2) reading rows 64 bytes apart, then 4 KiB apart.
        ("forward", 6, 64, 256, None),
        ("forward", 6, 1024, 256, None),
        ("forward", 16, 1024, 144, None),
        ("forward", 32, 256, 288, None),
        ("forward", 64, 256, 576, None),
        ("input gradient", 144, 1024, 16, None),
        ("input gradient", 288, 256, 32, None),
        ("input gradient", 576, 256, 64, None),
        ("either", 16, 1024, 144, Some(32)),
        ("either", 32, 256, 288, Some(16)),
        ("either", 64, 64, 576, Some(8)),
    ] {
        let packed = pack_weights(&vec![0.5f32; channels * k], channels, k);
        let (reads, plane_stride) = match side {
            Some(side) => (Reads::phases(side, side, 3, 1, 1), side * side),
            None => (Arc::new(Reads::columns(width)), width),
        };
        let planes = vec![0.25f32; k / reads.shifts.len() * plane_stride];
        let mut out = vec![0.0f32; channels * width];
        let product = Product {
            packed: &packed,
            data: &planes,
            plane_stride,
            reads: &reads,
            epilogue: Epilogue::default(),
        };
        let flops = 2.0 * (channels * width * k) as f64;
        let reps = (2e9 / flops) as usize + 1;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..reps {
                run(&product, &mut out, width, 1);
            }
            best = best.min(started.elapsed().as_secs_f64() / reps as f64);
        }
        let reads = if side.is_some() { "image" } else { "columns" };
        println!(
            "| {what} | {reads} | {channels} × {width} × {k} | {:.0} |",
            flops / best / 1e9
        );
    }
}

/// The tasks cover every column block and tile exactly once, whatever the threads: a task a
/// thread on wide products, the tiles shared out where the blocks are few.
#[test]
fn tasks_cover_every_block_and_tile_once() {
    for (width, tiles, threads) in [
        (1024, 4, 2),
        (16, 32, 2),
        (64, 32, 2),
        (49, 3, 2),
        (16, 1, 8),
        (5, 7, 1),
        (300, 2, 3),
    ] {
        let tasks = tasks(width, tiles, threads);
        let mut seen = vec![0u32; width.div_ceil(16) * tiles];
        for (columns, t) in &tasks {
            assert!(columns.start.is_multiple_of(16) && columns.end <= width);
            for block in columns.start / 16..columns.end.div_ceil(16) {
                for tile in t.clone() {
                    seen[block * tiles + tile] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "{width} {tiles} {threads}: {tasks:?}"
        );
        let blocks = width.div_ceil(16);
        if threads > 1 && blocks < 4 * threads {
            assert!(tasks.len() >= threads.min(blocks * tiles), "{tasks:?}");
        }
    }
}
