//! Scores on disk: one safetensors file per criterion (one f64 tensor per DFC, named by its
//! first producer; the criterion and reduction in the metadata), and one long table of every
//! score (`dfc, channel, criterion, score`) as Parquet and CSV.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CriterionScores, DfcScores};
use crate::config::{CriterionName, Reduction};
use crate::graph::{read_safetensors, write_safetensors, GraphError};
use crate::util::tables::{write_csv, write_parquet};

/// The format written in each file's metadata; a file of another format is not read.
const FORMAT: &str = "prunelab-scores-1";
/// The metadata key of the [`Header`].
const HEADER: &str = "prunelab_scores";

/// What a scores file says about its tensors.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    criterion: CriterionName,
    reduction: Reduction,
    /// The DFCs (tensor names) in graph order.
    dfcs: Vec<String>,
    coupled: Vec<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Report(#[from] crate::util::tables::FileError),
}

/// The safetensors file of one criterion's scores.
pub fn scores_path(dir: &Path, criterion: CriterionName) -> PathBuf {
    dir.join(format!("{}.safetensors", criterion.as_str()))
}

/// Writes every criterion's file and the long table (`scores.parquet`, `scores.csv`).
pub fn write_scores(dir: &Path, all: &[CriterionScores]) -> Result<(), StoreError> {
    let io = |path: &Path, e: &dyn std::fmt::Display| StoreError::Invalid {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    for scores in all {
        let mut tensors = BTreeMap::new();
        for d in &scores.dfcs {
            let t = Tensor::from_vec(d.scores.clone(), d.scores.len(), &Device::Cpu)
                .map_err(GraphError::from)?;
            tensors.insert(d.dfc.clone(), t);
        }
        // One metadata entry: safetensors writes its metadata map in no fixed order.
        let header = Header {
            format: FORMAT.to_string(),
            criterion: scores.criterion,
            reduction: scores.reduction,
            dfcs: scores.dfcs.iter().map(|d| d.dfc.clone()).collect(),
            coupled: scores.dfcs.iter().map(|d| d.coupled).collect(),
        };
        let json = serde_json::to_string(&header).expect("headers serialise");
        let metadata = HashMap::from([(HEADER.to_string(), json)]);
        write_safetensors(&scores_path(dir, scores.criterion), &tensors, metadata)?;
    }
    let mut table = long_table(all).map_err(|e| io(dir, &e))?;
    write_parquet(&mut table, &dir.join("scores.parquet"))?;
    write_csv(&mut table, &dir.join("scores.csv"))?;
    Ok(())
}

/// One row per (criterion, DFC, channel).
fn long_table(all: &[CriterionScores]) -> PolarsResult<DataFrame> {
    let (mut dfc, mut channel, mut criterion, mut score) = (vec![], vec![], vec![], vec![]);
    for scores in all {
        for d in &scores.dfcs {
            for (j, &s) in d.scores.iter().enumerate() {
                dfc.push(d.dfc.as_str());
                channel.push(j as u32);
                criterion.push(scores.criterion.as_str());
                score.push(s);
            }
        }
    }
    df!("dfc" => dfc, "channel" => channel, "criterion" => criterion, "score" => score)
}

/// Reads one criterion's scores back.
pub fn read_scores(dir: &Path, criterion: CriterionName) -> Result<CriterionScores, StoreError> {
    let path = scores_path(dir, criterion);
    let invalid = |why: String| StoreError::Invalid {
        path: path.clone(),
        why,
    };
    let (tensors, metadata) = read_safetensors(&path, &Device::Cpu)?;
    let header: Header = metadata
        .get(HEADER)
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| {
            invalid(format!(
                "no readable {HEADER:?} in its metadata (not a scores file)"
            ))
        })?;
    if header.format != FORMAT {
        return Err(invalid(format!(
            "written in {}, not {FORMAT}",
            header.format
        )));
    }
    if header.criterion != criterion {
        return Err(invalid(format!(
            "holds {} scores",
            header.criterion.as_str()
        )));
    }
    let (reduction, order, coupled) = (header.reduction, header.dfcs, header.coupled);
    if order.len() != coupled.len() || order.len() != tensors.len() {
        return Err(invalid("its DFC list does not match its tensors".into()));
    }
    let mut dfcs = Vec::with_capacity(order.len());
    for (name, coupled) in order.into_iter().zip(coupled) {
        let t = tensors
            .get(&name)
            .ok_or_else(|| invalid(format!("no tensor for DFC {name}")))?;
        let scores = t
            .to_dtype(candle_core::DType::F64)
            .and_then(|t| t.to_vec1())
            .map_err(|e| invalid(format!("DFC {name}: {e}")))?;
        dfcs.push(DfcScores {
            dfc: name,
            coupled,
            scores,
        });
    }
    Ok(CriterionScores {
        criterion,
        reduction,
        dfcs,
    })
}
