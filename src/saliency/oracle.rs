//! The oracle: for each channel of a DFC, the change of the mean cross-entropy on a fixed set of
//! images when the channel is zeroed in every member — exactly what removing it does, since a
//! zeroed channel reaches no consumer ([`ChannelMask`]). BatchNorm uses running statistics.
//!
//! Everything before the DFC's first consumer is, but for the masked channel itself, the same
//! for all its channels: before it, the channels reach only channel-wise members, which never
//! mix channel j into another. So the prefix of the graph runs once per batch, unmasked; the
//! values live at the cut that carry the DFC are masked there, and only the suffix runs per
//! channel. The suffix runs for `tile` channels at once: the live values are repeated `tile`
//! times and each copy gets its own per-example mask. With `from_cut: false, tile: 1` this is the naive oracle (a
//! full forward pass per channel), kept as the reference the fast one is measured against.

use candle_core::{DType, Tensor, D};

use super::SaliencyError;
use crate::data::Batch;
use crate::exec::{run, ChannelMask, Live, Mode, NoTap, Tap};
use crate::graph::{Coupling, Graph, Params};

/// How the oracle runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleOptions {
    /// Start each channel's run at the DFC's first consumer ([`suffix_start`]; the prefix runs
    /// once per batch); otherwise every run starts at the input.
    pub from_cut: bool,
    /// Channels zeroed at once, one per copy of the batch.
    pub tile: usize,
}

impl OracleOptions {
    /// A full forward pass per channel.
    pub const NAIVE: OracleOptions = OracleOptions {
        from_cut: false,
        tile: 1,
    };
}

/// Where the oracle's per-channel runs of `dfc` start: its first consumer.
pub fn suffix_start(dfc: &Coupling) -> usize {
    dfc.consumers.iter().copied().min().unwrap_or(0)
}

/// Each example's cross-entropy, `[N]`.
pub fn example_losses(logits: &Tensor, labels: &Tensor) -> Result<Tensor, SaliencyError> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(log_p.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?)
}

/// The summed cross-entropy of each batch with no channel removed.
pub fn clean_losses(
    graph: &Graph,
    params: &Params,
    batches: &[Batch],
) -> Result<Vec<f64>, SaliencyError> {
    batches
        .iter()
        .map(|b| {
            let logits = crate::exec::forward(graph, params, &b.images, Mode::EVAL)?.output;
            summed(&example_losses(&logits, &b.labels)?)
        })
        .collect()
}

fn summed(t: &Tensor) -> Result<f64, SaliencyError> {
    Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar()?)
}

/// The images the oracle averages over: batches, and each batch's summed loss of the network
/// as is ([`clean_losses`]).
#[derive(Clone, Copy)]
pub struct OracleImages<'a> {
    pub batches: &'a [Batch],
    pub clean: &'a [f64],
}

/// The signed oracle of `channels` of `dfc` (all: `0..dfc.channels`): the mean over `images` of
/// ℓ(channel zeroed) − ℓ(network as is).
/// `on_tile` is told of each finished run with the number of channels × images it covered.
pub fn oracle(
    graph: &Graph,
    params: &Params,
    dfc: &Coupling,
    channels: std::ops::Range<usize>,
    images: OracleImages,
    options: OracleOptions,
    on_tile: &mut dyn FnMut(usize),
) -> Result<Vec<f64>, SaliencyError> {
    let c = dfc.channels;
    let tile = options.tile.max(1);
    let cut = if options.from_cut {
        suffix_start(dfc)
    } else {
        0
    };
    let suffix = cut..graph.nodes.len();
    let mut sums = vec![0.0f64; channels.len()];
    let mut seen = 0usize;
    for (batch, &clean) in images.batches.iter().zip(images.clean) {
        let n = batch.labels.dim(0)?;
        let device = batch.images.device();
        let input = Live::input(batch.images.clone());
        // A run from the input starts from the input itself.
        let prefix = if cut == 0 {
            input
        } else {
            run(graph, params, input, 0..cut, Mode::EVAL, &mut NoTap)?.live
        };
        for start in channels.clone().step_by(tile) {
            let k = tile.min(channels.end - start);
            let repeat = |t: &Tensor| Tensor::cat(&vec![t; k], 0);
            let mut keep = vec![1f32; k * n * c];
            for copy in 0..k {
                for row in copy * n..(copy + 1) * n {
                    keep[row * c + start + copy] = 0.0;
                }
            }
            let mut mask = ChannelMask::default();
            mask.add(dfc, &Tensor::from_vec(keep, (k * n, c), device)?)?;
            // Carriers computed before the cut are masked where they are live.
            let mut live = Live::default();
            for (&node, value) in &prefix.0 {
                live.0.insert(node, mask.after(node, repeat(value)?)?);
            }
            let logits = run(graph, params, live, suffix.clone(), Mode::EVAL, &mut mask)?
                .live
                .into_output(graph)?;
            let losses: Vec<f64> = example_losses(&logits, &repeat(&batch.labels)?)?
                .to_dtype(DType::F64)?
                .to_vec1()?;
            for copy in 0..k {
                sums[start - channels.start + copy] +=
                    losses[copy * n..(copy + 1) * n].iter().sum::<f64>() - clean;
            }
            on_tile(k * n);
        }
        seen += n;
    }
    Ok(sums.into_iter().map(|s| s / seen.max(1) as f64).collect())
}
