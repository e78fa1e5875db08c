//! `[model]`: the architecture and its starting weights, or an ONNX model.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[model]`: the architecture and where its weights come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// One of [`crate::models::ARCHITECTURES`]: `resnet8 … resnet110` (He et al. CIFAR ResNets),
    /// `resnet18 … resnet152` (kuangliu CIFAR ResNets), `vgg11 … vgg19` (with BatchNorm),
    /// `mobilenetv2` (kuangliu CIFAR MobileNetV2). Empty with `onnx`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arch: String,
    /// A PyTorch-style state dict (kuangliu names) in safetensors format to start from, e.g. made
    /// by `scripts/pth_to_safetensors.py`. With `train.epochs = 0` the run only evaluates it.
    pub weights: Option<PathBuf>,
    /// An ONNX model, graph and weights, instead of `arch` (and of `weights`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<PathBuf>,
    /// The ONNX model's input `[C, H, W]`, where the file leaves its size open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<[usize; 3]>,
    /// How the `model.onnx` written beside every saved network holds BatchNorm.
    #[serde(default, skip_serializing_if = "OnnxBatchNorm::is_kept")]
    pub onnx_batchnorm: OnnxBatchNorm,
}

/// BatchNorm in an exported ONNX model: kept as `BatchNormalization` nodes, or folded into the
/// convolutions before it (the inference form prunelab times).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxBatchNorm {
    #[default]
    Kept,
    Folded,
}

impl OnnxBatchNorm {
    fn is_kept(&self) -> bool {
        *self == OnnxBatchNorm::Kept
    }
}

impl ModelConfig {
    /// The network's name in tables and messages: the architecture, or the ONNX file's name.
    pub fn label(&self) -> String {
        match &self.onnx {
            Some(path) => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            None => self.arch.clone(),
        }
    }

    /// Whether the weights come with the model (`weights` or `onnx`).
    pub fn has_weights(&self) -> bool {
        self.weights.is_some() || self.onnx.is_some()
    }
}
