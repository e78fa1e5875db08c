//! `[model]`: the architecture and its starting weights.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[model]`: the architecture and where its weights come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// One of [`crate::models::ARCHITECTURES`]: `resnet8 … resnet110` (He et al. CIFAR ResNets),
    /// `resnet18 … resnet152` (kuangliu CIFAR ResNets), `vgg11 … vgg19` (with BatchNorm),
    /// `mobilenetv2` (kuangliu CIFAR MobileNetV2).
    pub arch: String,
    /// A PyTorch-style state dict (kuangliu names) in safetensors format to start from, e.g. made
    /// by `scripts/pth_to_safetensors.py`. With `train.epochs = 0` the run only evaluates it.
    pub weights: Option<PathBuf>,
}
