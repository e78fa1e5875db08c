//! How many threads the tensor kernels use, and the thread a command's work runs on.

#![forbid(unsafe_code)]

/// Makes candle's kernels use `n` threads. Call once, before any tensor work.
pub fn set_threads(n: usize) {
    // candle reads these variables on every parallel kernel; rayon reads them when its global
    // pool is first built.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
}

/// The stack of rayon's worker threads, on which [`on_worker`] runs whole commands: a main
/// thread's.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// Runs `work` on one of the worker threads of rayon's global pool, built here if it is not yet
/// (with [`set_threads`]' count; call that first), and returns what `work` returns.
///
/// The kernels' parallel loops then start inside the pool, where rayon splits each between the
/// threads at once; started from another thread, each loop is handed to the pool as a job and
/// that thread sleeps until it is done, and the workers go to sleep and are woken between
/// loops. On 2 threads, in three interleaved comparisons, ResNet-20 trained 1.03–1.12× as fast
/// on a worker and inferred 1.39–1.81× as fast at batch 1 (ResNet-56: 1.00–1.08× and
/// 1.27–1.54×; `paper_figures/benchmarks.md`).
pub fn on_worker<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    // An error means the pool exists already: it keeps its threads' stack size.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK_BYTES)
        .build_global();
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_worker_of_the_global_pool_and_returns_its_result() {
        assert_eq!(rayon::current_thread_index(), None, "the test's own thread");
        let (index, threads) =
            on_worker(|| (rayon::current_thread_index(), rayon::current_num_threads()));
        assert!(index.is_some_and(|i| i < threads), "{index:?} of {threads}");
        assert_eq!(
            on_worker(|| on_worker(|| 7)),
            7,
            "nested, it runs where it is"
        );
    }
}
