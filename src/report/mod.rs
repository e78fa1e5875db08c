//! Result tables (polars) and figures (plotters).

#![forbid(unsafe_code)]

pub mod across_seeds;
mod budgets;
mod curves;
mod figure;
pub mod grid_index;
mod prune;
mod prune_figures;
mod regenerate;
mod seed_figures;
mod study;
mod study_figures;
mod tables;
mod text;

pub use budgets::write_budgets;
pub use curves::training_curves;
pub use prune::{headline_markdown, read_prune, write_prune};
pub use regenerate::{Regenerated, StoredResults};
pub use study::{read_study, write_study, StoredStudy};
pub use tables::{write_train_metrics, write_train_timing};
