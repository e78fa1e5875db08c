//! Grids through a real SLURM (`scripts/slurm_one_node.sh` starts one on this machine; CI
//! does): the same outputs as the local executor, a task warned by SIGUSR1 requeued and
//! finished with the same outputs, and the sbatch script itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{snapshot, succeeded, BIN};
use crate::grids::SMOKE_GRID;

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke.toml");

/// One SLURM test at a time: they share the node.
static NODE: Mutex<()> = Mutex::new(());

/// Whether a SLURM controller answers here. Under CI it must; elsewhere the tests say they
/// were skipped.
fn slurm_here() -> bool {
    let answers = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers && std::env::var_os("CI").is_some() {
        panic!("no SLURM controller answers (sinfo): start one with scripts/slurm_one_node.sh");
    }
    if !answers {
        eprintln!("skipped: no SLURM here (scripts/slurm_one_node.sh starts one, as root)");
    }
    answers
}

/// The job ids in the submission's output ("submitted job array 12: …", "submitted job 13: …").
fn job_ids(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("submitted job "))
        .map(|l| {
            let l = l.strip_prefix("array ").unwrap_or(l);
            l.split(':').next().unwrap().to_string()
        })
        .collect()
}

/// Waits until none of `jobs` is queued or running.
fn wait_for(jobs: &[String], limit: Duration) {
    let started = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i %T", "-j", &jobs.join(",")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "jobs still queued after {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The files of a grid's runs, with what measured time leaves out: records, locks, logs, the
/// checkpoint (its history has wall times), timing tables, and latency fields of JSON and CSV
/// (the tables and figures drawn from them are left out too).
fn without_timing(runs: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let timed_key = |k: &str| {
        k.ends_with("_ms") || k == "seconds" || k.starts_with("speedup") || k == "images_per_second"
    };
    fn strip(value: &mut serde_json::Value, timed: &dyn Fn(&str) -> bool) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|k, _| !timed(k));
                map.values_mut().for_each(|v| strip(v, timed));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, timed)),
            _ => {}
        }
    }
    snapshot(runs)
        .into_iter()
        .filter(|(path, _)| {
            let name = path.file_name().unwrap().to_string_lossy();
            let skipped_ext = ["png", "svg", "parquet", "md", "tex"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")));
            !skipped_ext
                && ![
                    ".lock",
                    "stage.json",
                    "checkpoint.safetensors",
                    "train_timing.csv",
                ]
                .contains(&name.as_ref())
        })
        .map(|(path, bytes)| {
            let name = path.to_string_lossy().into_owned();
            let bytes = if name.ends_with(".json") {
                let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                strip(&mut value, &timed_key);
                value.to_string().into_bytes()
            } else if name.ends_with(".csv") {
                let text = String::from_utf8(bytes).unwrap();
                let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
                let keep: Vec<bool> = rows[0].iter().map(|h| !timed_key(h)).collect();
                rows.iter()
                    .map(|r| {
                        let kept: Vec<&str> = r
                            .iter()
                            .zip(&keep)
                            .filter(|(_, k)| **k)
                            .map(|(c, _)| *c)
                            .collect();
                        kept.join(",") + "\n"
                    })
                    .collect::<String>()
                    .into_bytes()
            } else {
                bytes
            };
            (path.strip_prefix(runs).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

fn assert_same(a: &Path, b: &Path) {
    let (left, right) = (without_timing(a), without_timing(b));
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (path, bytes) in &left {
        assert!(&right[path] == bytes, "{} differs", path.display());
    }
}

#[test]
fn a_grid_through_slurm_equals_the_grid_run_here() {
    if !slurm_here() {
        return;
    }
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = |args: &[&str]| {
        succeeded(
            Command::new(BIN)
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap(),
        )
    };
    let submitted = run(&[SMOKE_GRID, "--executor", "slurm", "--results", "slurm"]);
    let jobs = job_ids(&submitted);
    assert_eq!(jobs.len(), 4, "models, parts, whole, collect: {submitted}");
    run(&[
        SMOKE_GRID,
        "--jobs",
        "2",
        "--threads",
        "1",
        "--results",
        "local",
    ]);
    wait_for(&jobs, Duration::from_secs(600));
    let status = run(&["status", SMOKE_GRID, "--results", "slurm"]);
    assert!(status.contains("4 of 4 runs finished"), "{status}");
    assert_same(
        &cwd.join("local/smoke_grid/runs"),
        &cwd.join("slurm/smoke_grid/runs"),
    );
    let slurm = cwd.join("slurm/smoke_grid/slurm");
    // 4 models, 20 parts (4 runs × 3 shards and 2 variants), 4 whole runs: a log each, and the
    // collect job's.
    let logs = std::fs::read_dir(&slurm)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".out")
        })
        .count();
    assert_eq!(logs, 29);
    let collect = std::fs::read_to_string(slurm.join(format!("collect_{}.out", jobs[3]))).unwrap();
    assert!(collect.contains("collect: 4 runs"), "{collect}");
}

#[test]
fn a_task_warned_by_sigusr1_requeues_itself_and_finishes_as_if_never_stopped() {
    if !slurm_here() {
        return;
    }
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let point = [SMOKE, "seed=3", "train.epochs=40"];
    let mut args = point.to_vec();
    args.extend(["--executor", "slurm", "--results", "slurm"]);
    let submitted = succeeded(
        Command::new(BIN)
            .args(&args)
            .current_dir(cwd)
            .output()
            .unwrap(),
    );
    let jobs = job_ids(&submitted);
    let task = format!("{}_0", jobs[0]);
    let log = cwd.join(format!("slurm/smoke/slurm/{task}.out"));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while !read_log().contains("epoch 3/40") {
        assert!(
            started.elapsed().as_secs() < 300,
            "the task never reached epoch 3:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let warned = Command::new("scancel")
        .args(["--signal=USR1", "--batch", &task])
        .status()
        .unwrap();
    assert!(warned.success());
    while !read_log().contains("requeued job") {
        assert!(
            started.elapsed().as_secs() < 300,
            "no requeue:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SLURM holds a requeued batch job back for a while; let it start now.
    while !read_log().contains("resumed after epoch") {
        let _ = Command::new("scontrol")
            .args(["update", &format!("JobId={task}"), "StartTime=now"])
            .output();
        assert!(
            started.elapsed().as_secs() < 400,
            "the requeued task never finished:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for(&jobs, Duration::from_secs(300));
    let text = read_log();
    assert!(
        text.contains("stopped by SIGUSR1 at a safe point"),
        "{text}"
    );
    assert!(text.contains("(restart 1 of at most 3)"), "{text}");
    let mut local = point.to_vec();
    local.extend(["--results", "local", "--threads", "1"]);
    succeeded(
        Command::new(BIN)
            .args(&local)
            .current_dir(cwd)
            .output()
            .unwrap(),
    );
    assert_same(&cwd.join("local/smoke/runs"), &cwd.join("slurm/smoke/runs"));
}

#[test]
fn the_sbatch_script_is_the_golden_one() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = succeeded(
        Command::new(BIN)
            .args([
                SMOKE_GRID,
                "slurm.partition=cpu",
                "slurm.time=2:00:00",
                "slurm.mem=4G",
                "slurm.account=lab",
                "--executor",
                "slurm",
                "--jobs",
                "3",
                "--dry-run",
            ])
            .current_dir(cwd)
            .output()
            .unwrap(),
    );
    let cwd_text = std::fs::canonicalize(cwd).unwrap().display().to_string();
    let shown = out
        .replace(BIN, "<prunelab>")
        .replace(&cwd_text, "<cwd>")
        .replace(&cwd.display().to_string(), "<cwd>")
        .replace(env!("CARGO_MANIFEST_DIR"), "<manifest>");
    let script = shown
        .split_once("slurm/task.sh:\n")
        .unwrap()
        .1
        .split_once("\n\n")
        .unwrap()
        .0;
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/slurm_task.sh");
    assert_eq!(
        script.trim_end(),
        std::fs::read_to_string(golden).unwrap().trim_end(),
        "{shown}"
    );
    // 4 runs, each with 3 shards and 2 prune variants.
    assert!(shown.contains("sbatch --parsable --array=0-19%3 --dependency=afterany:<the array before> task.sh parts"), "{shown}");
    assert!(!cwd.join("results").exists(), "a dry run writes nothing");
}
