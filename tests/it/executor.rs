//! The executor's range runs and taps: a suffix run from the values live at a cut equals the
//! whole forward pass at every cut; gate gradients equal float64 finite differences; a
//! per-example channel mask prunes each example separately.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use prunelab::exec::{forward, run, ChannelMask, Gates, Live, Mode, NoTap};
use prunelab::graph::{
    couplings, prune, specs, ChannelPlan, Graph, GraphBuilder, GraphError, Params,
};
use prunelab::models::build;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn eval_output(
    graph: &Graph,
    params: &Params,
    live: Live,
    from: usize,
    tap: &mut dyn prunelab::exec::Tap,
) -> Tensor {
    let done = run(
        graph,
        params,
        live,
        from..graph.nodes.len(),
        Mode::EVAL,
        tap,
    )
    .unwrap();
    done.live.into_output(graph).unwrap()
}

fn check_every_cut(arch: &str, size: usize) {
    let graph = build(arch, 3, size, 10).unwrap();
    let params = Params::init(&graph, 1, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 3, size, size), &Device::Cpu).unwrap();
    let whole: Vec<f32> = forward(&graph, &params, &x, Mode::EVAL)
        .unwrap()
        .output
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // The prefix advances one node at a time; from each cut, the suffix runs to the end.
    let mut live = Live::input(x);
    for cut in 1..=graph.nodes.len() {
        live = run(&graph, &params, live, cut - 1..cut, Mode::EVAL, &mut NoTap)
            .unwrap()
            .live;
        let names: Vec<usize> = live.0.keys().copied().collect();
        assert_eq!(
            names,
            graph.live_at(cut),
            "{arch}: values live at cut {cut}"
        );
        let out = eval_output(&graph, &params, live.clone(), cut, &mut NoTap);
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(out, whole, "{arch}: the suffix from cut {cut} differs");
    }
}

#[test]
fn a_suffix_run_from_any_cut_of_a_resnet_equals_the_whole_forward_pass() {
    check_every_cut("resnet20", 16);
    // In a ResNet a block's cut keeps the block input and the residual stream alive.
    let graph = build("resnet20", 3, 16, 10).unwrap();
    let add = graph
        .nodes
        .iter()
        .position(|n| n.name == "layer1.0.add")
        .unwrap();
    assert_eq!(graph.live_at(add).len(), 2);
}

#[test]
fn a_suffix_run_from_any_cut_of_a_mobilenetv2_equals_the_whole_forward_pass() {
    check_every_cut("mobilenetv2", 16);
}

/// conv(2→3, 3×3) → BN → ReLU → conv(3→3, 1×1) → BN → ReLU → pool → linear, in float64 with
/// random weights (built directly: `Params::from_tensors` stores float32).
fn tiny_f64() -> (Graph, Params, Tensor) {
    let mut g = GraphBuilder::new(2, 5, 5);
    let x = g.conv("a", g.input(), 3, 3, 1, 1).unwrap();
    let x = g.batch_norm("bn_a", x).unwrap();
    let x = g.relu("relu_a", x).unwrap();
    let x = g.conv("b", x, 3, 1, 1, 0).unwrap();
    let x = g.batch_norm("bn_b", x).unwrap();
    let x = g.relu("relu_b", x).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flat", x).unwrap();
    g.linear("fc", x, 4).unwrap();
    let graph = g.finish();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut params = Params {
        trainable: BTreeMap::new(),
        buffers: BTreeMap::new(),
    };
    for (name, spec) in specs(&graph) {
        let n: usize = spec.shape.iter().product();
        let positive = name.ends_with("running_var");
        let v: Vec<f64> = (0..n)
            .map(|_| {
                if positive {
                    rng.random_range(0.5..1.5)
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect();
        let t = Tensor::from_vec(v, spec.shape.as_slice(), &Device::Cpu).unwrap();
        match spec.role {
            prunelab::graph::ParamRole::Trainable => {
                params.trainable.insert(name, Var::from_tensor(&t).unwrap());
            }
            prunelab::graph::ParamRole::Buffer => {
                params.buffers.insert(name, t);
            }
        }
    }
    let x = Tensor::randn(0f64, 1.0, (2, 2, 5, 5), &Device::Cpu).unwrap();
    (graph, params, x)
}

/// A smooth loss of the logits: Σ (logits · fixed weights)².
fn loss(logits: &Tensor) -> Tensor {
    let w = Tensor::arange(1f64, 9.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 4))
        .unwrap();
    (logits * w).unwrap().sqr().unwrap().sum_all().unwrap()
}

#[test]
fn gate_gradients_equal_float64_finite_differences() {
    let (graph, params, x) = tiny_f64();
    let node = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
    let gated = [node("bn_a"), node("relu_b")];
    let mut gates = Gates::new(gated);
    let logits = eval_output(&graph, &params, Live::input(x.clone()), 0, &mut gates);
    let grads = gates.gradients(&loss(&logits).backward().unwrap()).unwrap();

    let loss_with_gate = |at: usize, example: usize, channel: usize, value: f64| -> f64 {
        let mut tap = |i: usize, t: Tensor| -> Result<Tensor, GraphError> {
            if i != at {
                return Ok(t);
            }
            let mut g = vec![1f64; 2 * 3];
            g[example * 3 + channel] = value;
            let g = Tensor::from_vec(g, (2, 3, 1, 1), &Device::Cpu)?;
            Ok(t.broadcast_mul(&g)?)
        };
        let logits = eval_output(&graph, &params, Live::input(x.clone()), 0, &mut tap);
        loss(&logits).to_scalar::<f64>().unwrap()
    };
    let h = 1e-6;
    for &at in &gated {
        let analytic: Vec<Vec<f64>> = grads[&at].to_dtype(DType::F64).unwrap().to_vec2().unwrap();
        for example in 0..2 {
            for channel in 0..3 {
                let numeric = (loss_with_gate(at, example, channel, 1.0 + h)
                    - loss_with_gate(at, example, channel, 1.0 - h))
                    / (2.0 * h);
                let got = analytic[example][channel];
                assert!(
                    (got - numeric).abs() <= 1e-6 * numeric.abs().max(1.0),
                    "{} [{example}, {channel}]: gate gradient {got}, finite difference {numeric}",
                    graph.nodes[at].name
                );
            }
        }
    }
}

#[test]
fn a_per_example_mask_prunes_each_example_separately() {
    let graph = build("resnet8", 3, 16, 10).unwrap();
    let params = Params::init(&graph, 2, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
    let found = couplings(&graph).unwrap();
    let stream = &found[0];
    let removed = [1usize, 5, 9];
    // Example 0 loses the channels, example 1 keeps them.
    let mut keep = vec![1f32; 2 * stream.channels];
    removed.iter().for_each(|&j| keep[j] = 0.0);
    let mut mask = ChannelMask::default();
    mask.add(
        stream,
        &Tensor::from_vec(keep, (2, stream.channels), &Device::Cpu).unwrap(),
    )
    .unwrap();
    let masked = eval_output(&graph, &params, Live::input(x.clone()), 0, &mut mask);

    let plan = ChannelPlan {
        remove: [(stream.name(&graph).to_string(), removed.to_vec())].into(),
        produced_by: None,
    };
    let (pruned_graph, pruned_params) = prune(&graph, &params, &plan).unwrap();
    let pruned = forward(&pruned_graph, &pruned_params, &x, Mode::EVAL)
        .unwrap()
        .output;
    let whole = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
    let row = |t: &Tensor, i: usize| -> Vec<f32> { t.get(i).unwrap().to_vec1().unwrap() };
    let close = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0))
    };
    assert!(close(&row(&masked, 0), &row(&pruned, 0)));
    assert!(close(&row(&masked, 1), &row(&whole, 1)));
    assert!(!close(&row(&pruned, 0), &row(&whole, 0)));
    // A mask of the wrong width is refused.
    assert!(mask
        .add(stream, &Tensor::ones(3, DType::F32, &Device::Cpu).unwrap())
        .is_err());
}
