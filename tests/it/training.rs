//! End-to-end runs of the binary on the synthetic smoke experiment: a run killed mid-training
//! resumes to the same result as an uninterrupted one; divergence stops with the last good
//! checkpoint kept; the outputs are written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use candle_core::Device;
use prunelab::train::Checkpoint;

use crate::common::{run, BIN};

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

/// The outputs that must be byte-identical whatever interruptions a run went through (all
/// but `model/train_timing.csv`, which records wall times, and the checkpoint, compared apart).
const REPRODUCIBLE: [&str; 10] = [
    "model/train_metrics.csv",
    "model/training_curves.png",
    "model/training_curves.svg",
    "model/model.json",
    "model/model.safetensors",
    "model/summary.json",
    "scores/scores.csv",
    "scores/scores.parquet",
    "scores/dfpc.safetensors",
    "scores/random.safetensors",
];

/// The values of a tensor as bits.
fn bits(t: &candle_core::Tensor) -> Vec<u32> {
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

/// Asserts that `run_dir` holds the outputs of `reference` byte for byte, the same checkpoint
/// tensors and metrics (wall times aside), and no temporary file.
fn assert_same_outputs(reference: &Path, run_dir: &Path, what: &str) {
    for file in REPRODUCIBLE {
        let (a, b) = (reference.join(file), run_dir.join(file));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{what}: {file} differs from the uninterrupted run's"
        );
    }
    let timing = std::fs::read_to_string(run_dir.join("model/train_timing.csv")).unwrap();
    assert_eq!(timing.lines().count(), 5, "{what}: {timing}");
    let load = |dir: &Path| {
        Checkpoint::load(&dir.join("model/checkpoint.safetensors"), &Device::Cpu).unwrap()
    };
    let (a, b) = (load(reference), load(run_dir));
    assert_eq!(a.epoch, b.epoch, "{what}");
    for (x, y) in [(&a.tensors, &b.tensors), (&a.momentum, &b.momentum)] {
        assert_eq!(x.len(), y.len());
        for (name, t) in x {
            assert!(
                bits(t) == bits(&y[name]),
                "{what}: checkpoint tensor {name} differs"
            );
        }
    }
    let without_time = |c: &Checkpoint| {
        c.history
            .iter()
            .map(|m| {
                (
                    m.epoch,
                    m.lr,
                    m.train_loss,
                    m.train_accuracy,
                    m.test_loss,
                    m.test_accuracy,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(&a), without_time(&b), "{what}");
    let stray: Vec<String> = ["", "model", "scores"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(run_dir.join(sub)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".lock")
        .collect();
    assert!(stray.is_empty(), "{what}: temporary files left: {stray:?}");
}

/// Starts the run in the background with `env`.
fn spawn(
    config: &Path,
    results: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    Command::new(BIN)
        .arg(config)
        .arg("--results")
        .arg(results)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn runs_killed_anywhere_finish_with_the_outputs_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = experiment(dir.path(), "resume", "epochs = 4\nlr = 0.02");
    let straight = dir.path().join("straight");
    let started = std::time::Instant::now();
    let out = run(&config, &straight, &["--threads", "2"]);
    // Kills land within the time a whole run takes here, whatever this machine's speed.
    let whole_ms = started.elapsed().as_millis() as u64;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = straight.join("resume");

    // Stopped exactly between two writes: after the checkpoint of the last epoch (the metrics,
    // figures and model lag it), between the metrics table and the figures, after the first
    // checkpoint with another thread count than the resumed part, and after the scores were
    // written but before their stage was recorded.
    for (point, first_threads) in [
        ("after-checkpoint:4", "2"),
        ("after-metrics:2", "2"),
        ("after-checkpoint:1", "1"),
        ("after-scores:0", "2"),
    ] {
        let results = dir.path().join(point.replace(':', "-"));
        let mut child = spawn(
            &config,
            &results,
            &["--threads", first_threads],
            &[("PRUNELAB_CRASH_AT", point)],
        );
        assert!(!child.wait().unwrap().success(), "{point}: not reached");
        let out = run(&config, &results, &["--threads", "2"]);
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_outputs(&reference, &results.join("resume"), point);
    }

    // SIGKILLs at pseudo-random moments within a whole run's time, restarting with 1 to 3
    // threads, until the run finishes between kills or 40 kills have landed (a loaded machine
    // may never let it finish in time); then a last run finishes it. A run that finishes
    // before the first kill (the machine got faster) is started over, killed sooner.
    let results = dir.path().join("random");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut kills = 0;
    let mut window_ms = whole_ms;
    loop {
        let threads = (1 + next(3)).to_string();
        let mut child = spawn(&config, &results, &["--threads", &threads], &[]);
        std::thread::sleep(Duration::from_millis(
            window_ms / 10 + next(window_ms * 4 / 5 + 1),
        ));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "a run between kills failed: {status}");
            if kills > 0 {
                break;
            }
            assert!(window_ms > 1, "no kill landed");
            std::fs::remove_dir_all(&results).unwrap();
            window_ms /= 2;
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if kills == 40 {
            break;
        }
    }
    let out = run(&config, &results, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_outputs(
        &reference,
        &results.join("resume"),
        &format!("{kills} random kills"),
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
    let run_dir = dir.path().join("smoke/model");
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
    let config = experiment(dir.path(), "nan", "epochs = 3\nlr = 0.02");
    let mut child = spawn(
        &config,
        &results,
        &[],
        &[("PRUNELAB_CRASH_AT", "after-checkpoint:1")],
    );
    assert!(!child.wait().unwrap().success());
    // Momentum buffers so large (yet finite) that the first step of epoch 2 overflows.
    let path = results.join("nan/model/checkpoint.safetensors");
    let mut saved = Checkpoint::load(&path, &Device::Cpu).unwrap();
    for t in saved.momentum.values_mut() {
        *t = (t.ones_like().unwrap() * 1e38).unwrap();
    }
    saved.save(&path).unwrap();
    let kept_bytes = std::fs::read(&path).unwrap();

    let out = run(&config, &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("training diverged: ")
            && stderr.contains("in epoch 2")
            && stderr.contains("The last good checkpoint (after epoch 1) is kept"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&path).unwrap() == kept_bytes,
        "the checkpoint was overwritten"
    );
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
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("model.arch: \"resnet8\" → \"resnet14\"") && stderr.contains("--fresh"),
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
        let csv = std::fs::read_to_string(results.join("smoke/model/train_metrics.csv")).unwrap();
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
    // The kernels sum in other orders than candle's op, and three epochs at the smoke
    // config's learning rate amplify that rounding: the training losses stay within 2%, the
    // test losses (a different set, after one epoch) moved by up to 4.5% once the weight
    // gradient became a sum of outer products; a wrong gradient moves both far more.
    for (epoch, (a, b)) in curves[0].iter().zip(&curves[1]).enumerate() {
        for (x, y, tolerance) in [(a.0, b.0, 0.02), (a.1, b.1, 0.06)] {
            assert!(
                (x - y).abs() <= tolerance * y.abs().max(0.1),
                "epoch {}: {x} vs {y} ({curves:?})",
                epoch + 1
            );
        }
    }
}
