//! The sweep: the scores stage's ranking removed step by step until the accuracy falls below
//! the floor or `max_drop`, reporting the last network within each headline drop.

use crate::config::PruneConfig;
use crate::prune::{headline, Headline, Point};

/// The headline points; no single network is chosen.
pub(super) fn report(config: &PruneConfig, points: &[Point]) -> (Vec<Headline>, Option<usize>) {
    (headline(points, &config.drops), None)
}
