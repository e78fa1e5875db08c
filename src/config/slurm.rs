//! `[slurm]`: how `--executor slurm` asks the cluster for each task. None of it changes what a
//! point computes, so none of it is part of a point's hash.

use serde::{Deserialize, Serialize};

/// `[slurm]`: the resources of every task of the job array, as `sbatch` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`. Default: the cluster's default partition.
    pub partition: Option<String>,
    /// `--time`, SLURM's format (`"30"`, `"4:00:00"`, `"2-00:00:00"`). Default: the partition's.
    pub time: Option<String>,
    /// `--cpus-per-task`, also the task's worker threads. Default 2.
    #[serde(default = "default_cpus")]
    pub cpus: usize,
    /// `--mem` (`"8G"`). Default: the partition's.
    pub mem: Option<String>,
    /// `--gres` (`"gpu:1"`); a GPU build also sets `device = "cuda"`.
    pub gres: Option<String>,
    /// `--account`. Default: the user's.
    pub account: Option<String>,
    /// Tasks of one array running at once (`--array=0-N%K`). Default: as many as the cluster gives.
    pub parallel: Option<usize>,
    /// Times a task stopped by a signal (preemption, the time limit) requeues itself; then it
    /// only stops, and a rerun of the grid resumes it. Default 3.
    #[serde(default = "default_requeues")]
    pub requeues: u32,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        toml::from_str("").expect("every [slurm] key has a default")
    }
}

fn default_cpus() -> usize {
    2
}
fn default_requeues() -> u32 {
    3
}

impl SlurmConfig {
    /// The rules serde cannot check.
    pub(super) fn problems(&self, fail: &mut impl FnMut(&str, String)) {
        if !(1..=super::MAX_THREADS).contains(&self.cpus) {
            fail(
                "slurm.cpus",
                format!("must be in 1..={} (got {})", super::MAX_THREADS, self.cpus),
            );
        }
        if self.parallel == Some(0) {
            fail("slurm.parallel", "must be ≥ 1 (got 0)".into());
        }
        if self.requeues > 1000 {
            fail(
                "slurm.requeues",
                format!("must be at most 1000 (got {})", self.requeues),
            );
        }
        let texts = [
            ("slurm.partition", &self.partition),
            ("slurm.time", &self.time),
            ("slurm.mem", &self.mem),
            ("slurm.gres", &self.gres),
            ("slurm.account", &self.account),
        ];
        for (key, text) in texts {
            // Each value becomes one word of an `#SBATCH` line.
            if let Some(t) = text.as_deref().filter(|t| {
                t.is_empty()
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:,=+/".contains(c))
            }) {
                fail(
                    key,
                    format!("must be a non-empty word of letters, digits and -_.:,=+/ (got {t:?})"),
                );
            }
        }
    }
}
