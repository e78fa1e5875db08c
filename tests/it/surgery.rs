//! Channel surgery: a physically pruned graph computes what the unpruned graph computes with the
//! same channels masked to zero, on random ResNet-like graphs and random channel sets.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use proptest::prelude::*;
use prunelab::exec::{forward, run, ChannelMask, Live, Mode};
use prunelab::graph::{
    couplings, fuse_for_inference, load_model, mask, prune, save_model, ChannelPlan, Graph,
    GraphBuilder, Op, Params,
};
use prunelab::models::build;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
enum BlockKind {
    /// 3×3 → BN → ReLU → 3×3 → BN, add, ReLU.
    Basic,
    /// 1×1 → 3×3 (stride) → 1×1 to twice the width, add, ReLU.
    Bottleneck,
    /// 1×1 expansion → depthwise 3×3 (stride) → 1×1 projection, add when the stride is 1.
    InvertedResidual,
}

#[derive(Debug, Clone)]
struct Stage {
    kind: BlockKind,
    width: usize,
    blocks: usize,
    downsample: bool,
    /// A 1×1 conv + BN shortcut even where an identity would fit.
    always_project: bool,
    /// A 2×2 max pool after the stage.
    pool: bool,
}

#[derive(Debug, Clone)]
struct NetSpec {
    in_channels: usize,
    size: usize,
    stem: usize,
    stages: Vec<Stage>,
    /// An extra linear + ReLU before the classifier (a DFC between two linear layers).
    hidden: Option<usize>,
    seed: u64,
}

fn stage() -> impl Strategy<Value = Stage> {
    (
        prop_oneof![
            Just(BlockKind::Basic),
            Just(BlockKind::Bottleneck),
            Just(BlockKind::InvertedResidual)
        ],
        1usize..7,
        1usize..4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(kind, width, blocks, downsample, always_project, pool)| Stage {
                kind,
                width,
                blocks,
                downsample,
                always_project,
                pool,
            },
        )
}

fn net_spec() -> impl Strategy<Value = NetSpec> {
    (
        1usize..4,
        4usize..11,
        1usize..7,
        prop::collection::vec(stage(), 1..4),
        prop::option::of(1usize..6),
        any::<u64>(),
    )
        .prop_map(|(in_channels, size, stem, stages, hidden, seed)| NetSpec {
            in_channels,
            size,
            stem,
            stages,
            hidden,
            seed,
        })
}

fn build_net(spec: &NetSpec) -> Graph {
    let mut g = GraphBuilder::new(spec.in_channels, spec.size, spec.size);
    let x = g.conv("stem", g.input(), spec.stem, 3, 1, 1).unwrap();
    let x = g.batch_norm("stem_bn", x).unwrap();
    let mut x = g.relu("stem_relu", x).unwrap();
    let mut size = spec.size;
    for (s, stage) in spec.stages.iter().enumerate() {
        for b in 0..stage.blocks {
            let stride = if b == 0 && stage.downsample && size >= 4 {
                2
            } else {
                1
            };
            size = (size - 1) / stride + 1;
            x = block(&mut g, &format!("s{s}.b{b}"), x, stage, stride);
        }
        if stage.pool && size >= 2 {
            x = g.max_pool(&format!("s{s}.pool"), x, 2, 2).unwrap();
            size /= 2;
        }
    }
    let x = g.global_avg_pool("gap", x).unwrap();
    let mut x = g.flatten("flatten", x).unwrap();
    if let Some(hidden) = spec.hidden {
        x = g.linear("hidden", x, hidden).unwrap();
        x = g.relu("hidden_relu", x).unwrap();
    }
    g.linear("fc", x, 3).unwrap();
    g.finish()
}

fn block(g: &mut GraphBuilder, p: &str, x: usize, stage: &Stage, stride: usize) -> usize {
    let n = |part: &str| format!("{p}.{part}");
    let cin = g.channels(x);
    let w = stage.width;
    let body = match stage.kind {
        BlockKind::Basic => {
            let y = g.conv(&n("conv1"), x, w, 3, stride, 1).unwrap();
            let y = g.batch_norm(&n("bn1"), y).unwrap();
            let y = g.relu(&n("relu1"), y).unwrap();
            let y = g.conv(&n("conv2"), y, w, 3, 1, 1).unwrap();
            g.batch_norm(&n("bn2"), y).unwrap()
        }
        BlockKind::Bottleneck => {
            let y = g.conv(&n("conv1"), x, w, 1, 1, 0).unwrap();
            let y = g.batch_norm(&n("bn1"), y).unwrap();
            let y = g.relu(&n("relu1"), y).unwrap();
            let y = g.conv(&n("conv2"), y, w, 3, stride, 1).unwrap();
            let y = g.batch_norm(&n("bn2"), y).unwrap();
            let y = g.relu(&n("relu2"), y).unwrap();
            let y = g.conv(&n("conv3"), y, 2 * w, 1, 1, 0).unwrap();
            g.batch_norm(&n("bn3"), y).unwrap()
        }
        BlockKind::InvertedResidual => {
            let y = g.conv(&n("conv1"), x, 2 * cin, 1, 1, 0).unwrap();
            let y = g.batch_norm(&n("bn1"), y).unwrap();
            let y = g.relu(&n("relu1"), y).unwrap();
            let y = g.depthwise_conv(&n("conv2"), y, 3, stride, 1).unwrap();
            let y = g.batch_norm(&n("bn2"), y).unwrap();
            let y = g.relu(&n("relu2"), y).unwrap();
            let y = g.conv(&n("conv3"), y, w, 1, 1, 0).unwrap();
            let y = g.batch_norm(&n("bn3"), y).unwrap();
            if stride != 1 {
                return y;
            }
            y
        }
    };
    let cout = g.channels(body);
    let shortcut = if stride != 1 || cin != cout || stage.always_project {
        let s = g.conv(&n("shortcut.0"), x, cout, 1, stride, 0).unwrap();
        g.batch_norm(&n("shortcut.1"), s).unwrap()
    } else {
        x
    };
    let sum = g.add(&n("add"), body, shortcut).unwrap();
    match stage.kind {
        BlockKind::InvertedResidual => sum,
        _ => g.relu(&n("relu"), sum).unwrap(),
    }
}

/// Fresh weights, with BN statistics and affine parameters away from their identity values so
/// that a wrongly sliced vector shows.
fn random_params(graph: &Graph, rng: &mut ChaCha8Rng) -> Params {
    let init = Params::init(graph, rng.random(), &Device::Cpu).unwrap();
    let tensors: BTreeMap<String, Tensor> = init
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            if t.rank() != 1 {
                return (name, t);
            }
            let (low, high) = if name.ends_with("running_var") || name.ends_with("bn1.weight") {
                (0.5f32, 1.5f32)
            } else {
                (-0.5, 0.5)
            };
            let values: Vec<f32> = (0..t.elem_count())
                .map(|_| rng.random_range(low..high))
                .collect();
            (name, Tensor::new(values, &Device::Cpu).unwrap())
        })
        .collect();
    Params::from_tensors(graph, tensors, &Device::Cpu).unwrap()
}

/// Removes a random subset (never all) of every DFC's channels, and from some DFCs none.
fn random_plan(graph: &Graph, rng: &mut ChaCha8Rng) -> ChannelPlan {
    let mut plan = ChannelPlan::default();
    for c in couplings(graph).unwrap() {
        let count = rng.random_range(0..c.channels);
        let channels = sample(rng, c.channels, count).into_vec();
        plan.remove.insert(c.name(graph).to_string(), channels);
    }
    plan
}

fn out_channels(op: &Op) -> usize {
    match *op {
        Op::Conv2d { out_channels, .. } => out_channels,
        Op::Linear { out_features, .. } => out_features,
        _ => unreachable!("producers mix channels"),
    }
}

fn eval(graph: &Graph, params: &Params, x: &Tensor) -> Vec<f32> {
    forward(graph, params, x, Mode::EVAL)
        .unwrap()
        .output
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    diff / scale.max(1e-12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pruned_graph_equals_masked_graph(spec in net_spec()) {
        let graph = build_net(&spec);
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let params = random_params(&graph, &mut rng);
        let plan = random_plan(&graph, &mut rng);
        let x = Tensor::randn(0f32, 1.0, (3, spec.in_channels, spec.size, spec.size), &Device::Cpu)
            .unwrap();

        let masked = eval(&graph, &mask(&graph, &params, &plan).unwrap(), &x);
        let (pruned_graph, pruned_params) = prune(&graph, &params, &plan).unwrap();
        let pruned = eval(&pruned_graph, &pruned_params, &x);
        prop_assert!(relative_error(&pruned, &masked) <= 1e-5,
            "pruned vs masked: {}", relative_error(&pruned, &masked));

        // The executor's mask tap, which zeroes activations instead of weights, agrees: an
        // independent reference for the physically pruned network.
        let mut tap = ChannelMask::default();
        for c in couplings(&graph).unwrap() {
            if let Some(removed) = plan.remove.get(c.name(&graph)) {
                let mut keep = vec![1f32; c.channels];
                removed.iter().for_each(|&j| keep[j] = 0.0);
                tap.add(&c, &Tensor::from_vec(keep, c.channels, &Device::Cpu).unwrap()).unwrap();
            }
        }
        let n = graph.nodes.len();
        let tapped: Vec<f32> = run(&graph, &params, Live::input(x.clone()), 0..n, Mode::EVAL, &mut tap)
            .unwrap().live.into_output(&graph).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        prop_assert!(relative_error(&pruned, &tapped) <= 1e-5,
            "pruned vs tap-masked: {}", relative_error(&pruned, &tapped));

        // The inference form of the pruned graph (what latency timing runs) agrees too.
        let (fused_graph, fused_params) = fuse_for_inference(&pruned_graph, &pruned_params).unwrap();
        let fused = eval(&fused_graph, &fused_params, &x);
        prop_assert!(relative_error(&fused, &masked) <= 1e-5,
            "fused pruned vs masked: {}", relative_error(&fused, &masked));

        // Each DFC lost exactly its removed channels, in every producer, consumer and BN.
        for c in couplings(&graph).unwrap() {
            let left = c.channels - plan.remove.get(c.name(&graph)).map_or(0, Vec::len);
            for &p in &c.producers {
                prop_assert_eq!(out_channels(&pruned_graph.nodes[p].op), left);
            }
            for &m in &c.members {
                if let Op::BatchNorm { channels, .. } = pruned_graph.nodes[m].op {
                    prop_assert_eq!(channels, left);
                }
            }
        }
    }
}

#[test]
fn a_pruned_resnet_saves_and_loads_like_any_other() {
    let graph = build("resnet8", 3, 16, 10).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let params = random_params(&graph, &mut rng);
    let plan = random_plan(&graph, &mut rng);
    let (pruned, pruned_params) = prune(&graph, &params, &plan).unwrap();
    assert!(pruned.parameter_count() < graph.parameter_count());

    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("pruned");
    save_model(&pruned, &pruned_params, &stem, Default::default()).unwrap();
    let (loaded, loaded_params) = load_model(&stem, &Device::Cpu).unwrap();
    assert_eq!(loaded, pruned);
    let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
    assert_eq!(
        eval(&loaded, &loaded_params, &x),
        eval(&pruned, &pruned_params, &x)
    );
}

#[test]
fn pruning_a_dfc_to_nothing_is_refused_and_leaves_the_model_intact() {
    let graph = build("resnet8", 3, 16, 10).unwrap();
    let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
    let stream = couplings(&graph)
        .unwrap()
        .into_iter()
        .find(|c| c.is_coupled())
        .unwrap();
    let plan = ChannelPlan {
        remove: [(
            stream.name(&graph).to_string(),
            (0..stream.channels).collect(),
        )]
        .into(),
        produced_by: None,
    };
    let err = prune(&graph, &params, &plan).unwrap_err().to_string();
    assert!(err.contains("at least one must stay"), "{err}");
    assert!(err.contains(stream.name(&graph)), "{err}");
    assert!(mask(&graph, &params, &plan).is_err());
}

#[test]
fn removing_30_percent_of_every_resnet50_dfc_cuts_macs_as_counted() {
    // Producers and consumers both lose 30%: the convs inside the network keep about 0.7² of
    // their MACs.
    use prunelab::graph::macs;
    let graph = build("resnet50", 3, 32, 10).unwrap();
    let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
    let mut plan = ChannelPlan::default();
    for c in couplings(&graph).unwrap() {
        let remove = (c.channels as f64 * 0.3).round() as usize;
        plan.remove
            .insert(c.name(&graph).to_string(), (0..remove).collect());
    }
    let (pruned, _) = prune(&graph, &params, &plan).unwrap();
    let ratio = macs(&pruned).unwrap() as f64 / macs(&graph).unwrap() as f64;
    assert!((0.48..0.52).contains(&ratio), "{ratio}");
}
