//! What a run's artefacts were made from, recorded beside them so that a resume or a later
//! command can tell whether the experiment file still describes them.
//!
//! A fingerprint is a flat map from setting (`train.lr`, `model.arch`, …) to its value as
//! written in JSON, defaults resolved, plus SHA-256 digests of the inputs whose contents
//! matter: the weights file (`model.weights`) and, once the data is read, the images and labels
//! (`data.contents`). The data folder's path is not a setting: the same files elsewhere are the
//! same data, and other files at the same path are not.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Settings and input digests, by dotted key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// A stage's fingerprint: the config `sections` it reads (flattened to `a.b` keys) and
    /// digests of its inputs.
    pub fn of_stage<'a>(
        sections: &Value,
        inputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut map = BTreeMap::new();
        flatten("", sections, &mut map);
        for (key, digest) in inputs {
            map.insert(key.to_string(), digest.to_string());
        }
        Self(map)
    }

    /// A fingerprint of the given keys and values.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// SHA-256 of the whole fingerprint: one value that names what it describes.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.to_json().as_bytes())))
    }

    /// The same fingerprint with `key` set to `value`.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_string(), value.to_string());
        self
    }

    /// The same fingerprint without `key` (to compare where that input was not read).
    pub fn without(mut self, key: &str) -> Self {
        self.0.remove(key);
        self
    }

    /// The settings that differ, as `key: recorded → now` lines (empty when they agree).
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.0.keys().chain(now.0.keys()).collect();
        let show = |v: Option<&String>| v.map_or("(absent)".to_string(), |v| v.clone());
        keys.into_iter()
            .filter(|k| self.0.get(*k) != now.0.get(*k))
            .map(|k| format!("{k}: {} → {}", show(self.0.get(k)), show(now.0.get(k))))
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("string maps serialise")
    }

    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok().map(Self)
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// SHA-256 of a file's contents, in hex.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// Bytes in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha256_of_a_known_input_is_standard() {
        // FIPS 180-2 test vector.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            file_digest(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn changed_keys_are_named_with_both_values_and_json_round_trips() {
        let a = Fingerprint::from_pairs([("train.lr", "0.1"), ("train.epochs", "200")]);
        let b = Fingerprint::from_pairs([("train.lr", "0.2"), ("train.epochs", "4")]);
        assert_eq!(
            a.differences(&b),
            ["train.epochs: 200 → 4", "train.lr: 0.1 → 0.2"]
        );
        assert!(a.differences(&a.clone()).is_empty());
        assert_eq!(Fingerprint::from_json(&a.to_json()), Some(a));
    }
}
