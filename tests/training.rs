//! End-to-end runs of the binary on the synthetic smoke experiment: a run killed mid-training
//! resumes to the same result as an uninterrupted one; divergence stops with the last good
//! checkpoint kept; the outputs are written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use prunelab::train::Checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_prunelab");

/// The shipped smoke experiment with `name` and some `[train]` keys replaced.
fn experiment(dir: &Path, name: &str, train: &str) -> PathBuf {
    let smoke = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml"),
    )
    .unwrap();
    let body: String = smoke
        .lines()
        .filter(|l| {
            !l.starts_with("name =") && !l.starts_with("epochs =") && !l.starts_with("lr =")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!(
        "name = {name:?}\n{}",
        body.replace("[train]\n", &format!("[train]\n{train}\n"))
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, results: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg(config)
        .arg("--results")
        .arg(results)
        .args(extra)
        .output()
        .unwrap()
}

/// The CSV without its timing columns (the last two).
fn metrics_without_timing(results: &Path, name: &str) -> Vec<String> {
    let csv = std::fs::read_to_string(results.join(name).join("train_metrics.csv")).unwrap();
    csv.lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string())
        .collect()
}

#[test]
fn a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = experiment(dir.path(), "resume", "epochs = 4\nlr = 0.02");
    let (straight, interrupted) = (dir.path().join("straight"), dir.path().join("interrupted"));

    let out = run(&config, &straight, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(BIN)
        .arg(&config)
        .arg("--results")
        .arg(&interrupted)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = interrupted.join("resume/train_metrics.csv");
    let started = Instant::now();
    while !metrics.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no epoch finished in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run was killed before it finished");
    let saved = Checkpoint::load(
        &interrupted.join("resume/checkpoint.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        (1..4).contains(&saved.epoch),
        "killed after epoch {}",
        saved.epoch
    );

    let out = run(&config, &interrupted, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumes from its checkpoint"));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(interrupted.join("resume/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["resumed_after_epoch"], saved.epoch);

    let (a, b) = (
        metrics_without_timing(&straight, "resume"),
        metrics_without_timing(&interrupted, "resume"),
    );
    assert_eq!(a.len(), 5, "header and four epochs");
    assert_eq!(
        a, b,
        "resumed training must reproduce the uninterrupted run exactly"
    );
}

#[test]
fn the_smoke_run_learns_and_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let out = run(&config, dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = dir.path().join("smoke");
    for file in [
        "train_metrics.csv",
        "training_curves.png",
        "training_curves.svg",
        "model.json",
        "model.safetensors",
        "summary.json",
        "checkpoint.safetensors",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.6,
        "10 synthetic classes, chance is 0.1; got {accuracy}"
    );
    // The saved model evaluates to the same accuracy without the experiment.
    let (graph, params) =
        prunelab::graph::load_model(&run_dir.join("model"), &Device::Cpu).unwrap();
    let e = prunelab::Experiment::load(&config).unwrap();
    let data = e.data.load(e.synthetic(), e.seed).unwrap();
    let again = prunelab::eval::evaluate(
        &graph,
        &params,
        &data.test,
        &e.data.normalizer(),
        64,
        &Device::Cpu,
    )
    .unwrap();
    assert!((again.accuracy - accuracy).abs() < 1e-9);
}

#[test]
fn divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = run(
        &experiment(dir.path(), "nan", "epochs = 1\nlr = 0.02"),
        &results,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same model and seed, so the run resumes after epoch 1, now with an absurd learning rate.
    let out = run(
        &experiment(dir.path(), "nan", "epochs = 3\nlr = 1e30"),
        &results,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("diverged")
            && stderr.contains("epoch 2")
            && stderr.contains("after epoch 1"),
        "{stderr}"
    );
    let kept = Checkpoint::load(&results.join("nan/checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(kept.epoch, 1);
    assert!(kept.tensors.values().all(|t| t
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite())));
}

#[test]
fn a_checkpoint_of_another_model_is_not_resumed_silently() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    assert!(run(
        &experiment(dir.path(), "other", "epochs = 1"),
        &results,
        &[]
    )
    .status
    .success());
    let text = std::fs::read_to_string(dir.path().join("other.toml"))
        .unwrap()
        .replace("resnet8", "resnet14");
    std::fs::write(dir.path().join("other.toml"), text).unwrap();
    let out = run(&dir.path().join("other.toml"), &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("different model") && stderr.contains("--fresh"),
        "{stderr}"
    );
    assert!(run(&dir.path().join("other.toml"), &results, &["--fresh"])
        .status
        .success());
}

#[test]
fn training_with_our_convolution_follows_the_reference_op() {
    // Three smoke epochs with our kernels and with candle's convolution: same initial weights,
    // same batches, so the loss curves differ only by float rounding.
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let mut curves = Vec::new();
    for conv in ["ours", "candle"] {
        let results = dir.path().join(conv);
        let out = run(&config, &results, &["--conv", conv]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = std::fs::read_to_string(results.join("smoke/train_metrics.csv")).unwrap();
        let losses: Vec<(f64, f64)> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
                (f[2], f[4]) // train and test loss
            })
            .collect();
        curves.push(losses);
    }
    assert_eq!(curves[0].len(), 3);
    for (epoch, (a, b)) in curves[0].iter().zip(&curves[1]).enumerate() {
        for (x, y) in [(a.0, b.0), (a.1, b.1)] {
            assert!(
                (x - y).abs() <= 0.02 * y.abs().max(0.1),
                "epoch {}: {x} vs {y} ({curves:?})",
                epoch + 1
            );
        }
    }
}
