//! The data-driven criteria and the oracle against independent computations, in float64 on a
//! small ResNet with random BatchNorm statistics: the oracle against the loss of the physically
//! pruned network, Taylor and OBD against finite differences of each example's loss, the
//! activation statistics against values captured directly.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use prunelab::config::{CriterionName, Reduction};
use prunelab::data::Batch;
use prunelab::exec::{forward, run, Live, Mode};
use prunelab::graph::{
    couplings, prune, specs, ChannelPlan, Coupling, Graph, GraphError, ParamRole, Params,
};
use prunelab::saliency::{
    clean_losses, example_losses, observation_nodes, observe, oracle, score, CriterionScores,
    Inputs, Observations, OracleImages, OracleOptions,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLASSES: usize = 3;

/// ResNet-8 on 1×8×8 images, in float64: Kaiming weights, and BatchNorm scales, shifts and
/// running statistics drawn at random so that no BatchNorm is the identity.
fn network() -> (Graph, Params) {
    let graph = prunelab::models::build("resnet8", 1, 8, CLASSES).unwrap();
    let init = Params::init(&graph, 3, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut tensors = BTreeMap::new();
    for (name, t) in init.tensors() {
        let is_bn = graph.nodes.iter().any(|n| {
            matches!(n.op, prunelab::graph::Op::BatchNorm { .. })
                && name.starts_with(&format!("{}.", n.name))
        });
        let t = if is_bn && !name.ends_with("num_batches_tracked") {
            let range = if name.ends_with("running_var") || name.ends_with(".weight") {
                0.5..1.5
            } else {
                -0.3..0.3
            };
            let v: Vec<f64> = (0..t.elem_count())
                .map(|_| rng.random_range(range.clone()))
                .collect();
            Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
        } else {
            t.to_dtype(DType::F64).unwrap()
        };
        tensors.insert(name, t);
    }
    // Built by hand: `Params::from_tensors` stores float32.
    let mut params = Params {
        trainable: BTreeMap::new(),
        buffers: BTreeMap::new(),
    };
    for (name, spec) in specs(&graph) {
        let t = tensors.remove(&name).unwrap();
        match spec.role {
            ParamRole::Trainable => {
                params.trainable.insert(name, Var::from_tensor(&t).unwrap());
            }
            ParamRole::Buffer => {
                params.buffers.insert(name, t);
            }
        }
    }
    (graph, params)
}

/// Two batches of random images with labels.
fn batches(sizes: &[usize]) -> Vec<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    sizes
        .iter()
        .map(|&n| {
            let pixels: Vec<f64> = (0..n * 64).map(|_| rng.random_range(-2.0..2.0)).collect();
            let labels: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..CLASSES as u32))
                .collect();
            Batch {
                images: Tensor::from_vec(pixels, (n, 1, 8, 8), &Device::Cpu).unwrap(),
                labels: Tensor::from_vec(labels, n, &Device::Cpu).unwrap(),
            }
        })
        .collect()
}

fn mean_loss(graph: &Graph, params: &Params, batches: &[Batch]) -> f64 {
    let (mut sum, mut n) = (0.0, 0);
    for b in batches {
        let logits = forward(graph, params, &b.images, Mode::EVAL)
            .unwrap()
            .output;
        sum += example_losses(&logits, &b.labels)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        n += b.labels.dim(0).unwrap();
    }
    sum / n as f64
}

/// The network and images in float32, the dtype `prune` builds its tensors in.
fn float32(params: &Params, batches: &[Batch]) -> (Params, Vec<Batch>) {
    let graph_free = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let params = Params {
        trainable: params
            .trainable
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Var::from_tensor(&graph_free(v.as_tensor())).unwrap(),
                )
            })
            .collect(),
        buffers: params
            .buffers
            .iter()
            .map(|(k, t)| (k.clone(), graph_free(t)))
            .collect(),
    };
    let batches = batches
        .iter()
        .map(|b| Batch {
            images: graph_free(&b.images),
            labels: b.labels.clone(),
        })
        .collect();
    (params, batches)
}

fn oracle_of(
    graph: &Graph,
    params: &Params,
    dfc: &Coupling,
    batches: &[Batch],
    options: OracleOptions,
) -> Vec<f64> {
    let clean = clean_losses(graph, params, batches).unwrap();
    oracle(
        graph,
        params,
        dfc,
        0..dfc.channels,
        OracleImages {
            batches,
            clean: &clean,
        },
        options,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn the_oracle_with_suffix_runs_and_tiles_equals_a_full_forward_per_channel() {
    let (graph, params) = network();
    let batches = batches(&[5, 4]);
    let tiled = OracleOptions {
        from_cut: true,
        tile: 3,
    };
    for dfc in &couplings(&graph).unwrap() {
        let fast = oracle_of(&graph, &params, dfc, &batches, tiled);
        let naive = oracle_of(&graph, &params, dfc, &batches, OracleOptions::NAIVE);
        assert_eq!(fast.len(), dfc.channels);
        for (j, (f, n)) in fast.iter().zip(&naive).enumerate() {
            assert!(
                (f - n).abs() < 1e-12,
                "{}[{j}]: {f} vs {n}",
                dfc.name(&graph)
            );
        }
        assert!(
            fast.iter().any(|v| v.abs() > 1e-6),
            "{}: every channel matters a little",
            dfc.name(&graph)
        );
    }
}

#[test]
fn the_oracle_equals_the_loss_of_the_physically_pruned_network_for_every_channel() {
    let (graph, params) = network();
    let (params, batches) = float32(&params, &batches(&[5, 4]));
    let base = mean_loss(&graph, &params, &batches);
    let dfcs = couplings(&graph).unwrap();
    assert!(dfcs.iter().any(Coupling::is_coupled));
    for dfc in &dfcs {
        let name = dfc.name(&graph);
        let fast = oracle_of(
            &graph,
            &params,
            dfc,
            &batches,
            OracleOptions {
                from_cut: true,
                tile: 4,
            },
        );
        for (j, &f) in fast.iter().enumerate() {
            let plan = ChannelPlan {
                remove: [(name.to_string(), vec![j])].into(),
                produced_by: None,
            };
            let (pruned, pruned_params) = prune(&graph, &params, &plan).unwrap();
            let physical = mean_loss(&pruned, &pruned_params, &batches) - base;
            // Float32 sums in another order: agreement to a few units in the sixth digit of the loss.
            assert!(
                (f - physical).abs() < 1e-5 * (1.0 + base),
                "{name}[{j}]: oracle {f} vs pruned {physical}"
            );
        }
    }
}

/// Each example's loss with channel `j` of `dfc` scaled by `t` at every observation node.
fn scaled_loss(
    graph: &Graph,
    params: &Params,
    dfc: &Coupling,
    j: usize,
    t: f64,
    x: &Tensor,
    label: &Tensor,
) -> f64 {
    let nodes = observation_nodes(graph, dfc);
    let mut scale = vec![1f64; dfc.channels];
    scale[j] = t;
    let mut tap = |node: usize, value: Tensor| -> Result<Tensor, GraphError> {
        if !nodes.contains(&node) {
            return Ok(value);
        }
        let mut shape = vec![1, dfc.channels];
        shape.resize(value.rank(), 1);
        let s = Tensor::from_vec(scale.clone(), shape, &Device::Cpu)?;
        Ok(value.broadcast_mul(&s)?)
    };
    let done = run(
        graph,
        params,
        Live::input(x.clone()),
        0..graph.nodes.len(),
        Mode::EVAL,
        &mut tap,
    )
    .unwrap();
    let logits = done.live.into_output(graph).unwrap();
    example_losses(&logits, label)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// A criterion's scores from the data pass's `observations`.
fn scores_of(
    graph: &Graph,
    params: &Params,
    observations: &Observations,
    name: CriterionName,
) -> CriterionScores {
    let shapes = graph.shapes().unwrap();
    let inputs = Inputs {
        graph,
        params,
        shapes: &shapes,
        seed: 0,
        observations: Some(observations),
    };
    score(&inputs, name, Reduction::Sum).unwrap().0
}

#[test]
fn taylor_and_obd_equal_finite_differences_of_each_examples_loss() {
    let (graph, params) = network();
    let batches = batches(&[4, 3]);
    let dfcs = couplings(&graph).unwrap();
    let observations = observe(
        &graph,
        &params,
        &dfcs,
        CLASSES,
        true,
        batches.iter().cloned().map(Ok),
    )
    .unwrap();
    let scores = |name| scores_of(&graph, &params, &observations, name);
    let taylor = scores(CriterionName::Taylor);
    let obd = scores(CriterionName::Obd);
    let h = 1e-5;
    for (d, dfc) in dfcs.iter().enumerate() {
        for j in 0..dfc.channels.min(5) {
            let (mut abs, mut square, mut n) = (0.0, 0.0, 0.0);
            for b in &batches {
                for e in 0..b.labels.dim(0).unwrap() {
                    let x = b.images.narrow(0, e, 1).unwrap();
                    let y = b.labels.narrow(0, e, 1).unwrap();
                    let g = (scaled_loss(&graph, &params, dfc, j, 1.0 + h, &x, &y)
                        - scaled_loss(&graph, &params, dfc, j, 1.0 - h, &x, &y))
                        / (2.0 * h);
                    abs += g.abs();
                    square += g * g;
                    n += 1.0;
                }
            }
            let name = dfc.name(&graph);
            let (t, o) = (taylor.dfcs[d].scores[j], obd.dfcs[d].scores[j]);
            assert!(
                (t - abs / n).abs() < 1e-7 * (1.0 + t),
                "{name}[{j}] taylor {t} vs {}",
                abs / n
            );
            assert!(
                (o - square / (2.0 * n)).abs() < 1e-7 * (1.0 + o),
                "{name}[{j}] obd {o} vs {}",
                square / (2.0 * n)
            );
        }
    }
}

#[test]
fn activation_statistics_equal_the_captured_activations() {
    let (graph, params) = network();
    let batches = batches(&[6, 2]);
    let dfcs = couplings(&graph).unwrap();
    let observations = observe(
        &graph,
        &params,
        &dfcs,
        CLASSES,
        false,
        batches.iter().cloned().map(Ok),
    )
    .unwrap();
    assert!(observations.gates.is_empty());
    let scores = |name| scores_of(&graph, &params, &observations, name);
    // Captured: every observation node's values per channel, over all images.
    let mut captured: BTreeMap<usize, Vec<Vec<f64>>> = BTreeMap::new();
    for b in &batches {
        let mut tap = |node: usize, value: Tensor| -> Result<Tensor, GraphError> {
            if dfcs
                .iter()
                .any(|d| observation_nodes(&graph, d).contains(&node))
            {
                let c = value.dim(1)?;
                let per_channel = value
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((c, ()))?
                    .to_vec2::<f64>()?;
                let entry = captured.entry(node).or_insert_with(|| vec![Vec::new(); c]);
                for (k, v) in per_channel.into_iter().enumerate() {
                    entry[k].extend(v);
                }
            }
            Ok(value)
        };
        run(
            &graph,
            &params,
            Live::input(b.images.clone()),
            0..graph.nodes.len(),
            Mode::EVAL,
            &mut tap,
        )
        .unwrap();
    }
    for (name, stat) in [
        (CriterionName::ActMean, 0),
        (CriterionName::ActStd, 1),
        (CriterionName::Apoz, 2),
    ] {
        let scores = scores(name);
        for (d, dfc) in dfcs.iter().enumerate() {
            for j in 0..dfc.channels {
                let expected: f64 = observation_nodes(&graph, dfc)
                    .iter()
                    .map(|node| {
                        let v = &captured[node][j];
                        let n = v.len() as f64;
                        let mean = v.iter().sum::<f64>() / n;
                        match stat {
                            0 => mean,
                            1 => (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
                            _ => v.iter().filter(|&&x| x > 0.0).count() as f64 / n,
                        }
                    })
                    .sum();
                let got = scores.dfcs[d].scores[j];
                assert!(
                    (got - expected).abs() < 1e-9,
                    "{name:?} {}[{j}]: {got} vs {expected}",
                    dfc.name(&graph)
                );
            }
        }
    }
}
