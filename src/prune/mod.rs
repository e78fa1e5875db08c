//! Pruning schedules: which channels go, step by step, in the order of a criterion's scores.
//!
//! [`order::Remover`] ranks the eligible channels once and removes them in chunks; the step
//! loop ([`schedule::run_steps`]) measures after each step and stops where the schedule's rule
//! says (a sweep at an accuracy floor or drop, a one-shot schedule at its target). Plans are
//! cumulative, in the original network's channel indices.

#![forbid(unsafe_code)]

mod log;
mod order;
mod results;
mod schedule;

pub use log::PruneLog;
pub use order::{eligible, Remover};
pub use results::{
    headline, reported_steps, FineTuned, Headline, Point, PruneResults, Score, Stop, Variant,
    SCHEMA,
};
pub use schedule::{run_steps, StopRule};
