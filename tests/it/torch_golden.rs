//! prunelab against PyTorch: the golden file is written by `scripts/golden_torch.py` (a float64
//! PyTorch ResNet-8 defined independently). Same initial weights, same batches: the two SGD
//! steps' losses, the weights and BN running statistics after them, and eval-mode logits agree.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use prunelab::data::Batch;
use prunelab::exec::{forward, Mode};
use prunelab::graph::{read_safetensors, Params};
use prunelab::train::{train_step, Sgd, SgdConfig};

fn golden() -> BTreeMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/resnet8_torch.safetensors");
    read_safetensors(&path, &Device::Cpu).unwrap().0
}

fn with_prefix(all: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor, tolerance: f64) {
    let (g, w) = (values(got), values(want));
    assert_eq!(g.len(), w.len(), "{name}");
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tolerance * scale,
        "{name}: max |Δ| {worst:e} vs scale {scale:e}"
    );
}

#[test]
fn two_sgd_steps_match_pytorch() {
    let golden = golden();
    let graph = prunelab::models::build("resnet8", 3, 16, 10).unwrap();
    let mut params =
        Params::from_tensors(&graph, with_prefix(&golden, "initial."), &Device::Cpu).unwrap();
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    });
    let losses = values(&golden["losses"]);
    for step in 0..2 {
        let x = &golden[&format!("batch{step}.x")];
        let y = golden[&format!("batch{step}.y")]
            .to_dtype(DType::U32)
            .unwrap();
        let batch = Batch {
            images: x.clone(),
            labels: y,
        };
        // The step training runs: the executor's backward pass on the CPU.
        let outcome = train_step(&graph, &mut params, &mut sgd, &batch, 0.1).unwrap();
        let value = outcome.loss as f64;
        assert!(
            (value - losses[step]).abs() < 1e-5 * losses[step],
            "step {step}: loss {value} vs {}",
            losses[step]
        );
    }
    let trained = with_prefix(&golden, "trained.");
    let ours = params.tensors();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        trained.keys().collect::<Vec<_>>()
    );
    for (name, want) in &trained {
        assert_close(name, &ours[name], want, 1e-4);
    }
    let logits = forward(&graph, &params, &golden["eval.x"], Mode::EVAL)
        .unwrap()
        .output;
    assert_close("eval logits", &logits, &golden["eval.logits"], 1e-4);
}
