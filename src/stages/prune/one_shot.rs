//! The one-shot schedule: the scores stage's ranking removed until the target, reporting the
//! one network it reaches (for an accuracy-drop target, the last within the drop).

use crate::config::{PruneConfig, Target};
use crate::prune::{headline, Headline, Point};

/// The network the target chose; no headline points.
pub(super) fn report(config: &PruneConfig, points: &[Point]) -> (Vec<Headline>, Option<usize>) {
    let chosen = match config.target() {
        Some(Target::Drop(d)) => headline(points, &[d])[0].step,
        _ => points.last().map(|p| p.step),
    };
    (Vec::new(), chosen)
}
