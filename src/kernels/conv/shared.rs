//! A mutable pointer shared by parallel tasks that each write their own, disjoint elements.

/// The pointer of a buffer that tasks write in disjoint parts.
#[derive(Clone, Copy)]
pub(super) struct Shared(pub(super) *mut f32);

// SAFETY: every user has its tasks write disjoint elements, and keeps the buffer mutably
// borrowed while they run (see `narrow::forward` and `outer::accumulate`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// A method, so that closures capture the whole wrapper rather than the raw pointer.
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
