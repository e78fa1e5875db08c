//! `[latency]`: how inference time is measured.

use serde::{Deserialize, Serialize};

use super::MAX_BATCH;

/// `[latency]`: how inference time is measured. Both sides of a comparison run their fused
/// inference form, interleaved (A B A B …) so that machine drift hits both alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Batch sizes to time, each separately. Default [1, 64].
    #[serde(default = "default_latency_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Worker threads while timing. Default: the experiment's `threads` (every core if unset).
    pub threads: Option<usize>,
    /// Untimed forward passes of each model before timing. Default 3.
    #[serde(default = "default_latency_warmup")]
    pub warmup: usize,
    /// Timed forward passes of each model; the median is reported. Default 20.
    #[serde(default = "default_latency_repeats")]
    pub repeats: usize,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [latency] key has a default")
    }
}

fn default_latency_batch_sizes() -> Vec<usize> {
    vec![1, 64]
}
fn default_latency_warmup() -> usize {
    3
}
fn default_latency_repeats() -> usize {
    20
}

impl LatencyConfig {
    /// The rules serde cannot check.
    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        let l = self;
        if l.batch_sizes.is_empty() || l.batch_sizes.iter().any(|b| !(1..=MAX_BATCH).contains(b)) {
            fail(
                "latency.batch_sizes",
                format!(
                    "must list batch sizes in 1..={MAX_BATCH} (got {:?})",
                    l.batch_sizes
                ),
            );
        }
        if l.warmup > 10_000 {
            fail(
                "latency.warmup",
                format!("must be at most 10000 (got {})", l.warmup),
            );
        }
        if !(1..=100_000).contains(&l.repeats) {
            fail(
                "latency.repeats",
                format!("must be in 1..=100000 (got {})", l.repeats),
            );
        }
    }
}
