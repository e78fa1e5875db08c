//! Every file in `tests/bad_configs/` is refused, with `--dry-run` and without, with exit
//! code 2 and the message of its `# expect:` line (first or last), located where the line says
//! (`# expect: 7:1 train.lr: must be …` means `<file>:7:1: train.lr: must be …`; a line without
//! a location, `# expect: data.dir: …`, is an input error printed as `error: data.dir: …`), and
//! leaves the results folder exactly as it was.

use crate::common::snapshot;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn prunelab(args: &[&str], results: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .args(args)
        .arg("--results")
        .arg(results)
        .output()
        .expect("the binary runs")
}

/// Runs with a time limit: a file that is wrongly accepted must not train for hours.
fn prunelab_limited(args: &[&str], results: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .args(args)
        .arg("--results")
        .arg(results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            return (None, "still running after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `# expect:` promises for `file`, as it must appear in standard error.
fn expected_message(file: &str, expect: &str) -> String {
    let (first, rest) = expect.split_once(' ').unwrap_or((expect, ""));
    let located = first
        .split_once(':')
        .is_some_and(|(l, c)| l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok());
    if located {
        format!("{file}:{first}: {rest}")
    } else {
        format!("error: {expect}")
    }
}

#[test]
fn every_bad_config_is_refused_with_exit_code_2_and_a_located_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 45, "the corpus has {} files", files.len());
    // A results folder that already holds a run under every name the corpus uses.
    let results = tempfile::tempdir().unwrap();
    for file in &files {
        let stem = file.file_stem().unwrap().to_str().unwrap();
        for name in [stem, "x"] {
            std::fs::create_dir_all(results.path().join(name)).unwrap();
            std::fs::write(results.path().join(name).join("summary.json"), b"{}").unwrap();
        }
    }
    let before = snapshot(results.path());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .expect("an # expect: line");
        let file_arg = file.to_str().unwrap();
        let wanted = expected_message(file_arg, expect);
        for args in [vec![file_arg, "--dry-run"], vec![file_arg]] {
            let (code, stderr) = prunelab_limited(&args, results.path());
            if code != Some(2) || !stderr.contains(&wanted) {
                failures.push(format!(
                    "{args:?}: exit {code:?}, wanted {wanted:?}, stderr: {stderr}"
                ));
            }
            if snapshot(results.path()) != before {
                failures.push(format!("{args:?}: the results folder changed"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_syntax_error_on_a_huge_line_quotes_only_its_surroundings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.toml");
    let line = format!("lr = [{}", "1, ".repeat(35_000));
    std::fs::write(
        &file,
        format!("[data]\ndataset = \"synthetic\"\n[train]\n{line}\n"),
    )
    .unwrap();
    let out = prunelab(&[file.to_str().unwrap(), "--dry-run"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.len() < 400, "{} bytes of error", stderr.len());
    assert!(stderr.contains("huge.toml:4:"), "{stderr}");
}

#[test]
fn misspelt_keys_get_a_suggestion() {
    let results = tempfile::tempdir().unwrap();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs/unknown_train_key.toml");
    let out = prunelab(&[file.to_str().unwrap(), "--dry-run"], results.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `epochs`?"), "{stderr}");
    assert!(
        stderr.contains("unknown_train_key.toml:7:1: train.epoch"),
        "{stderr}"
    );
}

#[test]
fn validation_errors_point_at_the_key() {
    let results = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs/negative_lr.toml");
    let out = prunelab(&[file.to_str().unwrap(), "--dry-run"], results.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("negative_lr.toml:7:1: train.lr: must be in (0, 10] (got -0.1)"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let results = tempfile::tempdir().unwrap();
    assert_eq!(prunelab(&[], results.path()).status.code(), Some(2));
    let missing = prunelab(&["/nonexistent/x.toml", "--dry-run"], results.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the experiment file"));
}

#[test]
fn every_shipped_experiment_is_valid() {
    // `--dry-run` checks the data too, and downloads nothing: where a dataset is not
    // installed, the only complaint allowed is the missing data folder; where an
    // experiment prunes the model another one trains, or a public checkpoint (under
    // weights/), the missing weights file.
    let results = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let out = prunelab(&[path.to_str().unwrap(), "--dry-run"], results.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let plan = String::from_utf8_lossy(&out.stdout);
        let data_absent =
            stderr.starts_with("error: data.dir: ") && stderr.contains(" not found: ");
        let weights_absent = (stderr.starts_with("error: model.weights: results/")
            || stderr.starts_with("error: model.weights: weights/"))
            && stderr.contains(" does not exist");
        assert!(
            out.status.success()
                || (out.status.code() == Some(2) && (data_absent || weights_absent)),
            "{}: {stderr}",
            path.display()
        );
        assert!(
            prunelab::config::grid::load(&path, &[]).is_ok(),
            "{}",
            path.display()
        );
        if out.status.success() {
            assert!(
                plan.contains("parameters") && plan.contains("epochs"),
                "{plan}"
            );
        }
    }
}
