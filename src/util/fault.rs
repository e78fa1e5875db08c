//! Crash points for the crash tests: `PRUNELAB_CRASH_AT=<point>:<epoch>` aborts the process at
//! that point of that epoch, as a SIGKILL would (no destructors, no flushing), so a test can
//! stop a run exactly between two writes instead of hoping a timed kill lands there.

#![forbid(unsafe_code)]

/// Aborts when `PRUNELAB_CRASH_AT` names this point and epoch; otherwise does nothing.
pub fn crash_point(point: &str, epoch: usize) {
    if let Ok(wanted) = std::env::var("PRUNELAB_CRASH_AT") {
        if wanted == format!("{point}:{epoch}") {
            std::process::abort();
        }
    }
}
