//! The step loop shared by the schedules: remove a chunk, measure, checkpoint, and stop when
//! the schedule's rule says so. A loop resumed from its checkpointed points replays the same
//! removals without measuring them again.

use super::order::Remover;
use super::results::{Point, Stop};
use crate::config::{PruneConfig, PruneSchedule, Target};

/// When a schedule stops stepping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopRule {
    /// A sweep: below `floor`, or more than `max_drop` below the unpruned accuracy.
    Sweep { floor: f64, max_drop: Option<f64> },
    /// A one-shot schedule: once the target is reached.
    Target(Target),
}

impl StopRule {
    pub fn of(config: &PruneConfig, classes: usize) -> Self {
        match (config.schedule, config.target()) {
            (PruneSchedule::OneShot | PruneSchedule::Iterative, Some(target)) => {
                StopRule::Target(target)
            }
            _ => StopRule::Sweep {
                floor: config.floor_for(classes),
                max_drop: config.max_drop,
            },
        }
    }

    /// Whether each step needs its validation accuracy (a size target does not).
    pub fn evaluates_every_step(self) -> bool {
        !matches!(
            self,
            StopRule::Target(Target::Channels(_) | Target::Params(_) | Target::Macs(_))
        )
    }

    /// Why the schedule stops after `points` (the unpruned network first), if it does.
    pub fn reached(self, points: &[Point], eligible: usize) -> Option<Stop> {
        let (first, last) = (points.first()?, points.last()?);
        let accuracy = |p: &Point| p.validation.map(|v| v.accuracy);
        let drop = match (accuracy(first), accuracy(last)) {
            (Some(base), Some(now)) => Some(base - now),
            _ => None,
        };
        let removed = |now: f64, before: f64| 1.0 - now / before;
        match self {
            StopRule::Sweep { floor, max_drop } => {
                if accuracy(last).is_some_and(|a| a < floor) {
                    Some(Stop::Floor)
                } else if max_drop.zip(drop).is_some_and(|(m, d)| d > m) {
                    Some(Stop::MaxDrop)
                } else {
                    None
                }
            }
            StopRule::Target(target) => {
                let reached = match target {
                    Target::Channels(t) => {
                        (first.channels - last.channels) as f64 >= t * eligible as f64
                    }
                    Target::Params(t) => {
                        removed(last.parameters as f64, first.parameters as f64) >= t
                    }
                    Target::Macs(t) => removed(last.macs as f64, first.macs as f64) >= t,
                    Target::Drop(t) => drop.is_some_and(|d| d > t),
                };
                reached.then_some(Stop::Target)
            }
        }
    }
}

/// Steps `remover` until `rule` stops it or nothing more can be removed. `points` holds the
/// points of an interrupted run (at least the unpruned one); their removals are replayed, and
/// a replay that does not match them is an error (they were made from other scores).
/// `measure(remover, chunk, evaluate)` measures the network after a step; `checkpoint` sees
/// every point list as it grows.
pub fn run_steps<E>(
    remover: &mut Remover,
    points: &mut Vec<Point>,
    rule: StopRule,
    eligible: usize,
    mut measure: impl FnMut(&Remover, usize, bool) -> Result<Point, E>,
    mut checkpoint: impl FnMut(&[Point]) -> Result<(), E>,
    mismatch: impl Fn(usize) -> E,
) -> Result<Stop, E> {
    for p in &points[1..] {
        if remover.step() != p.chunk || p.channels + remover.removed_count() != points[0].channels {
            return Err(mismatch(p.step));
        }
    }
    loop {
        if let Some(stop) = rule.reached(points, eligible) {
            return Ok(stop);
        }
        let chunk = remover.step();
        if chunk == 0 {
            return Ok(Stop::Exhausted);
        }
        let point = measure(remover, chunk, rule.evaluates_every_step())?;
        points.push(point);
        checkpoint(points)?;
    }
}
