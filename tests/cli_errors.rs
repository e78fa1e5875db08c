//! Every file in `tests/bad_configs/` must be refused with exit code 2 and a message that names
//! the key in its `# expect:` line, located as `file:line:col`.

use std::path::Path;
use std::process::Command;

fn prunelab(args: &[&str], results: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .args(args)
        .arg("--results")
        .arg(results)
        .output()
        .expect("the binary runs")
}

#[test]
fn every_bad_config_is_refused_with_exit_code_2_naming_its_key() {
    let results = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("an # expect: line");
        let file_arg = file.to_str().unwrap();
        let args: Vec<&str> = if text.contains("needs a real run") {
            vec![file_arg]
        } else {
            vec![file_arg, "--dry-run"]
        };
        let out = prunelab(&args, results.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.contains(expected);
        let located =
            !text.contains("needs a real run") && stderr.contains(&format!("{file_arg}:"));
        if out.status.code() != Some(2) || !named || !(located || text.contains("needs a real run"))
        {
            failures.push(format!(
                "{}: exit {:?}, stderr: {stderr}",
                file.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
        stderr.contains("negative_lr.toml:7:1: train.lr: must be a finite number > 0 (got -0.1)"),
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
    let results = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let out = prunelab(&[path.to_str().unwrap(), "--dry-run"], results.path());
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains("parameters") && plan.contains("epochs"),
            "{plan}"
        );
    }
}
