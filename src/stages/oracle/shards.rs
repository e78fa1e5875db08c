//! The oracle's shards: contiguous runs of channels of about equal cost, each a task of a grid;
//! a shard's piece of a DFC is kept as `dfcs/<dfc>-<from>-<to>.json`, and the stage, run
//! whole, assembles the pieces that cover a DFC.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{partial, DfcOracle, Inputs, Partial, SCHEMA};
use crate::graph::{Coupling, Graph};

/// What a shard did.
#[derive(Debug, Clone, Serialize)]
pub struct ShardOutcome {
    pub shard: usize,
    pub shards: usize,
    pub pieces: usize,
    /// Pieces found done.
    pub kept: usize,
    pub channels: usize,
    pub seconds: f64,
}

impl std::fmt::Display for ShardOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oracle shard {}/{}: {} channels in {} pieces ({} found done) in {:.1} s",
            self.shard + 1,
            self.shards,
            self.channels,
            self.pieces,
            self.kept,
            self.seconds
        )
    }
}

/// Channels `channels` of DFC `dfc`: one shard's part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub dfc: usize,
    pub channels: Range<usize>,
}

/// Shard `shard` of `shards`: a contiguous run of the channels, DFC after DFC, whose runs cost
/// about a `shards`-th of the whole; every shard has at least one channel.
pub(super) fn shard_pieces(inputs: &Inputs, shards: usize, shard: usize) -> Vec<Piece> {
    let sizes: Vec<(usize, u64)> = inputs
        .found
        .iter()
        .zip(&inputs.channel_macs)
        .map(|(d, &m)| (d.channels, m))
        .collect();
    pieces_of(&sizes, shards, shard)
}

/// [`shard_pieces`] on (channels, cost per channel) per DFC.
fn pieces_of(sizes: &[(usize, u64)], shards: usize, shard: usize) -> Vec<Piece> {
    let n: usize = sizes.iter().map(|s| s.0).sum();
    let total: u128 = sizes.iter().map(|&(c, m)| c as u128 * m as u128).sum();
    // The cost of the channels before each global channel index.
    let mut before = Vec::with_capacity(n + 1);
    let mut sum = 0u128;
    for &(c, m) in sizes {
        for _ in 0..c {
            before.push(sum);
            sum += m as u128;
        }
    }
    before.push(sum);
    let boundary = |j: usize| -> usize {
        let target = total * j as u128 / shards as u128;
        before.partition_point(|&b| b < target)
    };
    let mut bounds = vec![0usize; shards + 1];
    bounds[shards] = n;
    for j in 1..shards {
        bounds[j] = boundary(j).clamp(bounds[j - 1] + 1, n - (shards - j));
    }
    let (from, to) = (bounds[shard], bounds[shard + 1]);
    let mut pieces = Vec::new();
    let mut first = 0;
    for (dfc, &(c, _)) in sizes.iter().enumerate() {
        let (lo, hi) = (from.max(first), to.min(first + c));
        if lo < hi {
            pieces.push(Piece {
                dfc,
                channels: lo - first..hi - first,
            });
        }
        first += c;
    }
    pieces
}

pub(super) fn piece_path(dir: &Path, piece: &Piece) -> PathBuf {
    dir.join("dfcs").join(format!(
        "{:04}-{}-{}.json",
        piece.dfc, piece.channels.start, piece.channels.end
    ))
}

/// A shard's piece, if it was made from the same inputs.
pub(super) fn read_piece(
    dir: &Path,
    piece: &Piece,
    made_from: &str,
    dfc: &Coupling,
    graph: &Graph,
) -> Option<DfcOracle> {
    let part: Partial = partial::read(&piece_path(dir, piece), SCHEMA, made_from)?;
    (part.result.dfc == dfc.name(graph)
        && part.from == piece.channels.start
        && part.result.signed.len() == piece.channels.len())
    .then_some(part.result)
}

/// DFC `index` whole from the pieces in `dir` made from `made_from`, if they cover it.
pub(super) fn assemble_pieces(
    dir: &Path,
    index: usize,
    made_from: &str,
    dfc: &Coupling,
    graph: &Graph,
) -> Option<DfcOracle> {
    let prefix = format!("{index:04}-");
    let mut pieces: Vec<Piece> = std::fs::read_dir(dir.join("dfcs"))
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let range = name.strip_prefix(&prefix)?.strip_suffix(".json")?;
            let (from, to) = range.split_once('-')?;
            Some(Piece {
                dfc: index,
                channels: from.parse().ok()?..to.parse().ok()?,
            })
        })
        .collect();
    pieces.sort_by_key(|p| (p.channels.start, std::cmp::Reverse(p.channels.end)));
    let mut signed = Vec::with_capacity(dfc.channels);
    for piece in &pieces {
        if piece.channels.start == signed.len() {
            if let Some(part) = read_piece(dir, piece, made_from, dfc, graph) {
                signed.extend(part.signed);
            }
        }
    }
    (signed.len() == dfc.channels).then(|| DfcOracle {
        dfc: dfc.name(graph).to_string(),
        coupled: dfc.is_coupled(),
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_channels_into_contiguous_runs_of_equal_cost() {
        // Three DFCs: 4 channels of cost 1, 2 of cost 4, 6 of cost 1 (18 in all).
        let sizes = [(4, 1), (2, 4), (6, 1)];
        let all: Vec<Vec<Piece>> = (0..2).map(|k| pieces_of(&sizes, 2, k)).collect();
        let piece = |dfc, channels| Piece { dfc, channels };
        // Half the cost (9) is reached where the third DFC starts.
        assert_eq!(all[0], [piece(0, 0..4), piece(1, 0..2)]);
        assert_eq!(all[1], [piece(2, 0..6)]);
        // As many shards as channels: one channel each, in order.
        let one_each: Vec<Piece> = (0..12).flat_map(|k| pieces_of(&sizes, 12, k)).collect();
        assert_eq!(one_each.len(), 12);
        assert!(one_each.iter().all(|p| p.channels.len() == 1));
        // One costly channel cannot leave a later shard empty.
        let skewed = [(1, 1000), (3, 1)];
        for k in 0..3 {
            assert!(!pieces_of(&skewed, 3, k).is_empty());
        }
    }
}
