//! The crate's error, and the exit code each kind maps to.

#![forbid(unsafe_code)]

use crate::{config, data, graph, train, util};

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
    File(#[from] util::tables::FileError),
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
    /// Tasks of a grid failed (each has its log).
    #[error("{0}")]
    Tasks(String),
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
