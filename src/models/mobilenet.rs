//! MobileNetV2 for CIFAR, as in the kuangliu `pytorch-cifar` repository: a 3×3 stem of 32
//! channels at stride 1, seventeen inverted-residual blocks (1×1 expansion, 3×3 depthwise, 1×1
//! projection) with the second stage at stride 1, a 1×1 conv to 1280 channels, global average
//! pooling and `linear`. A block adds its input back when its stride is 1, through a 1×1 conv +
//! BN where the width changes. 2,296,922 parameters with 3 input channels and 10 classes.
//!
//! The depthwise conv of each block sits inside the channel-wise part of the block's DFC
//! (expansion → BN → ReLU → depthwise → BN → ReLU → projection): pruning an expanded channel
//! removes its depthwise filter too.

use crate::graph::{Graph, GraphBuilder, GraphError};

/// `(expansion, out channels, blocks, first stride)` of each stage.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

pub fn mobilenet_v2(channels: usize, size: usize, classes: usize) -> Result<Graph, GraphError> {
    let mut g = GraphBuilder::new(channels, size, size);
    let x = g.conv("conv1", g.input(), 32, 3, 1, 1)?;
    let x = g.batch_norm("bn1", x)?;
    let mut x = g.relu("relu", x)?;
    let mut index = 0;
    for &(expansion, out_channels, blocks, stride) in &STAGES {
        for b in 0..blocks {
            let stride = if b == 0 { stride } else { 1 };
            x = inverted_residual(&mut g, index, x, expansion, out_channels, stride)?;
            index += 1;
        }
    }
    let x = g.conv("conv2", x, 1280, 1, 1, 0)?;
    let x = g.batch_norm("bn2", x)?;
    let x = g.relu("relu2", x)?;
    let x = g.global_avg_pool("avgpool", x)?;
    let x = g.flatten("flatten", x)?;
    g.linear("linear", x, classes)?;
    Ok(g.finish())
}

fn inverted_residual(
    g: &mut GraphBuilder,
    index: usize,
    x: usize,
    expansion: usize,
    out_channels: usize,
    stride: usize,
) -> Result<usize, GraphError> {
    let name = |part: &str| format!("layers.{index}.{part}");
    let in_channels = g.channels(x);
    let y = g.conv(&name("conv1"), x, expansion * in_channels, 1, 1, 0)?;
    let y = g.batch_norm(&name("bn1"), y)?;
    let y = g.relu(&name("relu1"), y)?;
    let y = g.depthwise_conv(&name("conv2"), y, 3, stride, 1)?;
    let y = g.batch_norm(&name("bn2"), y)?;
    let y = g.relu(&name("relu2"), y)?;
    let y = g.conv(&name("conv3"), y, out_channels, 1, 1, 0)?;
    let y = g.batch_norm(&name("bn3"), y)?;
    if stride != 1 {
        return Ok(y);
    }
    let shortcut = if in_channels != out_channels {
        let s = g.conv(&name("shortcut.0"), x, out_channels, 1, 1, 0)?;
        g.batch_norm(&name("shortcut.1"), s)?
    } else {
        x
    };
    g.add(&name("add"), y, shortcut)
}
