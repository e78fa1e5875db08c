//! The order in which a schedule removes channels, and its chunks.
//!
//! Every eligible channel of every DFC is ranked once by its score, lowest first (ties by DFC,
//! then channel). Each step takes the next `ceil(chunk · present)` channels of that ranking,
//! `present` being the eligible channels still in the network, and passes over a channel that
//! is its DFC's last. The plan after any step is cumulative, in the original network's channel
//! indices.
//!
//! With `round_to = N` every DFC's width stays a multiple of N (the kernels' tiles run whole):
//! a step removes from each DFC only as many of the channels it took as keep the width a
//! multiple of N, never below N, and the others wait, still present, for the next step's
//! (as Torch-Pruning's `round_to` removes fewer channels from a layer). A step that could
//! remove none takes more of the ranking until it removes some. A DFC narrower than N is left
//! as it is; one whose width is no multiple of N first falls to the multiple below.

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
    /// Channels taken from the ranking but not yet removed (waiting for a multiple of
    /// `round_to`), per DFC, in ranking order.
    waiting: Vec<Vec<usize>>,
    /// Every DFC's width stays a multiple of this.
    round_to: usize,
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
    /// the eligible channels still present that one step removes; every width stays a
    /// multiple of `round_to` (at least 1).
    pub fn new(scores: &CriterionScores, eligible: &[bool], chunk: f64, round_to: usize) -> Self {
        assert!(round_to >= 1, "round_to is at least 1");
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
            waiting: vec![Vec::new(); scores.dfcs.len()],
            round_to,
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
    /// DFC is down to its last channel, or to `round_to` of them).
    pub fn step(&mut self) -> usize {
        let mut wanted = self.next_chunk();
        let mut taken = 0;
        loop {
            while taken < wanted && self.cursor < self.order.len() {
                let (d, j) = self.order[self.cursor];
                self.cursor += 1;
                // Past what may go, a DFC's channels are passed over for good: they rank
                // after every channel that may.
                if self.waiting[d].len() < self.removable(d) {
                    self.waiting[d].push(j);
                    taken += 1;
                }
            }
            let removed = self.remove_waiting();
            if removed > 0 || self.cursor == self.order.len() {
                self.present -= removed;
                self.steps += usize::from(removed > 0);
                return removed;
            }
            wanted = taken + 1;
        }
    }

    /// How many of DFC `d`'s channels may still go: all but one, or with `round_to = N` all
    /// but N (none where fewer than N are left).
    fn removable(&self, d: usize) -> usize {
        let left = self.left[d];
        match self.round_to {
            1 => left - 1,
            n if left < n => 0,
            n => left - n,
        }
    }

    /// Removes from each DFC as many of its waiting channels, in ranking order, as leave its
    /// width a multiple of `round_to`; returns how many went.
    fn remove_waiting(&mut self) -> usize {
        let mut removed = 0;
        for d in 0..self.left.len() {
            let left = self.left[d];
            let waiting = &mut self.waiting[d];
            let kept = (left - waiting.len()).next_multiple_of(self.round_to);
            let going = left.saturating_sub(kept).min(waiting.len());
            self.removed[d].extend(waiting.drain(..going));
            self.left[d] -= going;
            removed += going;
        }
        removed
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
            waiting: vec![Vec::new(); self.names.len()],
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
        let mut r = Remover::new(&s, &[true, true], 0.3, 1);
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
        let mut r = Remover::new(&s, &[true, true, false], 0.99, 1);
        // Wants ceil(0.99 · 5) = 5; only 1 of d0 and 2 of d1 may go.
        assert_eq!(r.step(), 3);
        assert_eq!(
            r.plan().remove,
            [("d0".into(), vec![0]), ("d1".into(), vec![0, 1])].into()
        );
        assert_eq!(r.left(), [1, 1, 1]);
    }

    #[test]
    fn round_to_keeps_every_width_a_multiple_and_carries_the_rest_to_the_next_step() {
        // d0: 8 channels, scores 0..8; d1: 16 channels, scores 0.5, 1.5, …; d2: 3 channels
        // (narrower than 4: never pruned); d3: 6 channels (falls to 4 first).
        let d0: Vec<f64> = (0..8).map(f64::from).collect();
        let d1: Vec<f64> = (0..16).map(|v| f64::from(v) + 0.5).collect();
        let s = scores(&[
            &d0,
            &d1,
            &[-1.0, -2.0, -3.0],
            &[-0.5, 9.0, 9.0, 9.0, 9.0, -0.25],
        ]);
        let mut r = Remover::new(&s, &[true; 4], 0.2, 4);
        // Takes ceil(0.2 · 33) = 7: d3/0, d3/5, then d0/0, d1/0, d0/1, d1/1, d0/2. d3 goes
        // to 4; d0 and d1 wait below a multiple of 4.
        assert_eq!(r.step(), 2);
        assert_eq!(r.left(), [8, 16, 3, 4]);
        // Takes ceil(0.2 · 31) = 7 more: d1/2, d0/3 (d0 has 4 waiting: they go, and d0
        // stays at 4: its channels past that are passed over), d1/3 … d1/7 (8 waiting go).
        assert_eq!(r.step(), 12);
        assert_eq!(r.left(), [4, 8, 3, 4]);
        let mut steps = vec![];
        loop {
            let n = r.step();
            if n == 0 {
                break;
            }
            steps.push(n);
            assert!(r
                .left()
                .iter()
                .zip([8, 16, 3, 4])
                .all(|(&l, w)| l == w || l % 4 == 0));
        }
        assert_eq!(r.left(), [4, 4, 3, 4]);
        assert_eq!(steps, [4]);
        // The same steps replayed from the start give the same network.
        assert_eq!(r.at_step(2).left(), [4, 8, 3, 4]);
        let plan = r.plan();
        assert_eq!(plan.remove["d0"], [0, 1, 2, 3]);
        assert!(!plan.remove.contains_key("d2"));
    }
}
