//! The command line: every subcommand, flag and value parser (clap derive).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{CriterionName, MAX_THREADS};
use crate::kernels::ConvBackend;

/// Train, evaluate and analyse the network an experiment file describes.
#[derive(Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file, e.g. experiments/quick.toml, then any overrides `key=value`
    /// (`train.lr=0.05`, also `--train.lr=0.05`); a comma list (`seed=0,1,2`) makes a grid.
    #[arg(required = true, num_args = 1.., value_name = "EXPERIMENT [KEY=VALUE]...")]
    pub experiments: Vec<PathBuf>,
    /// Where a grid's points run: here (`local`) or as a SLURM job array (`slurm`).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Points (tasks) run at once: `local` runs K processes with `threads` each (K × threads
    /// ≤ cores); `slurm` caps the array's running tasks (`--array=0-N%K`, else `[slurm] parallel`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub jobs: Option<u64>,
    /// Run only task I of the grid's task list, in this process (what each SLURM task runs).
    #[arg(long, value_name = "I")]
    pub index: Option<usize>,
    /// Which part of the grid's work the task list of `--index` holds (with `[oracle] shards`
    /// or `[prune] variant_tasks`: the models, then the parts, then the rest of every point).
    #[arg(long, value_enum, default_value_t = Phase::Whole, requires = "index")]
    pub phase: Phase,
    /// Start from scratch even if a checkpoint of this experiment exists (it is overwritten).
    #[arg(long)]
    pub fresh: bool,
    /// Check the experiment and every input it names (device, data, weights, checkpoint) and
    /// print the plan; write nothing, train nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Worker threads for tensor kernels (overrides `threads` in the file).
    #[arg(long, value_parser = threads)]
    pub threads: Option<usize>,
    /// Folder under which `<name>/` receives the outputs.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Convolution implementation (candle's is the slow reference, for checking numerics).
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    pub conv: Conv,
}

/// Where a grid's points run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

/// A part of a grid's work, as one list of tasks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Phase {
    /// Each point's model and scores.
    Models,
    /// The parts of every run: its oracle's shards, then its prune variants.
    Parts,
    /// Each point, whole (resuming what the other phases made).
    Whole,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the network's couplings (DFCs), parameters and MACs; write them as JSON. Reads no data.
    Inspect {
        experiment: PathBuf,
        /// Folder under which `<name>/inspect.json` is written.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Score every channel of the experiment's trained model with the `[saliency]` criteria
    /// (the pipeline's scores stage alone); write them under `<name>/scores/`. Reads data only
    /// for the data-driven criteria.
    Scores(ExperimentArgs),
    /// Time the network's inference against a pruned copy, interleaved, with the `[latency]`
    /// settings; break the time down per layer. Reads no data.
    Latency(LatencyArgs),
    /// Measure training and inference images/s and peak memory on random inputs.
    Bench(BenchArgs),
    /// Time the oracle (suffix runs, tiles of channels) against a full forward pass per
    /// channel, DFC by DFC, on the experiment's trained model and `[oracle]` images; report
    /// how far they differ.
    OracleBench {
        #[command(flatten)]
        run: ExperimentArgs,
        /// Only the first N DFCs (N ≥ 1).
        #[arg(long, value_parser = dfc_count)]
        dfcs: Option<usize>,
    },
    /// Evaluate a pruned model's folder (as the prune stage exports it) on the experiment's
    /// test set, and compare with the accuracy recorded beside it.
    Eval {
        /// The folder: model.json, model.safetensors and, from the prune stage, point.json.
        model: PathBuf,
        /// The experiment whose data to evaluate on.
        experiment: PathBuf,
        /// Worker threads (overrides `threads` in the file).
        #[arg(long, value_parser = threads)]
        threads: Option<usize>,
    },
    /// Write a model's folder (a run's model/, or a pruned point the prune stage exported) as
    /// an ONNX model (opset 17, every weight an initializer) for onnxruntime or PyTorch.
    Export {
        /// The folder: model.json and model.safetensors.
        model: PathBuf,
        /// The ONNX file to write.
        #[arg(long, value_name = "OUT")]
        onnx: PathBuf,
        /// Fold each BatchNorm that follows a convolution into it (the inference form).
        #[arg(long)]
        fold_batchnorm: bool,
    },
    /// Show where every point of an experiment (or grid) stands, stage by stage, from the
    /// stage records.
    Status(GridArgs),
    /// Merge a grid's finished points: every table across seeds (mean ± std, 95% interval),
    /// figures with bands, and one index.html.
    Collect(CollectArgs),
    /// Write every table and figure again from stored results, running nothing: each source is
    /// a run folder (results/<name>) or a folder this command wrote.
    Report {
        /// Folders of stored results.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Where `<source name>/` is written.
        #[arg(long)]
        out: PathBuf,
        /// A line to start every Markdown and LaTeX table with (what produced it).
        #[arg(long)]
        stamp: Option<String>,
    },
}

/// An experiment with its overrides, and where its run folders are.
#[derive(Args)]
pub struct GridArgs {
    /// The experiment file, then its overrides `key=value` as given to the run.
    #[arg(required = true, num_args = 1.., value_name = "EXPERIMENT [KEY=VALUE]...")]
    pub experiment: Vec<PathBuf>,
    /// Folder under which `<name>/` holds the run's outputs.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// `collect`: the grid, and where its merged tables go.
#[derive(Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// Folder for index.html and the merged tables (default: `<results>/<name>/collected`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A line to start every Markdown and LaTeX table with (what produced it).
    #[arg(long)]
    pub stamp: Option<String>,
}

/// The experiment a command works on, where its run folder is, and its threads.
#[derive(Args)]
pub struct ExperimentArgs {
    /// The experiment file.
    pub experiment: PathBuf,
    /// Folder under which `<name>/` holds the run's outputs.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Worker threads (overrides the file's thread counts).
    #[arg(long, value_parser = threads)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub run: ExperimentArgs,
    /// Compare with a copy that has this fraction of every DFC's channels removed at random.
    #[arg(long, conflicts_with = "plan", value_parser = fraction, allow_negative_numbers = true)]
    pub prune_random: Option<f64>,
    /// Seed of the random channel choice.
    #[arg(long, default_value_t = 0, requires = "prune_random")]
    pub seed: u64,
    /// Compare with the network pruned by this channel plan (JSON: {"remove": {"<first producer of a DFC>": [channels]}}).
    #[arg(long)]
    pub plan: Option<PathBuf>,
}

/// The command line with overrides written as flags (`--train.lr=0.05`, `--seed=1`) turned
/// into `key=value` words, for the run, `status` and `collect`; other subcommands' flags are
/// left alone.
pub fn overrides_as_words(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let subcommand = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let known = [
        "inspect",
        "scores",
        "latency",
        "bench",
        "oracle-bench",
        "eval",
        "report",
        "help",
    ];
    if known.contains(&subcommand) {
        return args;
    }
    // Top-level keys that are no flag of these commands; dotted keys never are.
    let plain_keys = ["seed", "device", "name"];
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let Some((key, _)) = text.strip_prefix("--").and_then(|t| t.split_once('=')) else {
                return arg;
            };
            if key.contains('.') || plain_keys.contains(&key) {
                text[2..].into()
            } else {
                arg
            }
        })
        .collect()
}

fn threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a thread count in 1..={MAX_THREADS}"
        )),
    }
}

fn dfc_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a number of DFCs ≥ 1")),
    }
}

/// A built-in architecture's name.
fn architecture(text: &str) -> Result<String, String> {
    let known = crate::models::ARCHITECTURES;
    if known.contains(&text) {
        return Ok(text.to_string());
    }
    let list = known.join(", ");
    if text.trim().is_empty() {
        return Err(format!(
            "an empty name (a stray comma?); give architectures separated by commas, from: {list}"
        ));
    }
    let hint = crate::config::did_you_mean(text, known);
    Err(format!(
        "unknown architecture {text:?}{hint} (known: {list})"
    ))
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a fraction in [0, 1)")),
    }
}

#[derive(Args)]
pub struct BenchArgs {
    /// Architectures to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet20,resnet56,resnet50",
        value_parser = architecture
    )]
    pub models: Vec<String>,
    /// Training and large-batch inference batch size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch: u64,
    /// Side of the square RGB inputs.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub size: u64,
    /// Convolution implementation.
    #[arg(long, value_enum, default_value_t = Conv::Ours)]
    pub conv: Conv,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = threads)]
    pub threads: Option<usize>,
    /// Least time spent on each measurement, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub seconds: f64,
    /// Untimed runs before each measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub warmup: u64,
    /// Least number of timed runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub min_runs: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of training and inference, time these saliency criteria (comma-separated) on
    /// each model's seeded initialisation, `--min-runs` times; naming `dfpc` and
    /// `dfpc-name-order` also compares their rankings.
    #[arg(long, value_delimiter = ',', value_parser = criterion)]
    pub criteria: Vec<CriterionName>,
}

/// A data-free criterion: the benchmark scores initialisations, without images.
fn criterion(text: &str) -> Result<CriterionName, String> {
    let data_free = |c: &CriterionName| !crate::saliency::needs_of(&[*c]).activations;
    let known: Vec<&str> = CriterionName::ALL
        .iter()
        .filter(|c| data_free(c))
        .map(|c| c.as_str())
        .collect();
    match CriterionName::ALL.into_iter().find(|c| c.as_str() == text) {
        Some(c) if data_free(&c) => Ok(c),
        Some(_) => Err(format!(
            "{text} reads images; the benchmark times the data-free criteria ({}); `prunelab scores` runs the others",
            known.join(", ")
        )),
        None => Err(format!(
            "unknown criterion {text:?} (data-free: {})",
            known.join(", ")
        )),
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds in [0, 3600]")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Conv {
    Ours,
    Candle,
}

impl From<Conv> for ConvBackend {
    fn from(conv: Conv) -> Self {
        match conv {
            Conv::Ours => ConvBackend::Ours,
            Conv::Candle => ConvBackend::Candle,
        }
    }
}
