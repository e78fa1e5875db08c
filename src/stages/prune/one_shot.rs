//! The one-shot schedule: the scores stage's ranking removed until the target, reporting the
//! one network it reaches (for an accuracy-drop target, the last within the drop).

use std::path::Path;

use super::ranked::{ranking, run_ranked};
use super::schedule::Schedule;
use super::Bench;
use crate::config::{PruneConfig, Target};
use crate::prune::{headline, Headline, Point, Variant};
use crate::Error;

pub(super) struct OneShot;

impl Schedule for OneShot {
    fn run_variant(
        &self,
        bench: &Bench,
        eligible: &[bool],
        variant: &mut Variant,
        dir: &Path,
    ) -> Result<(), Error> {
        let remover = ranking(bench, variant, eligible)?;
        run_ranked(bench, remover, variant, dir, report)
    }
}

fn report(config: &PruneConfig, points: &[Point]) -> (Vec<Headline>, Option<usize>) {
    let chosen = match config.target() {
        Some(Target::Drop(d)) => headline(points, &[d])[0].step,
        _ => points.last().map(|p| p.step),
    };
    (Vec::new(), chosen)
}
