//! VGG with BatchNorm for CIFAR, as in kuangliu `pytorch-cifar`: `features.<i>` numbered as
//! PyTorch's `nn.Sequential` numbers them (conv with bias, BN, ReLU; `M` = 2×2 max-pool), one `classifier`
//! linear layer on the 512 pooled features. Five pools need inputs of at least 32×32.

use crate::graph::{Graph, GraphBuilder, GraphError};

const M: usize = 0;

fn config(arch: &str) -> &'static [usize] {
    match arch {
        "vgg11" => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        "vgg13" => &[
            64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M,
        ],
        "vgg16" => &[
            64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
        ],
        _ => &[
            64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512,
            512, M,
        ],
    }
}

pub fn vgg(arch: &str, channels: usize, size: usize, classes: usize) -> Result<Graph, GraphError> {
    let mut g = GraphBuilder::new(channels, size, size);
    let mut x = g.input();
    let mut index = 0;
    for &width in config(arch) {
        if width == M {
            x = g.max_pool(&format!("features.{index}"), x, 2, 2)?;
            index += 1;
        } else {
            x = g.conv_with_bias(&format!("features.{index}"), x, width, 3, 1, 1)?;
            x = g.batch_norm(&format!("features.{}", index + 1), x)?;
            x = g.relu(&format!("features.{}", index + 2), x)?;
            index += 3;
        }
    }
    // kuangliu ends `features` with a no-op AvgPool2d(1, 1); leaving it out changes no name.
    let x = g.flatten("flatten", x)?;
    g.linear("classifier", x, classes)?;
    Ok(g.finish())
}
