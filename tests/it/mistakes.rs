//! A user's mistakes on every command, answered before any work: exit 2, a message naming the
//! path, flag or key and what was expected, and nothing written or changed where the command
//! writes. Where the command is a run, `--dry-run` fails the same way; and a dry run of an
//! experiment whose data will be downloaded prints its whole plan and writes nothing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{full_run, refused, run_refused, snapshot, BIN};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A file, what is done to it, and what the refusal must then say.
type Damage<F> = (&'static str, F, &'static str);

/// The first half of a file, as a copy cut short leaves it.
fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// A copy of the folder `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in snapshot(from) {
        write(&to.join(path.strip_prefix(from).unwrap()), &bytes);
    }
}

#[test]
fn report_refuses_sources_that_are_not_stored_results_and_writes_nothing() {
    let (dir, _config, results) = full_run();
    let run = results.join("full");
    let out = dir.path().join("report");
    let report = |sources: &[&Path], expected: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("report")];
        args.extend(sources.iter().map(|s| s.as_os_str()));
        args.extend([OsStr::new("--out"), out.as_os_str()]);
        refused(&args, dir.path(), expected);
        assert!(!out.exists(), "{sources:?}: --out was made");
    };
    let missing = dir.path().join("nowhere");
    report(&[&missing], &["nowhere", "does not exist"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    report(&[&empty], &["empty", "holds no stored results"]);
    report(
        &[&dir.path().join("full.toml")],
        &["full.toml", "is a file"],
    );

    for file in [
        "prune/results.json",
        "correlation/study.json",
        "correlation/scorings.json",
    ] {
        for (how, damage) in [
            (
                "garbage",
                (|p: &Path| std::fs::write(p, b"\x00not json").unwrap()) as fn(&Path),
            ),
            ("truncated", truncate),
        ] {
            let copy = dir.path().join(format!("damaged-{how}")).join("full");
            copy_dir(&run, &copy);
            damage(&copy.join(file));
            report(&[&copy], &[&copy.join(file).display().to_string()]);
            std::fs::remove_dir_all(copy.parent().unwrap()).unwrap();
        }
    }

    // Well-formed JSON whose parts do not fit together.
    let edits: [Damage<fn(&mut serde_json::Value)>; 3] = [
        (
            "correlation/study.json",
            |v| drop(v["matrix"]["rho"][1].as_array_mut().unwrap().pop()),
            "its matrix is not ",
        ),
        (
            "correlation/scorings.json",
            |v| v["reference"]["name"] = "oracle-squared".into(),
            "its reference is `oracle-squared`",
        ),
        (
            "prune/results.json",
            |v| v["variants"][1]["points"] = serde_json::json!([]),
            "has no points",
        ),
    ];
    for (file, edit, says) in edits {
        let copy = dir.path().join("inconsistent").join("full");
        copy_dir(&run, &copy);
        let path = copy.join(file);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut value);
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        report(&[&copy], &[&path.display().to_string(), says]);
        std::fs::remove_dir_all(copy.parent().unwrap()).unwrap();
    }

    let twin = dir.path().join("elsewhere").join("full");
    copy_dir(&run, &twin);
    report(&[&run, &twin], &["are both named \"full\""]);

    // Into a run folder, which runs of its experiment write into without knowing of it.
    let inside = run.join("report");
    refused(
        &[
            "report".as_ref(),
            run.as_os_str(),
            "--out".as_ref(),
            inside.as_os_str(),
        ],
        dir.path(),
        &["--out", "inside the run folder"],
    );
    let file = dir.path().join("full.toml");
    refused(
        &[
            "report".as_ref(),
            run.as_os_str(),
            "--out".as_ref(),
            file.as_os_str(),
        ],
        dir.path(),
        &["--out", "full.toml is a file"],
    );
}

#[test]
fn eval_refuses_what_is_not_a_models_folder() {
    let (dir, config, results) = full_run();
    let model = results.join("full/model");
    let eval = |folder: &Path, expected: &[&str]| {
        refused(
            &["eval".as_ref(), folder.as_os_str(), config.as_os_str()],
            dir.path(),
            expected,
        )
    };
    eval(
        &dir.path().join("nowhere"),
        &["nowhere does not exist", "model.json"],
    );
    eval(
        &model.join("model.json"),
        &["model.json is a file", "the folder that holds"],
    );
    eval(
        &results,
        &["results: not a model's folder (it holds no model.json)"],
    );

    let copy = dir.path().join("copy");
    let damaged: [Damage<fn(&Path)>; 4] = [
        (
            "model.json",
            |p| std::fs::write(p, b"{\"nodes\": 3").unwrap(),
            "model.json",
        ),
        (
            "model.safetensors",
            |p| std::fs::write(p, b"PK\x03\x04").unwrap(),
            "model.safetensors",
        ),
        ("model.safetensors", truncate, "truncated: expected "),
        (
            "model.json",
            |p| std::fs::write(p, b"").unwrap(),
            "model.json",
        ),
    ];
    for (file, damage, says) in damaged {
        copy_dir(&model, &copy);
        damage(&copy.join(file));
        let stderr = eval(&copy, &[says, "expected a model saved by prunelab"]);
        assert!(
            !stderr.contains("not a safetensors file") || file == "model.safetensors",
            "{stderr}"
        );
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

#[test]
fn commands_on_a_damaged_saved_model_name_the_file() {
    let (dir, config, results) = full_run();
    let weights = results.join("full/model/model.safetensors");
    truncate(&weights);
    for command in [
        vec!["scores"],
        vec!["latency"],
        vec!["latency", "--prune-random", "0.3"],
        vec!["oracle-bench", "--dfcs", "1"],
    ] {
        let mut args: Vec<&OsStr> = command.iter().map(OsStr::new).collect();
        args.extend([
            config.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ]);
        refused(
            &args,
            dir.path(),
            &[
                "model.safetensors: truncated: expected ",
                "expected a model saved by prunelab",
            ],
        );
    }
}

#[test]
fn output_paths_that_cannot_be_written_are_refused_before_any_work() {
    let (dir, config, _results) = full_run();
    let file = dir.path().join("full.toml");
    for command in ["inspect", "scores", "latency", "oracle-bench"] {
        refused(
            &[
                command.as_ref(),
                config.as_os_str(),
                "--results".as_ref(),
                file.as_os_str(),
            ],
            dir.path(),
            &["--results", "full.toml is a file, not a folder"],
        );
    }
    run_refused(
        &config,
        &file,
        &[],
        &["--results", "full.toml is a file, not a folder"],
    );

    let started = std::time::Instant::now();
    let bench = |json: &Path, expected: &[&str]| {
        refused(
            &[
                "bench".as_ref(),
                "--models".as_ref(),
                "resnet8".as_ref(),
                "--json".as_ref(),
                json.as_os_str(),
            ],
            dir.path(),
            expected,
        )
    };
    bench(
        dir.path(),
        &["--json", "is a folder; expected the path of a file"],
    );
    bench(
        &dir.path().join("no/such/x.json"),
        &["--json", "the folder", "does not exist"],
    );
    bench(&file.join("x.json"), &["--json", "full.toml"]);
    // A special file: writing beside it and renaming over it would replace it.
    // (Outside the folder watched: reading a pipe would wait for a writer.)
    let special = tempfile::tempdir().unwrap();
    let fifo = special.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    bench(&fifo, &["--json", "not a regular file"]);
    assert!(started.elapsed().as_secs() < 10, "refused before measuring");

    // Where no folder can be made: under a device, or in a file system that makes none.
    for results in ["/dev/null", "/proc/prunelab-results"] {
        run_refused(&config, Path::new(results), &[], &["--results", results]);
    }
    let report_into = |out: &Path, expected: &[&str]| {
        let run = dir.path().join("results/full");
        refused(
            &[
                "report".as_ref(),
                run.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            dir.path(),
            expected,
        )
    };
    report_into(
        Path::new("/dev/null/report"),
        &["--out", "/dev/null is a file"],
    );
    report_into(&fifo, &["--out", "pipe is a file"]);
}

#[test]
fn flag_values_are_refused_for_what_they_are() {
    let (dir, config, results) = full_run();
    let with_run = |flags: &[&str], expected: &[&str]| {
        let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        args.extend([
            config.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ]);
        refused(&args, dir.path(), expected)
    };
    with_run(
        &["oracle-bench", "--dfcs", "0"],
        &["--dfcs", "not a number of DFCs ≥ 1"],
    );
    let folder = dir.path().to_str().unwrap();
    with_run(
        &["latency", "--plan", folder],
        &["--plan", "is a folder; expected a channel plan"],
    );
    with_run(
        &["latency", "--prune-random", "-0.1"],
        &["--prune-random", "\"-0.1\" is not a fraction in [0, 1)"],
    );
    let stderr = refused(
        &["bench", "--models", "resnet8,", "--seconds", "0"],
        dir.path(),
        &["--models", "an empty name (a stray comma?)"],
    );
    assert!(
        stderr.contains("resnet20"),
        "the known names are listed: {stderr}"
    );
    refused(
        &["bench", "--models", "resnet2O"],
        dir.path(),
        &["did you mean `resnet20`?"],
    );

    let other = dir.path().join("other.toml");
    std::fs::copy(&config, &other).unwrap();
    let stderr = refused(
        &[
            config.as_os_str(),
            other.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ],
        dir.path(),
        &["one experiment file"],
    );
    assert!(!stderr.contains("subcommand"), "{stderr}");
}

#[test]
fn an_experiment_that_is_a_folder_or_not_text_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    run_refused(
        dir.path(),
        &results,
        &[],
        &["is a folder; give an experiment file"],
    );
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, b"[data]\ndataset = \"\xff\"\n").unwrap();
    run_refused(
        &binary,
        &results,
        &[],
        &["binary.toml:2:12: byte 0xFF is not UTF-8 text"],
    );
}

#[test]
fn a_folder_in_use_is_refused_by_every_command_and_by_the_dry_run() {
    let (dir, config, results) = full_run();
    let _held = prunelab::util::run_lock::RunLock::acquire(&results.join("full")).unwrap();
    let busy = ["full is in use by another process (pid "];
    run_refused(&config, &results, &[], &busy);
    for command in ["scores", "latency"] {
        refused(
            &[
                command.as_ref(),
                config.as_os_str(),
                "--results".as_ref(),
                results.as_os_str(),
            ],
            dir.path(),
            &busy,
        );
    }
}

#[test]
fn the_dry_run_of_the_headline_experiment_plans_it_before_its_data_is_downloaded() {
    let work = tempfile::tempdir().unwrap();
    let experiment: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/cifar_r101.toml");
    let out = Command::new(BIN)
        .args([experiment.as_os_str(), "--dry-run".as_ref()])
        .current_dir(work.path())
        // Were anything fetched, it would fail: nothing listens there.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", work.path().join("hub"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "download    will download about 144 MB (uoft-cs/cifar10 from the Hugging Face hub) to data/cifar-10-batches-bin",
        "dataset     CIFAR-10 from data/cifar-10-batches-bin: 45000 train / 5000 validation / 10000 test images",
        "stage model  trains 200 epochs from the start, about ",
        "stage scores ",
        "stage oracle 256 images",
        "stage correlation ",
        "stage prune  Sweep schedule",
        "stage budgets ",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains(" days in all"),
        "200 epochs take days here: {stdout}"
    );
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "the dry run wrote {:?}",
        snapshot(work.path())
    );
}
