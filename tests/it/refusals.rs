//! What a run refuses before doing any work: weights files that are not the model's state
//! dict, checkpoints made from other settings or holding NaN, a run folder in use, a trained
//! model that is not the experiment's. Each exits 2 with a message naming the key or the file,
//! `--dry-run` fails the same way, and the results folder is left exactly as it was.
//! Divergence, a failure while running, exits 1 and never leaves a non-finite checkpoint.

use crate::common::snapshot;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use prunelab::graph::{write_safetensors, Params};
use prunelab::train::Checkpoint;

use crate::common::{run, run_refused, BIN};

/// A small synthetic experiment, in a file of its own; `model` and `train` are extra lines of
/// those sections (`lr` is 0.02 and `batch_size` 16 unless `train` sets them).
fn config(dir: &Path, name: &str, model: &str, train: &str) -> PathBuf {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let lr = if train.contains("lr =") {
        ""
    } else {
        "lr = 0.02"
    };
    let batch = if train.contains("batch_size =") {
        ""
    } else {
        "batch_size = 16"
    };
    let text = format!(
        "name = {name:?}\nseed = 3\n[data]\ndataset = \"synthetic\"\n[data.synthetic]\ntrain = 64\ntest = 32\nimage_size = 8\n\
         [model]\narch = \"resnet8\"\n{model}\n[train]\n{batch}\n{lr}\n{train}\n"
    );
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{name}-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn succeeds(config: &Path, results: &Path, extra: &[&str]) -> String {
    let out = run(config, results, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn weights_config(dir: &Path, weights: &Path) -> PathBuf {
    config(
        dir,
        "weights",
        &format!("weights = {weights:?}"),
        "epochs = 0",
    )
}

/// resnet8's graph for the test experiment's data (8×8 RGB, `classes` classes).
fn tensors(arch: &str, classes: usize) -> BTreeMap<String, Tensor> {
    let graph = prunelab::models::build(arch, 3, 8, classes).unwrap();
    Params::init(&graph, 1, &Device::Cpu).unwrap().tensors()
}

#[test]
fn weights_files_that_are_not_the_models_state_dict_are_refused_naming_model_weights() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let weights = dir.path().join("w.safetensors");
    let config = weights_config(dir.path(), &weights);
    let write = |tensors: &BTreeMap<String, Tensor>, metadata: HashMap<String, String>| {
        write_safetensors(&weights, tensors, metadata).unwrap()
    };

    write(&tensors("resnet8", 10), HashMap::new());
    succeeds(&config, &results, &[]); // the good file, for contrast
    let results = dir.path().join("fresh-results");

    std::fs::write(&weights, b"PK\x03\x04 a zip, not safetensors").unwrap();
    run_refused(
        &config,
        &results,
        &[],
        &["model.weights: ", "w.safetensors: not a safetensors file"],
    );

    write(&tensors("resnet8", 10), HashMap::new());
    let whole = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &whole[..whole.len() / 2]).unwrap();
    run_refused(
        &config,
        &results,
        &[],
        &["model.weights: ", "w.safetensors"],
    );

    write(&tensors("resnet14", 10), HashMap::new());
    run_refused(
        &config,
        &results,
        &[],
        &["model.weights: ", "unexpected (", "layer1.1.conv1.weight"],
    );

    write(&tensors("resnet8", 100), HashMap::new());
    run_refused(
        &config,
        &results,
        &[],
        &[
            "model.weights: ",
            "wrong shape (2)",
            "linear.weight: file has [100, 64]",
        ],
    );

    let mut nan = tensors("resnet8", 10);
    let shape = nan["layer1.0.bn1.weight"].dims().to_vec();
    nan.insert(
        "layer1.0.bn1.weight".into(),
        Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap(),
    );
    write(&nan, HashMap::new());
    run_refused(
        &config,
        &results,
        &[],
        &[
            "model.weights: ",
            "NaN or infinite values in 1 tensor(s): layer1.0.bn1.weight",
        ],
    );

    let checkpoint = dir
        .path()
        .join("results/weights/model/checkpoint.safetensors");
    assert!(!checkpoint.exists(), "epochs = 0 writes no checkpoint");
    let trained = config_trained(dir.path());
    let config = weights_config(dir.path(), &trained);
    run_refused(
        &config,
        &results,
        &[],
        &[
            "model.weights: ",
            "is a prunelab checkpoint, not a state dict",
        ],
    );
}

/// A checkpoint of a finished one-epoch run.
fn config_trained(dir: &Path) -> PathBuf {
    let results = dir.join("trained-results");
    succeeds(&config(dir, "trained", "", "epochs = 1"), &results, &[]);
    results.join("trained/model/checkpoint.safetensors")
}

#[test]
fn a_resume_with_other_settings_is_refused_naming_every_key_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    succeeds(&config(dir.path(), "r", "", "epochs = 2"), &results, &[]);

    let changed = config(dir.path(), "r", "", "epochs = 1\nmomentum = 0.8");
    let err = run_refused(
        &changed,
        &results,
        &[],
        &["cannot resume: ", "was made with other settings than r:"],
    );
    assert!(
        err.contains("\n  train.epochs: 2 → 1\n  train.momentum: 0.9 → 0.8\n"),
        "{err}"
    );
    assert!(err.contains("--fresh"), "{err}");

    let weights = dir.path().join("w.safetensors");
    write_safetensors(&weights, &tensors("resnet8", 10), HashMap::new()).unwrap();
    let with_weights = config(
        dir.path(),
        "r",
        &format!("weights = {weights:?}"),
        "epochs = 2",
    );
    run_refused(
        &with_weights,
        &results,
        &[],
        &["model.weights: none → sha256:"],
    );

    // --fresh is announced as such and starts over.
    let out = succeeds(&changed, &results, &["--fresh", "--dry-run"]);
    assert!(
        out.contains("from the start (--fresh: its checkpoint will be overwritten)"),
        "{out}"
    );
    assert!(!out.contains("resumes"), "{out}");
    let out = succeeds(&changed, &results, &["--fresh"]);
    assert!(out.contains("after 1 epochs"), "{out}");
}

/// Runs `config` until its first checkpoint is written, then aborts it there.
fn crash_after_first_checkpoint(config: &Path, results: &Path) {
    let status = Command::new(BIN)
        .arg(config)
        .arg("--results")
        .arg(results)
        .env("PRUNELAB_CRASH_AT", "after-checkpoint:1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the crash point was not reached");
}

#[test]
fn a_damaged_checkpoint_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let config = config(dir.path(), "d", "", "epochs = 2");
    let checkpoint = results.join("d/model/checkpoint.safetensors");
    crash_after_first_checkpoint(&config, &results);

    let mut saved = Checkpoint::load(&checkpoint, &Device::Cpu).unwrap();
    let good = std::fs::read(&checkpoint).unwrap();
    let shape = saved.momentum["conv1.weight"].dims().to_vec();
    saved.momentum.insert(
        "conv1.weight".into(),
        Tensor::full(f32::INFINITY, shape, &Device::Cpu).unwrap(),
    );
    saved.save(&checkpoint).unwrap();
    run_refused(
        &config,
        &results,
        &[],
        &[
            "cannot resume: ",
            "momentum.conv1.weight",
            "NaN or infinite",
            "--fresh",
        ],
    );

    std::fs::write(&checkpoint, &good[..good.len() - 100]).unwrap();
    run_refused(
        &config,
        &results,
        &[],
        &["cannot resume: ", "checkpoint.safetensors", "--fresh"],
    );
}

#[test]
fn a_divergent_run_fails_never_checkpoints_non_finite_values_and_leaves_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // Finite weights 1e20 times too large: the batch statistics of the first BatchNorm
    // overflow, and the first step's loss is not finite.
    let weights = dir.path().join("huge.safetensors");
    let huge: BTreeMap<String, Tensor> = tensors("resnet8", 10)
        .into_iter()
        .map(|(name, t)| {
            let t = if t.rank() == 4 {
                (t * 1e20).unwrap()
            } else {
                t
            };
            (name, t)
        })
        .collect();
    write_safetensors(&weights, &huge, HashMap::new()).unwrap();
    let name = "diverges";
    let config = config(
        dir.path(),
        name,
        &format!("weights = {weights:?}"),
        "epochs = 3",
    );
    let out = run(&config, &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("training diverged") && stderr.contains("in epoch 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("No epoch had completed, so no checkpoint was written"),
        "{stderr}"
    );
    assert!(
        !results.exists(),
        "a run that wrote nothing leaves no folder: {:?}",
        snapshot(&results).keys()
    );
}

#[test]
fn a_run_folder_in_use_is_refused_and_released_when_its_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let long = config(dir.path(), "busy", "", "epochs = 1000");
    let mut child = Command::new(BIN)
        .arg(&long)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = results.join("busy/model/checkpoint.safetensors");
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no epoch in a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Same settings: it would resume, but the folder is in use. Another experiment with the
    // same name is refused the same way (its settings are not even looked at first).
    let holder = format!("is in use by another process (pid {}", child.id());
    let out = run(&long, &results, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&holder),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&long, &results, &["--fresh"]);
    assert_eq!(out.status.code(), Some(2));
    let latency = Command::new(BIN)
        .args([
            "latency".as_ref(),
            long.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(latency.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&latency.stderr).contains(&holder));

    child.kill().unwrap();
    child.wait().unwrap();
    let short = config(dir.path(), "busy", "", "epochs = 1");
    let out = run(&short, &results, &["--fresh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn latency_refuses_a_trained_model_that_is_not_the_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    succeeds(&config(dir.path(), "m", "", "epochs = 1"), &results, &[]);
    let other = config(dir.path(), "m", "", "epochs = 1")
        .to_str()
        .unwrap()
        .to_string();
    std::fs::write(
        &other,
        std::fs::read_to_string(&other)
            .unwrap()
            .replace("resnet8", "resnet14"),
    )
    .unwrap();
    let before = snapshot(&results);
    let out = Command::new(BIN)
        .args(["latency", &other, "--results", results.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("model.{json,safetensors} is not the model of this experiment")
            && stderr.contains("model.arch: \"resnet8\" → \"resnet14\""),
        "{stderr}"
    );
    assert!(snapshot(&results) == before);
}

#[test]
fn a_checkpoint_left_in_the_run_folder_by_an_earlier_version_is_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let run_config = config(dir.path(), "moved", "", "epochs = 2");
    crash_after_first_checkpoint(&run_config, &results);
    // Where versions before stage folders kept it.
    let run_dir = results.join("moved");
    std::fs::rename(
        run_dir.join("model/checkpoint.safetensors"),
        run_dir.join("checkpoint.safetensors"),
    )
    .unwrap();
    run_refused(
        &run_config,
        &results,
        &[],
        &[
            "cannot resume: ",
            "is where earlier versions kept the checkpoint; move it to",
            "--fresh",
        ],
    );
    // Moved as told, it resumes after its epoch.
    std::fs::rename(
        run_dir.join("checkpoint.safetensors"),
        run_dir.join("model/checkpoint.safetensors"),
    )
    .unwrap();
    let out = succeeds(&run_config, &results, &[]);
    assert!(out.contains("(resumed after epoch 1)"), "{out}");
}
