//! prunelab: a research harness for structured channel pruning of convolutional networks.
//!
//! One TOML file describes an experiment ([`config::Experiment`]); [`experiment::run`] trains
//! (or loads, or resumes) the network it names — a [`graph::Graph`], the network as data —
//! evaluates it, scores every channel with the configured [`saliency`] criteria and writes
//! tables and figures.

mod atomic_file;
pub mod config;
pub mod correlation_stage;
pub mod data;
mod describe;
pub mod eval;
pub mod experiment;
pub mod exported;
mod fault;
pub mod fingerprint;
pub mod graph;
pub mod inspect;
pub mod latency;
pub mod model_source;
pub mod model_stage;
pub mod models;
pub mod oracle_stage;
pub mod prune;
pub mod prune_stage;
#[cfg(target_os = "linux")]
pub mod recycling;
pub mod report;
mod run_lock;
pub mod saliency;
pub mod scoring;
pub mod stage;
pub mod threads;
pub mod train;

pub use config::{ConfigErrors, Experiment};
pub use experiment::{prepare, run, Plan, Prepared, RunOptions, Summary};

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
    /// An input the experiment or the command line names is missing or unusable (the message
    /// starts with the key or flag).
    #[error("{0}")]
    Input(String),
    /// The run's checkpoint cannot be resumed as the experiment now stands.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Another process is writing into the run folder.
    #[error("{0}")]
    Busy(String),
    /// A run's saved model no longer matches its experiment.
    #[error("{0}")]
    Stale(String),
    /// A stage needs a trained model and there is none.
    #[error("{0}")]
    Untrained(String),
    /// A criterion could not score the model.
    #[error("{0}")]
    Saliency(String),
    #[error("{0}")]
    Device(String),
    /// A result computed again differs from the one recorded.
    #[error("{0}")]
    Differs(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code: 2 when the run is refused before it starts, because of what the
    /// user gave (the experiment, the command line, the files they name, a checkpoint made from
    /// other settings, a busy run folder); 1 for a failure while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Input(_)
            | Error::Resume(_)
            | Error::Busy(_)
            | Error::Stale(_)
            | Error::Untrained(_)
            | Error::Device(_)
            | Error::Data(_) => 2,
            _ => 1,
        }
    }
}
