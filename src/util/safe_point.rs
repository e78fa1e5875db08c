//! Safe points: the places where a run's work so far is on disk and a new process resumes from
//! it exactly (after an epoch's checkpoint, an oracle DFC, a pruning step). Two things happen
//! there:
//!
//! - a task told to stop (SIGUSR1, SLURM's warning before a time limit or preemption, or
//!   SIGTERM) ends at the next one, requeueing itself first under SLURM while
//!   `SLURM_RESTART_COUNT` is below `[slurm] requeues` ([`stop_on_signals`]);
//! - the crash tests' `PRUNELAB_CRASH_AT=<point>:<n>` aborts there, as a SIGKILL would (no
//!   destructors, no flushing), so a test stops a run exactly between two writes.

#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGTERM, SIGUSR1};

/// The signal that asked to stop (0: none), and how many requeues a task may make.
struct Stop {
    signal: Arc<AtomicUsize>,
    requeues: u32,
}

static STOP: OnceLock<Stop> = OnceLock::new();

/// From now on SIGUSR1 and SIGTERM stop the process at its next safe point instead of killing
/// it; under SLURM it requeues itself first, at most `requeues` times.
pub fn stop_on_signals(requeues: u32) -> std::io::Result<()> {
    let signal = Arc::new(AtomicUsize::new(0));
    for s in [SIGUSR1, SIGTERM] {
        signal_hook::flag::register_usize(s, Arc::clone(&signal), s as usize)?;
    }
    let _ = STOP.set(Stop { signal, requeues });
    Ok(())
}

/// Point `point` (of epoch, DFC or step `n`): stops here when a signal asked to, and aborts
/// when `PRUNELAB_CRASH_AT` names this point and `n`.
pub fn safe_point(point: &str, n: usize) {
    if let Ok(wanted) = std::env::var("PRUNELAB_CRASH_AT") {
        if wanted == format!("{point}:{n}") {
            std::process::abort();
        }
    }
    let Some(stop) = STOP.get() else { return };
    let signal = stop.signal.load(Ordering::SeqCst);
    if signal == 0 {
        return;
    }
    let name = if signal == SIGUSR1 as usize {
        "SIGUSR1"
    } else {
        "SIGTERM"
    };
    eprintln!("stopped by {name} at a safe point ({point} {n}): everything before it is saved, and the run resumes here");
    if let Some(requeued) = requeue(stop.requeues) {
        eprintln!("{requeued}");
        std::process::exit(0);
    }
    std::process::exit(128 + signal as i32);
}

/// Requeues this SLURM job (`scontrol requeue $SLURM_JOB_ID`) unless it has been requeued
/// `limit` times already; says what it did (or `None` outside SLURM).
fn requeue(limit: u32) -> Option<String> {
    let job = std::env::var("SLURM_JOB_ID").ok()?;
    let restarts: u32 = std::env::var("SLURM_RESTART_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if restarts >= limit {
        return Some(format!(
            "not requeued: job {job} has been requeued {restarts} times ([slurm] requeues = {limit}); rerun the grid to resume it"
        ));
    }
    Some(
        match Command::new("scontrol").args(["requeue", &job]).status() {
            Ok(s) if s.success() => format!(
                "requeued job {job} (restart {} of at most {limit})",
                restarts + 1
            ),
            Ok(s) => format!("scontrol requeue {job} failed ({s}); rerun the grid to resume it"),
            Err(e) => format!(
                "cannot run scontrol to requeue job {job} ({e}); rerun the grid to resume it"
            ),
        },
    )
}
