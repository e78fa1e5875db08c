//! The stage pipeline end to end: a second run skips every finished stage, a changed
//! `[saliency]` key reruns only the scores, `prunelab scores` needs a trained model, and
//! `--dry-run` says which stages are finished.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::snapshot;
use prunelab::config::CriterionName;
use prunelab::saliency::read_scores;

use crate::common::BIN;

/// A two-epoch synthetic run named `name` with this `[saliency]` section.
fn experiment(dir: &Path, name: &str, saliency: &str) -> PathBuf {
    let text = format!(
        "name = {name:?}\nseed = 3\n\n[data]\ndataset = \"synthetic\"\n\n[data.synthetic]\ntrain = 128\ntest = 64\nimage_size = 16\n\n[model]\narch = \"resnet8\"\n\n[train]\nepochs = 2\nbatch_size = 32\nlr = 0.02\n\n[saliency]\n{saliency}\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn prunelab(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn run(config: &Path, results: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        config.as_os_str(),
        "--results".as_ref(),
        results.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = prunelab(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The run folder's files, but the lock (which names the last process that held it).
fn outputs(run_dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = snapshot(run_dir);
    files.retain(|path, _| !path.ends_with(".lock"));
    files
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_second_run_skips_every_finished_stage_and_a_saliency_change_reruns_only_the_scores() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let config = experiment(
        dir.path(),
        "stages",
        "criteria = [\"dfpc\", \"l1\", \"random\"]",
    );
    let first = stdout(&run(&config, &results, &[]));
    assert!(first.contains("stage model  trains 2 epochs"), "{first}");
    assert!(
        first.contains("dfpc") && first.contains("channels of"),
        "{first}"
    );
    let run_dir = results.join("stages");
    for file in [
        "model/stage.json",
        "scores/stage.json",
        "scores/dfpc.safetensors",
        "scores/scores.parquet",
        "scores/scores.csv",
    ] {
        assert!(run_dir.join(file).is_file(), "{file}");
    }
    let written = outputs(&run_dir);

    let dry = stdout(&run(&config, &results, &["--dry-run"]));
    assert!(dry.contains("stage model  finished earlier"), "{dry}");
    assert!(dry.contains("stage scores finished earlier"), "{dry}");

    let second = stdout(&run(&config, &results, &[]));
    assert!(second.contains("model stage finished earlier"), "{second}");
    assert!(second.contains("scores (finished earlier"), "{second}");
    assert_eq!(outputs(&run_dir), written, "a second run rewrote outputs");

    // One [saliency] key changes: the model stays, the scores are made again.
    let config = experiment(
        dir.path(),
        "stages",
        "criteria = [\"dfpc\", \"l1\", \"random\"]\nreduction = \"max\"",
    );
    let dry = stdout(&run(&config, &results, &["--dry-run"]));
    assert!(
        dry.contains("saliency.reduction: \"sum\" → \"max\""),
        "{dry}"
    );
    let third = stdout(&run(&config, &results, &[]));
    assert!(third.contains("model stage finished earlier"), "{third}");
    assert!(!third.contains("scores (finished earlier"), "{third}");
    let now = outputs(&run_dir);
    for (path, bytes) in &written {
        if path.starts_with(run_dir.join("model")) {
            assert_eq!(
                now.get(path),
                Some(bytes),
                "{} changed although the model stage was finished",
                path.display()
            );
        }
    }
    for file in [
        "scores/dfpc.safetensors",
        "scores/l1.safetensors",
        "scores/scores.csv",
    ] {
        let path = run_dir.join(file);
        // dfpc and l1 reduce several producers per DFC: their max differs from their sum.
        assert_ne!(
            now.get(&path),
            written.get(&path),
            "{file} was not rewritten"
        );
    }
    let dfpc = read_scores(&run_dir.join("scores"), CriterionName::Dfpc).unwrap();
    assert_eq!(dfpc.reduction, prunelab::config::Reduction::Max);

    // `prunelab scores` alone reads the finished stage back.
    let out = prunelab(&[
        "scores".as_ref(),
        config.as_os_str(),
        "--results".as_ref(),
        results.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("scores (finished earlier"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn scores_of_an_untrained_model_are_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let config = experiment(dir.path(), "untrained", "");
    let before = snapshot(dir.path());
    let out = prunelab(&[
        "scores".as_ref(),
        config.as_os_str(),
        "--results".as_ref(),
        results.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no trained model")
            && stderr.contains("scores of an initialisation are noise"),
        "{stderr}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused command wrote files"
    );
}

#[test]
fn saliency_keys_are_checked_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (saliency, line, message) in [
        (
            "criteria = [\"dfpc\", \"taylor-ish\"]",
            21,
            "unknown variant `taylor-ish`",
        ),
        (
            "criteria = []",
            21,
            "saliency.criteria: must name at least one criterion",
        ),
        (
            "criteria = [\"l1\", \"l1\"]",
            21,
            "saliency.criteria: names \"l1\" twice",
        ),
        ("reduction = \"median\"", 21, "unknown variant `median`"),
        ("normalise = true", 21, "unknown field `normalise`"),
    ] {
        let config = experiment(dir.path(), "bad", saliency);
        let out = prunelab(&[config.as_os_str(), "--dry-run".as_ref()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{saliency}: {stderr}");
        assert!(
            stderr.contains(&format!("bad.toml:{line}:")),
            "{saliency}: {stderr}"
        );
        assert!(stderr.contains(message), "{saliency}: {stderr}");
    }
}

#[test]
fn scores_of_given_weights_need_no_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let graph = prunelab::models::build("resnet8", 3, 32, 10).unwrap();
    let params = prunelab::graph::Params::init(&graph, 5, &candle_core::Device::Cpu).unwrap();
    let weights = dir.path().join("w.safetensors");
    prunelab::graph::write_safetensors(&weights, &params.tensors(), Default::default()).unwrap();
    // CIFAR-10 in a folder that does not exist: only the weights are read.
    let config = dir.path().join("given.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = \"cifar10\"\ndir = \"{}\"\n[model]\narch = \"resnet8\"\nweights = {weights:?}\n[train]\nepochs = 0\n[saliency]\ncriteria = [\"dfpc\", \"bn-scale\"]\n",
            dir.path().join("no-such-folder").display()
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = prunelab(&[
        "scores".as_ref(),
        config.as_os_str(),
        "--results".as_ref(),
        results.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dfpc = read_scores(&results.join("given/scores"), CriterionName::Dfpc).unwrap();
    assert_eq!(dfpc.dfcs.iter().map(|d| d.scores.len()).sum::<usize>(), 224);
    assert!(!dir.path().join("no-such-folder").exists());
}

const STUDY: &str = "[saliency.images]\ncount = 48\n\n[oracle]\nbatch = 16\ntile = 4\n\n[oracle.images]\ncount = 48\nseed = 1\n\n[correlation]\nbootstrap = 40\nnull_seeds = 20\n";

#[test]
fn an_interrupted_oracle_resumes_and_a_correlation_change_reruns_only_the_correlation() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let config = experiment(dir.path(), "study", STUDY);
    let run_dir = results.join("study");

    // Killed after the third DFC's oracle: the rerun keeps those three.
    let killed = Command::new(BIN)
        .args([
            config.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ])
        .env("PRUNELAB_CRASH_AT", "oracle-dfc:2")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    assert!(run_dir.join("oracle/dfcs/0002.json").is_file());
    assert!(!run_dir.join("oracle/stage.json").exists());
    let resumed = stdout(&run(&config, &results, &[]));
    assert!(
        resumed.contains("3 DFCs kept from an interrupted run"),
        "{resumed}"
    );
    assert!(
        resumed.contains("Spearman ρ against oracle-abs"),
        "{resumed}"
    );
    for file in [
        "oracle/oracle.json",
        "oracle/oracle.csv",
        "oracle/oracle.parquet",
        "correlation/stage.json",
        "correlation/study.json",
        "correlation/table.md",
        "correlation/table.tex",
        "correlation/table.csv",
        "correlation/table.parquet",
        "correlation/heatmap.png",
        "correlation/heatmap.svg",
        "correlation/per_dfc.png",
        "correlation/scatter.svg",
    ] {
        assert!(run_dir.join(file).is_file(), "{file}");
    }

    // The same outputs as a run never interrupted.
    let other = dir.path().join("other");
    run(&config, &other, &[]);
    let strip = |files: std::collections::BTreeMap<PathBuf, Vec<u8>>, root: &Path| {
        files
            .into_iter()
            .filter(|(p, _)| {
                let p = p.strip_prefix(root).unwrap();
                (p.starts_with("oracle") || p.starts_with("correlation"))
                    && !p.ends_with("stage.json")
            })
            .map(|(p, bytes)| (p.strip_prefix(root).unwrap().to_path_buf(), bytes))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let resumed_files = strip(outputs(&run_dir), &run_dir);
    assert_eq!(
        resumed_files,
        strip(outputs(&other.join("study")), &other.join("study"))
    );

    // Random against the trained network's oracle: no correlation, over 20 seeds.
    let study: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("correlation/study.json")).unwrap())
            .unwrap();
    let null_mean = study["null"]["all_layers_mean"].as_f64().unwrap();
    assert!(
        null_mean.abs() < 0.1,
        "random's mean ρ over 20 seeds: {null_mean}"
    );
    let random = study["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["criterion"] == "random")
        .unwrap();
    // One seed over n channels: independent rankings give ρ with standard deviation 1/√(n−1).
    let channels: usize = study["per_dfc"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["criterion"] == "random")
        .map(|r| r["channels"].as_u64().unwrap() as usize)
        .sum();
    let rho = random["all_layers"]["value"].as_f64().unwrap();
    assert!(
        rho.abs() < 3.0 / ((channels - 1) as f64).sqrt(),
        "random's ρ: {rho} over {channels} channels"
    );

    // One [correlation] key changed: only the correlation reruns.
    let before = outputs(&run_dir);
    let changed = experiment(
        dir.path(),
        "study",
        &STUDY.replace("bootstrap = 40", "bootstrap = 41"),
    );
    let plan = stdout(&run(&changed, &results, &["--dry-run"]));
    assert!(plan.contains("stage oracle finished earlier"), "{plan}");
    assert!(
        plan.contains("stage correlation reruns (correlation.bootstrap: 40 → 41 changed)"),
        "{plan}"
    );
    run(&changed, &results, &[]);
    let after = outputs(&run_dir);
    for (path, bytes) in &before {
        let stage = path.strip_prefix(&run_dir).unwrap();
        if stage.starts_with("correlation") {
            continue;
        }
        assert_eq!(after.get(path), Some(bytes), "{} changed", stage.display());
    }
    assert_ne!(
        before[&run_dir.join("correlation/study.json")],
        after[&run_dir.join("correlation/study.json")]
    );
}
