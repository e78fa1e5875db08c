//! Builders that emit a [`Graph`] for the CIFAR-style architectures.
//!
//! Input channels, input size and class count come from the dataset, so the same names build
//! a 1×28×28 Fashion-MNIST network or a 3×32×32 CIFAR one.

#![forbid(unsafe_code)]

mod mobilenet;
mod resnet;
mod vgg;

use crate::graph::{Graph, GraphError};

/// Every architecture name `[model] arch` accepts.
pub const ARCHITECTURES: &[&str] = &[
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "mobilenetv2",
];

/// Builds `arch` for `[channels, size, size]` inputs and `classes` outputs.
pub fn build(
    arch: &str,
    channels: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, GraphError> {
    use resnet::Block::{Basic, Bottleneck};
    let graph = match arch {
        "resnet8" => resnet::cifar(1, channels, size, classes),
        "resnet14" => resnet::cifar(2, channels, size, classes),
        "resnet20" => resnet::cifar(3, channels, size, classes),
        "resnet32" => resnet::cifar(5, channels, size, classes),
        "resnet44" => resnet::cifar(7, channels, size, classes),
        "resnet56" => resnet::cifar(9, channels, size, classes),
        "resnet110" => resnet::cifar(18, channels, size, classes),
        "resnet18" => resnet::kuangliu(Basic, [2, 2, 2, 2], channels, size, classes),
        "resnet34" => resnet::kuangliu(Basic, [3, 4, 6, 3], channels, size, classes),
        "resnet50" => resnet::kuangliu(Bottleneck, [3, 4, 6, 3], channels, size, classes),
        "resnet101" => resnet::kuangliu(Bottleneck, [3, 4, 23, 3], channels, size, classes),
        "resnet152" => resnet::kuangliu(Bottleneck, [3, 8, 36, 3], channels, size, classes),
        "vgg11" | "vgg13" | "vgg16" | "vgg19" => vgg::vgg(arch, channels, size, classes),
        "mobilenetv2" => mobilenet::mobilenet_v2(channels, size, classes),
        _ => {
            return Err(GraphError::Invalid(format!(
                "unknown architecture {arch:?}"
            )))
        }
    };
    graph.map_err(|e| match e {
        GraphError::Invalid(why) => {
            GraphError::Invalid(format!("{arch} on {channels}×{size}×{size} inputs: {why}"))
        }
        other => other,
    })
}
