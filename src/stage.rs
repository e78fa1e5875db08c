//! Stage artifacts: each stage writes its outputs under `results/<name>/<stage>/` and then,
//! last, `stage.json`: the fingerprint of the settings and inputs it read. A rerun skips a
//! stage whose `stage.json` matches what it would read now; a stage killed before writing it
//! runs again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::Error;

/// The version of the artifacts' layout; a stage written by another is run again.
pub const SCHEMA: u32 = 1;

/// The stages of an experiment, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The trained (or loaded) network.
    Model,
    /// Every configured criterion's score for every channel.
    Scores,
    /// The change of the loss when each channel is removed.
    Oracle,
    /// The criteria compared with the oracle.
    Correlation,
    /// The pruning schedules, measured.
    Prune,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Model => "model",
            Stage::Scores => "scores",
            Stage::Oracle => "oracle",
            Stage::Correlation => "correlation",
            Stage::Prune => "prune",
        }
    }

    /// `results/<name>/<stage>/`.
    pub fn dir(self, run_dir: &Path) -> PathBuf {
        run_dir.join(self.name())
    }
}

/// What `stage.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    pub stage: Stage,
    /// The settings and input digests the stage read.
    pub fingerprint: Fingerprint,
    /// Wall time of the run that wrote it.
    pub seconds: f64,
}

/// Where a stage stands against what it would read now.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Never finished (or its record is unreadable, or from another layout).
    Missing,
    /// Finished from these very settings and inputs.
    Done(Manifest),
    /// Finished from others: these keys changed.
    Changed(Vec<String>),
}

fn manifest_path(run_dir: &Path, stage: Stage) -> PathBuf {
    stage.dir(run_dir).join("stage.json")
}

/// Compares a stage's record with `fingerprint`.
pub fn status(run_dir: &Path, stage: Stage, fingerprint: &Fingerprint) -> Status {
    let Ok(bytes) = std::fs::read(manifest_path(run_dir, stage)) else {
        return Status::Missing;
    };
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.schema == SCHEMA && m.stage == stage => {
            let changed = m.fingerprint.differences(fingerprint);
            if changed.is_empty() {
                Status::Done(m)
            } else {
                Status::Changed(changed)
            }
        }
        _ => Status::Missing,
    }
}

/// Records a stage as finished; call after every output is written.
pub fn finish(
    run_dir: &Path,
    stage: Stage,
    fingerprint: &Fingerprint,
    seconds: f64,
) -> Result<(), Error> {
    let manifest = Manifest {
        schema: SCHEMA,
        stage,
        fingerprint: fingerprint.clone(),
        seconds,
    };
    let path = manifest_path(run_dir, stage);
    crate::atomic_file::write_json(&path, &manifest)
}

/// Forgets a stage (before it is rerun), so that a run killed halfway leaves it unfinished.
pub fn invalidate(run_dir: &Path, stage: Stage) -> Result<(), Error> {
    let path = manifest_path(run_dir, stage);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io { path, source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(lr: &str) -> Fingerprint {
        Fingerprint::from_pairs([("train.lr", lr)])
    }

    #[test]
    fn a_stage_is_done_only_with_the_same_fingerprint_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        assert_eq!(
            status(run, Stage::Scores, &fingerprint("0.1")),
            Status::Missing
        );
        std::fs::create_dir_all(Stage::Scores.dir(run)).unwrap();
        finish(run, Stage::Scores, &fingerprint("0.1"), 1.5).unwrap();
        assert!(matches!(
            status(run, Stage::Scores, &fingerprint("0.1")),
            Status::Done(_)
        ));
        let Status::Changed(keys) = status(run, Stage::Scores, &fingerprint("0.2")) else {
            panic!("a changed key is reported");
        };
        assert_eq!(keys, ["train.lr: 0.1 → 0.2"]);
        assert_eq!(
            status(run, Stage::Model, &fingerprint("0.1")),
            Status::Missing
        );
        let path = manifest_path(run, Stage::Scores);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"schema\": 1", "\"schema\": 99")).unwrap();
        assert_eq!(
            status(run, Stage::Scores, &fingerprint("0.1")),
            Status::Missing
        );
        invalidate(run, Stage::Scores).unwrap();
        invalidate(run, Stage::Scores).unwrap();
        assert!(!path.exists());
    }
}
