//! The model builders against published parameter counts and PyTorch names.

use prunelab::graph::{specs, ActShape, Op};
use prunelab::models::{build, ARCHITECTURES};

fn count(arch: &str) -> usize {
    build(arch, 3, 32, 10).unwrap().parameter_count()
}

#[test]
fn kuangliu_resnets_have_the_published_parameter_counts() {
    // `sum(p.numel() for p in net.parameters())` of kuangliu pytorch-cifar, 10 classes.
    assert_eq!(count("resnet18"), 11_173_962);
    assert_eq!(count("resnet34"), 21_282_122);
    assert_eq!(count("resnet50"), 23_520_842);
    assert_eq!(count("resnet101"), 42_512_970);
    assert_eq!(count("resnet152"), 58_156_618);
}

#[test]
fn kuangliu_vggs_have_the_published_parameter_counts() {
    // Conv biases included: kuangliu keeps nn.Conv2d's default bias=True.
    assert_eq!(count("vgg16"), 14_728_266);
    assert_eq!(count("vgg19"), 20_040_522);
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    // scripts/torch_models.py's MobileNetV2 (kuangliu's), `sum(p.numel())` and MACs counted with
    // forward hooks at 3×32×32.
    assert_eq!(count("mobilenetv2"), 2_296_922);
    assert_eq!(
        build("mobilenetv2", 1, 32, 10).unwrap().parameter_count(),
        2_296_346
    );
    assert_eq!(
        build("mobilenetv2", 3, 32, 100).unwrap().parameter_count(),
        2_412_212
    );
    let macs = prunelab::graph::macs(&build("mobilenetv2", 3, 32, 10).unwrap()).unwrap();
    assert_eq!(macs, 91_154_944);
    let graph = build("mobilenetv2", 3, 32, 10).unwrap();
    let depthwise = graph
        .nodes
        .iter()
        .find(|n| n.name == "layers.16.conv2")
        .unwrap();
    assert!(matches!(
        depthwise.op,
        Op::Conv2d {
            in_channels: 960,
            groups: 960,
            stride: 1,
            ..
        }
    ));
}

#[test]
fn he_resnets_match_the_published_sizes_with_projection_shortcuts() {
    // He et al. report 0.27 M (ResNet-20), 0.46 M (32), 0.85 M (56), 1.7 M (110) with
    // parameter-free shortcuts; our 1×1 projections at the two stage changes add exactly
    // 16·32 + 32·64 conv weights and 2·(32 + 64) BN parameters.
    let projection = 16 * 32 + 32 * 64 + 2 * (32 + 64);
    for (arch, published, option_a) in [
        ("resnet20", 0.27e6, 269_722),
        ("resnet32", 0.46e6, 464_154),
        ("resnet56", 0.85e6, 853_018),
        ("resnet110", 1.7e6, 1_727_962),
    ] {
        let n = count(arch);
        assert_eq!(n, option_a + projection, "{arch}");
        assert!(
            (n as f64 - published).abs() / published < 0.02,
            "{arch}: {n}"
        );
    }
}

#[test]
fn parameters_carry_kuangliu_names() {
    let graph = build("resnet50", 3, 32, 10).unwrap();
    let names: Vec<String> = specs(&graph).map(|(n, _)| n).collect();
    for expected in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.shortcut.0.weight",
        "layer1.0.shortcut.1.bias",
        "layer3.5.conv3.weight",
        "layer4.2.bn3.running_mean",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("layer1.1.shortcut")),
        "identity shortcuts have no parameters"
    );
    let basic: Vec<String> = specs(&build("resnet18", 3, 32, 10).unwrap())
        .map(|(n, _)| n)
        .collect();
    assert!(
        !basic.iter().any(|n| n.starts_with("layer1.0.shortcut")),
        "ResNet-18's first stage keeps 64 channels"
    );
    assert!(basic.iter().any(|n| n == "layer2.0.shortcut.0.weight"));
    let vgg: Vec<String> = specs(&build("vgg16", 3, 32, 10).unwrap())
        .map(|(n, _)| n)
        .collect();
    assert!(
        vgg.iter().any(|n| n == "features.0.bias")
            && vgg.iter().any(|n| n == "features.41.running_var")
    );
    assert!(vgg.iter().any(|n| n == "classifier.weight"));
}

#[test]
fn inputs_and_classes_come_from_the_dataset() {
    for arch in ARCHITECTURES.iter().filter(|a| a.starts_with("resnet")) {
        let graph = build(arch, 1, 28, 100).unwrap();
        let shapes = graph.shapes().unwrap();
        assert_eq!(
            shapes[0],
            ActShape::Map {
                channels: 1,
                height: 28,
                width: 28
            },
            "{arch}"
        );
        assert_eq!(*shapes.last().unwrap(), ActShape::Vector(100), "{arch}");
        assert!(
            matches!(graph.nodes[1].op, Op::Conv2d { in_channels: 1, .. }),
            "{arch}"
        );
    }
    assert!(
        build("vgg11", 1, 28, 10).is_err(),
        "five 2×2 pools do not fit 28×28"
    );
}

#[test]
fn a_two_digit_block_index_keeps_graph_order() {
    // layer3.10 comes after layer3.9 and before layer3.11 in the graph, whatever the string order.
    let graph = build("resnet101", 3, 32, 10).unwrap();
    let position = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
    assert!(position("layer3.2.conv1") < position("layer3.9.conv1"));
    assert!(position("layer3.9.conv1") < position("layer3.10.conv1"));
    assert!(position("layer3.10.conv1") < position("layer3.22.conv1"));
}

#[test]
fn macs_match_published_figures() {
    use prunelab::graph::macs;
    // He et al. ResNet-56 on CIFAR: ≈ 125 M MACs (126 M with our two projection shortcuts).
    let r56 = macs(&build("resnet56", 3, 32, 10).unwrap()).unwrap();
    assert!((125.0e6..127.5e6).contains(&(r56 as f64)), "{r56}");
    // kuangliu ResNet-50 on CIFAR: ≈ 1.30 G MACs.
    let r50 = macs(&build("resnet50", 3, 32, 10).unwrap()).unwrap();
    assert!((r50 as f64 - 1.30e9).abs() < 0.01e9, "{r50}");
    // kuangliu ResNet-18: 0.56 G MACs.
    let r18 = macs(&build("resnet18", 3, 32, 10).unwrap()).unwrap();
    assert!((r18 as f64 - 0.556e9).abs() < 0.005e9, "{r18}");
}

#[test]
fn macs_and_parameters_of_a_small_graph_counted_by_hand() {
    use prunelab::graph::{layer_costs, GraphBuilder};
    // 3×8×8 → conv 3×3/s2 p1 → 4×4×4 → BN → ReLU → GAP → fc 4→5.
    let mut g = GraphBuilder::new(3, 8, 8);
    let x = g.conv("conv", g.input(), 4, 3, 2, 1).unwrap();
    let x = g.batch_norm("bn", x).unwrap();
    let x = g.relu("relu", x).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flatten", x).unwrap();
    g.linear("fc", x, 5).unwrap();
    let costs = layer_costs(&g.finish()).unwrap();
    let by_name = |n: &str| costs.iter().find(|c| c.name == n).unwrap().clone();
    // conv: 4 filters · 3 channels · 9 taps at 4·4 positions; 4·3·9 weights.
    assert_eq!(
        (by_name("conv").macs, by_name("conv").parameters),
        (4 * 3 * 9 * 16, 108)
    );
    assert_eq!((by_name("bn").macs, by_name("bn").parameters), (0, 8));
    assert_eq!((by_name("fc").macs, by_name("fc").parameters), (20, 25));
    assert_eq!(costs.iter().map(|c| c.macs).sum::<u64>(), 1728 + 20);
}
