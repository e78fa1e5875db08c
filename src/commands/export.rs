//! `prunelab export`: a model's folder (a run's `model/`, or a pruned point the prune stage
//! exported) written as an ONNX model that onnxruntime and PyTorch read without prunelab.

use std::path::Path;

use candle_core::Device;

use super::eval::load_folder;
use crate::onnx;
use crate::util::output_path::check_output_file;
use crate::Error;

pub fn command(dir: &Path, out: &Path, fold_batchnorm: bool) -> Result<(), Error> {
    check_output_file("--onnx", out)?;
    let (graph, params) = load_folder(dir, &Device::Cpu)?;
    let model = onnx::to_onnx(&graph, &params, fold_batchnorm)?;
    onnx::write(out, &model)?;
    println!(
        "{}: {} nodes, {} parameters, opset {}{}",
        out.display(),
        model.graph.as_ref().map_or(0, |g| g.node.len()),
        graph.parameter_count(),
        onnx::OPSET,
        match fold_batchnorm {
            true => ", BatchNorm folded into the convolutions",
            false => "",
        }
    );
    Ok(())
}
