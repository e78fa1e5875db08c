//! What a finished run reports, as the last lines it prints.

use std::path::PathBuf;

use crate::stages::correlation::CorrelationOutcome;
use crate::stages::model::ModelRecord;
use crate::stages::oracle::OracleOutcome;
use crate::stages::prune::PruneOutcome;
use crate::stages::scores::ScoresOutcome;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What the model stage recorded (`model/summary.json`).
    pub model: ModelRecord,
    pub scores: ScoresOutcome,
    pub oracle: Option<OracleOutcome>,
    pub correlation: Option<CorrelationOutcome>,
    pub prune: Option<PruneOutcome>,
    /// The run folder.
    pub out_dir: PathBuf,
    /// Wall time of this invocation.
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        writeln!(f, "{}", self.scores)?;
        if let Some(oracle) = &self.oracle {
            writeln!(f, "{oracle}")?;
        }
        if let Some(correlation) = &self.correlation {
            writeln!(f, "{correlation}")?;
        }
        if let Some(prune) = &self.prune {
            writeln!(f, "{prune}")?;
        }
        write!(
            f,
            "done: {} on {}: test accuracy {:.2}%, test loss {:.4} after {} epochs{} ({:.0}s); outputs in {}",
            m.arch,
            m.dataset,
            100.0 * m.test_accuracy,
            m.test_loss,
            m.epochs,
            match (m.cached, m.resumed_after_epoch) {
                (true, _) => " (model stage finished earlier)".to_string(),
                (false, 0) => String::new(),
                (false, k) => format!(" (resumed after epoch {k})"),
            },
            self.seconds,
            self.out_dir.display()
        )
    }
}
