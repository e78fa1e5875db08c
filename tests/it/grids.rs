//! Grids on this machine: overrides and `[grid]` expanded to content-named runs, the local
//! executor, the oracle's shards, `status`, and every mistake refused before any work.

use std::path::Path;
use std::process::Command;

use crate::common::{refused, snapshot, succeeded, BIN, FULL_RUN};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke.toml");
pub const SMOKE_GRID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke_grid.toml");

fn prunelab(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// The folders under `<results>/<name>/runs/`.
fn run_folders(grid: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(grid.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn overrides_make_a_grid_whose_points_are_named_by_content_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = succeeded(prunelab(
        &[
            SMOKE,
            "seed=1,2",
            "--train.lr=0.05",
            "--jobs",
            "2",
            "--threads",
            "1",
        ],
        cwd,
    ));
    assert!(out.contains("grid: 2 runs"), "{out}");
    let grid = cwd.join("results/smoke");
    let names = run_folders(&grid);
    assert_eq!(names.len(), 2);
    assert!(names
        .iter()
        .all(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_hexdigit())));
    let texts: Vec<String> = names
        .iter()
        .map(|n| std::fs::read_to_string(grid.join("runs").join(n).join("overrides.txt")).unwrap())
        .collect();
    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["seed=1\ntrain.lr=0.05\n", "seed=2\ntrain.lr=0.05\n"]
    );
    for n in &names {
        let resolved =
            std::fs::read_to_string(grid.join("runs").join(n).join("experiment.toml")).unwrap();
        assert!(resolved.contains("lr = 0.05"), "{resolved}");
        assert!(grid.join("runs").join(n).join("model/stage.json").is_file());
    }
    // The same points however written: the same folders, every stage finished earlier.
    let before = snapshot(&grid.join("runs"));
    succeeded(prunelab(
        &[SMOKE, "train.lr=5e-2", "seed=2,1", "--threads", "1"],
        cwd,
    ));
    assert_eq!(run_folders(&grid), names);
    let after = snapshot(&grid.join("runs"));
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, bytes)| before.get(*p) != Some(bytes) && !p.ends_with(".lock"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "a rerun rewrote {changed:?}");
    // One point alone is task 0 or 1 of the whole phase; without overrides the run keeps
    // results/smoke/ itself.
    let status = succeeded(prunelab(
        &["status", SMOKE, "seed=1,2", "train.lr=0.05"],
        cwd,
    ));
    assert!(status.contains("2 of 2 runs finished"), "{status}");
    assert!(status.contains("model done · scores done"), "{status}");
    succeeded(prunelab(&[SMOKE, "--threads", "1"], cwd));
    assert!(grid.join("model/stage.json").is_file());
    assert_eq!(run_folders(&grid), names);
}

#[test]
fn every_grid_mistake_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let watched = cwd.join("results");
    std::fs::create_dir_all(&watched).unwrap();
    let results = watched.to_str().unwrap();
    let refuse = |args: &[&str], expected: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--results", results]);
        refused(&all, &watched, expected);
    };
    refuse(
        &[SMOKE, "seed=1", "train.lrr=0.1"],
        &["override 2: train.lrr: unknown key (did you mean train.lr?)"],
    );
    // Every mistyped key is named, not only the first.
    refuse(
        &[SMOKE, "--train.lrr=0.1", "modle.arch=resnet20"],
        &[
            "override 1: train.lrr: unknown key",
            "override 2: modle.arch: unknown key (did you mean model.arch?)",
        ],
    );
    refuse(
        &[SMOKE, "train.lr=0.1,,0.2"],
        &["override 1", "an empty value (a stray comma?)"],
    );
    refuse(
        &[SMOKE, "train.lr=20"],
        &["override 1: train.lr: must be in (0, 10]"],
    );
    refuse(
        &[SMOKE, "seed.x=1"],
        &["override 1: seed.x: seed is a value (7), not a table of keys"],
    );
    refuse(
        &[SMOKE, "name=other"],
        &["override 1: name: names the whole grid and cannot vary"],
    );
    refuse(
        &[SMOKE, "seed=1,1"],
        &["grid points 0 (seed=1) and 1 (seed=1) are the same experiment"],
    );
    refuse(
        &[SMOKE, "seed=1", "seed=2"],
        &["override 2: seed: is given twice"],
    );
    refuse(
        &[SMOKE, "seed=1,2", "--index", "2"],
        &["--index 2: the whole phase has 2 tasks, 0..=1"],
    );
    refuse(
        &[SMOKE, "seed=1,2", "--jobs", "64", "--threads", "64"],
        &["--jobs 64 × 64 threads", "K × threads ≤ cores"],
    );
    refuse(
        &[SMOKE, "seed=1", "--executor", "slurm", "--fresh"],
        &["--fresh with --executor slurm"],
    );
    // A [grid] with zero points, one that is no list, and more shards than channels.
    let file = |name: &str, text: &str| {
        let path = cwd.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let empty = file("empty.toml", &format!("{FULL_RUN}\n[grid]\nseed = []\n"));
    refuse(
        &[&empty],
        &[
            "empty.toml:",
            "grid.seed: is an empty list: the grid would have zero points",
        ],
    );
    let scalar = file("scalar.toml", &format!("{FULL_RUN}\n[grid]\nseed = 3\n"));
    refuse(
        &[&scalar],
        &[
            "scalar.toml:",
            "grid.seed: must be a list of the values to try (got 3)",
        ],
    );
    let unknown = file(
        "unknown.toml",
        &format!("{FULL_RUN}\n[grid]\ntrain.epoch = [1, 2]\n"),
    );
    refuse(
        &[&unknown],
        &[
            "unknown.toml:",
            "grid.train.epoch",
            "unknown key (did you mean train.epochs?)",
        ],
    );
    let shards = FULL_RUN.replace("tile = 4", "tile = 4\nshards = 1000");
    let sharded = file("sharded.toml", &shards);
    refuse(
        &[&sharded],
        &["oracle.shards: must be at most the 224 channels of resnet8's DFCs (got 1000)"],
    );
    // A grid file given to a command of one experiment.
    let grid = file("grid.toml", &format!("{FULL_RUN}\n[grid]\nseed = [1, 2]\n"));
    refused(
        &["inspect", &grid, "--results", results],
        &watched,
        &["has a [grid]: run it as `prunelab"],
    );
    // No sbatch on PATH.
    let out = Command::new(BIN)
        .args([
            SMOKE,
            "seed=1,2",
            "--executor",
            "slurm",
            "--results",
            results,
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sbatch is not on PATH") && stderr.contains("--executor local"),
        "{stderr}"
    );
    assert!(snapshot(&watched).is_empty());
}

#[test]
fn collect_names_the_unfinished_points_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    succeeded(prunelab(&[SMOKE, "seed=1", "--threads", "1"], cwd));
    let watched = cwd.join("results");
    let stderr = refused(
        &[
            "collect",
            SMOKE,
            "seed=1,2",
            "--results",
            watched.to_str().unwrap(),
        ],
        &watched,
        &["1 of 2 runs are not finished (nothing written)"],
    );
    assert!(stderr.contains("[seed=2]"), "{stderr}");
    assert!(!stderr.contains("[seed=1]"), "{stderr}");
}

#[test]
fn a_point_being_written_is_refused_to_a_second_grid() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut first = Command::new(BIN)
        .args([SMOKE, "seed=3", "train.epochs=100000", "--threads", "1"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for its checkpoint: it holds the point's lock by then.
    let started = std::time::Instant::now();
    let lock = loop {
        let runs = cwd.join("results/smoke/runs");
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut e| e.next())
            .map(|e| e.unwrap().path());
        if let Some(point) = found.filter(|p| p.join("model/checkpoint.safetensors").exists()) {
            break point;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the first grid never started training"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = prunelab(
        &[SMOKE, "seed=3", "train.epochs=100000", "--index", "0"],
        cwd,
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let point = lock.strip_prefix(cwd).unwrap().display().to_string();
    assert!(
        stderr.contains(&format!("{point} is in use by another process (pid")),
        "{stderr}"
    );
}

#[test]
fn a_run_in_parts_equals_the_run_in_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    succeeded(prunelab(
        &[
            SMOKE_GRID,
            "seed=7",
            "prune.criteria=[l1]",
            "--jobs",
            "2",
            "--threads",
            "1",
        ],
        cwd,
    ));
    let runs = cwd.join("results/smoke_grid/runs");
    let point = runs.join(&run_folders(&cwd.join("results/smoke_grid"))[0]);
    let pieces: Vec<String> = std::fs::read_dir(point.join("oracle/dfcs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.matches('-').count() == 2)
        .collect();
    assert!(pieces.len() >= 3, "{pieces:?}");
    let log = std::fs::read_to_string(cwd.join("results/smoke_grid/logs/parts-3.log")).unwrap();
    assert!(log.contains("prune variant l1 (coupled on)"), "{log}");
    // The same point in one piece lands in the same folder (shards and variant tasks are no part
    // of what it computes): under another --results, byte for byte the same oracle, and the
    // same prune steps.
    succeeded(prunelab(
        &[
            SMOKE_GRID,
            "seed=7",
            "prune.criteria=[l1]",
            "oracle.shards=1",
            "prune.variant_tasks=false",
            "--results",
            "whole",
            "--threads",
            "1",
        ],
        cwd,
    ));
    let whole = cwd
        .join("whole/smoke_grid/runs")
        .join(point.file_name().unwrap());
    for file in [
        "oracle/oracle.csv",
        "oracle/oracle.json",
        "correlation/study.json",
        "scores/scores.csv",
    ] {
        assert_eq!(
            std::fs::read(point.join(file)).unwrap(),
            std::fs::read(whole.join(file)).unwrap(),
            "{file}"
        );
    }
    // The steps, their accuracies and MACs (the measured speedups aside).
    let untimed = |path: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        text.lines()
            .map(|l| {
                l.split(',')
                    .zip(&header)
                    .filter(|(_, h)| !h.starts_with("speedup"))
                    .map(|(c, _)| c)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    assert_eq!(
        untimed(&point.join("prune/points.csv")),
        untimed(&whole.join("prune/points.csv"))
    );
}

#[test]
fn collect_merges_the_seeds_into_tables_figures_and_an_index_chromium_shows() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let grid = [SMOKE_GRID, "prune.criteria=[l1]"];
    let mut run = grid.to_vec();
    run.extend(["--jobs", "2", "--threads", "1"]);
    succeeded(prunelab(&run, cwd));
    let mut collect = vec!["collect"];
    collect.extend(grid);
    let out = succeeded(prunelab(&collect, cwd));
    assert!(out.contains("2 runs"), "{out}");
    let merged = cwd.join("results/smoke_grid/collected");
    let group = merged.join("across_seeds");
    for file in ["rho", "headline"] {
        for ext in ["csv", "parquet", "md", "tex"] {
            assert!(
                group.join(format!("{file}.{ext}")).is_file(),
                "{file}.{ext}"
            );
        }
    }
    for figure in ["rho_intervals", "accuracy_macs", "accuracy_speedup"] {
        for ext in ["png", "svg"] {
            assert!(
                group.join(format!("{figure}.{ext}")).is_file(),
                "{figure}.{ext}"
            );
        }
    }
    // One cell by hand: all-layers Spearman ρ of dfpc in the two runs' tables.
    let runs = cwd.join("results/smoke_grid/runs");
    let rho_of = |table: &str, column: usize| -> Vec<f64> {
        table
            .lines()
            .filter(|l| l.starts_with("all_layers,dfpc,"))
            .map(|l| l.split(',').nth(column).unwrap().parse().unwrap())
            .collect()
    };
    let values: Vec<f64> = run_folders(&cwd.join("results/smoke_grid"))
        .iter()
        .flat_map(|r| {
            rho_of(
                &std::fs::read_to_string(runs.join(r).join("correlation/table.csv")).unwrap(),
                2,
            )
        })
        .collect();
    assert_eq!(values.len(), 2);
    let mean = (values[0] + values[1]) / 2.0;
    let std = (values[0] - values[1]).abs() / 2f64.sqrt();
    // scipy.stats.t.ppf(0.975, 1)
    let half = 12.706204736174698 * std / 2f64.sqrt();
    let merged_row = std::fs::read_to_string(group.join("rho.csv")).unwrap();
    let cells: Vec<f64> = merged_row
        .lines()
        .find(|l| l.starts_with("all_layers,dfpc,"))
        .unwrap()
        .split(',')
        .skip(2)
        .take(5)
        .map(|c| c.parse().unwrap())
        .collect();
    let expected = [mean, std, mean - half, mean + half, 2.0];
    for (got, want) in cells.iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-9 * want.abs().max(1.0),
            "{cells:?} against {expected:?}"
        );
    }
    // `report` is for one run's folder; a grid's says what merges it.
    let grid_folder = cwd.join("results/smoke_grid");
    let report_out = cwd.join("report");
    refused(
        &[
            "report",
            grid_folder.to_str().unwrap(),
            "--out",
            report_out.to_str().unwrap(),
        ],
        &merged,
        &["is a grid's folder", "prunelab collect"],
    );
    // The index, opened from disk in headless Chromium: every image shown, no console message.
    let index = merged.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(
        html.contains("across_seeds/rho_intervals.png") && html.contains("../runs/"),
        "{html}"
    );
    let chromium = Command::new("chromium").arg("--version").output();
    if chromium.is_err() && std::env::var_os("CI").is_none() {
        eprintln!("skipped the browser check: no chromium here (apt-get install chromium)");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let shown = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", index.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&shown.stdout);
    let log = String::from_utf8_lossy(&shown.stderr);
    assert!(dom.contains("data-images=\"all shown\""), "{dom}\n{log}");
    assert!(!log.contains(":CONSOLE"), "{log}");
}
