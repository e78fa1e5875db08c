//! The oracle with suffix runs and tiles against the naive oracle (a full forward pass per
//! channel), DFC by DFC, interleaved, on the same images: their times and their agreement.

use std::time::Instant;

use serde::Serialize;

use crate::data::Batch;
use crate::graph::{couplings, Graph, Params};
use crate::saliency::{clean_losses, oracle, OracleImages, OracleOptions, SaliencyError};

#[derive(Debug, Clone, Serialize)]
pub struct DfcOracleTiming {
    pub dfc: String,
    pub channels: usize,
    pub fast_seconds: f64,
    pub naive_seconds: f64,
    /// Largest |fast − naive| over the DFC's channels.
    pub largest_difference: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OracleComparison {
    pub images: usize,
    pub tile: usize,
    pub dfcs: Vec<DfcOracleTiming>,
    pub fast_seconds: f64,
    pub naive_seconds: f64,
}

/// Times both oracles on the first `limit` DFCs (all by default). Within each DFC the two run
/// one after the other, the first alternating between DFCs, so that drift of the machine's
/// speed falls on both.
pub fn compare_oracles(
    graph: &Graph,
    params: &Params,
    batches: &[Batch],
    tile: usize,
    limit: Option<usize>,
) -> Result<OracleComparison, SaliencyError> {
    let clean = clean_losses(graph, params, batches)?;
    let fast = OracleOptions {
        from_cut: true,
        tile,
    };
    let mut rows = Vec::new();
    for (index, dfc) in couplings(graph)?
        .iter()
        .enumerate()
        .take(limit.unwrap_or(usize::MAX))
    {
        let timed = |options: OracleOptions| -> Result<(Vec<f64>, f64), SaliencyError> {
            let started = Instant::now();
            let values = oracle(
                graph,
                params,
                dfc,
                0..dfc.channels,
                OracleImages {
                    batches,
                    clean: &clean,
                },
                options,
                &mut |_| {},
            )?;
            Ok((values, started.elapsed().as_secs_f64()))
        };
        let ((f, fast_seconds), (n, naive_seconds)) = if index % 2 == 0 {
            let f = timed(fast)?;
            (f, timed(OracleOptions::NAIVE)?)
        } else {
            let n = timed(OracleOptions::NAIVE)?;
            (timed(fast)?, n)
        };
        rows.push(DfcOracleTiming {
            dfc: dfc.name(graph).to_string(),
            channels: dfc.channels,
            fast_seconds,
            naive_seconds,
            largest_difference: f
                .iter()
                .zip(&n)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        });
    }
    Ok(OracleComparison {
        images: batches.iter().map(|b| b.labels.dims()[0]).sum(),
        tile,
        fast_seconds: rows.iter().map(|r| r.fast_seconds).sum(),
        naive_seconds: rows.iter().map(|r| r.naive_seconds).sum(),
        dfcs: rows,
    })
}
