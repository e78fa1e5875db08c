//! prunelab: a research harness for structured channel pruning of convolutional networks.
//!
//! One TOML file describes an experiment ([`config::Experiment`]); [`pipeline::run`] trains
//! (or loads, or resumes) the network it names, scores every channel with the configured
//! [`saliency`] criteria, compares them with the oracle, prunes and measures.
//!
//! The modules, from the top floor down (a module imports only from floors below it):
//!
//! - [`cli`], [`commands`]: the command line and one file per subcommand;
//! - [`pipeline`]: the only place that knows the order of the stages;
//! - [`stages`]: one stage abstraction (what a stage reads, its fingerprint, its outputs) and a
//!   file per stage: model, scores, oracle, correlation, prune, budgets;
//! - [`saliency`], [`prune`], [`train`]: the criteria, the schedules' steps, SGD and its loop;
//! - [`stats`], [`report`], [`eval`], [`bench`]: rank correlation and the study; tables and
//!   figures; accuracy and the latency protocol; benchmarks;
//! - [`models`], [`exec`], [`graph`]: built-in architectures as graphs; the executor; the
//!   network as data (IR, couplings, surgery, parameters, persistence);
//! - [`kernels`]: the f32 CPU kernels, the only module with `unsafe` (with the allocator);
//! - [`config`], [`data`], [`util`]: the experiment schema, the datasets, atomic files, locks
//!   and threads.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod exec;
pub mod graph;
pub mod grid;
pub mod kernels;
pub mod models;
pub mod onnx;
pub mod pipeline;
pub mod prune;
pub mod report;
pub mod saliency;
pub mod stages;
pub mod stats;
pub mod train;
pub mod util;

pub use config::{ConfigErrors, Experiment};
pub use error::Error;
pub use pipeline::{prepare, run, Prepared, RunOptions, Summary};
pub use stages::Plan;
