//! The `inspect`, `latency` and `bench` commands end to end.

use std::path::Path;
use std::process::Command;

use crate::common::BIN;

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
    assert!(layers
        .iter()
        .any(|l| l["name"] == "layer3.5.conv2"
            && l["macs"].as_u64().unwrap() == 256 * 256 * 9 * 8 * 8));
}

#[test]
fn inspect_counts_the_macs_of_a_resnet8_as_by_hand() {
    let results = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let out = prunelab("inspect", &config, results.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("smoke/inspect.json")).unwrap())
            .unwrap();
    // ResNet-8 on 3×16×16 images, 10 classes; a conv costs out·in·k²·Ho·Wo.
    let stem = 16 * 3 * 9 * 16 * 16;
    let stage1 = 2 * (16 * 16 * 9 * 16 * 16);
    let stage2 = 32 * 16 * 9 * 8 * 8 + 32 * 32 * 9 * 8 * 8 + 32 * 16 * 8 * 8;
    let stage3 = 64 * 32 * 9 * 4 * 4 + 64 * 64 * 9 * 4 * 4 + 64 * 32 * 4 * 4;
    let linear = 64 * 10;
    assert_eq!(stem + stage1 + stage2 + stage3 + linear, 3_125_888);
    assert_eq!(json["macs"].as_u64().unwrap(), 3_125_888);
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
        assert_eq!(row["conv"], conv);
    }
}

#[test]
fn bench_times_the_criteria_and_compares_the_two_dfpc_orders() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("criteria.json");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--models",
            "resnet8",
            "--size",
            "16",
            "--min-runs",
            "2",
        ])
        .args(["--criteria", "dfpc,dfpc-name-order,l1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let timings = rows[0]["timings"].as_array().unwrap();
    assert_eq!(timings.len(), 3);
    for t in timings {
        assert_eq!(t["runs"], 2);
        assert_eq!(
            t["channels"], 224,
            "ResNet-8: 16 + 16 + 32 + 32 + 64 + 64 channels"
        );
        assert!(t["seconds"].as_f64().unwrap() > 0.0);
    }
    // Single-digit block indices: the two orders pair alike.
    let orders = &rows[0]["dfpc_orders"];
    assert_eq!(orders["dfcs_differing"], 0, "{orders}");
    assert_eq!(orders["spearman_all"], 1.0);
}

#[test]
fn bench_refuses_bad_flags_before_measuring_anything() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder/bench.json");
    for (args, named) in [
        (vec!["--seconds", "nan"], "--seconds"),
        (vec!["--seconds=-1"], "--seconds"),
        (vec!["--models", "resnet21"], "--models"),
        (vec!["--size", "0"], "--size"),
        (vec!["--batch", "0"], "--batch"),
        (vec!["--threads", "99999"], "--threads"),
        (vec!["--models", "vgg11", "--size", "8"], "--size 8: vgg11"),
        (
            vec!["--criteria", "dfpc,taylr"],
            "unknown criterion \"taylr\"",
        ),
        (vec!["--criteria", "dfpc,taylor"], "taylor reads images"),
        (
            vec!["--json", missing.to_str().unwrap()],
            "--json: the folder",
        ),
    ] {
        let started = std::time::Instant::now();
        let out = Command::new(BIN).arg("bench").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{args:?} measured before refusing"
        );
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
batch_sizes = [16]
warmup = 1
repeats = 5
"#,
    )
    .unwrap();
    config
}

fn latency(config: &Path, results: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    prunelab("latency", config, results, args)
}

/// Conv and linear MACs of a He ResNet-8 on 16×16 inputs, from its weight shapes alone: a
/// conv's MACs are its weight count times its output positions, which follow from the stage
/// its name puts it in (stem and layer1 16×16, layer2 8×8, layer3 4×4).
fn resnet8_macs_from_shapes(
    tensors: &std::collections::BTreeMap<String, candle_core::Tensor>,
) -> u64 {
    let positions = |name: &str| match name.split('.').next().unwrap() {
        "conv1" | "layer1" => 256,
        "layer2" => 64,
        "layer3" => 16,
        "linear" => 1,
        other => panic!("unexpected layer {other}"),
    };
    tensors
        .iter()
        .filter(|(name, t)| {
            name.ends_with(".weight") && (t.rank() == 4 || name.starts_with("linear"))
        })
        .map(|(name, t)| (t.elem_count() * positions(name)) as u64)
        .sum()
}

#[test]
fn latency_times_a_pruned_copy_and_writes_the_breakdown_and_the_pruned_model() {
    use prunelab::graph::{read_safetensors, ChannelPlan};
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
    assert_eq!(batches[0]["batch"], 16);
    assert_eq!(batches[0]["unpruned"]["runs"], 5);
    assert_eq!(json["threads"], 1);

    // MACs against a count from the weight shapes on disk; the unpruned count by hand:
    // stem 16·3·9·256, layer1 2·16·16·9·256, layer2 (32·16·9 + 32·32·9 + 32·16)·64,
    // layer3 (64·32·9 + 64·64·9 + 64·32)·16, linear 64·10.
    let cpu = candle_core::Device::Cpu;
    let (pruned_tensors, _) =
        read_safetensors(&run.join("pruned_model.safetensors"), &cpu).unwrap();
    let sizes = &json["sizes"];
    assert_eq!(sizes[0]["macs"].as_u64().unwrap(), 3_125_888);
    assert_eq!(
        sizes[1]["macs"].as_u64().unwrap(),
        resnet8_macs_from_shapes(&pruned_tensors)
    );
    let parameters: usize = pruned_tensors
        .iter()
        .filter(|(name, _)| !name.contains("running_"))
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(
        sizes[1]["parameters"].as_u64().unwrap() as usize,
        parameters
    );

    // One CSV row per node of the fused unpruned and pruned graphs.
    let csv = std::fs::read_to_string(run.join("latency_layers.csv")).unwrap();
    assert!(csv.starts_with("model,batch,node,kind,macs,coupled,median_ms"));
    assert!(
        csv.contains("\nunpruned,16,layer1.0.conv1,conv2d,"),
        "{csv}"
    );
    assert!(csv.contains("\npruned,16,layer1.0.conv1,conv2d,"), "{csv}");

    // The plan it wrote reproduces the same tensors, bit for bit.
    let plan: ChannelPlan =
        ChannelPlan::from_json(&std::fs::read(run.join("pruning_plan.json")).unwrap()).unwrap();
    assert!(plan.remove.values().all(|c| !c.is_empty()));
    let again = latency(
        &config,
        &dir.path().join("again"),
        &["--plan".as_ref(), run.join("pruning_plan.json").as_os_str()],
    );
    assert!(again.status.success());
    let (replayed, _) = read_safetensors(
        &dir.path().join("again/timing/pruned_model.safetensors"),
        &cpu,
    )
    .unwrap();
    assert_eq!(replayed.len(), pruned_tensors.len());
    for (name, t) in &pruned_tensors {
        let bits = |t: &candle_core::Tensor| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert!(
            bits(t) == bits(&replayed[name]),
            "{name} differs after replay"
        );
    }
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
    let err = refused_plan(r#"{"remove": {"conv1": [1]}, "keep": {}}"#);
    assert!(err.contains("unknown field `keep`"), "{err}");
    let err = refused_plan(r#"{"remove": {"conv1": [1], "conv1": [2]}}"#);
    assert!(err.contains("DFC \"conv1\" is named twice"), "{err}");
    // A byte-order mark, as some editors write, is not an error.
    std::fs::write(&plan, "\u{feff}{\"remove\": {\"conv1\": [1]}}").unwrap();
    let out = latency(&config, &results, &["--plan".as_ref(), plan.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = refused(&["--prune-random".as_ref(), "1".as_ref()]);
    assert!(err.contains("not a fraction in [0, 1)"), "{err}");
}
