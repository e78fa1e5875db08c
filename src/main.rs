//! The `prunelab` binary: sets up the allocator, parses the command line, runs the command
//! ([`prunelab::commands`]), prints the error with its causes and maps it to an exit code.

use std::process::ExitCode;

use clap::Parser;
use prunelab::cli::{overrides_as_words, Cli};
#[cfg(target_os = "linux")]
use prunelab::util::recycling::Recycling;

// Recycling maps and remaps its blocks with Linux's `mremap`; elsewhere mimalloc has them all.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: Recycling<mimalloc::MiMalloc> = Recycling::new(mimalloc::MiMalloc);
#[cfg(not(target_os = "linux"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h; the crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Every op allocates its output afresh, and large activations freed at the end of a pass are
/// needed again at the start of the next one. Returning them to the OS in between costs page
/// faults on every pass (measured: ResNet-50 training 9.1–9.6 → 11.4–13.7 images/s, inference at
/// batch 64 ≈ 10% faster, minor page faults 70k → 1k per run). So large blocks are recycled
/// within the peak ([`Recycling`]; `PRUNELAB_RECYCLE=0` leaves them to mimalloc), and mimalloc
/// keeps the small ones it frees. `MIMALLOC_PURGE_DELAY`, where set, is mimalloc's own setting
/// and is left to it (0 returns memory at once).
fn keep_freed_memory() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("PRUNELAB_RECYCLE").is_none_or(|v| v != "0") {
        // SAFETY: nothing has allocated a large block yet.
        unsafe { ALLOCATOR.enable() };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option of the allocator, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let args = overrides_as_words(std::env::args_os().collect());
    match prunelab::commands::dispatch(Cli::parse_from(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", with_causes(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The error's message followed by each cause its message does not already say.
fn with_causes(error: &prunelab::Error) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    message
}
