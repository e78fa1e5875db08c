//! The graph executor against independent references: explicit f64 loops for a small
//! conv/BN/ReLU/residual-add/pool/linear graph, a state dict whose output is computed by hand,
//! and save → load round trips.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use prunelab::exec::{forward, Mode};
use prunelab::graph::{
    load_model, load_state_dict, save_model, specs, Graph, GraphBuilder, Params,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// input 2×7×7 → conv3×3/s2 → BN → ReLU → conv3×3 → BN ─┐
///             └→ conv1×1/s2 → BN ──────────────────────add → ReLU → GAP → flatten → linear(4)
fn residual_graph() -> Graph {
    let mut g = GraphBuilder::new(2, 7, 7);
    let a = g.conv("a", g.input(), 3, 3, 2, 1).unwrap();
    let a = g.batch_norm("a_bn", a).unwrap();
    let a = g.relu("a_relu", a).unwrap();
    let b = g.conv("b", a, 3, 3, 1, 1).unwrap();
    let b = g.batch_norm("b_bn", b).unwrap();
    let s = g.conv("s", g.input(), 3, 1, 2, 0).unwrap();
    let s = g.batch_norm("s_bn", s).unwrap();
    let sum = g.add("add", b, s).unwrap();
    let out = g.relu("relu", sum).unwrap();
    let out = g.global_avg_pool("pool", out).unwrap();
    let out = g.flatten("flatten", out).unwrap();
    g.linear("fc", out, 4).unwrap();
    g.finish()
}

/// Every parameter random (running variances positive), as a name → f64 values map.
fn random_values(graph: &Graph, seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    specs(graph)
        .map(|(name, spec)| {
            let n: usize = spec.shape.iter().product();
            let values = (0..n)
                .map(|_| {
                    if name.ends_with("running_var") {
                        rng.random_range(0.5..2.0)
                    } else {
                        rng.random_range(-1.0..1.0)
                    }
                })
                .collect();
            (name, (spec.shape, values))
        })
        .collect()
}

fn to_params(graph: &Graph, values: &BTreeMap<String, (Vec<usize>, Vec<f64>)>) -> Params {
    let tensors = values
        .iter()
        .map(|(k, (shape, v))| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            (
                k.clone(),
                Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect();
    Params::from_tensors(graph, tensors, &Device::Cpu).unwrap()
}

/// A feature map `[C][H][W]` in f64.
type Map = Vec<Vec<Vec<f64>>>;

fn conv(x: &Map, w: &[f64], out: usize, k: usize, stride: usize, pad: usize) -> Map {
    let (cin, h, wd) = (x.len(), x[0].len(), x[0][0].len());
    let (ho, wo) = (
        (h + 2 * pad - k) / stride + 1,
        (wd + 2 * pad - k) / stride + 1,
    );
    let mut y = vec![vec![vec![0.0; wo]; ho]; out];
    for o in 0..out {
        for i in 0..ho {
            for j in 0..wo {
                let mut s = 0.0;
                for c in 0..cin {
                    for u in 0..k {
                        for v in 0..k {
                            let (r, q) = (
                                (i * stride + u) as i64 - pad as i64,
                                (j * stride + v) as i64 - pad as i64,
                            );
                            if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < wd {
                                s += w[((o * cin + c) * k + u) * k + v]
                                    * x[c][r as usize][q as usize];
                            }
                        }
                    }
                }
                y[o][i][j] = s;
            }
        }
    }
    y
}

fn bn(x: &Map, p: &BTreeMap<String, (Vec<usize>, Vec<f64>)>, name: &str) -> Map {
    let get = |s: &str| &p[&format!("{name}.{s}")].1;
    let (g, b, m, v) = (
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
    );
    x.iter()
        .enumerate()
        .map(|(c, plane)| {
            plane
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|&t| (t - m[c]) / (v[c] + 1e-5).sqrt() * g[c] + b[c])
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn relu(x: &Map) -> Map {
    x.iter()
        .map(|p| {
            p.iter()
                .map(|r| r.iter().map(|&t| t.max(0.0)).collect())
                .collect()
        })
        .collect()
}

fn reference(x: &Map, p: &BTreeMap<String, (Vec<usize>, Vec<f64>)>) -> Vec<f64> {
    let a = relu(&bn(&conv(x, &p["a.weight"].1, 3, 3, 2, 1), p, "a_bn"));
    let b = bn(&conv(&a, &p["b.weight"].1, 3, 3, 1, 1), p, "b_bn");
    let s = bn(&conv(x, &p["s.weight"].1, 3, 1, 2, 0), p, "s_bn");
    let sum: Map = b
        .iter()
        .zip(&s)
        .map(|(pb, ps)| {
            pb.iter()
                .zip(ps)
                .map(|(rb, rs)| rb.iter().zip(rs).map(|(u, v)| u + v).collect())
                .collect()
        })
        .collect();
    let pooled: Vec<f64> = relu(&sum)
        .iter()
        .map(|plane| plane.iter().flatten().sum::<f64>() / (plane.len() * plane[0].len()) as f64)
        .collect();
    let (w, bias) = (&p["fc.weight"].1, &p["fc.bias"].1);
    (0..4)
        .map(|o| bias[o] + (0..3).map(|i| w[o * 3 + i] * pooled[i]).sum::<f64>())
        .collect()
}

#[test]
fn eval_forward_equals_an_f64_loop_reference() {
    let graph = residual_graph();
    let values = random_values(&graph, 1);
    let params = to_params(&graph, &values);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let inputs: Vec<Map> = (0..3)
        .map(|_| {
            (0..2)
                .map(|_| {
                    (0..7)
                        .map(|_| (0..7).map(|_| rng.random_range(-2.0..2.0)).collect())
                        .collect()
                })
                .collect()
        })
        .collect();
    let flat: Vec<f32> = inputs
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .map(|&v| v as f32)
        .collect();
    let x = Tensor::from_vec(flat, (3, 2, 7, 7), &Device::Cpu).unwrap();
    let got = forward(&graph, &params, &x, Mode::EVAL)
        .unwrap()
        .output
        .to_vec2::<f32>()
        .unwrap();
    for (n, input) in inputs.iter().enumerate() {
        let want = reference(input, &values);
        for (o, w) in want.iter().enumerate() {
            let g = got[n][o] as f64;
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "example {n} logit {o}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn train_mode_normalises_with_batch_statistics() {
    let graph = residual_graph();
    let params = to_params(&graph, &random_values(&graph, 3));
    let x = Tensor::randn(0f32, 1.0, (8, 2, 7, 7), &Device::Cpu).unwrap();
    let out = forward(&graph, &params, &x, Mode::TRAIN).unwrap();
    assert_eq!(out.batch_stats.len(), 3);
    // The first BN sees conv "a" of x: its batch mean is the mean of that conv's output.
    let a = x
        .conv2d(params.get("a.weight").unwrap(), 1, 2, 1, 1)
        .unwrap();
    let mean = a
        .mean_keepdim((0, 2, 3))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = out.batch_stats[0].mean.to_vec1::<f32>().unwrap();
    for (g, w) in got.iter().zip(&mean) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    // Unbiased variance over N·H·W = 8·4·4 values.
    let centred = a
        .broadcast_sub(&a.mean_keepdim((0, 2, 3)).unwrap())
        .unwrap();
    let var = (centred.sqr().unwrap().sum_keepdim((0, 2, 3)).unwrap() / 127.0).unwrap();
    let var = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (g, w) in out.batch_stats[0]
        .var
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .zip(&var)
    {
        assert!((g - w).abs() < 1e-4 * w.max(1.0), "{g} vs {w}");
    }
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let graph = prunelab::models::build("resnet8", 3, 16, 10).unwrap();
    let params = Params::init(&graph, 5, &Device::Cpu).unwrap();
    let stem = dir.path().join("model");
    save_model(&graph, &params, &stem, Default::default()).unwrap();
    let (loaded_graph, loaded) = load_model(&stem, &Device::Cpu).unwrap();
    assert_eq!(loaded_graph, graph);
    let x = Tensor::randn(0f32, 1.0, (4, 3, 16, 16), &Device::Cpu).unwrap();
    let a = forward(&graph, &params, &x, Mode::EVAL)
        .unwrap()
        .output
        .to_vec2::<f32>()
        .unwrap();
    let b = forward(&loaded_graph, &loaded, &x, Mode::EVAL)
        .unwrap()
        .output
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

/// input 1×2×2 → conv1×1 (2 filters) → BN → ReLU → GAP → flatten → fc (1 output), PyTorch names.
fn tiny_graph() -> Graph {
    let mut g = GraphBuilder::new(1, 2, 2);
    let x = g.conv("conv", g.input(), 2, 1, 1, 0).unwrap();
    let x = g.batch_norm("bn", x).unwrap();
    let x = g.relu("relu", x).unwrap();
    let x = g.global_avg_pool("pool", x).unwrap();
    let x = g.flatten("flatten", x).unwrap();
    g.linear("fc", x, 1).unwrap();
    g.finish()
}

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
}

fn tiny_state_dict() -> BTreeMap<String, Tensor> {
    BTreeMap::from([
        ("conv.weight".into(), t(&[2.0, -1.0], &[2, 1, 1, 1])),
        ("bn.weight".into(), t(&[1.0, 0.5], &[2])),
        ("bn.bias".into(), t(&[0.0, 1.0], &[2])),
        ("bn.running_mean".into(), t(&[1.0, -2.0], &[2])),
        ("bn.running_var".into(), t(&[4.0, 1.0], &[2])),
        (
            "bn.num_batches_tracked".into(),
            Tensor::new(1000i64, &Device::Cpu).unwrap(),
        ),
        ("fc.weight".into(), t(&[1.0, -2.0], &[1, 2])),
        ("fc.bias".into(), t(&[0.5], &[1])),
    ])
}

fn write_state_dict(path: &Path, tensors: &BTreeMap<String, Tensor>) {
    candle_core::safetensors::save(
        &tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        path,
    )
    .unwrap();
}

#[test]
fn a_pytorch_state_dict_loads_and_gives_the_output_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    write_state_dict(&path, &tiny_state_dict());
    let graph = tiny_graph();
    let params = load_state_dict(&path, &graph, &Device::Cpu).unwrap();
    // x = [1 2; 3 4]. Channel 0: BN((2x − 1)/2) = 0.5, 1.5, 2.5, 3.5 → mean 2.0.
    // Channel 1: 0.5·(−x + 2)/1 + 1 = 1.5, 1.0, 0.5, 0.0 → mean 0.75.
    // fc: 1·2.0 − 2·0.75 + 0.5 = 1.0 (up to BN's ε = 1e-5).
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    let y = forward(&graph, &params, &x, Mode::EVAL)
        .unwrap()
        .output
        .to_dtype(DType::F64)
        .unwrap();
    let y = y.flatten_all().unwrap().to_vec1::<f64>().unwrap()[0];
    assert!((y - 1.0).abs() < 1e-5, "{y}");
}

#[test]
fn a_state_dict_that_does_not_fit_lists_the_offending_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let mut sd = tiny_state_dict();
    sd.remove("bn.bias");
    sd.insert("bn.extra".into(), t(&[1.0], &[1]));
    sd.insert("fc.weight".into(), t(&[1.0, -2.0], &[2, 1]));
    write_state_dict(&path, &sd);
    let err = load_state_dict(&path, &tiny_graph(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing (1): bn.bias"), "{err}");
    assert!(
        err.contains("wrong shape (1): fc.weight: file has [2, 1], model needs [1, 2]"),
        "{err}"
    );
    assert!(err.contains("unexpected (1): bn.extra"), "{err}");
    assert!(err.contains("weights.safetensors"), "{err}");
}

#[test]
fn the_fused_inference_form_keeps_eval_outputs() {
    for (arch, size) in [("resnet8", 16), ("resnet50", 32), ("vgg11", 32)] {
        let graph = prunelab::models::build(arch, 3, size, 10).unwrap();
        let mut values = random_values(&graph, 9);
        // Conv weights at a realistic scale so activations stay O(1) through deep graphs.
        for (name, (shape, v)) in values.iter_mut() {
            if shape.len() == 4 {
                let fan_in: usize = shape[1..].iter().product();
                v.iter_mut().for_each(|w| *w /= (fan_in as f64).sqrt());
            } else if name.ends_with(".weight") && shape.len() == 2 {
                v.iter_mut().for_each(|w| *w /= (shape[1] as f64).sqrt());
            }
        }
        let params = to_params(&graph, &values);
        let (folded, folded_params) = prunelab::graph::fuse_for_inference(&graph, &params).unwrap();
        let batch_norms = |g: &Graph| {
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, prunelab::graph::Op::BatchNorm { .. }))
                .count()
        };
        assert_eq!(
            batch_norms(&folded),
            0,
            "{arch}: every BN follows a conv read by nothing else"
        );
        let fused_relus = folded
            .nodes
            .iter()
            .filter(|n| matches!(n.op, prunelab::graph::Op::Conv2d { relu: true, .. }))
            .count();
        let relus = |g: &Graph| {
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, prunelab::graph::Op::Relu))
                .count()
        };
        assert!(fused_relus > 0, "{arch}: conv → BN → ReLU runs as one node");
        assert_eq!(
            folded.nodes.len(),
            graph.nodes.len() - batch_norms(&graph) - fused_relus
        );
        assert_eq!(relus(&folded), relus(&graph) - fused_relus);
        let x = Tensor::randn(0f32, 1.0, (3, 3, size, size), &Device::Cpu).unwrap();
        let a = forward(&graph, &params, &x, Mode::EVAL)
            .unwrap()
            .output
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = forward(&folded, &folded_params, &x, Mode::EVAL)
            .unwrap()
            .output
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (u, v) in a.iter().zip(&b) {
            assert!(
                (u - v).abs() <= 1e-5 * scale,
                "{arch}: {u} vs {v} (scale {scale})"
            );
        }
    }
}
