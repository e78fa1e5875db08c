//! Our convolution (forward, input gradient, weight gradient) against candle's op on random
//! shapes, and against float64 loops.

use candle_core::{DType, Device, Tensor, Var};
use prunelab::kernels::{conv2d, conv2d_bias_then, with_weights_packed_once, Then};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
}

fn random_case(rng: &mut ChaCha8Rng) -> Case {
    let kernel: usize = [1, 3, 5][rng.random_range(0..3)];
    let padding = rng.random_range(0..=kernel / 2 + 1);
    let groups = [1, 1, 2, 3][rng.random_range(0..4)];
    let depthwise = rng.random_bool(0.2);
    let in_channels = if depthwise {
        rng.random_range(1..6)
    } else {
        groups * rng.random_range(1..5)
    };
    let (groups, out_channels) = if depthwise {
        (in_channels, in_channels * rng.random_range(1..3))
    } else {
        (groups, groups * rng.random_range(1..5))
    };
    let min_side = kernel.saturating_sub(2 * padding).max(1);
    Case {
        batch: rng.random_range(1..6),
        in_channels,
        out_channels,
        height: rng.random_range(min_side..12),
        width: rng.random_range(min_side..12),
        kernel,
        stride: rng.random_range(1..4),
        padding,
        groups,
    }
}

fn random_tensor(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// (output, dx, dw) of Σ r ⊙ conv(x, w) for the given implementation.
fn run(case: Case, x: &Tensor, w: &Tensor, r: &Tensor, ours: bool) -> [Tensor; 3] {
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let out = if ours {
        conv2d(
            xv.as_tensor(),
            wv.as_tensor(),
            case.stride,
            case.padding,
            case.groups,
        )
        .unwrap()
    } else {
        xv.as_tensor()
            .conv2d(wv.as_tensor(), case.padding, case.stride, 1, case.groups)
            .unwrap()
    };
    let grads = out.mul(r).unwrap().sum_all().unwrap().backward().unwrap();
    [
        out,
        grads.get(xv.as_tensor()).unwrap().clone(),
        grads.get(wv.as_tensor()).unwrap().clone(),
    ]
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(what: &str, case: Case, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what} {case:?}");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{what} {case:?} at {i}: {g} vs {w}"
        );
    }
}

#[test]
fn forward_and_gradients_equal_candles_op_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..150 {
        // Square inputs only: candle 0.11's conv backward takes the output padding of the
        // transposed convolution from the height alone, so with stride > 1 its input gradient
        // has the wrong width for some non-square inputs. The f64 test covers those shapes.
        let c = random_case(&mut rng);
        let c = Case {
            width: c.height,
            ..c
        };
        let x = random_tensor(&mut rng, &[c.batch, c.in_channels, c.height, c.width]);
        let w = random_tensor(
            &mut rng,
            &[c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
        );
        let ho = (c.height + 2 * c.padding - c.kernel) / c.stride + 1;
        let wo = (c.width + 2 * c.padding - c.kernel) / c.stride + 1;
        let r = random_tensor(&mut rng, &[c.batch, c.out_channels, ho, wo]);
        let ours = run(c, &x, &w, &r, true);
        let reference = run(c, &x, &w, &r, false);
        for (what, (a, b)) in ["output", "input grad", "weight grad"]
            .iter()
            .zip(ours.iter().zip(&reference))
        {
            assert_eq!(a.dims(), b.dims(), "{what} {c:?}");
            assert_close(what, c, &flat(a), &flat(b));
        }
    }
}

/// Float64 loops: out, dx and dw of Σ r ⊙ conv(x, w).
fn reference_f64(c: Case, x: &[f64], w: &[f64], r: &[f64]) -> [Vec<f64>; 3] {
    let ho = (c.height + 2 * c.padding - c.kernel) / c.stride + 1;
    let wo = (c.width + 2 * c.padding - c.kernel) / c.stride + 1;
    let (cg, og, k) = (
        c.in_channels / c.groups,
        c.out_channels / c.groups,
        c.kernel,
    );
    let mut out = vec![0.0; c.batch * c.out_channels * ho * wo];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..c.batch {
        for o in 0..c.out_channels {
            let g = o / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let oi = ((n * c.out_channels + o) * ho + oy) * wo + ox;
                    for ci in 0..cg {
                        let ch = g * cg + ci;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * c.stride + ky) as isize - c.padding as isize;
                                let ix = (ox * c.stride + kx) as isize - c.padding as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= c.height as isize
                                    || ix >= c.width as isize
                                {
                                    continue;
                                }
                                let xi = ((n * c.in_channels + ch) * c.height + iy as usize)
                                    * c.width
                                    + ix as usize;
                                let wi = ((o * cg + ci) * k + ky) * k + kx;
                                out[oi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * r[oi];
                                dw[wi] += x[xi] * r[oi];
                            }
                        }
                    }
                }
            }
        }
    }
    [out, dx, dw]
}

#[test]
fn forward_and_gradients_equal_float64_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for _ in 0..60 {
        let c = random_case(&mut rng);
        let x = random_tensor(&mut rng, &[c.batch, c.in_channels, c.height, c.width]);
        let w = random_tensor(
            &mut rng,
            &[c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
        );
        let ho = (c.height + 2 * c.padding - c.kernel) / c.stride + 1;
        let wo = (c.width + 2 * c.padding - c.kernel) / c.stride + 1;
        let r = random_tensor(&mut rng, &[c.batch, c.out_channels, ho, wo]);
        let ours = run(c, &x, &w, &r, true);
        let want = reference_f64(c, &flat(&x), &flat(&w), &flat(&r));
        for (what, (a, b)) in ["output", "input grad", "weight grad"]
            .iter()
            .zip(ours.iter().zip(&want))
        {
            assert_close(what, c, &flat(a), b);
        }
    }
}

#[test]
fn cifar_shapes_agree_with_candle() {
    // The shapes the models use: 3×3 stride 1 and 2, 1×1 projections, a batch larger than the
    // thread count (images in parallel) and a batch of one (threads inside the multiply);
    // groups and a 5×5 kernel that keep the size, which the kernel reads in place; strides 2
    // and 3 that divide the input, whose phases it reads in place (and, with 16 input
    // channels per group, whose input gradient it computes phase by phase).
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (batch, cin, cout, size, k, stride, pad, groups) in [
        (16, 16, 16, 32, 3, 1, 1, 1),
        (16, 16, 32, 32, 3, 2, 1, 1),
        (16, 64, 256, 8, 1, 1, 0, 1),
        (16, 128, 256, 16, 1, 2, 0, 1),
        (1, 32, 32, 16, 3, 1, 1, 1),
        (5, 32, 48, 8, 3, 1, 1, 2),
        (4, 12, 16, 9, 5, 1, 2, 1),
        (4, 8, 16, 16, 5, 2, 2, 1),
        (8, 8, 16, 24, 3, 3, 1, 1),
        (8, 16, 16, 24, 3, 3, 1, 1),
        (4, 32, 32, 16, 5, 2, 2, 2),
    ] {
        let c = Case {
            batch,
            in_channels: cin,
            out_channels: cout,
            height: size,
            width: size,
            kernel: k,
            stride,
            padding: pad,
            groups,
        };
        let x = random_tensor(&mut rng, &[batch, cin, size, size]);
        let w = random_tensor(&mut rng, &[cout, cin / groups, k, k]);
        let o = (size + 2 * pad - k) / stride + 1;
        let r = random_tensor(&mut rng, &[batch, cout, o, o]);
        let (ours, reference) = (run(c, &x, &w, &r, true), run(c, &x, &w, &r, false));
        for (what, (a, b)) in ["output", "input grad", "weight grad"]
            .iter()
            .zip(ours.iter().zip(&reference))
        {
            assert_close(what, c, &flat(a), &flat(b));
        }
    }
}

/// Inference's fused convolution, `conv(x, w) + b` then nothing, a ReLU, or a residual add and
/// a ReLU, against candle's op followed by candle's adds, on the CIFAR shapes (the kernel
/// reading the image in place, and from a column matrix) and random ones (gemm's path too).
#[test]
fn fused_bias_residual_and_relu_equal_candles_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let cifar = [
        (16, 16, 16, 32, 3, 1, 1, 1),
        (16, 16, 32, 32, 3, 2, 1, 1),
        (16, 64, 256, 8, 1, 1, 0, 1),
        (1, 32, 32, 16, 3, 1, 1, 1),
        (5, 32, 48, 8, 3, 1, 1, 2),
    ]
    .map(
        |(batch, in_channels, out_channels, side, kernel, stride, padding, groups)| Case {
            batch,
            in_channels,
            out_channels,
            height: side,
            width: side,
            kernel,
            stride,
            padding,
            groups,
        },
    );
    let random: Vec<Case> = (0..40).map(|_| random_case(&mut rng)).collect();
    for c in cifar.into_iter().chain(random) {
        let x = random_tensor(&mut rng, &[c.batch, c.in_channels, c.height, c.width]);
        let w = random_tensor(
            &mut rng,
            &[c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
        );
        let b = random_tensor(&mut rng, &[c.out_channels]);
        let ho = (c.height + 2 * c.padding - c.kernel) / c.stride + 1;
        let wo = (c.width + 2 * c.padding - c.kernel) / c.stride + 1;
        let residual = random_tensor(&mut rng, &[c.batch, c.out_channels, ho, wo]);
        let y = x
            .conv2d(&w, c.padding, c.stride, 1, c.groups)
            .unwrap()
            .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
            .unwrap();
        for then in [Then::Nothing, Then::Relu, Then::AddRelu(&residual)] {
            let ours = conv2d_bias_then(&x, &w, &b, c.stride, c.padding, c.groups, then).unwrap();
            let want = then.apply(y.clone()).unwrap();
            assert_eq!(ours.dims(), want.dims(), "{then:?} {c:?}");
            assert_close(&format!("{then:?}"), c, &flat(&ours), &flat(&want));
        }
    }
    // A residual of another shape is refused, not read out of bounds.
    let x = random_tensor(&mut rng, &[2, 16, 8, 8]);
    let w = random_tensor(&mut rng, &[16, 16, 3, 3]);
    let b = random_tensor(&mut rng, &[16]);
    let wrong = random_tensor(&mut rng, &[2, 16, 8, 7]);
    let err = conv2d_bias_then(&x, &w, &b, 1, 1, 1, Then::AddRelu(&wrong)).unwrap_err();
    assert!(err.to_string().contains("residual"), "{err}");
}

/// Every channel count a pruned network can have, from 1 to 80, as output channels (the
/// forward kernel's tiles) and as input channels (the input gradient's), against float64
/// loops: 3×3 and 1×1, stride 1 and 2, plain, grouped and depthwise, on maps large enough for
/// the tile kernel; and inference's fused form at batch 1 on a 4×4 map, where the kernel runs
/// with its weights packed once.
#[test]
fn every_width_from_1_to_80_equals_float64_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for width in 1..=80 {
        let other = rng.random_range(1..=80);
        for (in_channels, out_channels) in [(other, width), (width, other)] {
            let kernel = [3, 1][width % 2];
            let groups = match width % 5 {
                0 => in_channels,
                3 if in_channels % 2 == 0 && out_channels % 2 == 0 => 2,
                _ => 1,
            };
            let out_channels = if groups == in_channels {
                in_channels
            } else {
                out_channels
            };
            let c = Case {
                batch: 4,
                in_channels,
                out_channels,
                height: 8,
                width: 8,
                kernel,
                stride: 1 + width % 3 / 2,
                padding: kernel / 2,
                groups,
            };
            let x = random_tensor(&mut rng, &[c.batch, c.in_channels, c.height, c.width]);
            let w = random_tensor(
                &mut rng,
                &[out_channels, in_channels / groups, kernel, kernel],
            );
            let ho = (c.height + 2 * c.padding - kernel) / c.stride + 1;
            let r = random_tensor(&mut rng, &[c.batch, out_channels, ho, ho]);
            let ours = run(c, &x, &w, &r, true);
            let want = reference_f64(c, &flat(&x), &flat(&w), &flat(&r));
            for (what, (a, b)) in ["output", "input grad", "weight grad"]
                .iter()
                .zip(ours.iter().zip(&want))
            {
                assert_close(what, c, &flat(a), b);
            }

            let one = Case {
                batch: 1,
                height: 4,
                width: 4,
                ..c
            };
            let x = random_tensor(&mut rng, &[1, in_channels, 4, 4]);
            let b = random_tensor(&mut rng, &[out_channels]);
            let fused = with_weights_packed_once(|| {
                // Twice: the second call reads the packing the first one kept.
                (0..2)
                    .map(|_| {
                        conv2d_bias_then(&x, &w, &b, one.stride, one.padding, groups, Then::Nothing)
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            });
            let o = (4 + 2 * one.padding - kernel) / one.stride + 1;
            let zero = vec![0.0; out_channels * o * o];
            let [mut want, ..] = reference_f64(one, &flat(&x), &flat(&w), &zero);
            let bias = flat(&b);
            for (i, v) in want.iter_mut().enumerate() {
                *v += bias[i / (o * o)];
            }
            for y in &fused {
                assert_close("fused, packed once", one, &flat(y), &want);
            }
        }
    }
}
