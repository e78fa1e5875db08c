//! Where each run of a grid stands, stage by stage, read from the stage records and the
//! partial work beside them (no scheduler is asked).

use std::path::Path;

use super::{Grid, PointRun};
use crate::stages::record::{recorded, Stage};
use crate::util::run_lock::RunLock;

/// The stages `run` has, in order.
fn stages(run: &PointRun) -> Vec<Stage> {
    let e = &run.experiment;
    let mut stages = vec![Stage::Model, Stage::Scores];
    if e.oracle.is_some() {
        stages.extend([Stage::Oracle, Stage::Correlation]);
    }
    if e.prune.is_some() {
        stages.push(Stage::Prune);
        if e.oracle.is_some() {
            stages.push(Stage::Budgets);
        }
    }
    stages
}

/// One stage in a word or two: `done`, `12/19 DFCs`, `started`, `—`.
fn stage_state(dir: &Path, stage: Stage) -> String {
    match recorded(dir, stage) {
        Some(Ok(_)) => "done".into(),
        Some(Err(why)) => format!("damaged ({why})"),
        None if stage == Stage::Oracle => {
            let files = std::fs::read_dir(Stage::Oracle.dir(dir).join("dfcs"))
                .map(|entries| entries.filter_map(Result::ok).count())
                .unwrap_or(0);
            match files {
                0 => "—".into(),
                n => format!("{n} parts"),
            }
        }
        None if stage.dir(dir).is_dir() => "started".into(),
        None => "—".into(),
    }
}

/// Whether every stage of `run` is done.
pub fn finished(run: &PointRun) -> bool {
    stages(run)
        .into_iter()
        .all(|s| matches!(recorded(&run.dir, s), Some(Ok(_))))
}

/// The grid's runs, one line each, and a count of the finished ones.
pub fn report(grid: &Grid) -> String {
    let mut lines = Vec::new();
    let mut done = 0;
    for (i, run) in grid.runs.iter().enumerate() {
        let states: Vec<String> = stages(run)
            .into_iter()
            .map(|s| format!("{} {}", s.name(), stage_state(&run.dir, s)))
            .collect();
        let running = match RunLock::check_free(&run.dir) {
            Err(e) => format!(" — running: {e}"),
            Ok(()) => String::new(),
        };
        if finished(run) {
            done += 1;
        }
        let label = if run.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", run.label)
        };
        lines.push(format!(
            "{i:>4}  {}{label}\n      {}{running}",
            run.dir.display(),
            states.join(" · ")
        ));
    }
    lines.push(format!("{done} of {} runs finished", grid.runs.len()));
    lines.join("\n")
}
