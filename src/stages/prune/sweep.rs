//! The sweep: the scores stage's ranking removed step by step until the accuracy falls below
//! the floor or `max_drop`, reporting the last network within each headline drop.

use std::path::Path;

use super::ranked::{ranking, run_ranked};
use super::schedule::Schedule;
use super::Bench;
use crate::config::PruneConfig;
use crate::prune::{headline, Headline, Point, Variant};
use crate::Error;

pub(super) struct Sweep;

impl Schedule for Sweep {
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
    (headline(points, &config.drops), None)
}
