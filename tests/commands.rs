//! The `inspect` and `bench` commands end to end.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_prunelab");

#[test]
fn inspect_needs_no_data_and_writes_the_coupling_table() {
    let results = tempfile::tempdir().unwrap();
    // cifar_r50.toml names a CIFAR-10 folder that does not exist here: inspect must not read it.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/cifar_r50.toml");
    let out = Command::new(BIN)
        .arg("inspect")
        .arg(&config)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
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
    let out = Command::new(BIN)
        .arg("inspect")
        .arg(&config)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
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
