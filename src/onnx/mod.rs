//! ONNX models in and out: the message types, import into the graph IR, export from it.

mod export;
mod import;
pub mod proto;
mod tensors;

pub use export::{to_onnx, IR_VERSION, OPSET};
pub use import::import;

use std::path::Path;

use prost::Message;

use candle_core::Device;

use self::proto::ModelProto;
use crate::config::{DatasetInfo, OnnxBatchNorm};
use crate::graph::{ActShape, Graph, Params};
use crate::util::atomic_file;

/// Reads an ONNX model, refusing files that are not one (or are cut short) by name.
pub fn read(path: &Path) -> Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| {
        format!(
            "{}: not an ONNX model, or cut short ({e}; {} bytes)",
            path.display(),
            bytes.len()
        )
    })?;
    match &model.graph {
        Some(graph) if model.ir_version > 0 && !graph.node.is_empty() => Ok(model),
        _ => Err(format!(
            "{}: not an ONNX model (no IR version or no graph nodes)",
            path.display()
        )),
    }
}

/// The graph and weights of the ONNX model at `path` for data of `data`'s shape and classes:
/// its input `[C, H, W]` from the file or `input`, checked against the images, and its
/// output against the class count.
pub fn load(
    path: &Path,
    input: Option<[usize; 3]>,
    data: &DatasetInfo,
    device: &Device,
) -> Result<(Graph, Params), String> {
    let model = read(path)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let graph = model.graph.as_ref().expect("read() checked it");
    let (graph, params) =
        import(graph, dir, input, device).map_err(|e| format!("{}: {e}", path.display()))?;
    let images = [data.channels, data.size, data.size];
    let shapes = graph
        .shapes()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let ActShape::Map {
        channels,
        height,
        width,
    } = shapes[0]
    {
        if [channels, height, width] != images {
            return Err(format!(
                "{}: the model reads images of [{channels}, {height}, {width}], the data's are {images:?}",
                path.display()
            ));
        }
    }
    match shapes[graph.output()] {
        ActShape::Vector(n) if n == data.classes => Ok((graph, params)),
        ActShape::Vector(n) => Err(format!(
            "{}: the classifier has {n} outputs, the data has {} classes",
            path.display(),
            data.classes
        )),
        map => Err(format!(
            "{}: the model's output is a map ({map:?}), not a vector of class scores",
            path.display()
        )),
    }
}

/// Writes `graph` as the ONNX model `path`, BatchNorm kept or folded.
pub fn save(
    path: &Path,
    graph: &Graph,
    params: &Params,
    batchnorm: OnnxBatchNorm,
) -> Result<(), crate::Error> {
    let model = to_onnx(graph, params, batchnorm == OnnxBatchNorm::Folded)?;
    write(path, &model)
}

/// Writes `model` to `path` atomically.
pub fn write(path: &Path, model: &ModelProto) -> Result<(), crate::Error> {
    atomic_file::write(path, &model.encode_to_vec()).map_err(|source| crate::Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
