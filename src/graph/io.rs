//! Graphs and their tensors on disk: architecture JSON + safetensors, and PyTorch state dicts.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;

use super::ir::Graph;
use super::params::Params;
use super::GraphError;
use crate::util::atomic_file;

/// Saves `graph` as `<stem>.json` and its tensors as `<stem>.safetensors` (with `metadata` in
/// its header). The pair loads back with [`load_model`] without the experiment that made it.
pub fn save_model(
    graph: &Graph,
    params: &Params,
    stem: &Path,
    metadata: HashMap<String, String>,
) -> Result<(), GraphError> {
    let json = serde_json::to_vec_pretty(graph).expect("a graph always serialises");
    let json_path = with_extension(stem, "json");
    atomic_file::write(&json_path, &json).map_err(|source| GraphError::Io {
        path: json_path,
        source,
    })?;
    write_safetensors(
        &with_extension(stem, "safetensors"),
        &params.tensors(),
        metadata,
    )
}

/// The header metadata [`save_model`] stored, read without the tensors.
pub fn read_model_metadata(stem: &Path) -> Result<HashMap<String, String>, GraphError> {
    let path = with_extension(stem, "safetensors");
    let io = |source| GraphError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut length = [0u8; 8];
    let truncated = |expected: u64| GraphError::Format {
        path: path.clone(),
        message: format!("truncated: expected at least {expected} bytes, found {size}"),
    };
    file.read_exact(&mut length).map_err(|_| truncated(8))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER {
        return Err(GraphError::Format {
            path,
            message: format!("not a safetensors file (header length {length})"),
        });
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|_| truncated(8 + length))?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let parsed: Header = serde_json::from_slice(&header).map_err(|e| GraphError::Format {
        path: path.clone(),
        message: format!("unreadable safetensors header: {e}"),
    })?;
    Ok(parsed.metadata)
}

/// Headers are small; a larger length is corruption, not a header to allocate for.
const MAX_HEADER: u64 = 100 << 20;

/// Loads what [`save_model`] wrote.
pub fn load_model(stem: &Path, device: &Device) -> Result<(Graph, Params), GraphError> {
    let json_path = with_extension(stem, "json");
    let json = std::fs::read(&json_path).map_err(|source| GraphError::Io {
        path: json_path.clone(),
        source,
    })?;
    let graph: Graph = serde_json::from_slice(&json).map_err(|e| GraphError::Format {
        path: json_path,
        message: e.to_string(),
    })?;
    graph.shapes()?;
    let (tensors, _) = read_safetensors(&with_extension(stem, "safetensors"), device)?;
    let params = Params::from_tensors(&graph, tensors, device)?;
    Ok((graph, params))
}

/// Loads a PyTorch-style state dict (kuangliu names) saved as safetensors into `graph`'s
/// parameters. `num_batches_tracked` entries are ignored; any other difference is an error
/// that lists the offending keys.
pub fn load_state_dict(path: &Path, graph: &Graph, device: &Device) -> Result<Params, GraphError> {
    let (mut tensors, metadata) = read_safetensors(path, device)?;
    if metadata
        .get("format")
        .is_some_and(|f| f.starts_with("prunelab-checkpoint"))
    {
        return Err(GraphError::Format {
            path: path.to_path_buf(),
            message: "is a prunelab checkpoint, not a state dict; a finished run's weights are its model.safetensors".into(),
        });
    }
    tensors.retain(|name, _| !name.ends_with(".num_batches_tracked"));
    Params::from_tensors(graph, tensors, device).map_err(|e| match e {
        GraphError::Weights(why) => GraphError::Weights(format!("{}: {why}", path.display())),
        other => other,
    })
}

/// Writes named tensors plus string metadata, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
) -> Result<(), GraphError> {
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let bytes =
        safetensors::serialize(tensors.iter(), metadata).map_err(|e| GraphError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    atomic_file::write(path, &bytes).map_err(|source| GraphError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every tensor and the metadata of a safetensors file.
pub fn read_safetensors(
    path: &Path,
    device: &Device,
) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>), GraphError> {
    let bytes = std::fs::read(path).map_err(|source| GraphError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| GraphError::Format {
        path: path.to_path_buf(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        bad(truncation(&bytes).unwrap_or_else(|| format!("not a safetensors file: {e}")))
    })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors =
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(e.to_string()))?;
    let tensors: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let non_finite = non_finite(&tensors)?;
    if !non_finite.is_empty() {
        return Err(bad(format!(
            "holds NaN or infinite values in {} tensor(s): {}",
            non_finite.len(),
            non_finite.join(", ")
        )));
    }
    Ok((tensors, metadata))
}

/// "truncated: expected N bytes, found M" when `bytes` are a safetensors file cut short: its
/// header is cut, or its tensors end past the end of the file.
fn truncation(bytes: &[u8]) -> Option<String> {
    let length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    if length > MAX_HEADER {
        return None;
    }
    let found = bytes.len() as u64;
    let Some(header) = bytes.get(8..8 + length as usize) else {
        return Some(format!(
            "truncated: expected at least {} bytes, found {found}",
            8 + length
        ));
    };
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let end = header
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()?;
    let expected = 8 + length + end;
    (found < expected).then(|| format!("truncated: expected {expected} bytes, found {found}"))
}

/// The names of the floating-point tensors that hold a NaN or an infinity.
pub fn non_finite(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<String>, GraphError> {
    let mut found = Vec::new();
    for (name, tensor) in tensors {
        if tensor.dtype().is_float() {
            let values = tensor
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            if values.iter().any(|v| !v.is_finite()) {
                found.push(name.clone());
            }
        }
    }
    Ok(found)
}

fn with_extension(stem: &Path, extension: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_os_string();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}
