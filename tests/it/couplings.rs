//! Data Flow Couplings found from the graph, against counts worked out for known architectures.

use prunelab::graph::{couplings, Coupling, Graph, GraphBuilder, Op};
use prunelab::models::build;

fn summary(arch: &str) -> (usize, usize, usize) {
    let found = couplings(&build(arch, 3, 32, 10).unwrap()).unwrap();
    (
        found.len(),
        found.iter().filter(|c| c.is_coupled()).count(),
        found.iter().map(|c| c.channels).sum(),
    )
}

fn names(graph: &Graph, nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|&i| graph.nodes[i].name.clone()).collect()
}

#[test]
fn kuangliu_bottleneck_resnets_have_the_known_couplings() {
    // Two DFCs inside every bottleneck, plus the stem and one stream per stage (coupled).
    assert_eq!(summary("resnet50"), (37, 5, 11_456));
    assert_eq!(summary("resnet101"), (71, 5, 20_160));
}

#[test]
fn basic_block_resnets_put_the_stem_into_the_first_stream() {
    // ResNet-18: one DFC inside each of 8 blocks; the stem joins layer1's stream (no projection
    // there); layer2–4 streams. 2·(64+128+256+512) + (64+128+256+512) channels.
    assert_eq!(summary("resnet18"), (12, 4, 2880));
    let graph = build("resnet18", 3, 32, 10).unwrap();
    let found = couplings(&graph).unwrap();
    let stem = found
        .iter()
        .find(|c| names(&graph, &c.producers).contains(&"conv1".to_string()))
        .unwrap();
    assert_eq!(
        names(&graph, &stem.producers),
        ["conv1", "layer1.0.conv2", "layer1.1.conv2"]
    );
    assert_eq!(
        names(&graph, &stem.consumers),
        [
            "layer1.0.conv1",
            "layer1.1.conv1",
            "layer2.0.conv1",
            "layer2.0.shortcut.0"
        ]
    );
    // Its channel-wise members: the BNs, ReLUs and adds of the stream.
    let members = names(&graph, &stem.members);
    for m in [
        "bn1",
        "relu",
        "layer1.0.bn2",
        "layer1.0.add",
        "layer1.1.relu",
    ] {
        assert!(
            members.contains(&m.to_string()),
            "{m} missing from {members:?}"
        );
    }
    // He et al. ResNet-20 likewise: 9 inner DFCs + 3 streams.
    assert_eq!(
        summary("resnet20"),
        (12, 3, 3 * (16 + 32 + 64) + 16 + 32 + 64)
    );
}

#[test]
fn the_last_stream_feeds_the_classifier_and_outputs_are_not_prunable() {
    let graph = build("resnet50", 3, 32, 10).unwrap();
    let found = couplings(&graph).unwrap();
    let last = found.iter().find(|c| c.channels == 2048).unwrap();
    assert!(names(&graph, &last.consumers).contains(&"linear".to_string()));
    assert!(found
        .iter()
        .all(|c| !names(&graph, &c.producers).contains(&"linear".to_string())));
}

#[test]
fn vgg_couplings_are_all_single() {
    let graph = build("vgg16", 3, 32, 10).unwrap();
    let found = couplings(&graph).unwrap();
    assert_eq!(found.len(), 13);
    assert!(found.iter().all(|c: &Coupling| !c.is_coupled()));
    assert_eq!(
        found.iter().map(|c| c.channels).sum::<usize>(),
        2 * 64 + 2 * 128 + 3 * 256 + 6 * 512
    );
}

#[test]
fn mobilenet_v2_depthwise_convs_sit_inside_their_dfcs() {
    let graph = build("mobilenetv2", 3, 32, 10).unwrap();
    let found = couplings(&graph).unwrap();
    // One DFC inside each of the 17 blocks, the stem, one stream per stage (7), and conv2 → linear.
    assert_eq!(found.len(), 26);
    assert_eq!(found.iter().filter(|c| c.is_coupled()).count(), 8);
    let block = found
        .iter()
        .find(|c| names(&graph, &c.producers) == ["layers.3.conv1"])
        .unwrap();
    assert_eq!(names(&graph, &block.consumers), ["layers.3.conv3"]);
    assert_eq!(
        names(&graph, &block.members),
        [
            "layers.3.bn1",
            "layers.3.relu1",
            "layers.3.conv2",
            "layers.3.bn2",
            "layers.3.relu2"
        ]
    );
    assert_eq!(block.channels, 6 * 24);
    // Stage 3 (32 channels) starts at stride 2 without a residual, then two identity blocks.
    let stream = found
        .iter()
        .find(|c| names(&graph, &c.producers).contains(&"layers.3.conv3".to_string()))
        .unwrap();
    assert_eq!(
        names(&graph, &stream.producers),
        ["layers.3.conv3", "layers.4.conv3", "layers.5.conv3"]
    );
    assert_eq!(
        names(&graph, &stream.consumers),
        ["layers.4.conv1", "layers.5.conv1", "layers.6.conv1"]
    );
}

#[test]
fn a_two_digit_block_index_is_ordered_by_the_graph() {
    // The stream of stage 3 of ResNet-101 lists layer3.10 after layer3.9, as the graph does.
    let graph = build("resnet101", 3, 32, 10).unwrap();
    let found = couplings(&graph).unwrap();
    let stream = found.iter().find(|c| c.channels == 1024).unwrap();
    let producers = names(&graph, &stream.producers);
    let at = |n: &str| producers.iter().position(|p| p == n).unwrap();
    assert!(
        at("layer3.2.conv3") < at("layer3.9.conv3") && at("layer3.9.conv3") < at("layer3.10.conv3")
    );
    assert_eq!(
        producers.len(),
        23 + 1,
        "23 blocks + the projection shortcut"
    );
}

#[test]
fn unknown_channel_behaviour_is_an_error() {
    // A grouped (not depthwise) convolution.
    let mut g = GraphBuilder::new(4, 8, 8);
    let op = Op::Conv2d {
        in_channels: 4,
        out_channels: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 2,
        depthwise: false,
        bias: false,
        relu: false,
    };
    let x = g.push("grouped", op, vec![0]).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flatten", x).unwrap();
    g.linear("fc", x, 2).unwrap();
    let err = couplings(&g.finish()).unwrap_err().to_string();
    assert!(
        err.contains("grouped") && err.contains("groups = 2"),
        "{err}"
    );
}

#[test]
fn the_fused_inference_form_has_the_same_couplings() {
    // Folding BN into convs and ReLUs into their epilogue removes channel-wise members only.
    let graph = build("resnet20", 3, 32, 10).unwrap();
    let params = prunelab::graph::Params::init(&graph, 0, &candle_core::Device::Cpu).unwrap();
    let (fused, _) = prunelab::graph::fuse_for_inference(&graph, &params).unwrap();
    let shape = |g: &Graph| -> Vec<(Vec<String>, Vec<String>, usize)> {
        couplings(g)
            .unwrap()
            .iter()
            .map(|c| (names(g, &c.producers), names(g, &c.consumers), c.channels))
            .collect()
    };
    assert_eq!(shape(&fused), shape(&graph));
}

/// conv a → BN → ReLU → `middle` (one channel in, one out) → BN → ReLU → conv c → pool → fc.
fn one_channel_chain(depthwise: bool) -> Graph {
    let mut g = GraphBuilder::new(1, 8, 8);
    let x = g.conv("a", g.input(), 1, 3, 1, 1).unwrap();
    let x = g.batch_norm("bn_a", x).unwrap();
    let x = g.relu("relu_a", x).unwrap();
    let x = if depthwise {
        g.depthwise_conv("b", x, 3, 1, 1).unwrap()
    } else {
        g.conv("b", x, 1, 3, 1, 1).unwrap()
    };
    let x = g.batch_norm("bn_b", x).unwrap();
    let x = g.relu("relu_b", x).unwrap();
    let x = g.conv("c", x, 4, 3, 1, 1).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flat", x).unwrap();
    g.linear("fc", x, 2).unwrap();
    g.finish()
}

#[test]
fn an_ordinary_one_in_one_out_conv_mixes_channels_and_a_one_channel_depthwise_does_not() {
    // Regression: whether a conv is depthwise was guessed from its shapes, so an ordinary
    // 1→1 conv (a pruned Fashion-MNIST stem, or two adjacent DFCs pruned to one channel) was
    // taken for a channel-wise member and its two DFCs merged.
    let ordinary = one_channel_chain(false);
    let found = couplings(&ordinary).unwrap();
    let producers: Vec<Vec<String>> = found
        .iter()
        .map(|c| names(&ordinary, &c.producers))
        .collect();
    assert_eq!(producers, [vec!["a"], vec!["b"], vec!["c"]]);
    assert_eq!(names(&ordinary, &found[0].consumers), ["b"]);

    let depthwise = one_channel_chain(true);
    let found = couplings(&depthwise).unwrap();
    let producers: Vec<Vec<String>> = found
        .iter()
        .map(|c| names(&depthwise, &c.producers))
        .collect();
    assert_eq!(producers, [vec!["a"], vec!["c"]]);
    assert_eq!(names(&depthwise, &found[0].consumers), ["c"]);
    assert!(names(&depthwise, &found[0].members).contains(&"b".to_string()));
}

#[test]
fn a_depthwise_flag_on_a_conv_that_is_not_depthwise_is_an_invalid_graph() {
    let mut g = GraphBuilder::new(4, 8, 8);
    let op = Op::Conv2d {
        in_channels: 4,
        out_channels: 8,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 4,
        depthwise: true,
        bias: false,
        relu: false,
    };
    let err = g.push("dw", op, vec![0]).unwrap_err().to_string();
    assert!(
        err.contains("depthwise conv needs groups = in = out"),
        "{err}"
    );
}
