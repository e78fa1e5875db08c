//! The executor's backward pass against candle's autograd over the same forward pass: the
//! same loss, batch statistics and gradient for every parameter, on every architecture family
//! (residual adds fused or not, strided and grouped convolutions, convolutions with a bias,
//! pools, a standalone ReLU), with our convolution and with candle's.

use candle_core::{DType, Device, Tensor};
use prunelab::data::Batch;
use prunelab::graph::{Graph, GraphBuilder, Op, Params};
use prunelab::kernels::{with_conv_backend, ConvBackend};
use prunelab::train::{step_gradients, Backprop};

fn batch(graph: &Graph, n: usize, classes: u32, seed: u64) -> Batch {
    let Op::Input {
        channels,
        height,
        width,
    } = graph.nodes[0].op
    else {
        panic!("node 0 is not the input");
    };
    let device = Device::Cpu;
    // Fixed, varied values (candle's CPU generator cannot be seeded).
    let count = n * channels * height * width;
    let values: Vec<f32> = (0..count)
        .map(|i| ((i as f32 + seed as f32) * 0.7311).sin() * 1.5)
        .collect();
    let images = Tensor::from_vec(values, (n, channels, height, width), &device).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % classes).collect();
    Batch {
        images,
        labels: Tensor::new(labels, &device).unwrap(),
    }
}

/// Largest |a − b| relative to the largest |b| (at least 1e-3, so that tiny gradients are
/// compared absolutely).
fn relative_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.max(1e-3)
}

/// Both backward passes on one batch; every gradient must agree to float rounding.
fn assert_same_gradients(graph: &Graph, classes: u32) {
    let params = Params::init(graph, 1, &Device::Cpu).unwrap();
    let batch = batch(graph, 4, classes, 2);
    let ours = step_gradients(graph, &params, &batch, Backprop::Executor).unwrap();
    let reference = step_gradients(graph, &params, &batch, Backprop::Autograd).unwrap();
    assert!((ours.loss - reference.loss).abs() <= 1e-6 * reference.loss.abs());
    let stats = ours
        .forward
        .batch_stats
        .iter()
        .zip(&reference.forward.batch_stats);
    for (a, b) in stats {
        assert_eq!(a.node, b.node);
        assert_eq!(relative_diff(&a.mean, &b.mean), 0.0, "{}", a.node);
        assert_eq!(relative_diff(&a.var, &b.var), 0.0, "{}", a.node);
    }
    let (ours, reference) = (ours.grads.unwrap(), reference.grads.unwrap());
    let names = |g: &prunelab::exec::Gradients| g.0.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&reference));
    assert_eq!(
        ours.0.len(),
        params.trainable.len(),
        "every parameter gets a gradient"
    );
    for (name, want) in &reference.0 {
        let got = &ours.0[name];
        assert_eq!(got.dims(), want.dims(), "{name}");
        assert_eq!(got.dtype(), DType::F32);
        let diff = relative_diff(got, want);
        assert!(diff < 2e-5, "{name}: relative difference {diff}");
    }
}

/// A small network with what the model zoo's builders do not combine: a convolution with a
/// bias then a standalone ReLU, an average pool, an add without a ReLU after it, and a
/// BatchNorm right on the input.
fn odd_graph() -> Graph {
    let mut g = GraphBuilder::new(3, 12, 12);
    let bn = g.batch_norm("bn0", g.input()).unwrap();
    let c1 = g.conv_with_bias("conv1", bn, 8, 3, 1, 1).unwrap();
    let r1 = g.relu("relu1", c1).unwrap();
    let pool = g
        .push(
            "pool",
            Op::AvgPool {
                kernel: 2,
                stride: 2,
            },
            vec![r1],
        )
        .unwrap();
    let c2 = g.conv("conv2", pool, 8, 3, 1, 1).unwrap();
    let b2 = g.batch_norm("bn2", c2).unwrap();
    let sum = g.add("add", b2, pool).unwrap();
    let gap = g.global_avg_pool("gap", sum).unwrap();
    let flat = g.flatten("flatten", gap).unwrap();
    g.linear("fc", flat, 5).unwrap();
    g.finish()
}

fn every_family(backend: ConvBackend) {
    with_conv_backend(backend, every_family_here);
}

fn every_family_here() {
    let models = [
        ("resnet8", 3, 16),
        ("resnet18", 3, 16),
        ("resnet50", 3, 8),
        ("vgg11", 1, 32),
        ("mobilenetv2", 3, 16),
    ];
    for (arch, channels, size) in models {
        let graph = prunelab::models::build(arch, channels, size, 10).unwrap();
        assert_same_gradients(&graph, 10);
    }
    assert_same_gradients(&odd_graph(), 5);
}

#[test]
fn executor_gradients_equal_autograds_with_our_convolution() {
    every_family(ConvBackend::Ours);
}

#[test]
fn executor_gradients_equal_autograds_with_candles_convolution() {
    every_family(ConvBackend::Candle);
}
