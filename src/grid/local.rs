//! `--executor local --jobs K`: a grid's tasks on this machine, K processes at a time, each
//! `prunelab … --phase P --index I` with its share of the cores (K × threads ≤ cores), its
//! output appended to `results/<name>/logs/`. The phases run one after the other.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::{phase_name, Grid, Task};
use crate::cli::{Phase, RunArgs};
use crate::Error;

/// Runs every task of `grid`, phase by phase, `--jobs` at a time.
pub fn run(grid: &Grid, args: &RunArgs) -> Result<(), Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.map_or(1, |k| k as usize);
    let threads = args
        .threads
        .or(grid.runs[0].experiment.threads)
        .unwrap_or((cores / jobs).max(1));
    if jobs * threads > cores {
        return Err(Error::Input(format!(
            "--jobs {jobs} × {threads} threads = {} threads on {cores} cores: give fewer jobs or --threads (K × threads ≤ cores)",
            jobs * threads
        )));
    }
    let phases = grid.phases();
    if args.dry_run {
        super::check_runs(grid, args)?;
        for &phase in &phases {
            list_tasks(grid, phase);
        }
        println!(
            "local executor: {jobs} at a time, {threads} threads each; logs in {}",
            grid.dir.join("logs").display()
        );
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        path: "the prunelab executable".into(),
        source,
    })?;
    let logs = grid.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| Error::Io {
        path: logs.clone(),
        source,
    })?;
    let started = Instant::now();
    for (p, &phase) in phases.iter().enumerate() {
        let tasks = grid.tasks(phase);
        let words = Words {
            exe: exe.clone(),
            grid,
            args,
            threads,
            // Only the first phase starts over; the later ones build on it.
            fresh: args.fresh && p == 0,
        };
        let failed = run_phase(&words, phase, &tasks, jobs, &logs);
        // Every task refused what it was given (exit 2): so is the grid.
        if !failed.is_empty() && failed.iter().all(|f| f.refused) {
            let why: Vec<&str> = failed.iter().map(|f| f.text.as_str()).collect();
            return Err(Error::Input(format!(
                "every task of the {} phase was refused:\n{}",
                phase_name(phase),
                why.join("\n")
            )));
        }
        if !failed.is_empty() {
            let failed: Vec<&str> = failed.iter().map(|f| f.text.as_str()).collect();
            return Err(Error::Tasks(format!(
                "{} of {} tasks of the {} phase failed (later phases not run; rerunning the grid resumes):\n{}",
                failed.len(),
                tasks.len(),
                phase_name(phase),
                failed.join("\n")
            )));
        }
    }
    println!(
        "grid: {} runs in {} in {:.1} s",
        grid.runs.len(),
        grid.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints the tasks of `phase`, as `--dry-run` shows them.
pub fn list_tasks(grid: &Grid, phase: Phase) {
    let tasks = grid.tasks(phase);
    println!("phase {} ({} tasks):", phase_name(phase), tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        println!("  {i:>4}  {}", grid.describe(*task));
    }
}

/// What every task's command line shares.
struct Words<'a> {
    exe: PathBuf,
    grid: &'a Grid,
    args: &'a RunArgs,
    threads: usize,
    fresh: bool,
}

impl Words<'_> {
    fn command(&self, phase: Phase, index: usize) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg(&self.grid.path)
            .args(&self.grid.overrides)
            .arg("--results")
            .arg(&self.args.results)
            .args(["--threads", &self.threads.to_string()])
            .args(["--conv", conv_name(self.args)])
            .args(["--phase", phase_name(phase)])
            .args(["--index", &index.to_string()]);
        if self.fresh {
            command.arg("--fresh");
        }
        command
    }
}

pub(super) fn conv_name(args: &RunArgs) -> &'static str {
    match args.conv {
        crate::cli::Conv::Ours => "ours",
        crate::cli::Conv::Candle => "candle",
    }
}

/// A task that failed: what it was and said, and whether it refused its input (exit 2).
struct Failed {
    text: String,
    refused: bool,
}

/// Runs `tasks`, `jobs` at a time; the failed ones, each with its log.
fn run_phase(
    words: &Words,
    phase: Phase,
    tasks: &[Task],
    jobs: usize,
    logs: &std::path::Path,
) -> Vec<Failed> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let total = tasks.len();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(&task) = tasks.get(index) else { break };
                let what = words.grid.describe(task);
                let log = logs.join(format!("{}-{index}.log", phase_name(phase)));
                println!(
                    "[{}/{total}] {} started (log {})",
                    index + 1,
                    what,
                    log.display()
                );
                let began = Instant::now();
                let outcome = run_one(words, phase, index, &log);
                let seconds = began.elapsed().as_secs_f64();
                match outcome {
                    Ok(()) => println!("[{}/{total}] {what}: done in {seconds:.1} s", index + 1),
                    Err((why, code)) => {
                        println!("[{}/{total}] {what}: {why}", index + 1);
                        // The task's own error line says more than its exit code.
                        let said = std::fs::read_to_string(&log)
                            .ok()
                            .and_then(|text| {
                                let line = text.lines().rev().find(|l| l.starts_with("error: "))?;
                                Some(format!("{line} "))
                            })
                            .unwrap_or_default();
                        failed.lock().expect("no task thread panics").push(Failed {
                            text: format!("  {what}: {why}; {said}(log {})", log.display()),
                            refused: code == Some(2),
                        });
                    }
                }
            });
        }
    });
    failed.into_inner().expect("no task thread panics")
}

/// One task, its output appended to `log`; a failure says why, with the exit code if any.
fn run_one(
    words: &Words,
    phase: Phase,
    index: usize,
    log: &std::path::Path,
) -> Result<(), (String, Option<i32>)> {
    let unopened = |e: std::io::Error| (format!("cannot open its log: {e}"), None);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(unopened)?;
    let err = file.try_clone().map_err(unopened)?;
    let status = words
        .command(phase, index)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| (format!("cannot start prunelab: {e}"), None))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err((format!("failed (exit {code})"), Some(code))),
        None => Err((format!("killed ({status})"), None)),
    }
}
