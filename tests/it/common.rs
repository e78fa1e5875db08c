//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` with its bytes (empty when `dir` does not exist): what a refused
/// command must leave unchanged.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(snapshot(&path));
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The prunelab binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_prunelab");

/// A three-epoch synthetic ResNet-8 with every stage: scores, oracle, correlation, a sweep of
/// two criteria, budgets.
pub const FULL_RUN: &str = "name = \"full\"\nseed = 7\n\n[data]\ndataset = \"synthetic\"\nvalidation = 128\n\n[data.synthetic]\ntrain = 512\ntest = 96\nimage_size = 16\n\n[model]\narch = \"resnet8\"\n\n[train]\nepochs = 3\nbatch_size = 16\nlr = 0.02\n\n[saliency]\ncriteria = [\"dfpc\", \"l1\", \"random\"]\n\n[latency]\nbatch_sizes = [4]\nwarmup = 1\nrepeats = 3\n\n[prune]\nschedule = \"sweep\"\ncriteria = [\"dfpc\", \"l1\"]\nchunk = 0.05\nmax_drop = 0.25\nreport_every = 4\n\n[oracle]\nbatch = 32\ntile = 4\n\n[oracle.images]\ncount = 64\n\n[correlation]\nbootstrap = 20\nnull_seeds = 2\n";

/// `prunelab <config> --results <results> <extra…>`.
pub fn run(config: &Path, results: &Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg(config)
        .arg("--results")
        .arg(results)
        .args(extra)
        .output()
        .expect("the binary runs")
}

/// `prunelab args…` exits 2 with every `expected` text on standard error, panics nowhere, and
/// leaves `watched` exactly as it was; the error is returned.
pub fn refused<S: AsRef<std::ffi::OsStr>>(args: &[S], watched: &Path, expected: &[&str]) -> String {
    let before = snapshot(watched);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let out = std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{shown:?}: {stderr}");
    for text in expected {
        assert!(
            stderr.contains(text),
            "{shown:?}: {text:?} missing from: {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{shown:?}: {stderr}");
    assert!(
        snapshot(watched) == before,
        "{shown:?}: {} changed",
        watched.display()
    );
    stderr
}

/// `prunelab <config> --results <results> <extra…>` refused as [`refused`] says, with and
/// without `--dry-run`, with the same message; the message is returned.
pub fn run_refused(config: &Path, results: &Path, extra: &[&str], expected: &[&str]) -> String {
    let mut messages = Vec::new();
    for dry in [true, false] {
        let mut args = vec![
            config.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        if dry {
            args.push("--dry-run".as_ref());
        }
        messages.push(refused(&args, results, expected));
    }
    assert_eq!(
        messages[0], messages[1],
        "--dry-run fails exactly as the run does"
    );
    messages.pop().unwrap()
}

/// Its standard output, after checking that it succeeded.
pub fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished run of [`FULL_RUN`], made once per test binary and copied for each test that
/// asks: `(its folder, the experiment file, the results folder)`.
pub fn full_run() -> (tempfile::TempDir, PathBuf, PathBuf) {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("full_run");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("full.toml");
        std::fs::write(&config, FULL_RUN).unwrap();
        succeeded(run(&config, &dir.join("results"), &[]));
        dir
    });
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in snapshot(made) {
        let to = dir.path().join(path.strip_prefix(made).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let config = dir.path().join("full.toml");
    let results = dir.path().join("results");
    (dir, config, results)
}
