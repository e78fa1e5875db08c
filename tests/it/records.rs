//! A finished stage proves its outputs: each stage's record lists every output with its
//! SHA-256, and an output lost or changed since makes the next run rebuild that stage (with the
//! same bytes), saying why, while the stages around it stay finished. The budgets table follows
//! the correlation study it is made from.

use std::path::Path;

use crate::common::{full_run, run, succeeded, FULL_RUN};

/// The stage's line in the plan a run prints.
fn plan_line<'a>(stdout: &'a str, stage: &str) -> &'a str {
    let head = format!("stage {stage} ");
    stdout
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no line for stage {stage} in\n{stdout}"))
}

/// Damages `output` of the full run with `damage`, reruns, and checks that only `stage` reran
/// (for the reason given) and that the output is back, byte for byte.
fn rebuilt(stage: &str, output: &str, damage: fn(&Path), reason: &str) {
    let (_dir, config, results) = full_run();
    let path = results.join("full").join(output);
    let before = std::fs::read(&path).unwrap();
    damage(&path);
    let dry = succeeded(run(&config, &results, &["--dry-run"]));
    assert!(
        plan_line(&dry, stage).contains(&format!("reruns ({reason})")),
        "{dry}"
    );
    let stdout = succeeded(run(&config, &results, &[]));
    for other in [
        "model",
        "scores",
        "oracle",
        "correlation",
        "prune",
        "budgets",
    ] {
        let line = plan_line(&stdout, other);
        if other == stage {
            assert!(line.contains(&format!("reruns ({reason})")), "{line}");
        } else {
            assert!(line.contains("finished earlier"), "{other}: {line}");
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "{output} rebuilt");
    let again = succeeded(run(&config, &results, &[]));
    assert!(
        plan_line(&again, stage).contains("finished earlier"),
        "{again}"
    );
}

fn delete(path: &Path) {
    std::fs::remove_file(path).unwrap();
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_deleted_training_table_rebuilds_the_model_stage_from_its_checkpoint() {
    rebuilt(
        "model",
        "model/train_metrics.csv",
        delete,
        "train_metrics.csv is missing",
    );
}

#[test]
fn a_corrupted_model_file_rebuilds_the_model_stage() {
    rebuilt(
        "model",
        "model/model.safetensors",
        corrupt,
        "model.safetensors changed since it was written",
    );
}

#[test]
fn a_deleted_or_damaged_model_description_or_summary_rebuilds_the_model_stage() {
    rebuilt("model", "model/model.json", delete, "model.json is missing");
    rebuilt(
        "model",
        "model/summary.json",
        corrupt,
        "summary.json changed since it was written",
    );
}

#[test]
fn a_deleted_score_file_reruns_the_scores_stage() {
    rebuilt(
        "scores",
        "scores/scores.csv",
        delete,
        "scores.csv is missing",
    );
}

#[test]
fn a_corrupted_oracle_table_reruns_the_oracle() {
    rebuilt(
        "oracle",
        "oracle/oracle.csv",
        corrupt,
        "oracle.csv changed since it was written",
    );
}

#[test]
fn a_deleted_study_table_reruns_the_correlation_stage() {
    rebuilt(
        "correlation",
        "correlation/table.md",
        delete,
        "table.md is missing",
    );
}

#[test]
fn a_corrupted_headline_table_reruns_the_prune_stage() {
    rebuilt(
        "prune",
        "prune/headline.md",
        corrupt,
        "headline.md changed since it was written",
    );
}

#[test]
fn a_deleted_budgets_table_reruns_the_budgets_step() {
    rebuilt(
        "budgets",
        "budgets/budgets.md",
        delete,
        "budgets.md is missing",
    );
}

#[test]
fn the_budgets_table_follows_the_oracle() {
    let (dir, config, results) = full_run();
    let run_dir = results.join("full");
    let budgets = run_dir.join("budgets/budgets.md");
    let record = || std::fs::read_to_string(run_dir.join("budgets/stage.json")).unwrap();
    let before = record();

    // A changed [oracle]: the oracle, the study and the budgets run again; the prune stage,
    // which does not read the oracle, does not.
    std::fs::write(&config, FULL_RUN.replace("count = 64", "count = 48")).unwrap();
    let stdout = succeeded(run(&config, &results, &[]));
    for stage in ["oracle", "correlation", "budgets"] {
        assert!(plan_line(&stdout, stage).contains("reruns"), "{stdout}");
    }
    assert!(plan_line(&stdout, "prune").contains("finished earlier"));
    assert_ne!(record(), before);
    assert!(budgets.is_file());

    // Without [oracle] there is no study to set beside the pruning, so no budgets table; with
    // [oracle] added back after the prune stage finished, it is written.
    std::fs::remove_dir_all(run_dir.join("budgets")).unwrap();
    let without = FULL_RUN.split("\n[oracle]").next().unwrap();
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, format!("{without}\n")).unwrap();
    let stdout = succeeded(run(&bare, &results, &[]));
    assert!(!stdout.contains("stage budgets"), "{stdout}");
    assert!(plan_line(&stdout, "prune").contains("finished earlier"));
    assert!(!budgets.exists());
    succeeded(run(&config, &results, &[]));
    assert!(budgets.is_file());
}
