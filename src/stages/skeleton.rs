//! The one skeleton every stage but the model runs in: reuse the finished outputs when the
//! record matches, else forget the record, run, and record what was written.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use super::fingerprints::Fingerprints;
use super::record::{self, Stage, Status};
use super::Plan;
use crate::data::Dataset;
use crate::Error;

/// What the stages of a run share: the plan, the data read once, the device, what each stage
/// is made from, and the threads that time latency.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub data: &'a Dataset,
    pub device: &'a Device,
    pub made_from: &'a Fingerprints,
    pub latency_threads: usize,
}

/// A stage: which one it is, how to read back what a finished run wrote, and how to make it.
pub trait StageRun {
    type Output;
    const STAGE: Stage;

    /// What a finished run wrote into `dir`, read back (an unreadable output runs the stage
    /// again rather than being trusted).
    fn read_back(&self, dir: &Path) -> Result<Self::Output, Error>;

    /// Makes the stage's outputs in `dir`.
    fn run(&self, dir: &Path) -> Result<Self::Output, Error>;
}

/// `stage`'s outputs: read back when its record in `run_dir` matches `made_from` and every
/// recorded output is intact, else made again and recorded.
pub fn reuse_or_run<S: StageRun>(
    stage: &S,
    run_dir: &Path,
    made_from: &crate::util::fingerprint::Fingerprint,
) -> Result<S::Output, Error> {
    let dir = S::STAGE.dir(run_dir);
    if let Status::Done(_) = record::status(run_dir, S::STAGE, made_from) {
        if let Ok(output) = stage.read_back(&dir) {
            return Ok(output);
        }
    }
    record::invalidate(run_dir, S::STAGE)?;
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let started = Instant::now();
    let output = stage.run(&dir)?;
    record::finish(
        run_dir,
        S::STAGE,
        made_from,
        started.elapsed().as_secs_f64(),
    )?;
    Ok(output)
}
