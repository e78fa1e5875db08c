//! The `inspect`, `latency` and `bench` commands end to end.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_prunelab");

/// `prunelab <command> <config> --results <results> <args…>`.
fn prunelab(
    command: &str,
    config: &Path,
    results: &Path,
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    Command::new(BIN)
        .arg(command)
        .arg(config)
        .arg("--results")
        .arg(results)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn inspect_needs_no_data_and_writes_the_coupling_table() {
    let results = tempfile::tempdir().unwrap();
    // cifar_r50.toml names a CIFAR-10 folder that does not exist here: inspect must not read it.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/cifar_r50.toml");
    let out = prunelab("inspect", &config, results.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("37 DFCs (5 coupled), 11456 prunable channels, 23520842 parameters"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(results.path().join("cifar_r50/inspect.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["dfcs"], 37);
    assert_eq!(json["couplings"].as_array().unwrap().len(), 37);
    let layers = json["layers"].as_array().unwrap();
    let macs: u64 = layers.iter().map(|l| l["macs"].as_u64().unwrap()).sum();
    assert_eq!(json["macs"].as_u64().unwrap(), macs);
    assert!(layers
        .iter()
        .any(|l| l["name"] == "layer3.5.conv2"
            && l["macs"].as_u64().unwrap() == 256 * 256 * 9 * 8 * 8));
}

#[test]
fn inspect_refuses_a_bad_experiment_with_exit_code_2() {
    let results = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs/unknown_arch.toml");
    let out = prunelab("inspect", &config, results.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_measures_a_small_model_with_both_convolutions() {
    for conv in ["ours", "candle"] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("bench.json");
        let out = Command::new(BIN)
            .args([
                "bench",
                "--models",
                "resnet8",
                "--size",
                "16",
                "--batch",
                "8",
                "--threads",
                "2",
            ])
            .args([
                "--seconds",
                "0",
                "--warmup",
                "0",
                "--min-runs",
                "1",
                "--conv",
                conv,
                "--json",
            ])
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let row = &rows[0];
        assert_eq!(row["model"], "resnet8");
        for key in [
            "train_images_per_second",
            "infer_batch1_images_per_second",
            "infer_batch_images_per_second",
        ] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{key}: {row}");
        }
        assert_eq!(row["conv"], if conv == "ours" { "fast" } else { "candle" });
    }
}

fn latency_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("timing.toml");
    std::fs::write(
        &config,
        r#"
name = "timing"
[data]
dataset = "synthetic"
[model]
arch = "resnet8"
[latency]
batch_sizes = [2]
warmup = 1
repeats = 3
"#,
    )
    .unwrap();
    config
}

fn latency(config: &Path, results: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    prunelab("latency", config, results, args)
}

#[test]
fn latency_times_a_pruned_copy_and_writes_the_breakdown_and_the_pruned_model() {
    use prunelab::graph::{load_model, macs, ChannelPlan};
    let dir = tempfile::tempdir().unwrap();
    let config = latency_config(dir.path());
    let results = dir.path().join("results");
    let out = latency(
        &config,
        &results,
        &[
            "--prune-random".as_ref(),
            "0.5".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("speedup (latency ratio)"), "{stdout}");

    let run = results.join("timing");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("latency.json")).unwrap()).unwrap();
    let batches = json["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["batch"], 2);
    assert_eq!(batches[0]["unpruned"]["runs"], 3);
    let speedup = batches[0]["speedup"].as_f64().unwrap();
    let ratio = batches[0]["unpruned"]["median_ms"].as_f64().unwrap()
        / batches[0]["pruned"]["median_ms"].as_f64().unwrap();
    assert!((speedup - ratio).abs() < 1e-9 * ratio);
    assert_eq!(json["threads"], 1);

    // The pruned model on disk is the one that was timed and counted.
    let (pruned, _) = load_model(&run.join("pruned_model"), &candle_core::Device::Cpu).unwrap();
    let counted = &json["sizes"][1];
    assert_eq!(counted["macs"].as_u64().unwrap(), macs(&pruned).unwrap());
    assert_eq!(
        counted["parameters"].as_u64().unwrap() as usize,
        pruned.parameter_count()
    );
    let mac_ratio = json["mac_ratio"].as_f64().unwrap();
    assert!((0.2..0.4).contains(&mac_ratio), "{mac_ratio}");

    // One CSV row per node of the fused unpruned and pruned graphs.
    let csv = std::fs::read_to_string(run.join("latency_layers.csv")).unwrap();
    assert!(csv.starts_with("model,batch,node,kind,macs,coupled,median_ms"));
    assert!(csv.contains("\nunpruned,2,layer1.0.conv1,conv2d,"), "{csv}");
    assert!(csv.contains("\npruned,2,layer1.0.conv1,conv2d,"), "{csv}");

    // The plan it wrote reproduces the same network.
    let plan: ChannelPlan =
        serde_json::from_slice(&std::fs::read(run.join("pruning_plan.json")).unwrap()).unwrap();
    assert!(plan.remove.values().all(|c| !c.is_empty()));
    let again = latency(
        &config,
        &dir.path().join("again"),
        &["--plan".as_ref(), run.join("pruning_plan.json").as_os_str()],
    );
    assert!(again.status.success());
    let (replayed, _) = load_model(
        &dir.path().join("again/timing/pruned_model"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(replayed, pruned);
}

#[test]
fn latency_refuses_impossible_pruning_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = latency_config(dir.path());
    let results = dir.path().join("results");
    let refused = |args: &[&std::ffi::OsStr]| {
        let out = latency(&config, &results, args);
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let plan = dir.path().join("plan.json");
    let refused_plan = |text: &str| {
        std::fs::write(&plan, text).unwrap();
        refused(&["--plan".as_ref(), plan.as_os_str()])
    };

    let err = refused_plan(r#"{"remove": {"layer9.0.conv1": [0]}}"#);
    assert!(err.contains("no DFC has \"layer9.0.conv1\""), "{err}");
    // All 16 channels of the stem's stream: the network would be cut in two.
    let all: Vec<usize> = (0..16).collect();
    let err = refused_plan(&format!(r#"{{"remove": {{"conv1": {all:?}}}}}"#));
    assert!(err.contains("at least one must stay"), "{err}");
    let err = refused_plan("{not json");
    assert!(err.contains("not a channel plan"), "{err}");
    let err = refused(&["--prune-random".as_ref(), "1".as_ref()]);
    assert!(err.contains("not a fraction in [0, 1)"), "{err}");
}
