//! A grid's points as runs and tasks: each point's run folder, named by its content
//! (`results/<name>/runs/<hash8>/`, with its resolved `experiment.toml` and `overrides.txt`),
//! and the task lists the executors run ([`local`], [`slurm`]): with `[oracle] shards = S` or
//! `[prune] variant_tasks`, first every point's model, then its parts (every shard of its
//! oracle, every variant of its prune stage), then every point whole; else every point whole. A task is one `prunelab … --phase P --index I` process, so a task run by
//! hand, by the local executor or by SLURM is the same thing.

pub mod local;
pub mod slurm;
pub mod status;

use std::path::{Path, PathBuf};

use crate::cli::Phase;
use crate::config::grid::{self, Loaded, Point};
use crate::config::Experiment;
use crate::Error;

/// One run of a grid: a point, or the whole experiment when there is no grid.
#[derive(Debug, Clone)]
pub struct PointRun {
    pub experiment: Experiment,
    /// Its run folder.
    pub dir: PathBuf,
    /// Its settings on one line (empty without a grid).
    pub label: String,
    /// The point, when the run is one of a grid.
    pub point: Option<Point>,
}

impl PointRun {
    /// The oracle's shards (1 without `[oracle]`).
    pub fn shards(&self) -> usize {
        self.experiment.oracle.map_or(1, |o| o.shards)
    }

    /// The run's parts, each a task of the parts phase: its oracle's shards (when more than
    /// one), then its prune variants (with `[prune] variant_tasks`).
    pub fn parts(&self) -> Vec<Part> {
        let shards = match self.shards() {
            1 => 0,
            s => s,
        };
        let variants = match &self.experiment.prune {
            Some(p) if p.variant_tasks => p.variants().len(),
            _ => 0,
        };
        (0..shards)
            .map(Part::Shard)
            .chain((0..variants).map(Part::Variant))
            .collect()
    }

    /// Writes the point's resolved experiment and its overrides into its folder (a grid point).
    pub fn write_settings(&self) -> Result<(), Error> {
        let Some(point) = &self.point else {
            return Ok(());
        };
        let resolved = toml::to_string(&self.experiment).expect("an experiment serialises");
        let header = format!(
            "# The resolved experiment of grid point {} ({}): what this folder was made from.\n",
            point.hash8(),
            self.label
        );
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let write = |name: &str, text: String| {
            let path = self.dir.join(name);
            crate::util::atomic_file::write(&path, text.as_bytes())
                .map_err(|source| Error::Io { path, source })
        };
        write("experiment.toml", header + &resolved)?;
        write("overrides.txt", point.overrides_text())
    }
}

/// An experiment file with its overrides, as the runs and tasks it stands for.
pub struct Grid {
    /// The experiment file.
    pub path: PathBuf,
    /// The overrides, as given.
    pub overrides: Vec<String>,
    /// `results/<name>/`: a single run's folder, or the grid's (`runs/`, `slurm/`, `logs/`).
    pub dir: PathBuf,
    pub runs: Vec<PointRun>,
    /// Whether the experiment is a grid (overrides or `[grid]`).
    pub is_grid: bool,
}

/// A part of a run that is a task of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A shard of the oracle.
    Shard(usize),
    /// A variant of the prune stage (criterion × coupled, in the order they run).
    Variant(usize),
}

/// A task: which run, and which part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub run: usize,
    pub phase: Phase,
    /// The part, in `Phase::Parts`.
    pub part: Option<Part>,
}

impl Grid {
    /// Reads the experiment, applies the overrides and lays out the runs under `results`.
    pub fn load(path: &Path, overrides: &[String], results: &Path) -> Result<Self, Error> {
        let (runs, dir, is_grid) = match grid::load(path, overrides)? {
            Loaded::Single(experiment) => {
                let experiment = *experiment;
                let dir = results.join(experiment.name());
                let run = PointRun {
                    experiment,
                    dir: dir.clone(),
                    label: String::new(),
                    point: None,
                };
                (vec![run], dir, false)
            }
            Loaded::Grid(points) => {
                let dir = results.join(points[0].experiment.name());
                let runs = points
                    .into_iter()
                    .map(|p| PointRun {
                        experiment: p.experiment.clone(),
                        dir: dir.join("runs").join(p.hash8()),
                        label: p.label(),
                        point: Some(p),
                    })
                    .collect();
                (runs, dir, true)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            overrides: overrides.to_vec(),
            dir,
            runs,
            is_grid,
        })
    }

    /// `[slurm]` as the experiment gives it (the same for every point: it is no part of one).
    pub fn slurm(&self) -> crate::config::SlurmConfig {
        self.runs[0].experiment.slurm.clone().unwrap_or_default()
    }

    /// The phases whose tasks the executors run, in order.
    pub fn phases(&self) -> Vec<Phase> {
        if self.runs.iter().any(|r| !r.parts().is_empty()) {
            vec![Phase::Models, Phase::Parts, Phase::Whole]
        } else {
            vec![Phase::Whole]
        }
    }

    /// The tasks of `phase`, in index order.
    pub fn tasks(&self, phase: Phase) -> Vec<Task> {
        let task = |run, part| Task { run, phase, part };
        match phase {
            Phase::Models | Phase::Whole => (0..self.runs.len()).map(|r| task(r, None)).collect(),
            Phase::Parts => self
                .runs
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.parts().into_iter().map(move |p| task(i, Some(p))))
                .collect(),
        }
    }

    /// Task `index` of `phase`; an index beyond the list is refused.
    pub fn task(&self, phase: Phase, index: usize) -> Result<Task, Error> {
        let tasks = self.tasks(phase);
        tasks.get(index).copied().ok_or_else(|| {
            let name = phase_name(phase);
            Error::Input(match tasks.len() {
                0 => format!("--index {index}: the {name} phase has no tasks"),
                n => format!(
                    "--index {index}: the {name} phase has {n} tasks, 0..={}",
                    n - 1
                ),
            })
        })
    }

    /// What a task is, for logs and listings.
    pub fn describe(&self, task: Task) -> String {
        let run = &self.runs[task.run];
        let what = match task.part {
            None if task.phase == Phase::Models => "model and scores".to_string(),
            None => "whole".to_string(),
            Some(Part::Shard(s)) => format!("oracle shard {}/{}", s + 1, run.shards()),
            Some(Part::Variant(v)) => {
                let prune = run
                    .experiment
                    .prune
                    .as_ref()
                    .expect("variants come from [prune]");
                let (criterion, coupled) = prune.variants()[v];
                let coupled = if coupled { "on" } else { "off" };
                format!("prune variant {} (coupled {coupled})", criterion.as_str())
            }
        };
        let label = if run.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", run.label)
        };
        format!("{what} of {}{label}", run.dir.display())
    }
}

/// Every run of `grid` checked as its tasks will check it (the data, the weights, a
/// checkpoint, its folder's lock) and its plan printed: what `--dry-run` shows of a grid.
pub fn check_runs(grid: &Grid, args: &crate::cli::RunArgs) -> Result<(), Error> {
    let options = crate::pipeline::RunOptions {
        fresh: args.fresh,
        threads: args.threads,
        dry_run: true,
    };
    for (i, run) in grid.runs.iter().enumerate() {
        let plan = crate::stages::Plan::in_folder(run.experiment.clone(), &run.dir)?;
        let prepared = crate::kernels::with_conv_backend(args.conv.into(), || {
            crate::pipeline::prepare(&plan, &options)
        })?;
        println!("run {i} [{}]\n{}\n", run.label, plan.describe(&prepared));
    }
    Ok(())
}

/// The phase as `--phase` names it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Models => "models",
        Phase::Parts => "parts",
        Phase::Whole => "whole",
    }
}
