//! Stage records: each stage writes its outputs under `results/<name>/<stage>/` and then,
//! last, `stage.json`: the fingerprint of the settings and inputs it read, and every output
//! with its SHA-256. A rerun skips a stage whose record matches what it would read now *and*
//! whose outputs are all there with those digests (a build system's action cache); a stage
//! killed before writing its record, or with an output lost or changed since, runs again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::fingerprint::{file_digest, Fingerprint};
use crate::Error;

/// The version of the artifacts' layout; a stage written by another is run again.
pub const SCHEMA: u32 = 2;

/// The record's own file name in a stage folder.
const RECORD: &str = "stage.json";

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
    /// Accuracy at equal budgets against each criterion's ρ: the prune and correlation stages
    /// side by side.
    Budgets,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Model => "model",
            Stage::Scores => "scores",
            Stage::Oracle => "oracle",
            Stage::Correlation => "correlation",
            Stage::Prune => "prune",
            Stage::Budgets => "budgets",
        }
    }

    /// Whether `path` (relative to the stage folder) holds partial work kept for a resume
    /// rather than an output: a finished stage does not depend on it, so losing it reruns
    /// nothing.
    fn is_scratch(self, path: &Path) -> bool {
        let first = path.components().next().map(|c| c.as_os_str());
        match self {
            Stage::Model => path == Path::new("checkpoint.safetensors"),
            Stage::Oracle => first == Some("dfcs".as_ref()),
            Stage::Prune => {
                path.file_name() == Some("points.json".as_ref())
                    || path.components().any(|c| c.as_os_str() == "state")
            }
            Stage::Scores | Stage::Correlation | Stage::Budgets => false,
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
    /// Every output, by path relative to the stage folder, with its SHA-256.
    pub outputs: BTreeMap<String, String>,
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
    /// Finished from these settings, but an output is gone or changed since: this one.
    Damaged(String),
}

fn manifest_path(run_dir: &Path, stage: Stage) -> PathBuf {
    stage.dir(run_dir).join(RECORD)
}

/// Compares a stage's record with `fingerprint`, and its outputs with their recorded digests.
pub fn status(run_dir: &Path, stage: Stage, fingerprint: &Fingerprint) -> Status {
    let Ok(bytes) = std::fs::read(manifest_path(run_dir, stage)) else {
        return Status::Missing;
    };
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.schema == SCHEMA && m.stage == stage => {
            let changed = m.fingerprint.differences(fingerprint);
            if !changed.is_empty() {
                return Status::Changed(changed);
            }
            match damaged_output(&stage.dir(run_dir), &m.outputs) {
                Some(why) => Status::Damaged(why),
                None => Status::Done(m),
            }
        }
        _ => Status::Missing,
    }
}

/// Whether a stage finished, from its record alone (what `prunelab status` shows): `None`
/// without a readable record, else `Ok` or what is wrong with its outputs.
pub fn recorded(run_dir: &Path, stage: Stage) -> Option<Result<Manifest, String>> {
    let bytes = std::fs::read(manifest_path(run_dir, stage)).ok()?;
    let m = serde_json::from_slice::<Manifest>(&bytes)
        .ok()
        .filter(|m| m.schema == SCHEMA && m.stage == stage)?;
    Some(match damaged_output(&stage.dir(run_dir), &m.outputs) {
        Some(why) => Err(why),
        None => Ok(m),
    })
}

/// The first recorded output that is missing or differs from its digest, said in words.
fn damaged_output(dir: &Path, outputs: &BTreeMap<String, String>) -> Option<String> {
    outputs
        .iter()
        .find_map(|(name, digest)| match file_digest(&dir.join(name)) {
            Ok(now) if &now == digest => None,
            Ok(_) => Some(format!("{name} changed since it was written")),
            Err(_) => Some(format!("{name} is missing")),
        })
}

/// Every output under the stage folder (files, not the record, not hidden temporaries, not
/// scratch), with its SHA-256.
fn outputs(stage: Stage, dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let mut found = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let folder = dir.join(&relative);
        let io = |source| Error::Io {
            path: folder.clone(),
            source,
        };
        for entry in std::fs::read_dir(&folder).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = relative.join(&name);
            if stage.is_scratch(&path) || path == Path::new(RECORD) {
                continue;
            }
            if entry.file_type().map_err(io)?.is_dir() {
                pending.push(path);
            } else {
                let digest = file_digest(&dir.join(&path)).map_err(|source| Error::Io {
                    path: dir.join(&path),
                    source,
                })?;
                found.insert(path.to_string_lossy().into_owned(), digest);
            }
        }
    }
    Ok(found)
}

/// Records a stage as finished, with the digest of every output; call after every output is
/// written.
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
        outputs: outputs(stage, &stage.dir(run_dir))?,
        seconds,
    };
    let path = manifest_path(run_dir, stage);
    Ok(crate::util::atomic_file::write_json(&path, &manifest)?)
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
        std::fs::write(&path, text.replace("\"schema\": 2", "\"schema\": 99")).unwrap();
        assert_eq!(
            status(run, Stage::Scores, &fingerprint("0.1")),
            Status::Missing
        );
        invalidate(run, Stage::Scores).unwrap();
        invalidate(run, Stage::Scores).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_lost_or_changed_output_undoes_the_stage_and_scratch_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let out = Stage::Oracle.dir(run);
        std::fs::create_dir_all(out.join("dfcs")).unwrap();
        std::fs::create_dir_all(out.join("tables")).unwrap();
        std::fs::write(out.join("oracle.json"), "{}").unwrap();
        std::fs::write(out.join("tables/oracle.csv"), "a,b\n").unwrap();
        std::fs::write(out.join("dfcs/0000.json"), "{}").unwrap();
        std::fs::write(out.join(".oracle.json.1-0.tmp.json"), "").unwrap();
        finish(run, Stage::Oracle, &fingerprint("0.1"), 1.0).unwrap();
        let Status::Done(record) = status(run, Stage::Oracle, &fingerprint("0.1")) else {
            panic!("a stage with its outputs is done");
        };
        let listed: Vec<&str> = record.outputs.keys().map(String::as_str).collect();
        assert_eq!(listed, ["oracle.json", "tables/oracle.csv"]);
        // SHA-256 of "{}", as `sha256sum` gives it.
        assert_eq!(
            record.outputs["oracle.json"],
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        std::fs::remove_file(out.join("dfcs/0000.json")).unwrap();
        assert!(matches!(
            status(run, Stage::Oracle, &fingerprint("0.1")),
            Status::Done(_)
        ));
        std::fs::write(out.join("tables/oracle.csv"), "a,c\n").unwrap();
        assert_eq!(
            status(run, Stage::Oracle, &fingerprint("0.1")),
            Status::Damaged("tables/oracle.csv changed since it was written".into())
        );
        std::fs::remove_file(out.join("tables/oracle.csv")).unwrap();
        assert_eq!(
            status(run, Stage::Oracle, &fingerprint("0.1")),
            Status::Damaged("tables/oracle.csv is missing".into())
        );
    }
}
