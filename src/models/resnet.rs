//! CIFAR ResNets.
//!
//! - [`kuangliu`]: the ResNet-18/34/50/101/152 of the kuangliu `pytorch-cifar` repository (and
//!   of the DFPC paper): 3×3 stem with 64 channels, no max-pool, four stages of 64/128/256/512
//!   planes, 1×1 projection shortcuts (`shortcut.0` conv, `shortcut.1` BN) where the shape
//!   changes, global average pooling, `linear`.
//! - [`cifar`]: He et al.'s 6n+2-layer CIFAR ResNets (20, 32, 56, 110, …) with 16/32/64
//!   channels. Where the shape changes we use a 1×1 projection + BN shortcut (He et al.'s
//!   option B), not the parameter-free zero-padding option A, so that every channel of the
//!   residual stream is an ordinary conv output that coupling analysis and surgery can see.
//!   This adds 16·32 + 32·64 = 2,560 conv weights and 2·(32 + 64) = 192 BN parameters to every
//!   depth (ResNet-20: 272,474 parameters with 10 classes; ResNet-56: 855,770).

use crate::graph::{Graph, GraphBuilder, GraphError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Basic,
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

pub fn kuangliu(
    block: Block,
    counts: [usize; 4],
    channels: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, GraphError> {
    let stages = [
        (64, counts[0], 1),
        (128, counts[1], 2),
        (256, counts[2], 2),
        (512, counts[3], 2),
    ];
    build(block, 64, &stages, channels, size, classes)
}

pub fn cifar(n: usize, channels: usize, size: usize, classes: usize) -> Result<Graph, GraphError> {
    build(
        Block::Basic,
        16,
        &[(16, n, 1), (32, n, 2), (64, n, 2)],
        channels,
        size,
        classes,
    )
}

/// Stem, then stages of `(planes, blocks, first stride)`, then pooling and the classifier.
fn build(
    block: Block,
    stem: usize,
    stages: &[(usize, usize, usize)],
    channels: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, GraphError> {
    let mut g = GraphBuilder::new(channels, size, size);
    let x = g.conv("conv1", g.input(), stem, 3, 1, 1)?;
    let x = g.batch_norm("bn1", x)?;
    let mut x = g.relu("relu", x)?;
    for (s, &(planes, blocks, stride)) in stages.iter().enumerate() {
        for b in 0..blocks {
            let prefix = format!("layer{}.{b}", s + 1);
            x = residual_block(
                &mut g,
                &prefix,
                block,
                x,
                planes,
                if b == 0 { stride } else { 1 },
            )?;
        }
    }
    let x = g.global_avg_pool("avgpool", x)?;
    let x = g.flatten("flatten", x)?;
    g.linear("linear", x, classes)?;
    Ok(g.finish())
}

fn residual_block(
    g: &mut GraphBuilder,
    prefix: &str,
    block: Block,
    x: usize,
    planes: usize,
    stride: usize,
) -> Result<usize, GraphError> {
    let name = |part: &str| format!("{prefix}.{part}");
    let out_channels = planes * block.expansion();
    let body = match block {
        Block::Basic => {
            let y = g.conv(&name("conv1"), x, planes, 3, stride, 1)?;
            let y = g.batch_norm(&name("bn1"), y)?;
            let y = g.relu(&name("relu1"), y)?;
            let y = g.conv(&name("conv2"), y, planes, 3, 1, 1)?;
            g.batch_norm(&name("bn2"), y)?
        }
        Block::Bottleneck => {
            let y = g.conv(&name("conv1"), x, planes, 1, 1, 0)?;
            let y = g.batch_norm(&name("bn1"), y)?;
            let y = g.relu(&name("relu1"), y)?;
            let y = g.conv(&name("conv2"), y, planes, 3, stride, 1)?;
            let y = g.batch_norm(&name("bn2"), y)?;
            let y = g.relu(&name("relu2"), y)?;
            let y = g.conv(&name("conv3"), y, out_channels, 1, 1, 0)?;
            g.batch_norm(&name("bn3"), y)?
        }
    };
    let shortcut = if stride != 1 || g.channels(x) != out_channels {
        let s = g.conv(&name("shortcut.0"), x, out_channels, 1, stride, 0)?;
        g.batch_norm(&name("shortcut.1"), s)?
    } else {
        x
    };
    let sum = g.add(&name("add"), body, shortcut)?;
    g.relu(&name("relu"), sum)
}
