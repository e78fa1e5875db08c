//! Partial work of a long stage, kept for a resume (the oracle's DFCs, a sweep's points, an
//! iterative variant's steps): a value written with the layout version and the digest of what
//! the stage is made from, and read back only when both still match, so work made from other
//! settings is never resumed.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::util::atomic_file;
use crate::util::tables::FileError;

/// The file's layout: `value`'s fields beside the version and the digest.
#[derive(Serialize, Deserialize)]
struct Partial<T> {
    schema: u32,
    made_from: String,
    #[serde(flatten)]
    value: T,
}

/// Writes `value` to `path`, atomically, as made from `made_from` in layout `schema`.
pub fn write<T: Serialize>(
    path: &Path,
    schema: u32,
    made_from: &str,
    value: &T,
) -> Result<(), FileError> {
    let partial = Partial {
        schema,
        made_from: made_from.to_string(),
        value,
    };
    atomic_file::write_json(path, &partial)
}

/// The value at `path`, when it was written in layout `schema` from `made_from` (`None` for a
/// missing, unreadable or other file: the work is done again).
pub fn read<T: DeserializeOwned>(path: &Path, schema: u32, made_from: &str) -> Option<T> {
    let partial: Partial<T> = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (partial.schema == schema && partial.made_from == made_from).then_some(partial.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Steps {
        points: Vec<u32>,
    }

    #[test]
    fn work_is_read_back_only_in_its_layout_and_from_the_same_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("points.json");
        let steps = Steps { points: vec![3, 1] };
        write(&path, 2, "sha256:a", &steps).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "schema": 2, "made_from": "sha256:a", "points": [3, 1] })
        );
        assert_eq!(read::<Steps>(&path, 2, "sha256:a"), Some(steps));
        assert_eq!(read::<Steps>(&path, 2, "sha256:b"), None);
        assert_eq!(read::<Steps>(&path, 3, "sha256:a"), None);
        assert_eq!(
            read::<Steps>(&dir.path().join("none.json"), 2, "sha256:a"),
            None
        );
    }
}
