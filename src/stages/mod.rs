//! The stages of an experiment: model → scores → oracle → correlation → prune → budgets. Each
//! writes under `results/<name>/<stage>/` and records what it was made from and what it wrote
//! ([`record`]); [`crate::pipeline`] decides their order.

#![forbid(unsafe_code)]

pub mod budgets;
pub mod correlation;
pub mod fingerprints;
pub mod model;
pub mod model_source;
pub mod oracle;
mod partial;
mod plan;
pub mod prune;
pub mod record;
pub mod scores;
mod skeleton;

pub use fingerprints::Fingerprints;
pub use plan::{device, Plan};
pub use skeleton::{reuse_or_run, Context, StageRun};
