//! prunelab: a research harness for structured channel pruning of convolutional networks.
//!
//! One TOML file describes an experiment ([`config::Experiment`]); [`experiment::run`] trains
//! (or loads, or resumes) the network it names — a [`graph::Graph`], the network as data —
//! evaluates it and writes tables and figures.

mod atomic_file;
pub mod config;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod graph;
pub mod inspect;
pub mod latency;
pub mod models;
pub mod report;
pub mod train;

pub use config::{ConfigErrors, Experiment};
pub use experiment::{run, Plan, RunOptions, Summary};

/// Every failure the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigErrors),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// A file the experiment names does not exist (the message starts with the key).
    #[error("{0}")]
    MissingInput(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("{0}")]
    Device(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code: 2 for an invalid experiment or an input it names that is
    /// missing, 1 for a failure while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::MissingInput(_)
            | Error::Data(data::DataError::Missing { .. }) => 2,
            _ => 1,
        }
    }
}
