//! The order in which a schedule removes channels, and its chunks.
//!
//! Every eligible channel of every DFC is ranked once by its score, lowest first (ties by DFC,
//! then channel). Each step removes the next `ceil(chunk · present)` channels of that ranking,
//! `present` being the eligible channels still in the network, and passes over a channel that
//! is its DFC's last. The plan after any step is cumulative, in the original network's channel
//! indices.

use crate::graph::{ChannelPlan, Coupling};
use crate::saliency::CriterionScores;

/// Which DFCs a schedule may prune: all of them with coupled channels on, else only those
/// with one producer and one consumer.
pub fn eligible(found: &[Coupling], coupled: bool) -> Vec<bool> {
    found
        .iter()
        .map(|c| coupled || c.is_single_pair())
        .collect()
}

/// Removes channels chunk by chunk in the order of one criterion's scores.
#[derive(Debug, Clone)]
pub struct Remover {
    names: Vec<String>,
    /// Channels each DFC still has.
    left: Vec<usize>,
    /// Channels removed from each DFC, in removal order.
    removed: Vec<Vec<usize>>,
    /// (DFC, channel), lowest score first.
    order: Vec<(usize, usize)>,
    /// Position of the next candidate in `order`.
    cursor: usize,
    /// Eligible channels still present.
    present: usize,
    chunk: f64,
    /// Steps that removed channels.
    steps: usize,
}

impl Remover {
    /// Ranks the channels of the DFCs for which `eligible` is true. `chunk` is the fraction of
    /// the eligible channels still present that one step removes.
    pub fn new(scores: &CriterionScores, eligible: &[bool], chunk: f64) -> Self {
        assert_eq!(scores.dfcs.len(), eligible.len(), "one flag per DFC");
        let mut ranked: Vec<(f64, usize, usize)> = Vec::new();
        for (d, dfc) in scores.dfcs.iter().enumerate().filter(|(d, _)| eligible[*d]) {
            ranked.extend(dfc.scores.iter().enumerate().map(|(j, &s)| (s, d, j)));
        }
        // NaN ranks last (total order): a channel a criterion could not score goes last.
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        Self {
            names: scores.dfcs.iter().map(|d| d.dfc.clone()).collect(),
            left: scores.dfcs.iter().map(|d| d.scores.len()).collect(),
            removed: vec![Vec::new(); scores.dfcs.len()],
            present: ranked.len(),
            order: ranked.into_iter().map(|(_, d, j)| (d, j)).collect(),
            cursor: 0,
            chunk,
            steps: 0,
        }
    }

    /// The number of channels the next step removes, before it passes over last channels.
    pub fn next_chunk(&self) -> usize {
        ((self.chunk * self.present as f64).ceil() as usize).max(1)
    }

    /// Removes the next chunk; returns how many channels it removed (0 when every eligible
    /// DFC is down to one channel).
    pub fn step(&mut self) -> usize {
        let wanted = self.next_chunk();
        let mut taken = 0;
        while taken < wanted && self.cursor < self.order.len() {
            let (d, j) = self.order[self.cursor];
            self.cursor += 1;
            // A DFC's last channel never goes; it also stays last, so it is passed over for good.
            if self.left[d] > 1 {
                self.left[d] -= 1;
                self.removed[d].push(j);
                taken += 1;
            }
        }
        self.present -= taken;
        self.steps += usize::from(taken > 0);
        taken
    }

    /// Steps taken that removed channels.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// A fresh remover of the same ranking stepped `steps` times: the network at that step.
    pub fn at_step(&self, steps: usize) -> Self {
        let mut r = Self {
            left: self
                .left
                .iter()
                .zip(&self.removed)
                .map(|(l, r)| l + r.len())
                .collect(),
            removed: vec![Vec::new(); self.names.len()],
            present: self.present + self.removed_count(),
            cursor: 0,
            steps: 0,
            ..self.clone()
        };
        while r.steps < steps && r.step() > 0 {}
        r
    }

    /// Channels removed so far.
    pub fn removed_count(&self) -> usize {
        self.removed.iter().map(Vec::len).sum()
    }

    /// Channels each DFC still has.
    pub fn left(&self) -> &[usize] {
        &self.left
    }

    /// Everything removed so far, as a plan on the original network.
    pub fn plan(&self) -> ChannelPlan {
        let mut plan = ChannelPlan::default();
        for (name, removed) in self.names.iter().zip(&self.removed) {
            if !removed.is_empty() {
                let mut channels = removed.clone();
                channels.sort_unstable();
                plan.remove.insert(name.clone(), channels);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CriterionName, Reduction};
    use crate::saliency::DfcScores;

    fn scores(dfcs: &[&[f64]]) -> CriterionScores {
        CriterionScores {
            criterion: CriterionName::L1,
            reduction: Reduction::Sum,
            dfcs: dfcs
                .iter()
                .enumerate()
                .map(|(i, s)| DfcScores {
                    dfc: format!("d{i}"),
                    coupled: false,
                    scores: s.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn removes_the_lowest_scores_globally_in_chunks_of_what_is_left() {
        let s = scores(&[&[0.5, 0.1, 0.9], &[0.2, 0.3, 0.05, 0.7]]);
        let mut r = Remover::new(&s, &[true, true], 0.3);
        // ceil(0.3 · 7) = 3: d1/2 (0.05), d0/1 (0.1), d1/0 (0.2).
        assert_eq!(r.step(), 3);
        assert_eq!(
            r.plan().remove,
            [("d0".into(), vec![1]), ("d1".into(), vec![0, 2])].into()
        );
        // ceil(0.3 · 4) = 2: d1/1 (0.3), then d0/0 (0.5).
        assert_eq!(r.step(), 2);
        assert_eq!(r.left(), [1, 1]);
        // Only last channels remain.
        assert_eq!(r.step(), 0);
        assert_eq!(r.removed_count(), 5);
    }

    #[test]
    fn passes_over_last_channels_and_ineligible_dfcs() {
        let s = scores(&[&[0.0, 0.0], &[1.0, 2.0, 3.0], &[0.1]]);
        let mut r = Remover::new(&s, &[true, true, false], 0.99);
        // Wants ceil(0.99 · 5) = 5; only 1 of d0 and 2 of d1 may go.
        assert_eq!(r.step(), 3);
        assert_eq!(
            r.plan().remove,
            [("d0".into(), vec![0]), ("d1".into(), vec![0, 1])].into()
        );
        assert_eq!(r.left(), [1, 1, 1]);
    }
}
