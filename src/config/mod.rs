//! The experiment schema: one TOML file → one typed [`Experiment`].
//!
//! Every key is defined once, here, with its doc comment and its default; the README's TOML
//! reference repeats these. Parsing (`Experiment::parse`) touches no files besides the TOML
//! itself, so `--dry-run` works without the dataset. Unknown keys are rejected with a
//! "did you mean" hint, and every error names the file, line, column and key path.

#![forbid(unsafe_code)]

mod data;
pub mod grid;
mod latency;
mod locate;
mod model;
mod prune;
mod saliency;
mod slurm;
mod study;
mod train;

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use data::{
    DataConfig, DatasetInfo, DatasetKind, Normalization, NormalizationPreset, PerChannel,
    SubsetMode, SyntheticConfig,
};
pub use latency::LatencyConfig;
pub use locate::{did_you_mean, ConfigError, ConfigErrors};
pub use model::{ModelConfig, OnnxBatchNorm};
pub use prune::{FineTune, PruneConfig, PruneSchedule, Target, TargetConfig};
pub use saliency::{CriterionName, Reduction, SaliencyConfig};
pub use slurm::SlurmConfig;
pub use study::{CorrelationConfig, ImageRequest, ImageSet, OracleConfig, SplitChoice};
pub use train::{ScheduleKind, TrainConfig};

/// Most worker threads accepted (from the file or the command line).
pub const MAX_THREADS: usize = 1024;
/// Longest run name: it becomes a folder name.
const MAX_NAME: usize = 100;
/// Most images in one batch (training, evaluation or latency timing).
pub(crate) const MAX_BATCH: usize = 65_536;
/// Largest SGD learning rate accepted, for training and fine-tuning alike.
pub(crate) const MAX_LR: f64 = 10.0;
/// Largest generated dataset, in bytes of pixels.
pub(crate) const MAX_SYNTHETIC_BYTES: usize = 4 << 30;

/// `x` as people write it: plainly (`0.05`, `200`), or in scientific notation when that is
/// shorter to read (`1e308`, not 309 digits; `1e-7`).
pub fn number<T>(x: T) -> String
where
    T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    let magnitude = x.into().abs();
    if magnitude != 0.0 && magnitude.is_finite() && !(1e-4..1e6).contains(&magnitude) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// A whole experiment file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name of the run; outputs go to `results/<name>/`. Default: the file name without `.toml`.
    pub name: Option<String>,
    /// Seed of every random choice: initialisation, shuffling, augmentation. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `"cpu"`, `"cuda"` (needs a build with `--features cuda`) or `"auto"` (cuda when present).
    #[serde(default)]
    pub device: DeviceChoice,
    /// Worker threads for tensor kernels. Default: every core. `--threads` overrides it.
    pub threads: Option<usize>,
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub latency: LatencyConfig,
    #[serde(default)]
    pub saliency: SaliencyConfig,
    /// `[oracle]`: when present, the oracle and correlation stages run.
    pub oracle: Option<OracleConfig>,
    /// `[correlation]`: how criteria are compared with the oracle; needs `[oracle]`.
    pub correlation: Option<CorrelationConfig>,
    /// `[prune]`: when present, the pruning stage runs.
    pub prune: Option<PruneConfig>,
    /// `[slurm]`: the resources `--executor slurm` asks for each task.
    pub slurm: Option<SlurmConfig>,
    /// `[grid]`: keys with the lists of values to try ([`grid`]); only `prunelab FILE` runs a
    /// grid, as its points.
    #[serde(default, skip_serializing)]
    pub grid: Option<toml::Table>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
    Auto,
}

impl Experiment {
    /// Reads and validates an experiment file. Touches no other file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::parse(path, &Self::read_source(path)?)
    }

    /// The text of an experiment file: refused when it is a folder, unreadable, not UTF-8 or
    /// holds control characters.
    pub fn read_source(path: &Path) -> Result<String, ConfigErrors> {
        if path.is_dir() {
            return Err(ConfigErrors::single(
                path,
                "is a folder; give an experiment file (e.g. experiments/quick.toml)".into(),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigErrors::single(path, format!("cannot read the experiment file: {e}"))
        })?;
        let source = String::from_utf8(bytes)
            .map_err(|e| locate::not_text(path, e.as_bytes(), e.utf8_error().valid_up_to()))?;
        match locate::control_character(path, &source) {
            Some(error) => Err(error),
            None => Ok(source),
        }
    }

    /// Parses and validates `source`; `path` only labels the errors and names the default run.
    pub fn parse(path: &Path, source: &str) -> Result<Self, ConfigErrors> {
        if let Some(error) = locate::control_character(path, source) {
            return Err(error);
        }
        let mut experiment: Experiment =
            toml::from_str(source).map_err(|e| locate::from_toml_error(path, source, &e))?;
        if experiment.name.is_none() {
            experiment.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        let problems = experiment.problems();
        if problems.is_empty() {
            Ok(experiment)
        } else {
            Err(locate::from_problems(path, source, problems))
        }
    }

    /// The run's name (validated: letters, digits, `-`, `_`, `.`).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("experiment")
    }

    /// The synthetic dataset's sizes (defaults when `[data.synthetic]` is absent).
    pub fn synthetic(&self) -> SyntheticConfig {
        self.data.synthetic.unwrap_or_default()
    }

    /// Threads for the tensor kernels: `--threads` (`flag`), else `threads`; `None` leaves
    /// every core to them.
    pub fn kernel_threads(&self, flag: Option<usize>) -> Option<usize> {
        flag.or(self.threads)
    }

    /// Threads that time latency: `--threads` (`flag`), else `[latency] threads`, else
    /// `threads`, else every core.
    pub fn latency_threads(&self, flag: Option<usize>) -> usize {
        flag.or(self.latency.threads)
            .or(self.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The correlation study's settings: present whenever the oracle is.
    pub fn correlation(&self) -> Option<CorrelationConfig> {
        self.oracle.map(|_| self.correlation.unwrap_or_default())
    }

    /// Every rule the types alone cannot express, as (key path, message) pairs.
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut fail = |key: &str, msg: String| out.push((key.to_string(), msg));
        let name = self.name();
        if name.len() > MAX_NAME {
            fail(
                "name",
                format!("must be at most {MAX_NAME} characters (got {})", name.len()),
            );
        } else if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            fail(
                "name",
                format!("must be letters, digits, '-', '_' or '.', not starting with '.' (got {name:?})"),
            );
        }
        for (key, threads) in [
            ("threads", self.threads),
            ("latency.threads", self.latency.threads),
        ] {
            if let Some(n) = threads.filter(|n| !(1..=MAX_THREADS).contains(n)) {
                fail(key, format!("must be in 1..={MAX_THREADS} (got {n})"));
            }
        }
        if self.device == DeviceChoice::Cuda && !cfg!(feature = "cuda") {
            fail(
                "device",
                "\"cuda\" needs a build with CUDA: `cargo build --release --features cuda` (see README), or use device = \"cpu\"".into(),
            );
        }
        self.data.problems(&mut fail);
        let info = self.data.info(self.synthetic());
        let shards = self.oracle.map_or(1, |o| o.shards);
        let check_shards = |graph: &crate::graph::Graph, fail: &mut dyn FnMut(&str, String)| {
            let channels: usize =
                crate::graph::couplings(graph).map_or(0, |c| c.iter().map(|d| d.channels).sum());
            if shards > channels.max(1) {
                fail(
                    "oracle.shards",
                    format!(
                        "must be at most the {channels} channels of {}'s DFCs (got {shards})",
                        self.model.label()
                    ),
                );
            }
        };
        let arch = self.model.arch.as_str();
        match &self.model.onnx {
            Some(_) if !arch.is_empty() => fail(
                "model.onnx",
                "give model.arch or model.onnx, not both".into(),
            ),
            Some(_) if self.model.weights.is_some() => fail(
                "model.weights",
                "an ONNX model carries its weights: leave model.weights out".into(),
            ),
            Some(path) => match crate::onnx::load(path, self.model.input, &info, &Device::Cpu) {
                Ok((graph, _)) => check_shards(&graph, &mut fail),
                Err(why) => fail("model.onnx", why),
            },
            None if self.model.input.is_some() => fail(
                "model.input",
                "only an ONNX model (model.onnx) takes its input size from here".into(),
            ),
            None if crate::models::ARCHITECTURES.contains(&arch) => {
                // Building the graph is pure computation; it catches inputs too small for the model.
                match crate::models::build(arch, info.channels, info.size, info.classes) {
                    Err(crate::graph::GraphError::Invalid(why)) => {
                        fail("model.arch", format!("does not fit the data: {why}"));
                    }
                    Ok(graph) => check_shards(&graph, &mut fail),
                    Err(_) => {}
                }
            }
            None => {
                let hint = locate::did_you_mean(arch, crate::models::ARCHITECTURES);
                let known = crate::models::ARCHITECTURES.join(", ");
                let why = match arch.is_empty() {
                    true => format!("missing: give an architecture (known: {known}) or model.onnx"),
                    false => format!("unknown architecture {arch:?} (known: {known}){hint}"),
                };
                fail("model.arch", why);
            }
        }
        self.train.problems(self.model.has_weights(), &mut fail);
        self.latency.problems(&mut fail);
        self.saliency.problems(&mut fail);
        if let Some(oracle) = &self.oracle {
            oracle.problems(&mut fail);
        }
        let images = [
            Some(("saliency.images.split", self.saliency.images)),
            self.oracle.map(|o| ("oracle.images.split", o.images)),
        ];
        for (key, set) in images.into_iter().flatten() {
            if set.split == SplitChoice::Validation && self.data.validation == 0 {
                fail(
                    key,
                    "the validation split is empty: hold training images out with [data] validation".into(),
                );
            }
        }
        if let Some(prune) = &self.prune {
            let info = self.data.info(self.synthetic());
            prune.problems(&self.saliency.criteria, &info, &mut fail);
        }
        if let Some(slurm) = &self.slurm {
            slurm.problems(&mut fail);
        }
        if let Some(correlation) = &self.correlation {
            correlation.problems(&mut fail);
            if self.oracle.is_none() {
                fail(
                    "correlation",
                    "compares criteria with the oracle: add an [oracle] section".into(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_read_as_people_write_them() {
        let shown: Vec<String> = [0.05, 200.0, 0.0, -0.1, 1e308, 1e-7, 5e-4, 2.5e6]
            .map(super::number::<f64>)
            .into();
        assert_eq!(
            shown,
            ["0.05", "200", "0", "-0.1", "1e308", "1e-7", "0.0005", "2.5e6"]
        );
        assert_eq!(super::number(125.3f32), "125.3");
        assert_eq!(super::number(f32::MAX), "3.4028235e38");
    }
}
