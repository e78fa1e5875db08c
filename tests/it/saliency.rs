//! The data-free criteria against independent computations: BGSC against dense unrolled
//! (Toeplitz) convolution matrices in float64, the norms and BN scales by hand, and the two
//! pair orders on a network whose block indices reach two digits.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use prunelab::config::{CriterionName, Reduction};
use prunelab::graph::{couplings, specs, Graph, GraphBuilder, Op, Params};
use prunelab::saliency::{score, CriterionScores, Inputs, PairOrder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random weights, BN scales and running variances, so that no factor is trivially 1.
fn random_params(graph: &Graph, seed: u64) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (name, spec) in specs(graph) {
        let n: usize = spec.shape.iter().product();
        let values: Vec<f32> = if name.ends_with("running_var") {
            (0..n).map(|_| rng.random_range(0.2..2.0)).collect()
        } else {
            (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        let t = Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu).unwrap();
        tensors.insert(name, t);
    }
    Params::from_tensors(graph, tensors, &Device::Cpu).unwrap()
}

fn scores_of(
    graph: &Graph,
    params: &Params,
    name: CriterionName,
    reduction: Reduction,
) -> CriterionScores {
    let shapes = graph.shapes().unwrap();
    let inputs = Inputs {
        graph,
        params,
        shapes: &shapes,
        seed: 7,
        observations: None,
    };
    score(&inputs, name, reduction).unwrap().0
}

fn values(params: &Params, name: &str) -> Vec<f64> {
    params
        .get(name)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The dense matrix of a convolution (rows: output channel × positions; columns: input
/// channel × positions) with absolute weights, built the textbook way: every output position
/// and every tap inside the padded input.
fn unrolled_abs(
    weight: &[f64],
    (out, inp, k): (usize, usize, usize),
    (stride, pad): (usize, usize),
    (h, w): (usize, usize),
) -> (Vec<Vec<f64>>, (usize, usize)) {
    let (oh, ow) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    let mut m = vec![vec![0.0; inp * h * w]; out * oh * ow];
    for o in 0..out {
        for y in 0..oh {
            for x in 0..ow {
                for c in 0..inp {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (
                                (y * stride + ky) as isize - pad as isize,
                                (x * stride + kx) as isize - pad as isize,
                            );
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let row = (o * oh + y) * ow + x;
                            let col = (c * h + iy as usize) * w + ix as usize;
                            m[row][col] += weight[((o * inp + c) * k + ky) * k + kx].abs();
                        }
                    }
                }
            }
        }
    }
    (m, (oh, ow))
}

/// The dense matrix of one node (conv or linear), `|M|`, and its output spatial size.
fn dense(graph: &Graph, params: &Params, node: usize) -> (Vec<Vec<f64>>, (usize, usize)) {
    let shapes = graph.shapes().unwrap();
    let name = &graph.nodes[node].name;
    let w = values(params, &format!("{name}.weight"));
    match graph.nodes[node].op {
        Op::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            ..
        } => {
            let (h, wd) = prunelab::graph::spatial(shapes[graph.nodes[node].inputs[0]]);
            unrolled_abs(
                &w,
                (out_channels, in_channels, kernel),
                (stride, padding),
                (h, wd),
            )
        }
        Op::Linear {
            in_features,
            out_features,
            ..
        } => {
            let m = (0..out_features)
                .map(|o| {
                    (0..in_features)
                        .map(|i| w[o * in_features + i].abs())
                        .collect()
                })
                .collect();
            (m, (1, 1))
        }
        _ => unreachable!(),
    }
}

/// BGSC of every channel of every DFC, from dense matrices: for each pair (a, b) with b after
/// a in the graph, 1ᵀ|M_b|[:, I_j] · P · D_a · |M_a|[I_j, :] 1, where P averages a's positions
/// when b reads a pooled vector and is the identity otherwise.
fn dense_bgsc(graph: &Graph, params: &Params) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for c in couplings(graph).unwrap() {
        let mut total = vec![0.0; c.channels];
        for &a in &c.producers {
            let (ma, (oh, ow)) = dense(graph, params, a);
            let bn = c.members.iter().copied().find(|&m| {
                matches!(graph.nodes[m].op, Op::BatchNorm { .. }) && graph.nodes[m].inputs == [a]
            });
            let d: Vec<f64> = match bn {
                Some(bn) => {
                    let n = &graph.nodes[bn].name;
                    let g = values(params, &format!("{n}.weight"));
                    let v = values(params, &format!("{n}.running_var"));
                    g.iter()
                        .zip(&v)
                        .map(|(g, v)| g.abs() / (v + 1e-5).sqrt())
                        .collect()
                }
                None => vec![1.0; c.channels],
            };
            for &b in c.consumers.iter().filter(|&&b| b > a) {
                let (mb, _) = dense(graph, params, b);
                let positions_b = mb[0].len() / c.channels;
                for j in 0..c.channels {
                    // v = D_a |M_a|[I_j, :] 1, over a's output positions.
                    let v: Vec<f64> = (0..oh * ow)
                        .map(|p| d[j] * ma[j * oh * ow + p].iter().sum::<f64>())
                        .collect();
                    // Through the pooling between a and b.
                    let v: Vec<f64> = if positions_b == v.len() {
                        v
                    } else {
                        assert_eq!(positions_b, 1);
                        vec![v.iter().sum::<f64>() / v.len() as f64]
                    };
                    // r = 1ᵀ |M_b|[:, I_j].
                    for (p, vp) in v.iter().enumerate() {
                        let col = j * positions_b + p;
                        let r: f64 = mb.iter().map(|row| row[col]).sum();
                        total[j] += r * vp;
                    }
                }
            }
        }
        out.push(total);
    }
    out
}

fn assert_close(got: &CriterionScores, want: &[Vec<f64>]) {
    assert_eq!(got.dfcs.len(), want.len());
    for (d, w) in got.dfcs.iter().zip(want) {
        assert_eq!(d.scores.len(), w.len(), "{}", d.dfc);
        for (g, w) in d.scores.iter().zip(w) {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{}: {g} vs dense {w}",
                d.dfc
            );
        }
    }
}

fn check_against_dense(graph: &Graph) {
    for seed in 0..3 {
        let params = random_params(graph, seed);
        let got = scores_of(graph, &params, CriterionName::Dfpc, Reduction::Sum);
        assert_close(&got, &dense_bgsc(graph, &params));
    }
}

#[test]
fn bgsc_equals_dense_matrices_for_3x3_convs_with_stride_1_and_2() {
    let mut g = GraphBuilder::new(2, 7, 6);
    let x = g.conv("a", g.input(), 4, 3, 1, 1).unwrap();
    let x = g.batch_norm("bn_a", x).unwrap();
    let x = g.relu("relu_a", x).unwrap();
    let x = g.conv("b", x, 3, 3, 2, 1).unwrap();
    let x = g.batch_norm("bn_b", x).unwrap();
    let x = g.relu("relu_b", x).unwrap();
    g.conv("c", x, 2, 3, 2, 0).unwrap();
    check_against_dense(&g.finish());
}

#[test]
fn bgsc_equals_dense_matrices_and_the_closed_forms_for_1x1_convs_and_a_classifier() {
    let mut g = GraphBuilder::new(3, 5, 5);
    let x = g.conv("a", g.input(), 4, 1, 1, 0).unwrap();
    let x = g.batch_norm("bn_a", x).unwrap();
    let x = g.relu("relu_a", x).unwrap();
    let x = g.conv("b", x, 6, 1, 1, 0).unwrap();
    let x = g.batch_norm("bn_b", x).unwrap();
    let x = g.relu("relu_b", x).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flat", x).unwrap();
    g.linear("fc", x, 3).unwrap();
    let graph = g.finish();
    check_against_dense(&graph);
    // The design note's closed forms. A 1×1 stride-1 pair: s · ‖W_a[j]‖₁ · ‖W_b[:, j]‖₁ · H·W;
    // a classifier after global pooling: s · ‖W_a[j]‖₁ · ‖W_fc[:, j]‖₁.
    let params = random_params(&graph, 9);
    let scores = scores_of(&graph, &params, CriterionName::Dfpc, Reduction::Sum);
    let scale = |bn: &str, j: usize| {
        values(&params, &format!("{bn}.weight"))[j].abs()
            / (values(&params, &format!("{bn}.running_var"))[j] + 1e-5).sqrt()
    };
    let row_norm = |w: &[f64], j: usize, per: usize| {
        w[j * per..(j + 1) * per]
            .iter()
            .map(|v| v.abs())
            .sum::<f64>()
    };
    let col_norm = |w: &[f64], j: usize, rows: usize, cols: usize| {
        (0..rows).map(|o| w[o * cols + j].abs()).sum::<f64>()
    };
    let (wa, wb, wfc) = (
        values(&params, "a.weight"),
        values(&params, "b.weight"),
        values(&params, "fc.weight"),
    );
    for j in 0..4 {
        let want = scale("bn_a", j) * row_norm(&wa, j, 3) * col_norm(&wb, j, 6, 4) * 25.0;
        let got = scores.dfcs[0].scores[j];
        assert!((got - want).abs() < 1e-9 * want, "a[{j}]: {got} vs {want}");
    }
    for j in 0..6 {
        let want = scale("bn_b", j) * row_norm(&wb, j, 4) * col_norm(&wfc, j, 3, 6);
        let got = scores.dfcs[1].scores[j];
        assert!((got - want).abs() < 1e-9 * want, "b[{j}]: {got} vs {want}");
    }
}

#[test]
fn bgsc_equals_dense_matrices_on_a_coupled_residual_stream() {
    // stem → bn → relu = stream; two blocks conv → bn → (+ stream) → relu; then a 3×3 reader
    // with stride 2 and a classifier.
    let mut g = GraphBuilder::new(2, 6, 6);
    let x = g.conv("stem", g.input(), 3, 3, 1, 1).unwrap();
    let x = g.batch_norm("stem_bn", x).unwrap();
    let mut stream = g.relu("stem_relu", x).unwrap();
    for block in 0..2 {
        let p = format!("block{block}");
        let y = g.conv(&format!("{p}.conv1"), stream, 4, 3, 1, 1).unwrap();
        let y = g.batch_norm(&format!("{p}.bn1"), y).unwrap();
        let y = g.relu(&format!("{p}.relu1"), y).unwrap();
        let y = g.conv(&format!("{p}.conv2"), y, 3, 1, 1, 0).unwrap();
        let y = g.batch_norm(&format!("{p}.bn2"), y).unwrap();
        let y = g.add(&format!("{p}.add"), y, stream).unwrap();
        stream = g.relu(&format!("{p}.relu2"), y).unwrap();
    }
    let x = g.conv("reader", stream, 4, 3, 2, 1).unwrap();
    let x = g.batch_norm("reader_bn", x).unwrap();
    let x = g.relu("reader_relu", x).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flat", x).unwrap();
    g.linear("fc", x, 2).unwrap();
    let graph = g.finish();
    let found = couplings(&graph).unwrap();
    assert!(found[0].is_coupled() && found[0].producers.len() == 3);
    check_against_dense(&graph);
}

/// A stream of 12 blocks named `layer1.0` … `layer1.11`: by name, `layer1.10` sorts before
/// `layer1.2`.
fn long_stream() -> Graph {
    let mut g = GraphBuilder::new(2, 4, 4);
    let x = g.conv("conv1", g.input(), 3, 3, 1, 1).unwrap();
    let x = g.batch_norm("bn1", x).unwrap();
    let mut stream = g.relu("relu", x).unwrap();
    for block in 0..12 {
        let p = format!("layer1.{block}");
        let y = g.conv(&format!("{p}.conv1"), stream, 2, 1, 1, 0).unwrap();
        let y = g.batch_norm(&format!("{p}.bn1"), y).unwrap();
        let y = g.relu(&format!("{p}.relu1"), y).unwrap();
        let y = g.conv(&format!("{p}.conv2"), y, 3, 3, 1, 1).unwrap();
        let y = g.batch_norm(&format!("{p}.bn2"), y).unwrap();
        let y = g.add(&format!("{p}.add"), y, stream).unwrap();
        stream = g.relu(&format!("{p}.relu2"), y).unwrap();
    }
    let x = g.global_avg_pool("avgpool", stream).unwrap();
    let x = g.flatten("flatten", x).unwrap();
    g.linear("linear", x, 2).unwrap();
    g.finish()
}

#[test]
fn graph_order_and_name_order_differ_on_two_digit_block_indices() {
    let graph = long_stream();
    let node = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
    let (late, early) = (node("layer1.10.conv2"), node("layer1.2.conv1"));
    // layer1.2.conv1 reads the stream before layer1.10 writes it: not downstream…
    assert!(!PairOrder::Graph.downstream(&graph, late, early));
    // …but "layer1.2.conv1" > "layer1.10.conv2" as strings.
    assert!(PairOrder::Name.downstream(&graph, late, early));
    let (producer, consumer) = (node("layer1.2.conv2"), node("layer1.10.conv1"));
    assert!(PairOrder::Graph.downstream(&graph, producer, consumer));
    assert!(!PairOrder::Name.downstream(&graph, producer, consumer));
    // The classifier counts in both.
    assert!(PairOrder::Name.downstream(&graph, late, node("linear")));

    let params = random_params(&graph, 3);
    let by_graph = scores_of(&graph, &params, CriterionName::Dfpc, Reduction::Sum);
    let by_name = scores_of(
        &graph,
        &params,
        CriterionName::DfpcNameOrder,
        Reduction::Sum,
    );
    assert_close(&by_graph, &dense_bgsc(&graph, &params));
    assert_ne!(by_graph.dfcs[0].scores, by_name.dfcs[0].scores);
    // The non-coupled DFCs have one pair each, in both orders.
    assert_eq!(by_graph.dfcs[1].scores, by_name.dfcs[1].scores);
}

#[test]
fn l1_l2_and_bn_scale_equal_their_definitions_by_hand() {
    let graph = long_stream();
    let params = random_params(&graph, 4);
    let l1 = scores_of(&graph, &params, CriterionName::L1, Reduction::Sum);
    let l2 = scores_of(&graph, &params, CriterionName::L2, Reduction::Max);
    let bn = scores_of(&graph, &params, CriterionName::BnScale, Reduction::Mean);
    // DFC 0 is the stream: producers conv1 and every block's conv2 (3 channels, 3 × 3 × 3 or 2 × 3 × 3 weights).
    let stream = couplings(&graph).unwrap().remove(0);
    let mut producers = vec!["conv1".to_string()];
    producers.extend((0..12).map(|b| format!("layer1.{b}.conv2")));
    let bns: Vec<String> = std::iter::once("bn1".to_string())
        .chain((0..12).map(|b| format!("layer1.{b}.bn2")))
        .collect();
    assert_eq!(stream.producers.len(), 13);
    for j in 0..3 {
        let filter = |p: &str| {
            let w = values(&params, &format!("{p}.weight"));
            let per = w.len() / 3;
            w[j * per..(j + 1) * per].to_vec()
        };
        let by_hand_l1: f64 = producers
            .iter()
            .map(|p| filter(p).iter().map(|v| v.abs()).sum::<f64>())
            .sum();
        let by_hand_l2 = producers
            .iter()
            .map(|p| filter(p).iter().map(|v| v * v).sum::<f64>().sqrt())
            .fold(f64::MIN, f64::max);
        let by_hand_bn = bns
            .iter()
            .map(|b| values(&params, &format!("{b}.weight"))[j].abs())
            .sum::<f64>()
            / 13.0;
        assert!((l1.dfcs[0].scores[j] - by_hand_l1).abs() < 1e-9);
        assert!((l2.dfcs[0].scores[j] - by_hand_l2).abs() < 1e-9);
        assert!((bn.dfcs[0].scores[j] - by_hand_bn).abs() < 1e-9);
    }
}

#[test]
fn random_scores_reproduce_per_seed_and_differ_between_seeds() {
    let graph = prunelab::models::build("resnet8", 3, 16, 10).unwrap();
    let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
    let shapes = graph.shapes().unwrap();
    let with_seed = |seed| {
        let inputs = Inputs {
            graph: &graph,
            params: &params,
            shapes: &shapes,
            seed,
            observations: None,
        };
        score(&inputs, CriterionName::Random, Reduction::Sum)
            .unwrap()
            .0
    };
    assert_eq!(with_seed(1), with_seed(1));
    assert_ne!(with_seed(1), with_seed(2));
    let all: Vec<f64> = with_seed(1)
        .dfcs
        .iter()
        .flat_map(|d| d.scores.clone())
        .collect();
    assert!(all.iter().all(|s| (0.0..1.0).contains(s)));
    // Two DFCs of one seed are not the same sequence.
    let s = with_seed(1);
    assert_ne!(s.dfcs[0].scores[..4], s.dfcs[1].scores[..4]);
}
