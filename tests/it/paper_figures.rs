//! Every committed report under `paper_figures/` is what this build's `prunelab report` writes
//! from the raw results committed beside it, byte for byte: tables, Parquet and figures.

use std::path::Path;
use std::process::Command;

use crate::common::BIN;

/// The stamp line a regenerated folder's tables start with.
fn stamp(folder: &Path) -> String {
    ["table.md", "headline.md"]
        .iter()
        .find_map(|f| std::fs::read_to_string(folder.join(f)).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| panic!("{}: no stamped table", folder.display()))
}

#[test]
fn committed_reports_are_what_the_report_command_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("paper_figures");
    let out = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let folder = entry.unwrap().path();
        let holds_results = ["results.json", "study.json"]
            .iter()
            .any(|f| folder.join(f).is_file());
        if !folder.is_dir() || !holds_results {
            continue;
        }
        let ran = Command::new(BIN)
            .arg("report")
            .arg(&folder)
            .arg("--out")
            .arg(out.path())
            .arg("--stamp")
            .arg(stamp(&folder))
            .output()
            .unwrap();
        assert!(
            ran.status.success(),
            "{}: {}",
            folder.display(),
            String::from_utf8_lossy(&ran.stderr)
        );
        let written = out.path().join(folder.file_name().unwrap());
        for file in std::fs::read_dir(&written).unwrap() {
            let file = file.unwrap().path();
            let committed = folder.join(file.file_name().unwrap());
            assert!(
                std::fs::read(&committed).ok() == Some(std::fs::read(&file).unwrap()),
                "{} is not what `prunelab report {}` writes: regenerate it (scripts/regenerate_paper.sh)",
                committed.display(),
                folder.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 4,
        "only {checked} result folders under paper_figures/"
    );
}
