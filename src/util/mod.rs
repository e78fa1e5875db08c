//! What every floor uses: files written atomically, the run folder's lock, output paths
//! checked before any work, the worker threads, safe points (stop on a signal, crash points for the resume tests), and the
//! allocator that recycles large blocks.

pub mod atomic_file;
pub mod fingerprint;
pub mod output_path;
#[cfg(target_os = "linux")]
pub mod recycling;
pub mod run_lock;
pub mod safe_point;
pub mod tables;
pub mod threads;
