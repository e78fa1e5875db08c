//! `--executor slurm`: a grid as SLURM job arrays, through `sbatch` alone. The experiment file
//! is copied into `results/<name>/slurm/` (what the tasks read, whatever becomes of the
//! original), beside `task.sh` (one task: `prunelab … --phase $1 --index $SLURM_ARRAY_TASK_ID`)
//! and `collect.sh`. One array per phase, each after the one before (`afterany`: a phase
//! resumes or redoes what an earlier task left undone), then the collect job. A task is
//! requeueable, appends to its log `%A_%a.out`, and is warned 120 s before its time limit
//! (`--signal=B:USR1@120`): it stops at its next safe point and requeues itself
//! ([`crate::util::safe_point`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::local::{conv_name, list_tasks};
use super::{phase_name, Grid};
use crate::cli::RunArgs;
use crate::config::SlurmConfig;
use crate::Error;

/// What the scripts need besides the grid: absolute paths, and the array's parallelism.
pub struct Submission {
    /// The prunelab executable.
    pub exe: PathBuf,
    /// The folder the tasks start in (relative paths in the experiment are read from there).
    pub cwd: PathBuf,
    /// `--results`, absolute.
    pub results: PathBuf,
    /// The copy of the experiment file the tasks read.
    pub experiment: PathBuf,
    /// Running tasks per array (`%K`).
    pub parallel: Option<usize>,
    pub conv: &'static str,
}

/// Writes the scripts and submits the arrays and the collect job (or, on `--dry-run`, prints
/// them and submits nothing).
pub fn submit(grid: &Grid, args: &RunArgs) -> Result<(), Error> {
    if args.fresh {
        return Err(Error::Input(
            "--fresh with --executor slurm: every requeued task would start over; remove the points' folders under runs/ instead".into(),
        ));
    }
    let config = grid.slurm();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    let dir = std::path::absolute(grid.dir.join("slurm")).map_err(io(&grid.dir))?;
    let file_name = grid.path.file_name().unwrap_or_default();
    let submission = Submission {
        exe: std::env::current_exe().map_err(io(Path::new("prunelab")))?,
        cwd,
        results: std::path::absolute(&args.results).map_err(io(&args.results))?,
        experiment: dir.join(file_name),
        parallel: args.jobs.map(|k| k as usize).or(config.parallel),
        conv: conv_name(args),
    };
    let task = task_script(grid, &config, &submission, &dir);
    let collect = collect_script(grid, &config, &submission, &dir);
    let phases = grid.phases();
    if args.dry_run {
        super::check_runs(grid, args)?;
        for &phase in &phases {
            list_tasks(grid, phase);
        }
        println!("\n{}/task.sh:\n{task}", dir.display());
        println!("{}/collect.sh:\n{collect}", dir.display());
        println!("would submit, from {}:", submission.cwd.display());
        for (i, &phase) in phases.iter().enumerate() {
            let array = array_range(grid.tasks(phase).len(), submission.parallel);
            let after = match i {
                0 => String::new(),
                _ => " --dependency=afterany:<the array before>".into(),
            };
            println!(
                "  sbatch --parsable --array={array}{after} task.sh {}",
                phase_name(phase)
            );
        }
        println!("  sbatch --parsable --dependency=afterany:<the last array> collect.sh");
        return Ok(());
    }
    let sbatch = on_path("sbatch").ok_or_else(|| {
        Error::Input(
            "--executor slurm: sbatch is not on PATH (no SLURM client on this machine); run the grid here with --executor local".into(),
        )
    })?;
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::copy(&grid.path, &submission.experiment).map_err(io(&submission.experiment))?;
    for (name, text) in [("task.sh", &task), ("collect.sh", &collect)] {
        let path = dir.join(name);
        crate::util::atomic_file::write(&path, text.as_bytes()).map_err(io(&path))?;
    }
    let mut after: Option<String> = None;
    let mut submitted = Vec::new();
    for &phase in &phases {
        let count = grid.tasks(phase).len();
        let mut command = Command::new(&sbatch);
        command
            .current_dir(&submission.cwd)
            .arg("--parsable")
            .arg(format!(
                "--array={}",
                array_range(count, submission.parallel)
            ));
        if let Some(job) = &after {
            command.arg(format!("--dependency=afterany:{job}"));
        }
        command.arg(dir.join("task.sh")).arg(phase_name(phase));
        let job = run_sbatch(command)?;
        submitted.push(format!(
            "job array {job}: {} phase, {count} tasks",
            phase_name(phase)
        ));
        after = Some(job);
    }
    let mut command = Command::new(&sbatch);
    command
        .current_dir(&submission.cwd)
        .arg("--parsable")
        .arg(format!(
            "--dependency=afterany:{}",
            after.expect("a grid has a phase")
        ))
        .arg(dir.join("collect.sh"));
    let collect_job = run_sbatch(command)?;
    submitted.push(format!("job {collect_job}: collect, after the last array"));
    let record = dir.join("jobs.txt");
    let mut text = std::fs::read_to_string(&record).unwrap_or_default();
    text.push_str(&(submitted.join("\n") + "\n"));
    crate::util::atomic_file::write(&record, text.as_bytes()).map_err(io(&record))?;
    for line in &submitted {
        println!("submitted {line}");
    }
    println!(
        "logs: {}/<job>_<task>.out; where each point stands: prunelab status {} --results {}",
        dir.display(),
        command_words(&grid.path, &grid.overrides),
        quote(&args.results)
    );
    Ok(())
}

/// `0-N` with `%K` when the array's parallelism is capped.
fn array_range(count: usize, parallel: Option<usize>) -> String {
    let last = count.saturating_sub(1);
    match parallel {
        Some(k) => format!("0-{last}%{k}"),
        None => format!("0-{last}"),
    }
}

/// The `#SBATCH` lines every job of the grid shares.
fn resources(config: &SlurmConfig, name: &str) -> String {
    let mut lines = format!("#SBATCH --job-name={name}\n");
    let options = [
        ("partition", &config.partition),
        ("account", &config.account),
        ("time", &config.time),
        ("mem", &config.mem),
        ("gres", &config.gres),
    ];
    for (option, value) in options {
        if let Some(v) = value {
            lines.push_str(&format!("#SBATCH --{option}={v}\n"));
        }
    }
    lines
}

/// The script of one task: `$1` is the phase, the array index the task.
pub fn task_script(grid: &Grid, config: &SlurmConfig, s: &Submission, dir: &Path) -> String {
    let name = grid.runs[0].experiment.name();
    format!(
        "#!/bin/bash\n\
         # One task of the grid {experiment} (prunelab): phase $1, task $SLURM_ARRAY_TASK_ID.\n\
         {resources}\
         #SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --output={dir}/%A_%a.out\n\
         #SBATCH --open-mode=append\n\
         #SBATCH --requeue\n\
         #SBATCH --signal=B:USR1@120\n\
         cd {cwd}\n\
         exec {exe} {words} --results {results} --threads {cpus} --conv {conv} --phase \"$1\" --index \"$SLURM_ARRAY_TASK_ID\"\n",
        experiment = grid.path.display(),
        resources = resources(config, &format!("prunelab-{name}")),
        cpus = config.cpus,
        dir = quote(dir),
        cwd = quote(&s.cwd),
        exe = quote(&s.exe),
        words = command_words(&s.experiment, &grid.overrides),
        results = quote(&s.results),
        conv = s.conv,
    )
}

/// The script of the collect job.
pub fn collect_script(grid: &Grid, config: &SlurmConfig, s: &Submission, dir: &Path) -> String {
    let name = grid.runs[0].experiment.name();
    format!(
        "#!/bin/bash\n\
         # Merges the finished points of the grid {experiment} (prunelab collect).\n\
         {resources}\
         #SBATCH --cpus-per-task=1\n\
         #SBATCH --output={dir}/collect_%j.out\n\
         #SBATCH --open-mode=append\n\
         cd {cwd}\n\
         exec {exe} collect {words} --results {results}\n",
        experiment = grid.path.display(),
        resources = resources(config, &format!("prunelab-{name}-collect")),
        dir = quote(dir),
        cwd = quote(&s.cwd),
        exe = quote(&s.exe),
        words = command_words(&s.experiment, &grid.overrides),
        results = quote(&s.results),
    )
}

/// The experiment and its overrides as shell words.
fn command_words(experiment: &Path, overrides: &[String]) -> String {
    let mut words = vec![quote(experiment)];
    words.extend(overrides.iter().map(|o| quote(Path::new(o))));
    words.join(" ")
}

/// `text` as one shell word: bare when it is plain, else in single quotes.
fn quote(text: &Path) -> String {
    let text = text.to_string_lossy();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
    {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Runs `sbatch --parsable …`: the job id it prints (`123` or `123;cluster`).
fn run_sbatch(mut command: Command) -> Result<String, Error> {
    let output = command
        .output()
        .map_err(|e| Error::Tasks(format!("cannot run sbatch: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let job = stdout.trim().split(';').next().unwrap_or("").to_string();
    if !output.status.success() || job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Tasks(format!(
            "sbatch failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(job)
}

/// The executable `name` on `PATH`, if any.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
